"""Issue 16, restore and drill signals, end to end through the CLI: forks refused at planning, targets
holding other data refused unchanged, permanent failures reported at once, usage errors, Ctrl-C and
resume, and a drill that never deletes a folder it did not make. Each asserts the exit code and that
the message names the object, record or block."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.cli import cli
from ledgerdr.drill import MARKER, prepare_workdir
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.writer import JournalWriter
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.restore import plan_restore
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location, open_location
from ledgerdr.stores.faults import flip_byte
from support.flows import T0, backed_up_ledger, ctrl_c_restore
from support.qldb_export_factory import START, generate_blocks, write_qldb_export

LEDGERDR = str(Path(sys.executable).with_name("ledgerdr"))


def run(*args: str, cwd: Path | None = None):
    return CliRunner().invoke(cli, list(args)) if cwd is None else _in(cwd, args)


def _in(cwd: Path, args) -> object:
    before = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(before)


def restore(source: Path | str, target: Path, state: Path, *extra: str):
    return run("restore", "--from", str(source), "--to", f"embedded:{target}", "--workers", "0",
               "--state-dir", str(state), *extra)


def file_state(path: Path) -> dict[str, str]:
    """The bytes of a ledger file and its SQLite companions, hashed, to show nothing changed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.parent.glob(path.name + "*"))}


def writable_copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


# ------------------------------------------------------------------------------------- 9: forks


def forked_exports(root: Path) -> tuple[list, list]:
    """Two QLDB exports of one strand that share blocks 0..14 and then diverge."""
    writer = JournalWriter()
    common = generate_blocks(15, seed=1, writer=writer)
    other = JournalWriter(writer.strand_id, next_sequence_no=writer.next_sequence_no,
                          previous_block_hash=writer.previous_block_hash)
    later = START + timedelta(seconds=30)
    a = common + generate_blocks(10, seed=2, writer=writer, start=later)
    b = common + generate_blocks(10, seed=3, writer=other, start=later)
    write_qldb_export(root, a[:20], ExportFormat.ION_TEXT, prefix="dr/a/")
    write_qldb_export(root, b, ExportFormat.ION_TEXT, prefix="dr/b/")
    return a, b


def test_fork_between_exports_is_refused_at_planning_naming_both_keys_and_the_block(tmp_path):
    a, b = forked_exports(tmp_path / "raw")
    fork = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x.block_hash != y.block_hash)
    result = restore(tmp_path / "raw", tmp_path / "t.db", tmp_path / "state")
    assert result.exit_code == 7, result.output
    assert re.search(rf"dr/a/\S+\.{fork - fork % 4}-\d+\.ion and dr/b/\S+\.{fork - fork % 4}-\d+\.ion disagree",
                     result.stderr), result.stderr
    assert f"sequenceNo:{fork}" in result.stderr and "nothing applied" in result.stderr
    assert "--resume" not in result.output + result.stderr
    assert not (tmp_path / "t.db").exists()  # nothing was applied: the target was never even created


def _diverged_repositories(root: Path) -> tuple[Path, Path]:
    """Two repositories of one ledger strand whose histories agree on minute 0 and differ afterwards."""
    root.mkdir()
    ledger = Ledger.create(root / "a.db")
    with freeze_time(T0 + timedelta(seconds=7)):
        run_workload(ledger, 6, seed=0)
    ledger.close()
    shutil.copy(root / "a.db", root / "b.db")
    locations = []
    for name, seed in (("a", 10), ("b", 20)):
        ledger = Ledger.open(root / f"{name}.db")
        for minute in (1, 2, 3):
            with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
                run_workload(ledger, 6, seed=seed + minute)
        ledger.close()
        location = Location(FileStore(root / f"repo-{name}"), "")
        source = EmbeddedSource(root / f"{name}.db")
        with freeze_time(T0 + timedelta(minutes=4, seconds=6)):
            assert len(run_backup(source, location, BackupPolicy(interval=timedelta(minutes=1))).recorded) == 4
        source.close()
        locations.append(root / f"repo-{name}")
    return locations[0], locations[1]


def test_window_records_of_two_histories_are_a_fork_refused_at_planning(tmp_path):
    a, b = _diverged_repositories(tmp_path / "src")
    mixed = tmp_path / "mixed"
    writable_copy(a, mixed)
    windows = mixed / "_ledgerdr" / "windows"
    for record in sorted(windows.glob("*.json"))[2:]:  # minutes 2 and 3 come from the other history
        record.unlink()
        other = b / "_ledgerdr" / "windows" / record.name
        shutil.copy(other, record)
        export = orjson.loads(other.read_bytes())["export_prefix"]
        shutil.copytree(b / export, mixed / export)
    result = restore(mixed, tmp_path / "t.db", tmp_path / "state")
    assert result.exit_code == 7, result.output
    assert "fork:" in result.stderr and "window record of 2026-01-05T10:01:00.000Z" in result.stderr
    assert "window record of 2026-01-05T10:02:00.000Z" in result.stderr and "nothing applied" in result.stderr
    assert not (tmp_path / "t.db").exists()


