"""The backup flow into real (moto) S3 buckets: Object Lock, versions, tampering, and the CLI's errors.

Time: the ledger's history is committed at frozen times a few minutes in the *past* (no AWS call
runs while the clock is frozen, so moto's request signing never sees a fake time); the flow then
runs on the real clock, with `now=` pinned where the flow accepts it so the window count is exact.

Notes on S3 semantics these tests pin down (moto 5.2 behaves as S3 does):
- Object Lock protects *versions*, not keys: a plain PutObject on a locked key succeeds and adds a
  newer version; the locked version can be neither changed nor deleted. That is why every window
  record names the `version_id` of each object.
- PutObject into a bucket with a default retention needs a checksum header (S3Store always sends one).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.errors import ObjectExists, RetentionViolation
from ledgerdr.journal.exports import verify_location
from ledgerdr.repository import WINDOWS, find_orphans, read_windows
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import Location, open_location
from ledgerdr.stores.s3 import S3Store
from support.backups import (
    MINUTES,
    due_after,
    error_line,
    ledger_with_history,
    recent_base,
    run_cli,
    write_config,
)
from support.s3 import make_bucket

REGION = "us-east-1"
PREFIX = "qldb-dr/"
RETENTION = timedelta(days=2)
POLICY = BackupPolicy(interval=timedelta(minutes=1), retention=RETENTION)


def flipped(data: bytes, offset: int = -40) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0xFF
    return bytes(out)


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def s3():
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


@pytest.fixture
def history(tmp_path):
    base = recent_base()
    return base, ledger_with_history(tmp_path / "ledger.db", base)


@pytest.fixture
def backed_up(s3, history):
    """The embedded ledger backed up into a COMPLIANCE-locked, versioned bucket with default retention."""
    base, path = history
    make_bucket(s3, "dr-primary", default_days=1)
    location = open_location(f"s3://dr-primary/{PREFIX}", client=s3, region=REGION)
    source = EmbeddedSource(path)
    report = run_backup(source, location, POLICY, now=due_after(base))
    source.close()
    return base, location, report


# --- backup into a locked bucket ---------------------------------------------------------------------------


def test_windows_are_recorded_with_version_ids_and_compliance_retention(s3, backed_up) -> None:
    base, location, report = backed_up
    assert len(report.recorded) == MINUTES and not report.failed
    windows = read_windows(location).windows
    assert [w.window_start for w in windows] == [w.window_start for w in report.recorded]
    assert windows[0].start == base and windows[-1].end == base + timedelta(minutes=MINUTES)
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.first_seq == before.last_seq + 1
        assert after.first_previous_block_hash == before.last_block_hash
    locked_until = due_after(base) + RETENTION - timedelta(seconds=1)
    for obj in (o for w in windows for o in w.objects):  # manifests and data objects, by recorded version
        assert obj.version_id
        head = s3.head_object(Bucket="dr-primary", Key=obj.key, VersionId=obj.version_id)
        assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] >= locked_until
        body = s3.get_object(Bucket="dr-primary", Key=obj.key, VersionId=obj.version_id)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == obj.sha256
    for window in windows:  # the records themselves are locked too
        head = s3.head_object(Bucket="dr-primary", Key=location.key(WINDOWS + window.key_name))
        assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] >= locked_until
    assert all(w.digest and w.digest["proof"] for w in windows)
    assert verify_location(location.store, PREFIX).ok


def test_a_locked_version_can_be_neither_overwritten_nor_deleted(s3, backed_up) -> None:
    _, location, _ = backed_up
    obj = next(o for o in read_windows(location).windows[1].objects if o.key.endswith(".ion"))
    with pytest.raises(ObjectExists):
        location.store.put(obj.key, b"forged")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket="dr-primary", Key=obj.key, VersionId=obj.version_id)
    with pytest.raises(RetentionViolation, match="COMPLIANCE"):
        location.store.delete(obj.key)
    # A raw PutObject is not refused: it adds a newer version. The recorded version is untouched.
    s3.put_object(Bucket="dr-primary", Key=obj.key, Body=b"forged", ChecksumAlgorithm="SHA256")
    versions = s3.list_object_versions(Bucket="dr-primary", Prefix=obj.key)["Versions"]
    assert len(versions) == 2
    original = location.store.get(obj.key, version_id=obj.version_id)
    assert hashlib.sha256(original).hexdigest() == obj.sha256


# --- a tampered export -------------------------------------------------------------------------------------


class _Tamperer:
    """Writes a new version over the export's first data object just before its completed manifest is
    written, with a separate client (someone else holding write access to the bucket)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.raw = boto3.client("s3", region_name=REGION)
        self.tampered: list[str] = []

    def __call__(self, params: dict, **_: object) -> None:
        if self.tampered or not params["Key"].endswith(".completed.manifest"):
            return
        folder = params["Key"].rsplit("/", 1)[0] + "/"
        listing = self.raw.list_objects_v2(Bucket=self.bucket, Prefix=folder)["Contents"]
        key = next(o["Key"] for o in listing if o["Key"].endswith(".ion"))
        body = self.raw.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.raw.put_object(Bucket=self.bucket, Key=key, Body=flipped(body))
        self.tampered.append(key)


