"""S3-only behaviour (moto), the store wrappers and the fault helpers.

Notes on moto 5.2 found while writing these tests:
- GetObjectRetention is not implemented (HTTP 500), so retention is read from HeadObject's
  ObjectLockMode / ObjectLockRetainUntilDate, which real S3 returns as well.
- Lock headers on CreateMultipartUpload are ignored; S3Store checks and sets retention after completing.
- A bucket policy Deny is enforced (bare 403), so access-denied mapping uses a real policy; botocore's
  Stubber is used only to produce error codes moto never sends (SlowDown, 500, 409 conflict).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws

from ledgerdr.errors import (
    AccessDenied,
    ChecksumMismatch,
    ConfigError,
    ObjectExists,
    ObjectNotFound,
    RetentionViolation,
    StoreError,
    StoreUnavailable,
)
from ledgerdr.stores import FileStore, MeteredStore, RetryingStore, open_location
from ledgerdr.stores.faults import FaultyStore, flip_byte, truncate
from ledgerdr.stores.s3 import MiB, S3Store, check_retention, preflight
from support.s3 import OTHER_ACCOUNT_ROLE, credentials_of

REGION = "us-east-1"


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


def _bucket(client, name: str, *, locked: bool = True, default_days: int | None = None, mode: str = "COMPLIANCE"):
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
    if locked:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if default_days:
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": default_days}}})
    return name


def _later(days: int = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def _findings(findings) -> dict[str, str]:
    return {f.check: f.level for f in findings}


# --- S3 objects: encryption, lock, versions --------------------------------------------------------------


def test_sse_s3_is_visible_on_head(aws) -> None:
    store = S3Store(_bucket(aws, "sse-s3"), client=aws, sse="AES256")
    store.put("k", b"secret")
    assert aws.head_object(Bucket="sse-s3", Key="k")["ServerSideEncryption"] == "AES256"


def test_sse_kms_with_key_id_is_visible_on_head(aws) -> None:
    key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
    store = S3Store(_bucket(aws, "sse-kms"), client=aws, sse="aws:kms", kms_key_id=key_id)
    store.put("k", b"secret")
    head = aws.head_object(Bucket="sse-kms", Key="k")
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_object_lock_retention_is_set_and_enforced_by_s3(aws, mode: str) -> None:
    store = S3Store(_bucket(aws, "locked"), client=aws, lock_mode=mode)
    until = _later(days=7)
    info = store.put("exports/t0/a/1.ion", b"block", retain_until=until)
    head = aws.head_object(Bucket="locked", Key="exports/t0/a/1.ion")
    assert head["ObjectLockMode"] == mode
    assert abs(head["ObjectLockRetainUntilDate"] - until) < timedelta(seconds=1)
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"block").hexdigest()
    assert info.version_id == head["VersionId"]
    # S3 itself refuses to remove the locked version (not just our own check) ...
    with pytest.raises(aws.exceptions.ClientError, match="AccessDenied"):
        aws.delete_object(Bucket="locked", Key="exports/t0/a/1.ion", VersionId=info.version_id)
    # ... and the store reports that refusal as a retention violation, leaving the object in place.
    with pytest.raises(RetentionViolation, match=mode):
        store.delete("exports/t0/a/1.ion")
    assert store.get("exports/t0/a/1.ion", version_id=info.version_id) == b"block"


def test_multipart_upload_gets_lock_checksum_metadata_and_encryption(aws) -> None:
    store = S3Store(_bucket(aws, "multi"), client=aws, sse="AES256", multipart_threshold=5 * MiB)
    data = bytes(range(256)) * (6 * MiB // 256)
    store.put("big", data, retain_until=_later())
    head = aws.head_object(Bucket="multi", Key="big")
    assert head["ETag"].endswith('-2"')  # really two parts
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert aws.list_multipart_uploads(Bucket="multi").get("Uploads", []) == []


def test_multipart_racing_writer_is_refused_and_upload_aborted(aws) -> None:
    rival = boto3.client("s3", region_name=REGION)  # another writer, same bucket

    def rival_wins(**_: object) -> None:  # runs after our pre-check, just before the completion is sent
        rival.put_object(Bucket="multi-race", Key="big", Body=b"rival")

    ours = boto3.client("s3", region_name=REGION)
    ours.meta.events.register("before-call.s3.CompleteMultipartUpload", rival_wins)
    store = S3Store(_bucket(aws, "multi-race"), client=ours, multipart_threshold=5 * MiB)
    with pytest.raises(ObjectExists):
        store.put("big", b"x" * (6 * MiB))
    assert aws.get_object(Bucket="multi-race", Key="big")["Body"].read() == b"rival"
    assert aws.list_multipart_uploads(Bucket="multi-race").get("Uploads", []) == []


def test_versions_are_returned_and_readable(aws) -> None:
    store = S3Store(_bucket(aws, "versions"), client=aws)
    info = store.put("k", b"v1")
    assert info.version_id and store.head("k").version_id == info.version_id
    assert store.get("k", version_id=info.version_id, start=1) == b"1"
    with pytest.raises(ObjectNotFound):
        store.get("k", version_id="not-a-version")


def test_delete_removes_the_version_not_just_hides_it(aws) -> None:
    store = S3Store(_bucket(aws, "deletes"), client=aws)
    store.put("k", b"temporary")
    store.delete("k")
    assert aws.list_object_versions(Bucket="deletes").get("Versions", []) == []
    assert aws.list_object_versions(Bucket="deletes").get("DeleteMarkers", []) == []


def test_list_paginates_and_skips_foreign_invalid_keys(aws) -> None:
    store = S3Store(_bucket(aws, "many", locked=False), client=aws, lock_mode=None)
    keys = [f"w/{n:05d}" for n in range(1005)]
    for key in keys:
        aws.put_object(Bucket="many", Key=key, Body=b"")
    aws.put_object(Bucket="many", Key="w//foreign", Body=b"")
    assert [i.key for i in store.list("w/")] == keys


def test_lock_mode_none_puts_without_retention(aws) -> None:
    store = S3Store(_bucket(aws, "nolock", locked=False), client=aws, lock_mode=None)
    assert not store.properties.enforces_retention
    assert store.put("k", b"1", retain_until=_later()).retain_until is None
    assert "ObjectLockMode" not in aws.head_object(Bucket="nolock", Key="k")


def test_lock_on_bucket_without_object_lock_is_a_clear_error(aws) -> None:
    store = S3Store(_bucket(aws, "plain", locked=False), client=aws)
    with pytest.raises(StoreError) as caught:
        store.put("k", b"1", retain_until=_later())
    assert not isinstance(caught.value, ObjectExists)
    assert not store.exists("k")


@pytest.mark.parametrize("settings", [{"lock_mode": "forever"}, {"sse": "rot13"}, {"kms_key_id": "k"},
                                      {"role_arn": OTHER_ACCOUNT_ROLE}])
def test_bad_settings_are_config_errors(aws, settings: dict) -> None:
    with pytest.raises(ConfigError):
        S3Store("bucket", client=aws, **settings)


# --- errors ------------------------------------------------------------------------------------------------


def test_bucket_policy_denial_maps_to_access_denied_with_hint(aws) -> None:
    _bucket(aws, "denied", locked=False)
    aws.put_bucket_policy(Bucket="denied", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::denied/*"}]}))
    store = S3Store("denied", client=aws, lock_mode=None)
    with pytest.raises(AccessDenied) as caught:
        store.put("exports/x", b"1")
    assert "s3:PutObject" in caught.value.hint and "arn:aws:s3:::denied/exports/x" in caught.value.hint
    aws.delete_bucket_policy(Bucket="denied")
    store.put("exports/x", b"1")
    aws.put_bucket_policy(Bucket="denied", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::denied/*"}]}))
    with pytest.raises(AccessDenied, match="s3:GetObject"):
        store.get("exports/x")


def test_missing_bucket_is_a_clear_store_error(aws) -> None:
    store = S3Store("no-such-bucket", client=aws, region=REGION)
    for call in (lambda: store.put("k", b"1"), lambda: store.get("k"), lambda: list(store.list()),
                 lambda: store.head("k"), lambda: store.exists("k")):
        with pytest.raises(StoreError) as caught:
            call()
        assert type(caught.value) is StoreError, call
        assert "no-such-bucket" in str(caught.value) and "create it" in caught.value.hint


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [("SlowDown", 503, StoreUnavailable), ("InternalError", 500, StoreUnavailable),
     ("ConditionalRequestConflict", 409, ObjectExists), ("PreconditionFailed", 412, ObjectExists),
     ("BadDigest", 400, ChecksumMismatch), ("ExpiredToken", 400, AccessDenied),
     ("InvalidRequest", 400, StoreError)],
)
def test_error_codes_map_to_store_errors(code: str, status: int, expected: type) -> None:
    # Stubber only here: moto never answers with these codes.
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    store = S3Store("stubbed", client=client, lock_mode=None)
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status,
                              service_message="Bucket is missing Object Lock Configuration")
        with pytest.raises(expected) as caught:
            store.put("k", b"1")
    assert type(caught.value) is expected and caught.value.key == "k" and caught.value.op == "put"
    if code == "InvalidRequest":
        assert "Object Lock" in caught.value.hint


def test_unreachable_endpoint_is_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    client = boto3.client("s3", region_name=REGION, endpoint_url="http://127.0.0.1:9",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    with pytest.raises(StoreUnavailable) as caught:
        S3Store("bkt", client=client).get("k")
    assert caught.value.retryable


# --- cross-account role ----------------------------------------------------------------------------------


def test_assumed_role_store_works_in_the_other_account(aws) -> None:
    store = S3Store("dr-copy", role_arn=OTHER_ACCOUNT_ROLE, region=REGION)
    store.client.create_bucket(Bucket="dr-copy")
    store.put("k", b"cross-account")
    assert "dr-copy" not in [b["Name"] for b in aws.list_buckets()["Buckets"]]
    assert [b["Name"] for b in store.client.list_buckets()["Buckets"]] == ["dr-copy"]
    sts = boto3.client("sts", region_name=REGION, **credentials_of(store))
    assert sts.get_caller_identity()["Account"] == "222222222222"


# --- preflight and retention -----------------------------------------------------------------------------


def test_preflight_on_locked_versioned_encrypted_replicated_bucket(aws) -> None:
    _bucket(aws, "good", default_days=30)
    aws.put_bucket_encryption(Bucket="good", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/dr"}}]})
    aws.put_bucket_replication(Bucket="good", ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/replication",
        "Rules": [{"ID": "all", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
                   "DeleteMarkerReplication": {"Status": "Disabled"},
                   "Destination": {"Bucket": "arn:aws:s3:::good-replica"}}]})
    findings = preflight(open_location("s3://good/qldb-dr/", client=aws, region=REGION).store)
    assert _findings(findings) == {"bucket": "ok", "versioning": "ok", "object_lock": "ok",
                                   "default_retention": "ok", "encryption": "ok", "replication": "ok"}
    messages = " | ".join(f.message for f in findings)
    assert "COMPLIANCE 30 days" in messages and "aws:kms" in messages and "good-replica" in messages


def test_preflight_on_plain_bucket(aws) -> None:
    findings = preflight(S3Store(_bucket(aws, "plain", locked=False), client=aws))
    assert _findings(findings) == {"bucket": "ok", "versioning": "error", "object_lock": "error",
                                   "encryption": "warn", "replication": "ok"}
    relaxed = preflight(S3Store("plain", client=aws, lock_mode=None, sse="AES256"))
    assert _findings(relaxed) == {"bucket": "ok", "versioning": "warn", "object_lock": "warn",
                                  "encryption": "ok", "replication": "ok"}


def test_preflight_governance_default_and_missing_bucket(aws) -> None:
    _bucket(aws, "gov", default_days=10, mode="GOVERNANCE")
    assert _findings(preflight(S3Store("gov", client=aws)))["default_retention"] == "warn"
    [missing] = preflight(S3Store("absent-bucket", client=aws))
    assert (missing.level, missing.check) == ("error", "bucket") and "absent-bucket" in missing.message
    with pytest.raises(ConfigError):
        preflight(FileStore("/nonexistent"))


def test_retention_shorter_than_lock_is_refused(aws) -> None:
    store = S3Store(_bucket(aws, "lock30", default_days=30), client=aws)
    short = check_retention(store, 7)
    assert short.level == "error" and "30" in short.message and "7" in short.message
    assert check_retention(store, 30).level == "ok"
    assert check_retention(store, 3650).level == "ok"
    assert check_retention(S3Store(_bucket(aws, "nodefault"), client=aws), 1).level == "ok"
    aws.put_object_lock_configuration(Bucket="nodefault", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}})
    assert check_retention(S3Store("nodefault", client=aws), 364).level == "error"


# --- wrappers: retries, metering, faults -----------------------------------------------------------------


def _retrying(inner, sleeps: list[float], attempts: int = 5) -> RetryingStore:
    return RetryingStore(inner, attempts=attempts, base_delay=0.2, max_delay=1.0, sleep=sleeps.append,
                         rng=lambda: 1.0)


def test_retrying_store_retries_unavailable_with_capped_backoff(tmp_path: Path) -> None:
    faulty = FaultyStore(FileStore(tmp_path), fail_times=4)
    sleeps: list[float] = []
    store = _retrying(faulty, sleeps)
    store.put("k", b"data")
    assert sleeps == [0.2, 0.4, 0.8, 1.0] and faulty.calls == 5
    assert store.get("k") == b"data"


def test_retrying_store_gives_up_after_attempts(tmp_path: Path) -> None:
    faulty = FaultyStore(FileStore(tmp_path), fail_times=10)
    sleeps: list[float] = []
    with pytest.raises(StoreUnavailable):
        _retrying(faulty, sleeps, attempts=3).head("k")
    assert faulty.calls == 3 and len(sleeps) == 2


def test_retrying_store_does_not_retry_permanent_errors(tmp_path: Path) -> None:
    faulty = FaultyStore(FileStore(tmp_path))
    sleeps: list[float] = []
    store = _retrying(faulty, sleeps)
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    store.put("k", b"1")
    with pytest.raises(ObjectExists):
        store.put("k", b"1")  # an existing key on the first attempt is never taken for our own write
    assert sleeps == [] and faulty.calls == 3


def test_retried_put_whose_reply_was_lost_succeeds_once(aws) -> None:
    s3 = S3Store(_bucket(aws, "lost"), client=aws)
    store = _retrying(FaultyStore(s3, lost_replies=1), [])
    info = store.put("k", b"written once", retain_until=_later())
    assert info.sha256 == hashlib.sha256(b"written once").hexdigest() and info.version_id
    assert len(aws.list_object_versions(Bucket="lost")["Versions"]) == 1
    other = _retrying(FaultyStore(s3, lost_replies=1), [])
    other.put("j", b"mine")
    with pytest.raises(ObjectExists):  # same key, other bytes: a real conflict even on a retry path
        _retrying(FaultyStore(s3, fail_times=1), []).put("j", b"not mine")


def test_retrying_list_resumes_without_repeats(tmp_path: Path) -> None:
    inner = FileStore(tmp_path)
    for n in range(6):
        inner.put(f"k{n}", b"x")
    sleeps: list[float] = []
    listed = [i.key for i in _retrying(FaultyStore(inner, break_list_after=3), sleeps).list()]
    assert listed == [f"k{n}" for n in range(6)] and len(sleeps) == 1


def test_metered_store_counts(tmp_path: Path) -> None:
    store = MeteredStore(FileStore(tmp_path))
    store.put("a", b"12345")
    store.put("b", b"67")
    store.get("a", start=1, end=3)
    assert store.counts() == {"objects_read": 1, "bytes_read": 2, "objects_written": 2, "bytes_written": 7}


def test_flip_byte_and_truncate_damage_a_read_only_object(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("obj", b"abcdef")
    assert flip_byte(store, "obj", -1) == 5
    damaged = store.get("obj")
    assert damaged == b"abcde" + bytes([ord("f") ^ 0xFF])
    assert hashlib.sha256(damaged).hexdigest() != store.head("obj").sha256
    assert (tmp_path / "obj").stat().st_mode & 0o777 == 0o444
    truncate(tmp_path, "obj", 2)
    assert store.get("obj") == b"ab" and store.head("obj").size == 2
    with pytest.raises(IndexError):
        flip_byte(str(tmp_path), "obj", 2)
    with pytest.raises(ObjectNotFound):
        truncate(tmp_path, "nothing", 0)


def test_faulty_store_drops_and_shortens(tmp_path: Path) -> None:
    inner = FileStore(tmp_path)
    for key in ("a", "b", "c"):
        inner.put(key, b"0123456789")
    store = FaultyStore(inner, drop_keys={"b"}, short_read_keys={"c"})
    with pytest.raises(ObjectNotFound):
        store.get("b")
    with pytest.raises(ObjectNotFound):
        store.head("b")
    assert not store.exists("b") and inner.exists("b")
    assert [i.key for i in store.list()] == ["a", "c"]
    assert store.get("c") == b"01234" and store.get("a") == b"0123456789"
