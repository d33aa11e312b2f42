"""Warm standby and promotion: follows, stops on gaps and forks, survives SIGKILL, promotes into a
new lineage that continues the chain and fences the old primary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from freezegun import freeze_time

from flows import T0, backed_up_ledger
from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.errors import RestoreError, SourceError
from ledgerdr.journal.exports import verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.repository import read_incarnations, read_windows
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.restore.standby import follow_once, promote
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget

POLICY = BackupPolicy(interval=timedelta(minutes=1))


def _more_history(ledger_path: Path, location: Location, minute: int) -> None:
    ledger = Ledger.open(ledger_path)
    with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
        run_workload(ledger, 6, seed=100 + minute)
    ledger.close()
    source = EmbeddedSource(ledger_path)
    with freeze_time(T0 + timedelta(minutes=minute + 1, seconds=6)):
        assert run_backup(source, location, POLICY).recorded
    source.close()


def test_standby_follows_window_by_window(tmp_path):
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=2)
    target = EmbeddedTarget(tmp_path / "standby.db")
    first = follow_once(repo, target)
    windows = read_windows(repo).windows
    assert first.position_seq == windows[-1].last_seq and first.lag_blocks == 0
    _more_history(ledger_path, repo, 2)
    second = follow_once(repo, target)
    assert second.windows_applied == [read_windows(repo).windows[-1].window_start]
    reference = restore(repo.store.url, f"embedded:{tmp_path / 'ref.db'}",
                        RestoreOptions(workers=0, state_dir=tmp_path / "st"))
    assert digest_of_target(target).digest == reference.journal_state_digest
    assert Ledger.open(tmp_path / "standby.db").read_only
    target.close()


def _copy_repository(src: Location, dst: Location, *, skip_window: int | None = None, edit=None) -> None:
    for index, window in enumerate(read_windows(src).windows):
        if index == skip_window:
            continue
        for obj in window.objects:
            dst.store.put(obj.key, src.store.get(obj.key))
        record = src.store.get(f"_ledgerdr/windows/{window.key_name}")
        if edit is not None and index == edit:
            raw = orjson.loads(record)
            raw["first_previous_block_hash"] = "A" * 43 + "="
            record = orjson.dumps(raw)
        dst.store.put(f"_ledgerdr/windows/{window.key_name}", record)


def test_gap_stops_the_standby_naming_the_block(tmp_path):
    _, repo = backed_up_ledger(tmp_path, minutes=3)
    holed = Location(FileStore(tmp_path / "holed"), "")
    _copy_repository(repo, holed, skip_window=1)
    target = EmbeddedTarget(tmp_path / "s.db")
    with pytest.raises(RestoreError, match=r"gap at \{strandId:.*sequenceNo:\d+\}"):
        follow_once(holed, target)
    target.close()


def test_fork_stops_the_standby(tmp_path):
    _, repo = backed_up_ledger(tmp_path, minutes=3)
    forked = Location(FileStore(tmp_path / "forked"), "")
    _copy_repository(repo, forked, edit=2)
    target = EmbeddedTarget(tmp_path / "s.db")
    with pytest.raises(RestoreError, match="fork at"):
        follow_once(forked, target)
    target.close()


def test_sigkilled_standby_resumes_where_it_was(tmp_path):
    _, repo = backed_up_ledger(tmp_path, minutes=4, per_minute=30)
    ledgerdr = Path(sys.executable).with_name("ledgerdr")
    command = [str(ledgerdr), "standby", "--from", str(tmp_path / "primary"), "--to",
               f"embedded:{tmp_path / 'standby.db'}", "--every", "0.1s"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = subprocess.run([*command, "--once"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    target = EmbeddedTarget(tmp_path / "standby.db")
    reference = restore(repo.store.url, f"embedded:{tmp_path / 'ref.db'}",
                        RestoreOptions(workers=0, state_dir=tmp_path / "st"))
    assert digest_of_target(target).digest == reference.journal_state_digest
    target.close()


def test_promote_continues_the_chain_and_fences_the_old_primary(tmp_path):
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=2)
    standby_path = tmp_path / "standby.db"
    target = EmbeddedTarget(standby_path)
    follow_once(repo, target)
    target.close()
    incarnation = promote(repo, f"embedded:{standby_path}", state_dir=tmp_path / "st")
    assert read_incarnations(repo) == [incarnation]
    promoted = Ledger.open(standby_path)
    assert not promoted.read_only and promoted.lineage == incarnation.lineage
    with freeze_time(T0 + timedelta(minutes=3, seconds=7)):
        run_workload(promoted, 5, seed=42)
    promoted.close()
    new_primary = EmbeddedSource(standby_path)
    with freeze_time(T0 + timedelta(minutes=4, seconds=6)):
        report = run_backup(new_primary, repo, POLICY)
    new_primary.close()
    assert report.recorded and report.recorded[-1].lineage == incarnation.lineage
    assert verify_location(repo.store, "").ok  # one chain across the promotion
    old = Ledger.open(ledger_path)  # the old primary comes back and writes
    with freeze_time(T0 + timedelta(minutes=5, seconds=7)):
        run_workload(old, 3, seed=7)
    old.close()
    old_source = EmbeddedSource(ledger_path)
    with freeze_time(T0 + timedelta(minutes=6, seconds=6)), pytest.raises(SourceError, match="lineage"):
        run_backup(old_source, repo, POLICY)
    old_source.close()
