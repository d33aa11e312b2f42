"""Replication between two file "regions": resume, tamper, missing object, retention, watermarks."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from ledgerdr.errors import ChecksumMismatch, ConfigError, ObjectExists, RetentionViolation, StoreUnavailable
from ledgerdr.journal.layout import parse_data_object_key
from ledgerdr.replicate import ReplicateOptions, replicate
from ledgerdr.repository import WINDOWS, read_watermarks, read_windows
from ledgerdr.status import repository_status
from ledgerdr.stores import FileStore, Location, MeteredStore
from ledgerdr.stores.faults import flip_byte, truncate
from ledgerdr.stores.retrying import StoreWrapper
from support.flows import T0, backed_up_ledger


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
        first = replicate(primary, Location(_FailAfter(replica_store, 5), ""),
                          ReplicateOptions("secondary", concurrency=1))
        assert not first.ok and any(p.kind == "copy_failed" for p in first.problems)
    except StoreUnavailable:
        pass  # or while writing the watermark
    assert read_watermarks(Location(replica_store, ""), "secondary") == []
    resumed = replicate(primary, Location(replica_store, ""), ReplicateOptions("secondary"))
    assert resumed.ok, resumed.problems
    assert resumed.skipped == 5 and resumed.copied > 0
    windows = read_windows(primary).windows
    assert resumed.windows_verified == len(windows)
    mark = resumed.watermark
    assert mark.last_seq == windows[-1].last_seq and mark.last_block_hash == windows[-1].last_block_hash
    again = replicate(primary, Location(replica_store, ""), ReplicateOptions("secondary"))
    assert again.copied == 0 and again.windows_verified == 0 and again.ok


def test_retention_is_kept_on_the_copy(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=1)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    replicate(primary, replica, ReplicateOptions("secondary"))
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
    report = replicate(primary, replica, ReplicateOptions("secondary", verify_only=True))
    assert not report.ok and key in {p.key for p in report.problems}
    assert "checksum_mismatch" in {p.kind for p in report.problems}
    assert report.windows_verified == 2 and report.watermark.last_seq == windows[1].last_seq


@pytest.mark.parametrize("lock_mode", ["compliance", None])
def test_copies_under_the_watermark_are_rechecked_every_run(tmp_path, lock_mode):
    """Verification of the chain is incremental, but every copy the watermark vouches for is hashed again: bit
    rot under the watermark fails `--verify-only` naming the key; a plain run copies a lost object again and
    heals a damaged one with the recorded bytes, under retention too; with no good copy left, it is named."""
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary", lock_mode=lock_mode), "")
    replicate(primary, replica, ReplicateOptions("secondary"))
    windows = read_windows(primary).windows
    key = next(o.key for o in windows[-1].objects if o.key.endswith(".ion"))
    lost = next(o.key for o in windows[0].objects if o.key.endswith(".ion"))
    flip_byte(replica.store, key, -30)
    (tmp_path / "secondary" / lost).unlink()
    marks_before = read_watermarks(replica, "secondary")
    verify_again = replicate(primary, replica, ReplicateOptions("secondary", verify_only=True))
    assert sorted((p.kind, p.key) for p in verify_again.problems) == sorted([("replica_damaged", key),
                                                                             ("replica_missing", lost)])
    assert read_watermarks(replica, "secondary") == marks_before and verify_again.repaired == []
    again = replicate(primary, replica, ReplicateOptions("secondary"))
    assert again.ok and sorted(again.repaired) == sorted([(key, "damaged"), (lost, "missing")])
    assert replicate(primary, replica, ReplicateOptions("secondary", verify_only=True)).ok
    flip_byte(replica.store, key, -30)
    flip_byte(primary.store, key, -30)  # and the primary's copy too: no good copy is left
    stuck = replicate(primary, replica, ReplicateOptions("secondary"))
    assert [(p.kind, p.key) for p in stuck.problems] == [("replica_damaged", key)] and stuck.repaired == []
    assert "cannot be repaired" in stuck.problems[0].detail
    assert read_watermarks(replica, "secondary") == marks_before


def test_file_store_heals_only_damaged_bytes_and_only_with_the_recorded_ones(tmp_path):
    store = FileStore(tmp_path / "s")
    good = b"the recorded bytes"
    digest = hashlib.sha256(good).hexdigest()
    info = store.put("a/b", good, retain_until=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(ObjectExists):  # intact: nothing is written
        store.heal("a/b", good, sha256=digest)
    flip_byte(store, "a/b", 3)
    with pytest.raises(ChecksumMismatch):  # only the recorded bytes may go back
        store.heal("a/b", b"other bytes", sha256=hashlib.sha256(b"other bytes").hexdigest())
    healed = store.heal("a/b", good, sha256=digest)
    assert store.get("a/b") == good and healed.retain_until == info.retain_until
    with pytest.raises(RetentionViolation):  # and it is still under its retention
        store.delete("a/b")


def test_missing_and_altered_objects_are_named(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    windows = read_windows(primary).windows
    # S3 replication is doing the copying; one object never arrived, one arrived altered
    missing = next(o.key for o in windows[1].objects if o.key.endswith(".ion"))
    _copy_everything(primary, replica, skip={missing})
    report = replicate(primary, replica, ReplicateOptions("secondary", verify_only=True))
    assert not report.ok
    assert any(p.kind == "missing_object" and p.key == missing for p in report.problems)
    assert report.windows_verified == 1  # the watermark stops before the hole
    status = repository_status("secondary", "r2", replica, now=T0, primary=False)
    assert status.verified_windows == 1 and status.pending_windows == len(windows) - 1


def test_status_reports_rpo_per_repository(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    replicate(primary, replica, ReplicateOptions("secondary"))
    from datetime import timedelta

    now = T0 + timedelta(minutes=10)
    p = repository_status("primary", "r1", primary, now=now, primary=True)
    s = repository_status("secondary", "r2", replica, now=now, primary=False)
    assert p.rpo_seconds == s.rpo_seconds == 6 * 60
    assert p.tip_hash == s.tip_hash and p.last_seq == s.last_seq


# --- bad input and unfit replicas: named, refused, nothing lost ------------------------------------------------


def test_an_altered_primary_object_is_named_by_key_and_block_and_not_copied(tmp_path):
    from support.backups import run_cli, write_config

    _, primary = backed_up_ledger(tmp_path)
    windows = read_windows(primary).windows
    bad = next(o for o in windows[2].objects if o.key.endswith(".ion"))
    first, last = parse_data_object_key(bad.key).first, parse_data_object_key(bad.key).last
    flip_byte(primary.store, bad.key, -30)
    config = write_config(tmp_path / "ledgerdr.toml", {"primary": {"url": str(tmp_path / "primary")},
                                                       "secondary": {"url": str(tmp_path / "secondary")}})
    result = run_cli("replicate", "-c", str(config))
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    named = [line for line in result.stderr.splitlines() if bad.key in line]
    assert any(line.startswith("problem: checksum_mismatch:") and f"block {{sequenceNo:{first}..{last}}}" in line
               for line in named), result.stderr
    replica = Location(FileStore(tmp_path / "secondary"), "")
    assert not replica.store.exists(bad.key)  # write-once: altered bytes copied now could never be replaced
    others = [o.key for w in windows for o in w.objects if o.key != bad.key]
    assert all(replica.store.exists(key) for key in others)
    assert [m.last_seq for m in read_watermarks(replica, "secondary")] == [windows[1].last_seq]


def test_an_unreadable_window_record_is_named_and_stops_the_watermark(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    windows = read_windows(primary).windows
    record_key = primary.key(WINDOWS + windows[2].key_name)
    truncate(primary.store, record_key, 20)
    replica = Location(FileStore(tmp_path / "secondary"), "")
    report = replicate(primary, replica, ReplicateOptions("secondary"))
    assert not report.ok
    assert [(p.kind, p.key) for p in report.problems] == [("unreadable_record", record_key)]
    assert report.windows_verified == 2 and report.watermark.last_seq == windows[1].last_seq
    assert not replica.store.exists(record_key)


def test_a_replica_with_another_prefix_is_refused_before_copying(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=1)
    elsewhere = Location(FileStore(tmp_path / "secondary"), "dr/")
    with pytest.raises(ConfigError, match="has key prefix 'dr/', the primary .* has ''"):
        replicate(primary, elsewhere, ReplicateOptions("secondary"))
    assert list(elsewhere.store.list()) == []


def test_require_object_lock_refuses_a_replica_that_does_not_enforce_retention(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=1)
    unlocked = Location(FileStore(tmp_path / "secondary", lock_mode=None), "")
    with pytest.raises(ConfigError, match="repository secondary requires Object Lock.*does not enforce retention"):
        replicate(primary, unlocked, ReplicateOptions("secondary", require_object_lock=True))
    assert list(unlocked.store.list()) == []
    locked = Location(FileStore(tmp_path / "secondary"), "")
    assert replicate(primary, locked, ReplicateOptions("secondary", require_object_lock=True)).ok


class _CountingHeads(StoreWrapper):
    def __init__(self, inner):
        super().__init__(inner)
        self.heads = 0

    def head(self, key, **kwargs):
        self.heads += 1
        return self.inner.head(key, **kwargs)


def test_a_run_with_nothing_new_looks_at_no_verified_object(tmp_path):
    """Cost follows what is new: windows under the replica's watermark are neither copied nor re-checked."""
    _, primary = backed_up_ledger(tmp_path)
    replica = Location(_CountingHeads(FileStore(tmp_path / "secondary")), "")
    first = replicate(primary, replica, ReplicateOptions("secondary"))
    assert first.ok and first.copied > 0 and replica.store.heads >= first.copied
    replica.store.heads = 0
    again = replicate(primary, replica, ReplicateOptions("secondary"))
    assert again.ok and again.copied == 0 and again.skipped == 0
    assert again.windows_covered == len(read_windows(primary).windows)
    assert replica.store.heads == 0 and again.windows_verified == 0


