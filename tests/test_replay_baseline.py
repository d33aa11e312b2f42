"""The reference architecture's statement replay, as a baseline: it runs, and it loses what the reference lost.

Every figure the assertions use is derived from the journal or the source ledger, never written in: the
replay's losses are shown against the same backed-up ledger that `ledgerdr restore` brings back exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from ledgerdr.cli.replay_cmd import replay as replay_command
from ledgerdr.errors import ConfigError
from ledgerdr.journal import ion_hash
from ledgerdr.journal.codecs import ExportFormat, read_blocks
from ledgerdr.ledger.engine import Ledger
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.restore.replay import ReplayReport, replay_statements
from ledgerdr.stores import open_location
from support.flows import backed_up_ledger

TABLES = ("Vehicle", "Person", "Invoice")


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory) -> tuple[Path, str, Path]:
    """(source ledger, repository URL, scratch dir) for a ledger with inserts, updates and deletes."""
    root = tmp_path_factory.mktemp("replay")
    path, location = backed_up_ledger(root, minutes=3, per_minute=25, seed=3)
    return path, location.url, root


@pytest.fixture(scope="module")
def replayed(backed_up) -> tuple[ReplayReport, Path]:
    _, url, root = backed_up
    return replay_statements(url, root / "replayed.db"), root / "replayed.db"


def _journal_statements(url: str) -> list[tuple[str, int, bool]]:
    """(statement, revisions in its block, whether revisions[0] has data) for every journal statement."""
    location = open_location(url)
    out = []
    for unit in plan_restore(location).units:
        for block in read_blocks(location.store.get(unit.key), ExportFormat.parse(unit.fmt)):
            has_data = bool(block.revisions) and "data" in block.revisions[0]
            out.extend((s, len(block.revisions), has_data) for s in block.statements())
    return out


def _contents(path: Path, table: str) -> Counter:
    with Ledger.open(path, read_only=True) as ledger:
        return Counter(map(ion_hash, ledger.execute(f"SELECT * FROM {table}")))


def _ids(path: Path, table: str) -> set[str]:
    with Ledger.open(path, read_only=True) as ledger:
        return {str(row["id"]) for row in ledger.execute(f"SELECT id FROM {table} AS t BY id")}


def test_the_workload_exercises_every_loss(backed_up):
    """The premises of the tests below, checked on the journal itself."""
    statements = _journal_statements(backed_up[1])
    assert any(s.startswith("INSERT") and n > 1 for s, n, _ in statements), "no multi-document insert"
    assert any(s.startswith("UPDATE") and s.count("?") > 1 for s, _, _ in statements), "no multi-? update"
    assert any(s.startswith("DELETE") and not has_data for s, _, has_data in statements), "no delete"
    assert any(s.startswith("SELECT") for s, _, _ in statements), "no read-only transaction"


def test_replay_fails_exactly_the_statements_the_reference_could_not_run(backed_up, replayed):
    report, _ = replayed
    statements = _journal_statements(backed_up[1])
    selected = [(s, has_data) for s, _, has_data in statements if s.upper().startswith(("INSERT INTO", "UPDATE",
                                                                                          "DELETE"))]
    too_many = sum(1 for s, _ in selected if s.count("?") > 1)
    no_data = sum(1 for s, has_data in selected if s.count("?") == 1 and not has_data)
    assert report.statements == len(statements) and report.statements_selected == len(selected)
    assert report.statements_failed == too_many + no_data > 0
    assert report.statements_replayed == len(selected) - report.statements_failed
    assert any("parameters" in reason for reason in report.failure_reasons)
    assert report.failure_reasons.get("KeyError: 'data'") == no_data
    assert report.drivers_created == report.objects == len(plan_restore(open_location(backed_up[1])).units)
    assert len(report.failure_examples) == min(5, report.statements_failed)


def test_only_revisions_0_is_inserted_and_every_id_is_new(backed_up, replayed):
    report, target = replayed
    source = backed_up[0]
    statements = _journal_statements(backed_up[1])
    inserts = [n for s, n, _ in statements if s.upper().startswith("INSERT INTO")]
    comparison = report.comparison
    # every INSERT restored one document, whatever it held; nothing else wrote (updates matched nothing)
    assert comparison.target_revisions == len(inserts) < sum(inserts)
    assert comparison.journal_revisions == report.journal_revisions > comparison.target_revisions
    assert comparison.ids_preserved == 0
    for table in TABLES:
        assert _ids(target, table) and not _ids(target, table) & _ids(source, table)


def test_replayed_content_differs_from_the_source(backed_up, replayed):
    report, target = replayed
    source = backed_up[0]
    comparison = report.comparison
    assert not comparison.identical and comparison.journal_state_digest != comparison.target_state_digest
    assert comparison.documents_missing > 0 and comparison.documents_extra > 0  # updates lost, deletes undone
    assert comparison.documents_matching > 0  # untouched single-document inserts do come back
    for row in comparison.tables:
        want, have = _contents(source, row.table), _contents(target, row.table)
        assert (row.journal_documents, row.target_documents) == (sum(want.values()), sum(have.values()))
        assert row.matching == sum((want & have).values())
        assert row.missing == sum((want - have).values()) and row.extra == sum((have - want).values())
    assert any(_contents(source, t) != _contents(target, t) for t in TABLES)


def test_ledgerdr_restore_of_the_same_repository_is_verified(backed_up, replayed, tmp_path):
    source, url, _ = backed_up
    report = restore(url, f"embedded:{tmp_path / 'restored.db'}", RestoreOptions(workers=0,
                                                                                  state_dir=tmp_path / "state"))
    assert report.verdict, report.problems
    # the same verified journal is the reference point on both sides
    assert report.journal_state_digest == report.target_state_digest == replayed[0].comparison.journal_state_digest
    for table in TABLES:
        assert _contents(tmp_path / "restored.db", table) == _contents(source, table)
        assert _ids(tmp_path / "restored.db", table) == _ids(source, table)


def test_parallel_replay_loses_the_same(backed_up, replayed, tmp_path):
    report = replay_statements(backed_up[1], tmp_path / "parallel.db", workers=2)
    serial = replayed[0]
    assert report.workers == 2
    assert (report.statements_failed, report.statements_replayed, report.failure_reasons) == \
        (serial.statements_failed, serial.statements_replayed, serial.failure_reasons)
    assert report.comparison.target_documents == serial.comparison.target_documents
    assert report.comparison.documents_matching == serial.comparison.documents_matching


def test_replay_refuses_an_existing_target(backed_up, replayed):
    with pytest.raises(ConfigError, match="not idempotent"):
        replay_statements(backed_up[1], replayed[1])


def test_cli_reports_the_losses_and_exits_7(backed_up, tmp_path):
    result = CliRunner().invoke(replay_command, ["--from", backed_up[1], "--to", f"embedded:{tmp_path / 'c.db'}",
                                                 "--json"])
    assert result.exit_code == 7, result.output
    out = orjson.loads(result.output)
    assert out["comparison"]["identical"] is False and out["statements_failed"] > 0
    assert out["comparison"]["ids_preserved"] == 0
    text = CliRunner().invoke(replay_command, ["--from", backed_up[1], "--to", str(tmp_path / "d.db")])
    assert text.exit_code == 7 and "DIFFERS FROM THE JOURNAL" in text.output


_PURE_COMPARISON = """
import json, sys
from dataclasses import asdict
from pathlib import Path
from ledgerdr import native
from ledgerdr.restore import plan_restore
from ledgerdr.restore.replay import compare_with_journal
from ledgerdr.stores import open_location
assert native.journal is None and native.statedigest is None
location = open_location(sys.argv[1])
print(json.dumps(asdict(compare_with_journal(location, plan_restore(location).units, Path(sys.argv[2]))), default=str))
"""


def test_the_comparison_is_the_same_from_the_c_rows_and_from_the_python_twins(backed_up, replayed, tmp_path):
    """The comparison takes each unit from the C verifier's rows where it reads them (`restore.rows`), as a
    restore's worker does, and hashes the target in C; on a machine without the extensions it takes `load_unit`'s
    revisions and the Python digest. Both give the same comparison, figure for figure."""
    _, url, _ = backed_up
    report, path = replayed
    copy = tmp_path / "replayed.db"
    shutil.copyfile(path, copy)
    pure = subprocess.run([sys.executable, "-c", _PURE_COMPARISON, url, str(copy)], capture_output=True, check=True,
                          env={**os.environ, "LEDGERDR_PURE_PYTHON": "1"})
    assert report.comparison is not None
    assert orjson.loads(pure.stdout) == orjson.loads(orjson.dumps(asdict(report.comparison), default=str))
