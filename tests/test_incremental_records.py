"""Reading window records incrementally: a follower round with nothing new GETs no old record, a new record
is picked up, a record whose object changed (a new S3 version, a file rewritten in place) is read again,
and every incremental read returns what a full read returns. Real file stores and moto S3; requests are
counted by a store wrapper (file) or botocore's event hooks (S3)."""

from __future__ import annotations

import os

import boto3
import orjson
from moto import mock_aws

from ledgerdr.replicate import ReplicateOptions, replicate
from ledgerdr.repository import WATERMARKS, WINDOWS, RecordCache, read_windows
from ledgerdr.restore.standby import follow_once
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.retrying import StoreWrapper
from ledgerdr.stores.s3 import S3Store
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import back_up_one_more_minute, backed_up_ledger
from support.s3 import make_bucket


class _Gets(StoreWrapper):
    """A real store that remembers the key of every GET."""

    def __init__(self, inner):
        super().__init__(inner)
        self.keys: list[str] = []

    def get(self, key, **kwargs):
        self.keys.append(key)
        return super().get(key, **kwargs)

    def taken(self, folder: str = "") -> list[str]:
        keys, self.keys = [k for k in self.keys if k.startswith(folder)], []
        return keys


def _rewrite(path, data: bytes) -> None:
    """Replace a file-store object in place, past its read-only mode, as tampering would."""
    mode = path.stat().st_mode
    path.chmod(mode | 0o200)
    path.write_bytes(data)
    path.chmod(mode)


def test_replicate_follower_gets_no_old_record_and_picks_up_a_new_one(tmp_path):
    ledger_path, plain = backed_up_ledger(tmp_path, minutes=3)
    primary = Location(_Gets(plain.store), "")
    replica = Location(_Gets(FileStore(tmp_path / "secondary")), "")
    cache = RecordCache()
    first = replicate(primary, replica, ReplicateOptions("secondary"), cache=cache)
    assert first.ok and first.windows_verified == 3
    primary.store.taken(), replica.store.taken()

    idle = replicate(primary, replica, ReplicateOptions("secondary"), cache=cache)  # a --follow round with nothing new
    assert idle.ok and (idle.copied, idle.skipped, idle.windows_verified, idle.windows_covered) == (0, 0, 0, 3)
    assert primary.store.taken() == []  # no window record, no object
    mark_key = f"{WATERMARKS}secondary/{first.watermark.last_seq:020d}.json"
    # besides the watermark the last round wrote, only the replica's copies it vouches for, hashed again
    vouched = sorted(key for w in read_windows(plain).windows for key in [*(o.key for o in w.objects),
                                                                            WINDOWS + w.key_name])
    assert sorted(replica.store.taken()) == sorted([mark_key, *vouched]) and idle.rechecked == len(vouched)
    assert idle.watermark == first.watermark
    again = replicate(primary, replica, ReplicateOptions("secondary"), cache=cache)
    assert again.ok and primary.store.taken() == [] and sorted(replica.store.taken()) == vouched

    assert back_up_one_more_minute(ledger_path, plain, 3) == 1
    new = read_windows(plain).windows[-1]
    grown = replicate(primary, replica, ReplicateOptions("secondary"), cache=cache)
    assert grown.ok and grown.windows_verified == 1 and grown.windows_covered == 3
    assert set(primary.store.taken(WINDOWS)) == {WINDOWS + new.key_name}  # the new record only (read, copied)
    assert replica.store.taken(WATERMARKS) == []  # the old watermark came from the cache
    assert grown.watermark.last_seq == new.last_seq
    assert grown.watermark.windows_verified == tuple(w.window_start for w in read_windows(plain).windows)


def test_one_shot_replicate_reads_no_primary_object_under_the_watermark(tmp_path):
    """Without a cache (a fresh `ledgerdr replicate`), records are read again (their objects' sha256 is what the
    replica's copies are re-checked against), but no object of a window under the watermark."""
    ledger_path, plain = backed_up_ledger(tmp_path, minutes=3)
    primary = Location(_Gets(plain.store), "")
    replica = Location(FileStore(tmp_path / "secondary"), "")
    assert replicate(primary, replica, ReplicateOptions("secondary")).ok
    primary.store.taken()
    assert back_up_one_more_minute(ledger_path, plain, 3) == 1
    report = replicate(primary, replica, ReplicateOptions("secondary"))
    assert report.ok and report.windows_verified == 1 and report.windows_covered == 3
    windows = read_windows(plain).windows
    assert set(primary.store.taken()) == {WINDOWS + w.key_name for w in windows} | {
        o.key for o in windows[-1].objects}
    # the watermark equals what a replica verified from scratch in one run writes, block time included
    fresh = replicate(plain, Location(FileStore(tmp_path / "fresh"), ""), ReplicateOptions("secondary")).watermark
    assert (report.watermark.last_seq, report.watermark.last_block_hash, report.watermark.last_block_time,
            report.watermark.windows_verified) == (fresh.last_seq, fresh.last_block_hash, fresh.last_block_time,
                                                   fresh.windows_verified)


