"""Replication between two file "regions": resume, tamper, missing object, retention, watermarks."""

from __future__ import annotations

from flows import T0, backed_up_ledger
from ledgerdr.errors import StoreUnavailable
from ledgerdr.replicate import replicate
from ledgerdr.repository import read_watermarks, read_windows
from ledgerdr.status import repository_status
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.faults import flip_byte
from ledgerdr.stores.retrying import StoreWrapper


class _FailAfter(StoreWrapper):
    """A real store that goes away after `n` writes (an interrupted copy)."""

    def __init__(self, inner, n):
        super().__init__(inner)
        self.left = n

    def put(self, key, data, **kwargs):
        if self.left <= 0:
            raise StoreUnavailable("replica", key, "put", "connection reset")
        self.left -= 1
        return self.inner.put(key, data, **kwargs)


def test_copy_verify_watermark_and_resume(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica_store = FileStore(tmp_path / "secondary")
    try:  # the replica's store goes away after five objects
        first = replicate(primary, Location(_FailAfter(replica_store, 5), ""), "secondary", concurrency=1)
        assert not first.ok and any(p.kind == "copy_failed" for p in first.problems)
    except StoreUnavailable:
        pass  # or while writing the watermark
    assert read_watermarks(Location(replica_store, ""), "secondary") == []
    resumed = replicate(primary, Location(replica_store, ""), "secondary")
    assert resumed.ok, resumed.problems
    assert resumed.skipped == 5 and resumed.copied > 0
    windows = read_windows(primary).windows
    assert resumed.windows_verified == len(windows)
    mark = resumed.watermark
    assert mark.last_seq == windows[-1].last_seq and mark.last_block_hash == windows[-1].last_block_hash
    again = replicate(primary, Location(replica_store, ""), "secondary")
    assert again.copied == 0 and again.windows_verified == 0 and again.ok


def test_retention_is_kept_on_the_copy(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=1)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    replicate(primary, replica, "secondary")
    for obj in read_windows(primary).windows[0].objects:
        assert replica.store.head(obj.key).retain_until >= primary.store.head(obj.key).retain_until


def _copy_everything(primary, replica, skip=()):
    """What S3 replication would do: copy bytes, verify nothing."""
    for window in read_windows(primary).windows:
        for obj in window.objects:
            if obj.key not in skip:
                replica.store.put(obj.key, primary.store.get(obj.key))
        record_key = f"_ledgerdr/windows/{window.key_name}"
        replica.store.put(record_key, primary.store.get(record_key))


def test_tampered_replica_object_blocks_the_watermark(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    _copy_everything(primary, replica)
    windows = read_windows(primary).windows
    key = next(o.key for o in windows[2].objects if o.key.endswith(".ion"))
    flip_byte(replica.store, key, -30)
    report = replicate(primary, replica, "secondary", verify_only=True)
    assert not report.ok and key in {p.key for p in report.problems}
    assert "checksum_mismatch" in {p.kind for p in report.problems}
    assert report.windows_verified == 2 and report.watermark.last_seq == windows[1].last_seq


def test_verification_is_incremental(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    replicate(primary, replica, "secondary")
    # a new window arrives, then bit rot on the replica's copy of it
    windows = read_windows(primary).windows
    key = next(o.key for o in windows[-1].objects if o.key.endswith(".ion"))
    flip_byte(replica.store, key, -30)
    marks_before = read_watermarks(replica, "secondary")
    verify_again = replicate(primary, replica, "secondary", verify_only=True)
    assert verify_again.ok  # the watermark already covered it: verification is incremental
    assert read_watermarks(replica, "secondary") == marks_before


def test_missing_and_altered_objects_are_named(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    windows = read_windows(primary).windows
    # S3 replication is doing the copying; one object never arrived, one arrived altered
    missing = next(o.key for o in windows[1].objects if o.key.endswith(".ion"))
    _copy_everything(primary, replica, skip={missing})
    report = replicate(primary, replica, "secondary", verify_only=True)
    assert not report.ok
    assert any(p.kind == "missing_object" and p.key == missing for p in report.problems)
    assert report.windows_verified == 1  # the watermark stops before the hole
    status = repository_status("secondary", "r2", replica, now=T0, primary=False)
    assert status.verified_windows == 1 and status.pending_windows == len(windows) - 1


def test_status_reports_rpo_per_repository(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    replicate(primary, replica, "secondary")
    from datetime import timedelta

    now = T0 + timedelta(minutes=10)
    p = repository_status("primary", "r1", primary, now=now, primary=True)
    s = repository_status("secondary", "r2", replica, now=now, primary=False)
    assert p.rpo_seconds == s.rpo_seconds == 6 * 60
    assert p.tip_hash == s.tip_hash and p.last_seq == s.last_seq