# --------------------------------------------------------------- 14: overlaps, hostile records, permanent


def test_a_duplicated_window_record_is_one_overlap_line_and_the_restore_verifies(tmp_path):
    backed_up_ledger(tmp_path / "src")
    repo = tmp_path / "repo"
    writable_copy(tmp_path / "src" / "primary", repo)
    record = sorted((repo / "_ledgerdr" / "windows").glob("*.json"))[1]
    shutil.copy(record, record.with_name("20260105T100130Z.json"))  # the same record under a new name
    result = restore(repo, tmp_path / "t.db", tmp_path / "state")
    assert result.exit_code == 0, result.output  # was: 4/5 units, NOT VERIFIED, no reason given
    overlap = [line for line in result.stderr.splitlines() if "overlap" in line]
    assert len(overlap) == 1 and "2026-01-05T10:01:00.000Z" in overlap[0], result.stderr
    assert "verdict: VERIFIED" in result.stdout


def test_a_record_naming_a_dotdot_key_is_refused_naming_the_key(tmp_path):
    backed_up_ledger(tmp_path / "src")
    repo = tmp_path / "repo"
    writable_copy(tmp_path / "src" / "primary", repo)
    record_path = sorted((repo / "_ledgerdr" / "windows").glob("*.json"))[1]
    record = orjson.loads(record_path.read_bytes())
    data = next(o for o in record["objects"] if o["key"].endswith(".ion"))
    hostile = "exports/../../elsewhere/" + data["key"].rsplit("/", 1)[-1]
    data["key"] = hostile
    record_path.write_bytes(orjson.dumps(record))
    result = restore(repo, tmp_path / "t.db", tmp_path / "state")
    assert result.exit_code == 7, result.output
    assert repr(hostile) in result.stderr and "20260105T100100Z.json" in result.stderr, result.stderr
    assert "units do not join" not in result.output + result.stderr
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_damaged_object_fails_at_once_naming_it_not_retried(tmp_path, workers):
    backed_up_ledger(tmp_path / "src")
    repo = tmp_path / "repo"
    writable_copy(tmp_path / "src" / "primary", repo)
    victim = plan_restore(open_location(str(repo))).units[1]
    flip_byte(FileStore(repo), victim.key, -50)
    # the exit code of a damaged object, as `verify` gives for it (it was 7 from a worker: "refused")
    assert run("verify", str(repo)).exit_code == 4
    for _ in range(2):  # and a re-run says why again
        result = run("restore", "--from", str(repo), "--to", f"embedded:{tmp_path / 't.db'}", "--workers", workers,
                     "--state-dir", str(tmp_path / "state"))
        assert result.exit_code == 4, result.output
        assert victim.key in result.stderr and "sha256" in result.stderr
        assert f"blocks {victim.first_seq}..{victim.last_seq}" in result.stderr
        assert "dead letter" not in result.stderr and "attempts" not in result.stderr
        assert "--resume" not in result.stderr


# ------------------------------------------------------------------------------- 15: usage errors


def test_until_with_until_block_and_until_block_past_the_backup_are_usage_errors(tmp_path):
    _, primary = backed_up_ledger(tmp_path / "src")
    both = restore(primary.store.url, tmp_path / "a.db", tmp_path / "state", "--until", "2026-01-05T10:02:00Z",
                   "--until-block", "5")
    assert both.exit_code == 2 and "--until-block" in both.stderr
    past = restore(primary.store.url, tmp_path / "b.db", tmp_path / "state", "--until-block", "999")
    assert past.exit_code == 2, past.output
    assert "--until-block 999 is past the newest block" in past.stderr and "(20)" in past.stderr
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()
    exact = restore(primary.store.url, tmp_path / "c.db", tmp_path / "state", "--until-block", "20")
    assert exact.exit_code == 0, exact.output


# ------------------------------------------------------------------- 11: targets holding other data


def test_restore_into_the_live_source_ledger_is_refused_and_production_still_writes(tmp_path):
    source, primary = backed_up_ledger(tmp_path / "src")
    before = file_state(source)
    for _ in range(2):  # a re-run after the refusal says why again
        result = restore(primary.store.url, source, tmp_path / "state")
        assert result.exit_code == 7, result.output
        assert f"embedded ledger {source}" in result.stderr and "writable ledger" in result.stderr
        assert "nothing was changed" in result.stderr
    assert file_state(source) == before
    ledger = Ledger.open(source)
    run_workload(ledger, 3, seed=99)  # production inserts still work
    assert not ledger.read_only
    ledger.close()


