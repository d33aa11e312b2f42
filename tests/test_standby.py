"""Warm standby and promotion: follows (woken by sqlite or SQS notifications, or polling), starts from
the newest snapshot, stops on gaps and forks naming the block, survives SIGKILL, shows its lag in
`status`, and promotes into a new lineage that continues the chain and fences the old primary."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import boto3
import orjson
import pytest
from freezegun import freeze_time
from moto import mock_aws

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.compact import compact
from ledgerdr.errors import CheckpointHeldBack, ExitCode, RestoreError, SourceError
from ledgerdr.journal.exports import verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.queues.notify import open_notifications, window_recorded_message
from ledgerdr.repository import WINDOWS, parse_iso, read_incarnations, read_windows, utcnow
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.restore.plan import units_of_window
from ledgerdr.restore.standby import (
    StandbyOptions,
    StandbyPosition,
    follow_once,
    promote,
    read_position,
    run_standby,
)
from ledgerdr.snapshots import newest_snapshot
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.status import standby_status
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.s3 import S3Store
from ledgerdr.targets import embedded as embedded_target
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import T0, back_up_one_more_minute, backed_up_ledger, embedded_digest

LEDGERDR = Path(sys.executable).with_name("ledgerdr")

POLICY = BackupPolicy(interval=timedelta(minutes=1))


def test_standby_follows_window_by_window(tmp_path):
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=2)
    target = EmbeddedTarget(tmp_path / "standby.db")
    first = follow_once(repo, target)
    windows = read_windows(repo).windows
    assert first.position_seq == windows[-1].last_seq and first.lag_blocks == 0
    assert back_up_one_more_minute(ledger_path, repo, 2)
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


# ------------------------------------------------------------------------------------------ helpers


def _standby_command(repository: Path | str, target: Path, *extra: str) -> list[str]:
    return [str(LEDGERDR), "standby", "--from", str(repository), "--to", f"embedded:{target}", *extra]


def _reference_digest(location: Location, tmp_path: Path, **options) -> str:
    report = restore(location.url, f"embedded:{tmp_path / 'reference.db'}",
                     RestoreOptions(workers=0, state_dir=tmp_path / "reference-state", **options))
    assert report.verdict, report.problems
    return report.journal_state_digest


def _peek_position(path: Path) -> StandbyPosition | None:
    """The durable position as another process sees it, read-only (opening a target would write)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'standby_position'").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return None  # not created yet
    return None if row is None else StandbyPosition.from_bytes(row[0])


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


# ------------------------------------------------------------------------------------------ snapshots


def test_an_empty_standby_starts_from_the_newest_snapshot_then_loads_only_later_windows(tmp_path):
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=3)
    compact(repo, retention=None)
    snapshot = newest_snapshot(repo)
    assert snapshot is not None
    assert back_up_one_more_minute(ledger_path, repo, 3)
    windows = read_windows(repo).windows
    target = EmbeddedTarget(tmp_path / "standby.db")
    report = follow_once(repo, target)
    assert report.snapshot_last_seq == snapshot.last_seq
    assert report.windows_applied == [windows[-1].window_start]  # the compacted windows were not loaded
    assert {u for u in target.applied_units() if not u.startswith("snapshot-")} == {
        u.unit_id for u in units_of_window(windows[-1])}
    position = read_position(target)
    assert (position.last_seq, position.last_block_hash) == (windows[-1].last_seq, windows[-1].last_block_hash)
    assert position.snapshot_last_seq == snapshot.last_seq and report.lag_blocks == 0
    assert digest_of_target(target).digest == _reference_digest(repo, tmp_path, use_snapshots=False)
    target.close()
    # Promotion loads the journal the snapshot stood for: the writable ledger holds every block, in one chain.
    promote(repo, f"embedded:{tmp_path / 'standby.db'}", state_dir=tmp_path / "promote-state")
    promoted = Ledger.open(tmp_path / "standby.db")
    assert not promoted.read_only and promoted._storage.block_count() == windows[-1].last_seq + 1
    promoted.close()


