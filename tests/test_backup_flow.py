"""The backup flow against the embedded ledger and a file repository: windows contiguous across
skipped, late, repeated and concurrent runs; failed or tampered exports not recorded and retried."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, backup_now, due_windows, floor_boundary, run_backup
from ledgerdr.journal.exports import verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.repository import read_windows
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.faults import flip_byte

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
POLICY = BackupPolicy(interval=timedelta(minutes=1), settle=timedelta(seconds=5))


def _ledger_with_history(path, minutes: int, per_minute: int = 5) -> None:
    """A ledger whose blocks are spread over `minutes` minutes from T0 (frozen clock)."""
    ledger = Ledger.create(path)
    for minute in range(minutes):
        with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
            run_workload(ledger, per_minute, seed=minute)
    ledger.close()


@pytest.fixture
def setup(tmp_path):
    _ledger_with_history(tmp_path / "ledger.db", minutes=6)
    source = EmbeddedSource(tmp_path / "ledger.db")
    yield source, Location(FileStore(tmp_path / "repo"), "")
    source.close()


def _assert_contiguous(location):
    windows = read_windows(location).windows
    assert windows
    for before, after in zip(windows, windows[1:], strict=False):
        assert before.window_end == after.window_start
        if before.last_seq is not None and after.first_seq is not None:
            assert after.first_seq == before.last_seq + 1
            assert after.first_previous_block_hash == before.last_block_hash
    return windows


def test_due_windows_follow_the_interval_boundaries():
    start = floor_boundary(T0 + timedelta(seconds=42), timedelta(minutes=1))
    assert start == T0
    assert due_windows(start, T0 + timedelta(minutes=3, seconds=4), POLICY) == [
        (T0, T0 + timedelta(minutes=1)), (T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))]
    merged = BackupPolicy(interval=timedelta(minutes=1), merge_due_windows=True)
    assert due_windows(start, T0 + timedelta(minutes=3, seconds=6), merged) == [(T0, T0 + timedelta(minutes=3))]


def test_skipped_late_and_repeated_runs_leave_no_gap(setup):
    source, location = setup
    with freeze_time(T0 + timedelta(minutes=2, seconds=6)):  # on time: two windows due
        first = run_backup(source, location, POLICY)
    assert len(first.recorded) == 2
    with freeze_time(T0 + timedelta(minutes=2, seconds=30)):  # repeated run, nothing new due
        again = run_backup(source, location, POLICY)
    assert again.nothing_due and again.next_due == T0 + timedelta(minutes=3, seconds=5)
    with freeze_time(T0 + timedelta(minutes=9)):  # several runs were skipped: catch up in order
        late = run_backup(source, location, POLICY)
    assert [w.window_start for w in late.recorded][0] == "2026-01-05T10:02:00.000Z"
    windows = _assert_contiguous(location)
    assert windows[-1].window_end == "2026-01-05T10:08:00.000Z"
    assert sum(w.blocks for w in windows) == source.ledger.block_count
    assert verify_location(location.store, "").ok


def test_concurrent_runs_record_each_window_once(setup, tmp_path):
    source, location = setup
    other = EmbeddedSource(tmp_path / "ledger.db")
    with freeze_time(T0 + timedelta(minutes=4)):
        a = run_backup(source, location, POLICY)
        b = run_backup(other, location, BackupPolicy(interval=POLICY.interval, settle=POLICY.settle))
    other.close()
    assert len(a.recorded) == 3 and b.nothing_due
    assert len(read_windows(location).windows) == 3


def test_tampered_export_is_not_recorded_and_is_retried(setup, monkeypatch):
    source, location = setup
    real_export = source.export

    def export_then_tamper(*args, **kwargs):
        done = real_export(*args, **kwargs)
        data_keys = [i.key for i in location.store.list(done.prefix) if i.key.endswith(".ion")]
        flip_byte(location.store, data_keys[0], -40)
        return done

    monkeypatch.setattr(source, "export", export_then_tamper)
    with freeze_time(T0 + timedelta(minutes=2, seconds=6)):
        report = run_backup(source, location, POLICY)
    assert report.failed and not report.recorded
    assert "failed verification" in report.failed[0][1]
    catalog = read_windows(location)
    assert catalog.windows == []
    monkeypatch.setattr(source, "export", real_export)
    with freeze_time(T0 + timedelta(minutes=2, seconds=6)):
        retry = run_backup(source, location, POLICY)
    assert len(retry.recorded) == 2
    from ledgerdr.repository import find_orphans

    assert len(find_orphans(location, read_windows(location))) == 1  # the failed attempt stays, unrecorded


def test_window_record_carries_digest_and_checksums(setup):
    source, location = setup
    with freeze_time(T0 + timedelta(minutes=1, seconds=6)):
        run_backup(source, location, POLICY)
    (record,) = read_windows(location).windows
    assert record.format_version == 1 and record.format == "ION_BINARY"
    assert record.first_seq == 0 and record.last_seq is not None
    assert record.digest and record.digest["proof"] and record.digest["tip_address"]
    data = [o for o in record.objects if o.key.endswith(".ion")]
    assert data and all(len(o.sha256) == 64 for o in data)
    assert record.export_prefix.startswith("exports/20260105T100000Z/")


def test_empty_ledger_has_nothing_due(tmp_path):
    source = EmbeddedSource(tmp_path / "empty.db")
    report = run_backup(source, Location(FileStore(tmp_path / "repo"), ""), POLICY)
    source.close()
    assert report.nothing_due and report.next_due is None


def test_on_demand_run_records_a_partial_window_and_the_schedule_goes_on_from_its_end(setup):
    """Issue 16 item 1: `backup --once` exports everything up to now − settle whatever the interval; the
    scheduled windows then start at the partial window's end and end on interval boundaries again."""
    source, location = setup
    hourly = BackupPolicy(interval=timedelta(hours=1), settle=timedelta(seconds=5))
    with freeze_time(T0 + timedelta(minutes=2, seconds=30, microseconds=700)):
        first = run_backup(source, location, hourly, on_demand=True)
    (partial,) = first.recorded  # no hourly window is due yet: only the partial one
    assert (partial.window_start, partial.window_end) == ("2026-01-05T10:00:00.000Z", "2026-01-05T10:02:25.000Z")
    assert partial.blocks > 0 and first.next_due == T0 + timedelta(hours=1, seconds=5)
    with freeze_time(T0 + timedelta(minutes=2, seconds=40)):
        assert run_backup(source, location, hourly).nothing_due  # scheduled: the rest of the hour is not due
    with freeze_time(T0 + timedelta(hours=2, seconds=6)):
        scheduled = run_backup(source, location, hourly)
    assert [(w.window_start, w.window_end) for w in scheduled.recorded] == [
        ("2026-01-05T10:02:25.000Z", "2026-01-05T11:00:00.000Z"),
        ("2026-01-05T11:00:00.000Z", "2026-01-05T12:00:00.000Z")]
    windows = _assert_contiguous(location)
    assert sum(w.blocks for w in windows) == source.ledger.block_count
    assert verify_location(location.store, "").ok
    with freeze_time(T0 + timedelta(hours=2, minutes=30)):  # on demand on an idle ledger: no empty partial window
        idle = run_backup(source, location, hourly, on_demand=True)
    assert idle.nothing_due and len(read_windows(location).windows) == 3


