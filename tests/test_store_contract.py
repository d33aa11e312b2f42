"""The one `Store` contract, run on every backend: `file` (a temp dir) and `s3` (moto, Object Lock on).

Neither backend is ever skipped. Backend-specific behaviour lives at the end of this file (file store)
and in test_store_s3.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from freezegun import freeze_time
from moto import mock_aws

from ledgerdr.errors import (
    ChecksumMismatch,
    ConfigError,
    ObjectExists,
    ObjectNotFound,
    RetentionViolation,
    StoreError,
)
from ledgerdr.stores import (
    TEMP_SUFFIX,
    FileStore,
    Location,
    RetryingStore,
    Store,
    open_location,
    open_store,
    parse_location,
    unwrap,
)
from ledgerdr.stores.file import META_DIR
from ledgerdr.stores.s3 import MiB, S3Store

BUCKET = "ledgerdr-contract"
THRESHOLD = 5 * MiB  # S3's minimum part size; the large-object test writes 6 MiB


def _locked_bucket(name: str = BUCKET) -> object:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        yield FileStore(tmp_path / "repo")
        return
    with mock_aws():
        yield S3Store(BUCKET, client=_locked_bucket(), region="us-east-1", multipart_threshold=THRESHOLD)


def _later(days: int = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_head_roundtrip(store: Store) -> None:
    data = b"journal block bytes \x00\xff"
    info = store.put("exports/t0/a1/object.ion", data)
    assert (info.key, info.size, info.sha256) == ("exports/t0/a1/object.ion", len(data), _sha(data))
    assert store.get("exports/t0/a1/object.ion") == data
    head = store.head("exports/t0/a1/object.ion")
    assert (head.size, head.sha256) == (len(data), _sha(data))
    assert store.exists("exports/t0/a1/object.ion")
    assert not store.exists("exports/t0/a1/other.ion")
    assert isinstance(store, Store)


def test_ranged_get_follows_slice_rules(store: Store) -> None:
    data = bytes(range(200))
    store.put("r", data)
    cases = [(0, 10), (5, None), (None, 7), (190, 500), (200, None), (250, 300), (10, 10), (12, 3)]
    for start, end in cases:
        assert store.get("r", start=start, end=end) == data[start:end], (start, end)
    with pytest.raises(StoreError):
        store.get("r", start=-1)


def test_missing_object_raises_object_not_found(store: Store) -> None:
    for call in (lambda: store.get("nope"), lambda: store.head("nope"), lambda: store.delete("nope"),
                 lambda: store.get("nope", start=3, end=3)):
        with pytest.raises(ObjectNotFound) as caught:
            call()
        assert caught.value.key == "nope"


def test_put_if_absent_refuses_overwrite_and_keeps_original(store: Store) -> None:
    store.put("_ledgerdr/windows/20240101T000000Z.json", b"first")
    with pytest.raises(ObjectExists) as caught:
        store.put("_ledgerdr/windows/20240101T000000Z.json", b"second, longer")
    assert caught.value.key == "_ledgerdr/windows/20240101T000000Z.json"
    assert store.get("_ledgerdr/windows/20240101T000000Z.json") == b"first"
    assert store.head("_ledgerdr/windows/20240101T000000Z.json").sha256 == _sha(b"first")
    assert [i.key for i in store.list()] == ["_ledgerdr/windows/20240101T000000Z.json"]


def test_wrong_sha256_stores_nothing(store: Store) -> None:
    with pytest.raises(ChecksumMismatch):
        store.put("k", b"payload", sha256=_sha(b"other payload"))
    assert not store.exists("k")
    assert list(store.list()) == []
    assert store.put("k", b"payload", sha256=_sha(b"payload").upper()).sha256 == _sha(b"payload")


def test_delete_under_retention_is_refused(store: Store) -> None:
    until = _later()
    info = store.put("locked", b"keep me", retain_until=until)
    assert info.retain_until is not None and abs(info.retain_until - until) < timedelta(seconds=1)
    recorded = store.head("locked").retain_until
    assert recorded is not None and abs(recorded - until) < timedelta(seconds=1)
    with pytest.raises(RetentionViolation) as caught:
        store.delete("locked")
    assert caught.value.key == "locked"
    assert store.get("locked") == b"keep me"
    store.put("unlocked", b"free")
    store.delete("unlocked")
    assert not store.exists("unlocked")
    assert [i.key for i in store.list()] == ["locked"]


def test_retain_until_in_the_past_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.put("late", b"x", retain_until=datetime.now(UTC) - timedelta(minutes=1))
    assert not store.exists("late")


def test_list_is_utf8_byte_ordered_with_unicode_keys(store: Store) -> None:
    # U+FF71 sorts after U+1F600 in UTF-16 (surrogates) but before it in UTF-8: the orders really differ.
    # "p/a/b" sits between "p/a-b" and "p/a0" ('-' < '/' < '0'): a per-directory walk order would be wrong.
    keys = ["p/\U0001f600", "p/\uff71", "p/z", "p/Z", "p/é", "p/e", "p/a/b", "p/a-b", "p/a0", "p/日本", "q/1"]
    for key in keys:
        store.put(key, key.encode())
    listed = [i.key for i in store.list("p/")]
    assert listed == sorted((k for k in keys if k.startswith("p/")), key=str.encode)
    assert listed != sorted(listed, key=lambda k: k.encode("utf-16-be"))
    assert [i.key for i in store.list()] == sorted(keys, key=str.encode)
    infos = {i.key: i for i in store.list("p/a")}
    assert list(infos) == ["p/a-b", "p/a/b", "p/a0"]
    assert infos["p/a-b"].size == len(b"p/a-b")


def test_list_of_empty_or_missing_prefix_is_empty(store: Store) -> None:
    assert list(store.list()) == []
    assert list(store.list("exports/")) == []
    store.put("exports/x", b"1")
    assert list(store.list("nothing/here/")) == []
    assert list(store.list("exports/y")) == []


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/./b", "a/../b", "a/", "", "x" + TEMP_SUFFIX,
                                 "a\\b", "nul\x00"])
def test_bad_keys_are_refused(store: Store, bad: str) -> None:
    for call in (lambda: store.put(bad, b"x"), lambda: store.get(bad), lambda: store.head(bad),
                 lambda: store.delete(bad)):
        with pytest.raises(StoreError):
            call()
    assert list(store.list()) == []


def test_bad_list_prefix_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        list(store.list("../"))


def test_large_object_roundtrips_with_whole_object_sha256(store: Store) -> None:
    data = os.urandom(6 * MiB)
    info = store.put("big/object.ion", data, retain_until=_later())
    assert info.sha256 == _sha(data)
    assert store.head("big/object.ion").sha256 == _sha(data)
    assert store.head("big/object.ion").retain_until is not None
    assert store.get("big/object.ion") == data
    assert store.get("big/object.ion", start=5 * MiB - 3, end=5 * MiB + 3) == data[5 * MiB - 3: 5 * MiB + 3]
    with pytest.raises(ObjectExists):
        store.put("big/object.ion", os.urandom(6 * MiB))
    assert store.get("big/object.ion") == data


def test_empty_object(store: Store) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.head("empty").size == 0


def test_retrying_wrapper_keeps_the_contract(store: Store) -> None:
    wrapped = RetryingStore(store, sleep=lambda _: None)
    wrapped.put("w", b"data")
    with pytest.raises(ObjectExists):
        wrapped.put("w", b"data")
    assert wrapped.get("w", start=1) == b"ata"
    assert [i.key for i in wrapped.list()] == ["w"]
    assert unwrap(wrapped) is store and wrapped.properties == store.properties


# --- locations -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bkt/qldb-dr/", ("s3", "bkt", "qldb-dr/")),
        ("s3://bkt/qldb-dr", ("s3", "bkt", "qldb-dr/")),
        ("s3://bkt/a/b//", ("s3", "bkt", "a/b/")),
        ("s3://bkt", ("s3", "bkt", "")),
        ("s3://bkt/", ("s3", "bkt", "")),
        ("file:///d/p", ("file", "/d/p", "")),
        ("file://localhost/d/my%20p", ("file", "/d/my p", "")),
        ("/d/p", ("file", "/d/p", "")),
        ("/d/p/", ("file", "/d/p", "")),
    ],
)
def test_parse_location(url: str, expected: tuple[str, str, str]) -> None:
    assert parse_location(url) == expected


@pytest.mark.parametrize("url", ["gs://bkt/p", "s3:///p", "s3://bkt/a//b/", "s3://bkt/../x", "file://host/d", ""])
def test_parse_location_refuses(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_location(url)
    if url.startswith("gs"):
        assert "'gs'" in str(caught.value)


def test_parse_relative_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_location("repo") == ("file", str(tmp_path / "repo"), "")


def test_open_location_file_and_url_roundtrip(tmp_path: Path) -> None:
    loc = open_location(str(tmp_path / "my repo"))
    assert isinstance(loc.store, RetryingStore) and isinstance(unwrap(loc.store), FileStore)
    assert loc.prefix == "" and loc.key("exports/x") == "exports/x"
    loc.store.put(loc.key("a"), b"1")
    again = open_location(loc.store.url)
    assert again.store.get("a") == b"1"
    with pytest.raises(StoreError):
        loc.key("../escape")


def test_open_location_s3_keeps_prefix() -> None:
    with mock_aws():
        client = _locked_bucket()
        loc = open_location(f"s3://{BUCKET}/qldb-dr", client=client, sse="AES256")
        assert isinstance(loc, Location) and loc.prefix == "qldb-dr/"
        assert loc.url == f"s3://{BUCKET}/qldb-dr/"
        loc.store.put(loc.key("_ledgerdr/windows/t0.json"), b"{}")
        assert client.head_object(Bucket=BUCKET, Key="qldb-dr/_ledgerdr/windows/t0.json")["ContentLength"] == 2


def test_open_store_refuses_prefix_and_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        open_store("s3://bkt/p/")
    with pytest.raises(ConfigError, match="sse"):
        open_store(str(tmp_path), sse="AES256")
    with pytest.raises(ConfigError, match="lock_mode"):
        open_store(str(tmp_path), lock_mode="GOVERNANCE")


# --- file store specifics ------------------------------------------------------------------------------


def test_file_objects_are_read_only_and_list_hides_temp_and_metadata(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("d/x", b"1", retain_until=_later())
    assert (tmp_path / "d" / "x").stat().st_mode & 0o777 == 0o444
    (tmp_path / "d" / ("y.123.abcd" + TEMP_SUFFIX)).write_bytes(b"in flight")
    (tmp_path / "d" / "link").symlink_to(tmp_path / "d" / "x")
    assert [i.key for i in store.list()] == ["d/x"]
    assert (tmp_path / META_DIR).is_dir()
    with pytest.raises(StoreError, match="reserved"):
        store.put(f"{META_DIR}/objects/d/x", b"forged")
    assert list(store.list(f"{META_DIR}/")) == []


def test_file_missing_root_lists_empty_and_is_created_on_put(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "not" / "yet")
    assert list(store.list()) == [] and not store.exists("a")
    store.put("a", b"1")
    assert store.url == (tmp_path / "not" / "yet").as_uri()


def test_file_symlink_escaping_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "sneaky").symlink_to(outside)
    store = FileStore(root)
    with pytest.raises(StoreError, match="outside"):
        store.put("sneaky/x", b"1")
    with pytest.raises(StoreError, match="outside"):
        list(store.list("sneaky/"))
    assert list(outside.iterdir()) == []


def test_file_concurrent_writers_of_one_key_one_wins(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    results: dict[int, str] = {}
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            store.put("race", f"writer {n}".encode() * 1000)
            results[n] = "won"
        except ObjectExists:
            results[n] = "lost"

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, r in results.items() if r == "won"]
    assert len(winners) == 1 and len(results) == 8
    data = store.get("race")
    assert data == f"writer {winners[0]}".encode() * 1000
    assert store.head("race").sha256 == _sha(data)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)] == []


def test_file_without_hard_links_falls_back_to_exclusive_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = FileStore(tmp_path)
    store.put("k", b"bytes")
    assert store.get("k") == b"bytes" and store.head("k").sha256 == _sha(b"bytes")
    with pytest.raises(ObjectExists):
        store.put("k", b"other")
    assert store.get("k") == b"bytes"


def test_file_retention_ends_then_delete_is_allowed(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("k", b"1", retain_until=_later(days=2))
    with freeze_time(datetime.now(UTC) + timedelta(days=3)):
        store.delete("k")
    assert not store.exists("k")
    store.put("k", b"again")  # the key is free again, sidecar replaced
    assert store.head("k").retain_until is None


def test_file_lock_mode_none_records_but_does_not_enforce(tmp_path: Path) -> None:
    store = FileStore(tmp_path, lock_mode=None)
    assert not store.properties.enforces_retention
    store.put("k", b"1", retain_until=_later())
    assert store.head("k").retain_until is not None
    store.delete("k")
    assert not store.exists("k")


def test_file_object_without_sidecar_is_readable(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "synced.ion").write_bytes(b"copied with aws s3 sync")
    store = FileStore(tmp_path)
    info = store.head("exports/synced.ion")
    assert (info.sha256, info.retain_until, info.size) == (None, None, 23)
    assert [i.key for i in store.list()] == ["exports/synced.ion"]
    with pytest.raises(ObjectExists):
        store.put("exports/synced.ion", b"x")
    assert store.get("exports/synced.ion") == b"copied with aws s3 sync"


def test_file_key_conflicting_with_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a/b", b"1")
    with pytest.raises(StoreError, match="directory"):
        store.put("a", b"2")
    with pytest.raises(ObjectNotFound):
        store.head("a")
    store.put("c", b"3")
    with pytest.raises(StoreError, match="not a directory"):
        store.put("c/d", b"4")
