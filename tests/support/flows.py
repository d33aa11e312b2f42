"""Shared set-up for the flow tests: a ledger with history, backed up into a file repository."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)


def backed_up_ledger(root: Path, *, minutes: int = 4, per_minute: int = 6, fmt: ExportFormat = ExportFormat.ION_BINARY,
                     seed: int = 0) -> tuple[Path, Location]:
    """A ledger whose history spans `minutes` one-minute windows, all backed up into `root/primary`."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "ledger.db"
    ledger = Ledger.create(path)
    for minute in range(minutes):
        with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
            run_workload(ledger, per_minute, seed=seed + minute)
    ledger.close()
    location = Location(FileStore(root / "primary"), "")
    source = EmbeddedSource(path)
    with freeze_time(T0 + timedelta(minutes=minutes, seconds=6)):
        report = run_backup(source, location, BackupPolicy(interval=timedelta(minutes=1), fmt=fmt))
    source.close()
    assert len(report.recorded) == minutes and not report.failed
    return path, location


def back_up_one_more_minute(ledger_path: Path, location: Location, minute: int) -> int:
    """Write a little more history in minute `minute` and run the backup once that window is due; the
    windows it recorded."""
    ledger = Ledger.open(ledger_path)
    with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
        run_workload(ledger, 6, seed=100 + minute)
    ledger.close()
    source = EmbeddedSource(ledger_path)
    with freeze_time(T0 + timedelta(minutes=minute + 1, seconds=6)):
        recorded = len(run_backup(source, location, BackupPolicy(interval=timedelta(minutes=1))).recorded)
    source.close()
    return recorded


def embedded_digest(path: Path) -> str:
    """The state digest of the embedded target at `path`, read back on its own."""
    target = EmbeddedTarget(path)
    try:
        return digest_of_target(target).digest
    finally:
        target.close()


def two_region_config(tmp_path: Path) -> Path:
    """A ledger with a few transactions and a ledgerdr.toml naming it and two directory repositories in two
    regions (1 s windows, no settle), for tests that drive the CLI."""
    ledger = Ledger.create(tmp_path / "ledger.db")
    run_workload(ledger, 5, seed=1)
    ledger.close()
    config = tmp_path / "ledgerdr.toml"
    config.write_text(f'[source]\nkind = "embedded"\npath = "{tmp_path / "ledger.db"}"\n\n'
                      '[backup]\ninterval = "1s"\nsettle = "0s"\n\n'
                      f'[repositories.primary]\nurl = "{tmp_path / "primary"}"\nregion = "eu-west-1"\n\n'
                      f'[repositories.secondary]\nurl = "{tmp_path / "secondary"}"\nregion = "eu-central-1"\n')
    return config


def ctrl_c_restore(command: list[str], state: Path) -> tuple[int, str, str]:
    """Run a `ledgerdr restore` COMMAND whose state folder is `state`, and press Ctrl-C once it has planned
    and its workers are starting: its exit code, stdout and stderr."""
    # its own session, so that the signal reaches the whole process group, as Ctrl-C in a terminal does
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(state.glob("*/run.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # workers are starting or working
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def ledger_with_a_redaction(tmp_path: Path) -> Location:
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


FORMAT_1 = Path(__file__).resolve().parent.parent / "data" / "snapshot-format-1"


def format_1_repository(root: Path) -> Location:
    """A copy of a repository whose snapshot ledgerdr wrote in format 1 (tests/data/snapshot-format-1):
    three windows from `backed_up_ledger(minutes=3, per_minute=6)` and a snapshot of all three; its ledger
    is copied to `root / "ledger.db"`, for more windows (`back_up_one_more_minute`)."""
    import shutil

    shutil.copy(FORMAT_1 / "ledger.db", root / "ledger.db")
    shutil.copytree(FORMAT_1 / "repository", root / "primary")
    return Location(FileStore(root / "primary"), "")