def test_bounded_and_cached_reads_equal_the_full_read(tmp_path):
    _, plain = backed_up_ledger(tmp_path, minutes=4)
    location = Location(_Gets(plain.store), "")
    full = read_windows(plain)
    starts = [w.window_start for w in full.windows]
    bounded = read_windows(location, after=starts[1])
    assert bounded.windows == full.windows[2:]
    assert bounded.passed == [WINDOWS + w.key_name for w in full.windows[:2]]
    assert location.store.taken() == [WINDOWS + w.key_name for w in full.windows[2:]]

    cache = RecordCache()
    assert read_windows(location, cache=cache) == full
    assert len(location.store.taken()) == 4 and cache.fetched == 4
    assert read_windows(location, cache=cache) == full  # every record from the cache
    assert location.store.taken() == [] and cache.reused == 4
    # a bound drops what it passes from the cache: it never holds more than the last read returned
    assert read_windows(location, after=starts[2], cache=cache).windows == full.windows[3:]
    assert len(cache) == 1 and location.store.taken() == []


def test_a_record_rewritten_in_place_is_read_again(tmp_path):
    _, plain = backed_up_ledger(tmp_path, minutes=3)
    location = Location(_Gets(plain.store), "")
    cache = RecordCache()
    before = read_windows(location, cache=cache)
    location.store.taken()
    record = before.windows[1]
    key = WINDOWS + record.key_name
    path = tmp_path / "primary" / key
    raw = orjson.loads(path.read_bytes())
    stamp = raw["recorded_at"]  # "...SS.mmmZ": change the last digit, so the size stays the same
    raw["recorded_at"] = stamp[:-2] + ("8" if stamp[-2] == "9" else "9") + "Z"
    changed = orjson.dumps(raw, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    assert len(changed) == path.stat().st_size and changed != path.read_bytes()
    stat = path.stat()
    _rewrite(path, changed)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its mtime put back
    after = read_windows(location, cache=cache)
    assert location.store.taken() == [key]
    assert after.windows[1].recorded_at == raw["recorded_at"] != record.recorded_at
    assert after == read_windows(plain)

    _rewrite(path, b"not json")  # and one that no longer parses is reported, never served from the cache
    broken = read_windows(location, cache=cache)
    assert broken.unreadable == [key] and len(broken.windows) == 2


def test_a_standby_round_with_nothing_new_gets_no_record(tmp_path):
    ledger_path, plain = backed_up_ledger(tmp_path, minutes=3)
    repo = Location(_Gets(plain.store), "")
    target = EmbeddedTarget(tmp_path / "standby.db")
    try:
        cache = RecordCache()
        assert len(follow_once(repo, target, cache=cache).windows_applied) == 3
        repo.store.taken()
        idle = follow_once(repo, target, cache=cache)
        assert idle.windows_applied == [] and repo.store.taken() == []
        assert back_up_one_more_minute(ledger_path, plain, 3) == 1
        new = read_windows(plain).windows[-1]
        grown = follow_once(repo, target, cache=cache)
        assert grown.windows_applied == [new.window_start] and grown.position_seq == new.last_seq
        assert repo.store.taken(WINDOWS) == [WINDOWS + new.key_name]
    finally:
        target.close()


def test_s3_new_version_of_a_record_is_read_again_and_nothing_else(tmp_path):
    _, plain = backed_up_ledger(tmp_path, minutes=3)
    full = read_windows(plain)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        make_bucket(client, "records", default_days=1)
        location = Location(S3Store("records", client=client, region="us-east-1"), "dr/")
        for window in full.windows:
            location.store.put(location.key(WINDOWS + window.key_name), window.to_bytes())
        gets: list[str] = []
        client.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: gets.append(params["Key"]))

        cache = RecordCache()
        first = read_windows(location, cache=cache)
        assert first.windows == full.windows and len(gets) == 3
        gets.clear()
        assert read_windows(location, cache=cache) == first and gets == []  # nothing new: no GET

        key = location.key(WINDOWS + full.windows[2].key_name)
        changed = orjson.loads(full.windows[2].to_bytes())
        changed["recorded_at"] = "2030-01-01T00:00:00.000Z"
        # a newer version over the locked key (Object Lock keeps the old one, it cannot stop this)
        client.put_object(Bucket="records", Key=key, Body=orjson.dumps(changed))
        again = read_windows(location, cache=cache)
        assert gets == [key] and again.windows[2].recorded_at == "2030-01-01T00:00:00.000Z"
        gets.clear()
        assert again == read_windows(location)  # the same as a full read without a cache
