"""Restore through the C verifier's rows (`restore.rows`, `EmbeddedTarget.apply_rows`) against the Python path.

Both paths must leave the embedded target holding the same rows, column for column: history, current documents,
blocks, tables, index entries, redactions. The journal here has indexes, deletes and a redaction (whose block the
C verifier declines, so a restore mixes both paths), and the units also arrive reversed and twice.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from ledgerdr import native
from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.ledger.engine import Ledger
from ledgerdr.queues.sqlite import SqliteQueue
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.restore.rows import load_rows
from ledgerdr.restore.worker import WorkerSpec, run_worker
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import Location
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import T0, backed_up_ledger

if native.journal is None:
    pytest.skip("the C journal verifier is not in use (LEDGERDR_PURE_PYTHON, or not built)", allow_module_level=True)

_QUERIES = {
    "tables": "SELECT table_id, name, status, created_seq FROM tables",
    "history": "SELECT * FROM history",
    "documents": "SELECT * FROM documents",
    "blocks": "SELECT * FROM blocks",
    "indexes": "SELECT table_id, field, status FROM indexes",
    "index_entries": "SELECT i.table_id, i.field, e.key, e.doc_id FROM index_entries e JOIN indexes i USING (index_id)",
    "restore_units": "SELECT last_seq FROM restore_units",  # (the index pass's unit id names its restore)
    "restore_redactions": "SELECT * FROM restore_redactions",
}


def _rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {name: sorted(conn.execute(query).fetchall(), key=repr) for name, query in _QUERIES.items()}


def _ledger_with_a_redaction(tmp_path: Path) -> Location:
    """The flows' ledger, backed up, then one more window holding a redaction of an early revision."""
    path, location = backed_up_ledger(tmp_path)
    ledger = Ledger.open(path)
    with freeze_time(T0 + timedelta(minutes=4, seconds=7)):
        table_id = ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Person'")[0]
        old = ledger.execute("SELECT h.blockAddress, h.metadata.id FROM history(Person) AS h "
                             "WHERE h.metadata.version = 0")
        live = {row["id"] for row in ledger.execute("SELECT id FROM Person BY id")}
        newer = {row["id"] for row in ledger.execute("SELECT h.metadata.id FROM history(Person) AS h "
                                                     "WHERE h.metadata.version > 0")}
        target = next(row for row in old if row["id"] in live & newer)
        ledger.execute("EXEC redact_revision ?, ?, ?", target["blockAddress"], table_id, target["id"])
    ledger.close()
    source = EmbeddedSource(path)
    with freeze_time(T0 + timedelta(minutes=5, seconds=6)):
        assert run_backup(source, location, BackupPolicy(interval=timedelta(minutes=1))).recorded
    source.close()
    return location


def test_rows_path_stores_what_the_python_path_stores(tmp_path):
    primary = _ledger_with_a_redaction(tmp_path)
    plan = plan_restore(primary)
    read = [load_rows(primary.store, unit) for unit in plan.units]
    # both paths in one restore: the redaction's window and the window that creates the tables (DDL) go through
    # load_unit, the others through the C rows
    assert any(r is None for r in read) and sum(r is not None for r in read) >= 3

    fast = restore(primary.store.url, f"embedded:{tmp_path / 'fast.db'}",
                   RestoreOptions(workers=0, state_dir=tmp_path / "fast-state"))
    assert fast.verdict and fast.journal_state_digest == fast.target_state_digest
    script = ("import sys; from pathlib import Path; from ledgerdr.restore import RestoreOptions, restore; "
              "r = restore(sys.argv[1], sys.argv[2], RestoreOptions(workers=0, state_dir=Path(sys.argv[3]))); "
              "sys.exit(0 if r.verdict else 1)")
    subprocess.run([sys.executable, "-c", script, primary.store.url, f"embedded:{tmp_path / 'python.db'}",
                    str(tmp_path / "python-state")], env={**os.environ, "LEDGERDR_PURE_PYTHON": "1"}, check=True)
    expected = _rows(tmp_path / "python.db")
    assert expected["restore_redactions"] and expected["index_entries"]
    assert any(row[3] is None and row[8] is not None for row in expected["history"])  # the redacted revision
    assert _rows(tmp_path / "fast.db") == expected

    # the same units reversed and half of them twice: the redaction arrives before the revision it erases
    queue = SqliteQueue(tmp_path / "q.db", name="dup")
    bodies = [u.to_bytes() for u in reversed(plan.units)]
    queue.send_batch(bodies + bodies[::2])
    run_worker(queue, WorkerSpec(primary.url, f"embedded:{tmp_path / 'dup.db'}", str(tmp_path / "dup-state"),
                                 ledger_name=plan.ledger_name))
    target = EmbeddedTarget(tmp_path / "dup.db")
    target.finalize()
    assert digest_of_target(target).digest == fast.journal_state_digest
    target.close()
    shuffled = _rows(tmp_path / "dup.db")  # (no index pass without finalize; tables first seen elsewhere)
    for name in ("history", "documents", "blocks", "restore_redactions"):
        assert shuffled[name] == expected[name]


def test_restore_commits_at_normal_durability_and_promote_gives_the_ledger_its_own_back(tmp_path):
    """Units commit at synchronous=NORMAL (finalize checkpoints before the verdict); a promoted ledger's writes
    are durable again (FULL, the ledger's default)."""
    target = EmbeddedTarget(tmp_path / "t.db")
    conn = target.storage.conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    target.open_lineage("strand", "ledger")
    target.promote("lineage-1")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    target.close()


def test_a_unit_cut_to_a_block_range_of_its_object_is_read_as_rows(tmp_path):
    """`restore.run.split_units` cuts a large object into block ranges (a restore with workers does): the C
    verifier gives the blocks outside the range without their statements, which the DDL check must skip."""
    from ledgerdr.restore.run import split_units

    _, primary = backed_up_ledger(tmp_path, minutes=2, per_minute=12)
    whole = [u for u in plan_restore(primary).units if u.last_seq - u.first_seq >= 4]
    assert whole
    for unit in split_units(whole, blocks=2):
        rows = load_rows(primary.store, unit)
        assert rows is None or all(unit.first_seq <= block[0] <= unit.last_seq for block in rows.blocks)