def test_tampered_export_is_not_recorded_and_the_window_is_retried(s3, history) -> None:
    base, path = history
    make_bucket(s3, "dr-unlocked", locked=False, versioned=True)
    client = boto3.client("s3", region_name=REGION)
    tamper = _Tamperer("dr-unlocked")
    client.meta.events.register("before-parameter-build.s3.PutObject", tamper)
    location = Location(S3Store("dr-unlocked", client=client, lock_mode=None), PREFIX)
    source = EmbeddedSource(path)
    try:
        report = run_backup(source, location, POLICY, now=due_after(base))
        assert tamper.tampered and not report.recorded
        assert report.failed and "failed verification" in report.failed[0][1]
        assert read_windows(location).windows == []
        versions = s3.list_object_versions(Bucket="dr-unlocked", Prefix=tamper.tampered[0])["Versions"]
        assert len(versions) == 2  # the original and the tampered version
        client.meta.events.unregister("before-parameter-build.s3.PutObject", tamper)
        retry = run_backup(source, location, POLICY, now=due_after(base))
    finally:
        source.close()
    assert len(retry.recorded) == MINUTES and not retry.failed
    catalog = read_windows(location)
    assert find_orphans(location, catalog) == [tamper.tampered[0].rsplit("/", 5)[0] + "/"]
    assert verify_location(location.store, catalog.windows[0].export_prefix).ok


class _NewVersionAfterRead:
    """Right after the backup reads an export's data object, someone else puts a newer version of that key
    (S3 accepts it over a locked object): the window the backup verified is the older version."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.raw = boto3.client("s3", region_name=REGION)
        self.reading: str | None = None
        self.hidden: dict[str, str] = {}  # key -> sha256 of the bytes the backup read

    def before(self, params: dict, **_: object) -> None:
        self.reading = params["Key"] if params["Key"].endswith(".ion") else None

    def after(self, parsed: dict, **_: object) -> None:
        key, self.reading = self.reading, None
        if key is None or key in self.hidden or "Body" not in parsed:
            return
        body = parsed["Body"].read()
        parsed["Body"] = _Replay(body)
        self.hidden[key] = hashlib.sha256(body).hexdigest()
        self.raw.put_object(Bucket=self.bucket, Key=key, Body=flipped(body), ChecksumAlgorithm="SHA256")


class _Replay:
    """A response body already read once, served again to its caller."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, *_: object) -> bytes:
        return self.data


def test_recorded_version_id_and_sha256_describe_the_same_bytes(s3, history) -> None:
    base, path = history
    make_bucket(s3, "dr-race", default_days=1)
    client = boto3.client("s3", region_name=REGION)
    race = _NewVersionAfterRead("dr-race")
    client.meta.events.register("before-parameter-build.s3.GetObject", race.before)
    client.meta.events.register("after-call.s3.GetObject", race.after)
    location = Location(S3Store("dr-race", client=client, region=REGION), PREFIX)
    source = EmbeddedSource(path)
    try:
        report = run_backup(source, location, POLICY, now=due_after(base))
    finally:
        source.close()
    assert len(report.recorded) == MINUTES and race.hidden
    for obj in (o for w in read_windows(location).windows for o in w.objects):
        body = s3.get_object(Bucket="dr-race", Key=obj.key, VersionId=obj.version_id)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == obj.sha256, obj.key
        if obj.key in race.hidden:
            assert obj.sha256 == race.hidden[obj.key]
            assert s3.head_object(Bucket="dr-race", Key=obj.key)["VersionId"] != obj.version_id