def test_a_first_copy_is_verified_from_the_bytes_it_wrote_and_a_held_copy_is_read_back(tmp_path):
    """Verification checks what the replica holds: the bytes this run wrote there (its put checked them
    against the recorded sha256), without reading them back, and every object it already held, read back."""
    _, primary = backed_up_ledger(tmp_path)
    windows = read_windows(primary).windows
    held = [o.key for o in windows[1].objects]
    replica = Location(MeteredStore(FileStore(tmp_path / "secondary")), "")
    for key in held:  # copied before, with its sha256 (a resumed run skips these)
        replica.store.put(key, primary.store.get(key), sha256=hashlib.sha256(primary.store.get(key)).hexdigest())
    replica.store.objects_read = 0
    report = replicate(primary, replica, ReplicateOptions("secondary"))
    assert report.ok, report.problems
    assert report.skipped == len(held) and report.windows_verified == len(windows)
    assert replica.store.objects_read == len(held)
    assert report.watermark.last_seq == windows[-1].last_seq


def test_a_held_copy_that_differs_is_found_by_verification(tmp_path):
    """An object the replica already held under the recorded sha256, altered since, is read back and fails."""
    _, primary = backed_up_ledger(tmp_path)
    windows = read_windows(primary).windows
    replica = Location(FileStore(tmp_path / "secondary"), "")
    key = next(o.key for o in windows[1].objects if o.key.endswith(".ion"))
    replica.store.put(key, primary.store.get(key), sha256=hashlib.sha256(primary.store.get(key)).hexdigest())
    flip_byte(replica.store, key, -30)
    report = replicate(primary, replica, ReplicateOptions("secondary"))
    assert not report.ok and ("checksum_mismatch", key) in {(p.kind, p.key) for p in report.problems}
    assert report.windows_verified == 1 and report.watermark.last_seq == windows[0].last_seq
    assert report.copied == sum(len(w.objects) + 1 for w in windows) - 1  # copying went on past the failure