# ------------------------------------------------------------------------------------------ gap and fork


@pytest.mark.parametrize("kind", ["gap", "fork"])
def test_a_gap_or_fork_stops_the_standby_process_naming_the_block(tmp_path, kind):
    _, repo = backed_up_ledger(tmp_path, minutes=3)
    windows = read_windows(repo).windows
    broken = Location(FileStore(tmp_path / "broken"), "")
    _copy_repository(repo, broken, **({"skip_window": 1} if kind == "gap" else {"edit": 2}))
    target_path = tmp_path / "standby.db"
    done = subprocess.run(_standby_command(tmp_path / "broken", target_path, "--once"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 7, done.stderr  # RestoreError: restore refused or incomplete
    good = windows[0] if kind == "gap" else windows[1]  # what the standby applied before it stopped
    address = f'{{strandId:"{good.source["strand_id"]}",sequenceNo:{good.last_seq + 1}}}'
    assert f"{kind} at {address}" in done.stderr
    status = standby_status(f"embedded:{target_path}", now=utcnow())
    assert status.state == "stopped" and address in status.stopped and status.last_seq == good.last_seq
    assert "STOPPED" in status.render()
    target = EmbeddedTarget(target_path)  # nothing of the refused window reached the standby
    assert target.info()["last_block"]["sequence_no"] == good.last_seq
    target.close()


def test_a_window_whose_blocks_are_another_history_is_refused_before_it_is_applied(tmp_path):
    # The record claims to continue the standby's chain; its (checksummed) object holds another ledger's blocks.
    _, ours = backed_up_ledger(tmp_path / "ours", minutes=3)
    _, theirs = backed_up_ledger(tmp_path / "theirs", minutes=3, seed=50)
    mine, other = read_windows(ours).windows, read_windows(theirs).windows
    assert other[2].first_seq == mine[1].last_seq + 1  # same shape, different history
    mixed = Location(FileStore(tmp_path / "mixed"), "")
    _copy_repository(ours, mixed, skip_window=2)
    for obj in other[2].objects:
        mixed.store.put(obj.key, theirs.store.get(obj.key))
    raw = orjson.loads(theirs.store.get(f"{WINDOWS}{other[2].key_name}"))
    raw["first_previous_block_hash"] = mine[1].last_block_hash
    mixed.store.put(f"{WINDOWS}{other[2].key_name}", orjson.dumps(raw))
    target = EmbeddedTarget(tmp_path / "standby.db")
    with pytest.raises(RestoreError, match=r"does not chain onto the standby's last block .*fork at \{strandId:"):
        follow_once(mixed, target)
    assert target.info()["last_block"]["sequence_no"] == mine[1].last_seq
    assert read_position(target).stopped
    target.close()


# ------------------------------------------------------------------------------------------ SIGKILL


def test_a_sigkilled_standby_resumes_from_its_durable_position(tmp_path):
    _, repo = backed_up_ledger(tmp_path, minutes=10, per_minute=40)
    windows = read_windows(repo).windows
    target_path = tmp_path / "standby.db"
    command = _standby_command(tmp_path / "primary", target_path, "--every", "0.1s", "--json")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (p := _peek_position(target_path)) is not None and p.last_seq is not None
                  and p.last_seq >= windows[2].last_seq, 60, "the standby to apply three windows")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = _peek_position(target_path)  # what survived the kill
    assert killed_at.last_seq < windows[-1].last_seq, "killed too late to show a resume"
    done = subprocess.run([*command, "--once"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resumed = orjson.loads(done.stdout.splitlines()[0])
    # resumed right after its position: nothing before it applied again, nothing after it skipped
    assert resumed["windows_applied"] == [w.window_start for w in windows if w.last_seq > killed_at.last_seq]
    assert resumed["position_seq"] == windows[-1].last_seq and resumed["lag_blocks"] == 0
    assert embedded_digest(target_path) == _reference_digest(repo, tmp_path)


# ------------------------------------------------------------------------------------------ notifications


def test_sqlite_notifications_wake_the_standby_and_status_shows_its_lag(tmp_path):
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=2)
    queue_url = f"sqlite:///{tmp_path / 'notify.db'}?name=standby"
    target_path = tmp_path / "standby.db"
    config = tmp_path / "ledgerdr.toml"
    config.write_text('[source]\npath = "ledger.db"\n[repositories.primary]\nurl = "primary"\n')
    # A re-list only every 10 minutes: only the notification can wake it within the test.
    process = subprocess.Popen(_standby_command(tmp_path / "primary", target_path, "--notify", queue_url,
                                                "--relist-every", "10m", "--json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = orjson.loads(process.stdout.readline())
        assert first["position_seq"] == read_windows(repo).windows[-1].last_seq
        assert back_up_one_more_minute(ledger_path, repo, 2)  # a new window, not yet applied: status shows the lag
        new = read_windows(repo).windows[-1]
        behind = _status(config, target_path)
        assert behind["lag_blocks"] == new.blocks and behind["lag_seconds"] > 0
        assert behind["state"] == "following" and behind["last_seq"] == first["position_seq"]
        notifications = open_notifications(queue_url)
        sent = time.monotonic()
        notifications.publish(window_recorded_message(repo.url, [new.window_start]))
        woken = orjson.loads(process.stdout.readline())
        assert time.monotonic() - sent < 5
        assert woken["windows_applied"] == [new.window_start] and woken["notices"] == ["ledgerdr:window-recorded"]
        notifications.publish(b"not json at all")  # any message means "look again"; its content is never trusted
        assert orjson.loads(process.stdout.readline())["notices"] == ["unknown"]
        caught_up = standby_status(f"embedded:{target_path}", now=utcnow()).to_json()
        assert caught_up["lag_blocks"] == 0 and caught_up["lag_seconds"] == 0
        assert caught_up["last_seq"] == caught_up["repository_last_seq"] == new.last_seq
        counts = notifications.queue.counts()
        assert counts.visible == counts.in_flight == counts.dead == 0  # acked after the re-read
        notifications.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
    text = subprocess.run([str(LEDGERDR), "status", "-c", str(config), "--standby", f"embedded:{target_path}"],
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "lag now: 0 blocks, 0.0s" in text.stdout, text.stdout + text.stderr


def _status(config: Path, target: Path) -> dict:
    done = subprocess.run([str(LEDGERDR), "status", "-c", str(config), "--json", "--standby", f"embedded:{target}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (standby,) = json.loads(done.stdout)["standbys"]
    return standby


def test_s3_event_notifications_through_sqs_wake_the_standby(tmp_path):
    _, full = backed_up_ledger(tmp_path, minutes=3)
    windows = read_windows(full).windows
    with mock_aws():
        s3, sqs = boto3.client("s3", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        s3.create_bucket(Bucket="dr-standby")
        queue_url = sqs.create_queue(QueueName="standby-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        repo = Location(S3Store("dr-standby", client=s3, lock_mode=None), "")
        _copy_repository(full, repo, skip_window=2)
        # S3 itself sends an s3:TestEvent when the configuration is saved, then one event per new record.
        s3.put_bucket_notification_configuration(Bucket="dr-standby", NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                     "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": WINDOWS}]}}}]})
        rounds: list = []
        stop = threading.Event()
        failures: list = []

        def follow() -> None:
            target = EmbeddedTarget(tmp_path / "standby.db")  # SQLite connections stay in their thread
            try:
                run_standby(repo, target, StandbyOptions(relist_every=600), notifications=open_notifications(queue_url),
                            on_round=rounds.append, should_stop=stop.is_set)
            except Exception as exc:  # surfaced by the assertion below
                failures.append(exc)
            finally:
                target.close()

        thread = threading.Thread(target=follow)
        thread.start()
        try:
            _wait_for(lambda: len(rounds) >= 2, 30, "the initial round and the test event's round")
            assert rounds[0].position_seq == windows[1].last_seq and rounds[0].notices == []
            assert rounds[1].notices == ["s3:TestEvent"] and rounds[1].windows_applied == []
            for obj in windows[2].objects:  # exports first, the record last, as the backup writes them
                repo.store.put(obj.key, full.store.get(obj.key))
            repo.store.put(f"{WINDOWS}{windows[2].key_name}", full.store.get(f"{WINDOWS}{windows[2].key_name}"))
            woken = _wait_for(lambda: next((r for r in rounds[2:] if r.windows_applied), None), 30, "the new window")
            assert woken.windows_applied == [windows[2].window_start]
            assert woken.notices == ["s3:ObjectCreated:Put"] and woken.lag_blocks == 0
        finally:
            stop.set()
            sqs.send_message(QueueUrl=queue_url, MessageBody="{}")  # wake it so that it sees the stop
            thread.join(30)
        assert not failures and not thread.is_alive()
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
        assert embedded_digest(tmp_path / "standby.db") == _reference_digest(full, tmp_path)


# ------------------------------------------------------------------------------------------ a live ledger


def test_the_standby_follows_a_live_ledger_within_one_window(tmp_path):
    """Real processes: a workload writes, `ledgerdr backup --every` records 1 s windows and notifies,
    `ledgerdr standby --notify` follows. Every window is applied less than one window (1 s) after it was
    recorded, so the standby is never a whole window behind."""
    config = tmp_path / "ledgerdr.toml"
    config.write_text('[source]\npath = "ledger.db"\n[backup]\ninterval = "1s"\nsettle = "300ms"\n'
                      '[repositories.primary]\nurl = "primary"\n')
    queue_url = f"sqlite:///{tmp_path / 'notify.db'}?name=standby"
    ledger = Ledger.create(tmp_path / "ledger.db")
    run_workload(ledger, 1, seed=0)
    stop = threading.Event()

    def write() -> None:
        seed = 1
        while not stop.is_set():
            run_workload(ledger, 2, seed=seed)
            seed += 1
            time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    target_path = tmp_path / "standby.db"
    backup = subprocess.Popen([str(LEDGERDR), "backup", "-c", str(config), "--every", "0.2s", "--notify", queue_url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    standby = subprocess.Popen(_standby_command(tmp_path / "primary", target_path, "--notify", queue_url,
                                                "--relist-every", "10m", "--json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    repo = Location(FileStore(tmp_path / "primary"), "")
    try:
        time.sleep(4)
        stop.set()
        writer.join()
        ledger.close()
        # The last blocks' window is recorded 1.3 s after it ends; then the standby catches up.
        _wait_for(lambda: len(read_windows(repo).windows) >= 2 and read_windows(repo).windows[-1].last_seq is None,
                  20, "an empty window after the workload stopped")
    finally:
        backup.terminate()
        backup.wait(30)
    newest = next(w for w in reversed(read_windows(repo).windows) if w.last_seq is not None)
    _wait_for(lambda: (p := _peek_position(target_path)) is not None and p.last_seq == newest.last_seq, 20,
              "the standby to catch up")
    standby.send_signal(signal.SIGTERM)
    out, err = standby.communicate(timeout=30)
    assert standby.returncode == 0, err
    applied = {w: parse_iso(t) for line in out.splitlines()
               for w, t in zip(*(orjson.loads(line)[k] for k in ("windows_applied", "applied_at")), strict=True)}
    windows = [w for w in read_windows(repo).windows if w.last_seq is not None]
    assert len(windows) >= 3 and set(applied) == {w.window_start for w in windows}
    lags = {w.window_start: (applied[w.window_start] - parse_iso(w.recorded_at)).total_seconds() for w in windows}
    assert max(lags.values()) < 1.0, f"lag past one 1 s window: {lags}"
    assert embedded_digest(target_path) == _reference_digest(repo, tmp_path)


def test_every_position_the_standby_writes_is_readable_snapshot_tables_included(tmp_path):
    """A served standby's readers see what its position names (issue 19, item 7): after the snapshot and
    after each window the current rows are every document's newest live revision, not only once the round
    ends (a restore defers them to finalize for the tables it creates; a long catch-up must not)."""
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=2)
    compact(repo, retention=None)
    for minute in (2, 3):
        assert back_up_one_more_minute(ledger_path, repo, minute)
    target = EmbeddedTarget(tmp_path / "standby.db")
    seen: list[tuple[int, int]] = []

    def at_position(_applied: int, _total: int) -> None:  # before the snapshot, after it, after each window
        reader = sqlite3.connect(tmp_path / "standby.db")
        try:
            current = reader.execute("SELECT count(*) FROM documents").fetchone()[0]
            newest = reader.execute(
                "SELECT count(*) FROM history h WHERE data IS NOT NULL AND NOT EXISTS (SELECT 1 FROM history n "
                "WHERE n.table_id = h.table_id AND n.doc_id = h.doc_id AND n.version > h.version)").fetchone()[0]
        finally:
            reader.close()
        seen.append((current, newest))

    report = follow_once(repo, target, on_progress=at_position)
    target.close()
    assert report.snapshot_last_seq is not None and len(report.windows_applied) == 2
    assert len(seen) == 4 and seen[0] == (0, 0) and seen[1][1] > 0
    assert all(current == newest for current, newest in seen), seen


def _blocks_in_the_database_file(path: Path, tmp_path: Path) -> int:
    """The newest block in the database file alone, without its write-ahead log: what a checkpoint has made
    durable there (read from a copy, so that nothing is checkpointed by looking)."""
    image = tmp_path / f"image-{time.monotonic_ns()}.db"
    image.write_bytes(path.read_bytes())
    with sqlite3.connect(image) as probe:
        return probe.execute("SELECT max(seq) FROM blocks").fetchone()[0]


def test_a_checkpoint_held_back_by_a_reader_is_retried_not_an_alarm(tmp_path, monkeypatch):
    """A reader of an older snapshot outlasts finalize's checkpoint: the following standby does not stop (the
    windows are committed, only their sync waits) and reports it; its next round checkpoints even with no new
    window. With `--once` there is no next round: it raises CheckpointHeldBack (exit 7, restore incomplete),
    and the next run's first round finalizes."""
    monkeypatch.setattr(embedded_target, "_CHECKPOINT_ATTEMPTS", 2)  # two tries, not ten busy timeouts of 60 s
    ledger_path, repo = backed_up_ledger(tmp_path, minutes=2)
    path = tmp_path / "standby.db"
    target = EmbeddedTarget(path)
    target.storage.conn.execute("PRAGMA busy_timeout=20")
    follow_once(repo, target)
    assert back_up_one_more_minute(ledger_path, repo, 2)
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # holds the snapshot before the new window

    held = follow_once(repo, target)
    assert held.windows_applied and held.finalize_deferred and str(path) in held.finalize_deferred
    assert read_position(target).last_seq == read_windows(repo).windows[-1].last_seq and not read_position(target).stopped
    newest = read_windows(repo).windows[-1].last_seq
    assert _blocks_in_the_database_file(path, tmp_path) < newest
    rounds: list = []
    with pytest.raises(CheckpointHeldBack, match="checkpointed") as once:
        run_standby(repo, target, StandbyOptions(once=True), on_round=rounds.append)
    assert once.value.exit_code == ExitCode.RESTORE and "run the same command again" in str(once.value)
    assert rounds[0].finalize_deferred and not rounds[0].windows_applied  # tried again with nothing new

    reader.rollback()
    reader.close()
    calm = run_standby(repo, target, StandbyOptions(once=True))  # a new run's first round finalizes
    assert calm.finalize_deferred is None and not calm.windows_applied
    assert _blocks_in_the_database_file(path, tmp_path) == newest
    reference = restore(repo.store.url, f"embedded:{tmp_path / 'ref.db'}",
                        RestoreOptions(workers=0, state_dir=tmp_path / "st"))
    assert digest_of_target(target).digest == reference.journal_state_digest
    target.close()