# --- the CLI: clear errors, check --------------------------------------------------------------------------


def _s3_config(tmp_path: Path, bucket: str, **settings) -> Path:
    repo = {"url": f"s3://{bucket}/{PREFIX}", "region": REGION, **settings}
    return write_config(tmp_path / "ledgerdr.toml", {"primary": repo})


def test_cli_backup_into_s3_records_windows(s3, history, tmp_path) -> None:
    make_bucket(s3, "dr-cli", default_days=1)
    result = run_cli("backup", "--once", "-c", str(_s3_config(tmp_path, "dr-cli")))
    assert result.exit_code == 0, result.output
    recorded = [line for line in result.stdout.splitlines() if line.startswith("recorded ")]
    assert len(recorded) >= MINUTES  # the real clock may have closed one more (empty) window
    listed = s3.list_objects_v2(Bucket="dr-cli", Prefix=f"{PREFIX}{WINDOWS}")["Contents"]
    assert len(listed) == len(recorded)


def test_cli_backup_access_denied_is_a_clear_error(s3, history, tmp_path) -> None:
    make_bucket(s3, "dr-denied", default_days=1)
    s3.put_bucket_policy(Bucket="dr-denied", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::dr-denied/*"}]}))
    result = run_cli("backup", "--once", "-c", str(_s3_config(tmp_path, "dr-denied")))
    assert result.exit_code == 3, result.output
    error = error_line(result)
    assert ("AccessDenied" in error or "403" in error) and "s3:PutObject" in error
    assert "arn:aws:s3:::dr-denied/qldb-dr/exports/" in error
    assert "Contents" not in s3.list_objects_v2(Bucket="dr-denied")


def test_cli_backup_missing_bucket_is_a_clear_error(s3, history, tmp_path) -> None:
    result = run_cli("backup", "--once", "-c", str(_s3_config(tmp_path, "dr-nowhere")))
    assert result.exit_code == 3, result.output
    error = error_line(result)
    assert "bucket 'dr-nowhere' does not exist in region us-east-1" in error
    assert "create it with Object Lock enabled" in error


def _check_rows(result) -> dict[str, tuple[str, str]]:
    rows = json.loads(result.stdout)
    return {r["check"]: (r["level"], r["message"]) for r in rows}


def test_check_reports_a_bucket_without_object_lock_or_versioning(s3, tmp_path) -> None:
    make_bucket(s3, "dr-plain", locked=False)
    result = run_cli("check", "--json", "-c", str(_s3_config(tmp_path, "dr-plain")))
    assert result.exit_code == 2, result.output
    rows = _check_rows(result)
    assert rows["versioning"][0] == "error" and "never enabled" in rows["versioning"][1]
    assert rows["object_lock"][0] == "error" and "not enabled" in rows["object_lock"][1]
    assert "Traceback" not in result.output


def test_check_refuses_retention_shorter_than_the_bucket_lock(s3, tmp_path) -> None:
    make_bucket(s3, "dr-lock30", default_days=30)
    config = _s3_config(tmp_path, "dr-lock30")  # retention_days = 1
    result = run_cli("check", "--json", "-c", str(config))
    assert result.exit_code == 2, result.output
    level, message = _check_rows(result)["retention"]
    assert level == "error" and "1 days is shorter" in message and "30 days" in message
    write_config(config, {"primary": {"url": f"s3://dr-lock30/{PREFIX}", "region": REGION}}, retention_days=30)
    ok = run_cli("check", "-c", str(config))
    assert ok.exit_code == 0, ok.output
    assert "[primary] OK    retention: retention of 30 days covers the COMPLIANCE lock of 30 days" in ok.stdout