def test_the_configured_source_is_refused_even_with_force(tmp_path):
    source, primary = backed_up_ledger(tmp_path / "src")
    assert run("init", "--path", str(tmp_path / "ledgerdr.toml")).exit_code == 0
    configured = tmp_path / "ledger.db"  # the default config's source is ledger.db beside it
    shutil.copy(source, configured)
    before = file_state(configured)
    result = restore(primary.store.url, configured, tmp_path / "state", "--force",
                     "--config", str(tmp_path / "ledgerdr.toml"))
    assert result.exit_code == 7, result.output
    assert "configured source" in result.stderr and str(configured) in result.stderr
    assert file_state(configured) == before


def test_force_says_what_happens_to_a_writable_ledger(tmp_path):
    source, primary = backed_up_ledger(tmp_path / "src")
    copy = tmp_path / "copy.db"
    shutil.copy(source, copy)
    result = restore(primary.store.url, copy, tmp_path / "state", "--force")
    assert result.exit_code == 0, result.output
    assert "warning: --force:" in result.stderr and "read-only restore target" in result.stderr
    assert Ledger.open(copy).read_only


def test_another_lineage_or_a_target_ahead_of_the_backup_is_refused_unchanged(tmp_path):
    _, primary = backed_up_ledger(tmp_path / "one")
    _, other = backed_up_ledger(tmp_path / "two", seed=5)
    target = tmp_path / "t.db"
    assert restore(primary.store.url, target, tmp_path / "state").exit_code == 0
    before = file_state(target)
    lineage = restore(other.store.url, target, tmp_path / "state", "--force")
    assert lineage.exit_code == 7 and "another lineage" in lineage.stderr, lineage.output
    ahead = restore(primary.store.url, target, tmp_path / "state", "--until-block", "5")
    assert ahead.exit_code == 7 and "holds blocks up to 20, newer than the backup's newest block 5" in ahead.stderr
    assert file_state(target) == before


# --------------------------------------------------------------------------- 16: Ctrl-C and resume


def test_ctrl_c_during_restore_prints_the_resume_command_and_a_rerun_resumes_it(tmp_path):
    _, primary = backed_up_ledger(tmp_path / "src", minutes=6, per_minute=60)
    state = tmp_path / "state"
    command = [LEDGERDR, "restore", "--from", primary.store.url, "--to", f"embedded:{tmp_path / 't.db'}",
               "--workers", "2", "--state-dir", str(state)]
    started = time.monotonic()
    code, out, err = ctrl_c_restore(command, state)
    first_run = time.monotonic() - started
    assert code == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    restore_id = re.search(r"interrupted: restore (\w+) stopped", err)[1]
    resume = re.search(r"resume with: (.+)", err)[1]
    assert f"--resume {restore_id}" in resume and f"--state-dir {state}" in resume
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"restore {restore_id}:" in again.stdout and "verdict: VERIFIED" in again.stdout
    rto = float(re.search(r"RTO ([\d.]+)s, resumed", again.stdout)[1])
    assert rto >= first_run - 0.5  # counted from the first start


# ------------------------------------------------------------------------------------ 10: drill


def test_drill_refuses_a_folder_it_did_not_make_and_deletes_nothing(tmp_path):
    work = tmp_path / "mine"
    work.mkdir()
    (work / "precious.txt").write_text("irreplaceable")
    result = run("drill", "--workdir", str(work), "--duration", "1", "--interval", "1")
    assert result.exit_code == 2, result.output
    assert str(work) in result.stderr and MARKER in result.stderr
    assert sorted(p.name for p in work.iterdir()) == ["precious.txt"]
    assert (work / "precious.txt").read_text() == "irreplaceable"


def test_a_drill_folder_is_reused_removing_only_the_drills_own_files(tmp_path):
    work = tmp_path / "drill"
    prepare_workdir(work)  # made by the drill: it carries the marker
    (work / "region-b" / "repo").mkdir(parents=True)
    (work / "report.json").write_text("{}")
    (work / "notes.txt").write_text("the operator's own file")
    prepare_workdir(work)
    assert sorted(p.name for p in work.iterdir()) == [MARKER, "notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_workdir(empty)  # an empty folder is taken and marked
    assert (empty / MARKER).is_file()


def test_postgres_target_of_another_lineage_is_refused_before_anything_is_written(tmp_path, pg_url):
    from ledgerdr.targets.postgres import PostgresTarget

    _, primary = backed_up_ledger(tmp_path / "one")
    _, other = backed_up_ledger(tmp_path / "two", seed=5)
    common = ["--to", pg_url, "--workers", "0", "--state-dir", str(tmp_path / "state")]
    assert run("restore", "--from", primary.store.url, *common).exit_code == 0
    target = PostgresTarget(pg_url)
    before = (target.info(), target.applied_units())
    refused = run("restore", "--from", other.store.url, *common)
    assert refused.exit_code == 7 and "another lineage" in refused.stderr, refused.output
    assert "PostgreSQL schema 'ledgerdr'" in refused.stderr
    assert (target.info(), target.applied_units()) == before
    target.close()