def test_on_demand_partial_window_holds_only_blocks_before_the_cutoff(setup):
    source, location = setup
    hourly = BackupPolicy(interval=timedelta(hours=1), settle=timedelta(seconds=5))
    with freeze_time(T0 + timedelta(minutes=3, seconds=10)):  # minute 3's blocks (at 10:03:07) are after the cutoff
        (partial,) = run_backup(source, location, hourly, on_demand=True).recorded
    with freeze_time(T0 + timedelta(minutes=3, seconds=20)):
        (second,) = run_backup(source, location, hourly, on_demand=True).recorded
    assert partial.window_end == second.window_start == "2026-01-05T10:03:05.000Z"
    assert second.first_seq == partial.last_seq + 1 and second.blocks > 0
    _assert_contiguous(location)


def test_backup_now_holds_every_commit_made_before_it(tmp_path):
    """`backup --once` right after a load (the README's Quick start): the blocks of the last seconds are
    in the export, although they are younger than `settle` when the run starts."""
    ledger = Ledger.create(tmp_path / "ledger.db")
    run_workload(ledger, 20, seed=1)
    ledger.close()
    source = EmbeddedSource(tmp_path / "ledger.db")
    location = Location(FileStore(tmp_path / "repo"), "")
    waited = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        time.sleep(seconds)

    report = backup_now(source, location, BackupPolicy(interval=timedelta(hours=1), settle=timedelta(seconds=1)),
                        sleep=sleep)
    assert sum(w.blocks for w in report.recorded) == source.ledger.block_count > 0
    assert 0 < waited[0] <= 2.0
    again = backup_now(source, location, BackupPolicy(interval=timedelta(hours=1), settle=timedelta(seconds=1)),
                       sleep=sleep)
    source.close()
    assert again.nothing_due and len(waited) == 1  # nothing new: no wait, no empty window


def test_backup_now_on_an_empty_ledger_has_nothing_to_do(tmp_path):
    source = EmbeddedSource(tmp_path / "empty.db")
    report = backup_now(source, Location(FileStore(tmp_path / "repo"), ""), POLICY, sleep=lambda s: None)
    source.close()
    assert report.nothing_due and report.next_due is None


def test_a_late_commit_into_an_empty_recorded_window_is_caught_not_skipped(tmp_path):
    """An empty window has no last block, so continuity must be checked against the newest record that
    has one: a commit that landed late in the empty window's time would otherwise sit in no window."""
    ledger = Ledger.create(tmp_path / "ledger.db")
    with freeze_time(T0 + timedelta(seconds=7)):
        run_workload(ledger, 5, seed=1)
    source = EmbeddedSource(tmp_path / "ledger.db")
    location = Location(FileStore(tmp_path / "repo"), "")
    with freeze_time(T0 + timedelta(minutes=2, seconds=6)):  # [T0, +1m) with blocks, [+1m, +2m) empty
        assert len(run_backup(source, location, POLICY).recorded) == 2
    anchor, empty = read_windows(location).windows
    assert anchor.last_seq is not None and empty.last_seq is None
    with freeze_time(T0 + timedelta(minutes=1, seconds=30)):  # late: inside the empty, recorded window
        run_workload(ledger, 2, seed=2)
    with freeze_time(T0 + timedelta(minutes=2, seconds=7)):
        run_workload(ledger, 2, seed=3)
    with freeze_time(T0 + timedelta(minutes=3, seconds=6)):
        assert len(run_backup(source, location, POLICY).recorded) == 1
    newest = read_windows(location).windows[-1]
    assert newest.first_seq == anchor.last_seq + 1  # the late blocks are in it, re-exported
    assert newest.first_previous_block_hash == anchor.last_block_hash
    assert newest.last_seq == source.ledger.block_count - 1
    assert verify_location(location.store, "").ok
    source.close()
    ledger.close()
