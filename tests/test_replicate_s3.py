"""`replicate` between two moto S3 buckets in two regions (and two accounts), both with Object Lock:
copy, verify at the destination, watermark in the replica, resume, tampering, retention, RPO.

The primary is filled by a real backup (embedded ledger → S3). The replica is a location of its own
bucket with the primary's prefix: a replica mirrors the primary's root-relative keys.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.errors import ConfigError
from ledgerdr.replicate import ReplicateOptions, replicate
from ledgerdr.repository import WINDOWS, read_watermarks, read_windows
from ledgerdr.restore.run import RestoreOptions, restore
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.status import repository_status
from ledgerdr.stores import Location, MeteredStore, open_location, unwrap
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
from support.s3 import OTHER_ACCOUNT_ROLE, credentials_of, make_bucket

PRIMARY_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"
PRIMARY, REPLICA = "dr-primary", "dr-replica-eu"
PREFIX = "qldb-dr/"
PRIMARY_RETENTION = timedelta(days=3)
POLICY = BackupPolicy(interval=timedelta(minutes=1), retention=PRIMARY_RETENTION)


@pytest.fixture
def regions(tmp_path):
    """(base, primary location, us-east-1 client, eu-west-1 client): the primary holds MINUTES windows."""
    base = recent_base()
    path = ledger_with_history(tmp_path / "ledger.db", base)
    with mock_aws():
        us = boto3.client("s3", region_name=PRIMARY_REGION)
        eu = boto3.client("s3", region_name=REPLICA_REGION)
        make_bucket(us, PRIMARY, default_days=1)
        make_bucket(eu, REPLICA)
        primary = open_location(f"s3://{PRIMARY}/{PREFIX}", client=us, region=PRIMARY_REGION)
        source = EmbeddedSource(path)
        assert len(run_backup(source, primary, POLICY, now=due_after(base)).recorded) == MINUTES
        source.close()
        yield base, primary, us, eu


def _replica(client, bucket: str = REPLICA) -> Location:
    return Location(S3Store(bucket, client=client, region=REPLICA_REGION), PREFIX)


def _object_count(primary: Location) -> int:
    """Every object replicate copies: each window's recorded objects plus its record."""
    return sum(len(w.objects) + 1 for w in read_windows(primary).windows)


def test_replicate_copies_verifies_and_marks_in_the_replica_region(regions) -> None:
    base, primary, us, eu = regions
    replica = _replica(eu)
    report = replicate(primary, replica, ReplicateOptions("eu"))
    assert report.ok, report.problems
    windows = read_windows(primary).windows
    assert report.copied == _object_count(primary) and report.skipped == 0
    assert report.windows_verified == MINUTES
    mark = report.watermark
    assert (mark.last_seq, mark.last_block_hash) == (windows[-1].last_seq, windows[-1].last_block_hash)
    assert read_watermarks(replica, "eu") == [mark]
    assert eu.head_bucket(Bucket=REPLICA)["BucketRegion"] == REPLICA_REGION
    mark_key = f"{PREFIX}_ledgerdr/watermarks/eu/{mark.last_seq:020d}.json"
    assert eu.head_object(Bucket=REPLICA, Key=mark_key)["ObjectLockMode"] == "COMPLIANCE"
    assert "Contents" not in us.list_objects_v2(Bucket=PRIMARY, Prefix=f"{PREFIX}_ledgerdr/watermarks/")
    again = replicate(primary, replica, ReplicateOptions("eu"))
    assert again.ok and again.copied == 0 and again.skipped == 0 and again.windows_covered == MINUTES
    assert again.windows_verified == 0 and read_watermarks(replica, "eu") == [mark]
    # RPO per repository: now − end of the newest verified window, the same in both regions.
    now = due_after(base) + timedelta(minutes=10)
    expected = (now - windows[-1].end).total_seconds()
    replica_status = repository_status("eu", REPLICA_REGION, replica, now=now, primary=False)
    primary_status = repository_status("primary", PRIMARY_REGION, primary, now=now, primary=True)
    assert replica_status.rpo_seconds == primary_status.rpo_seconds == expected
    assert replica_status.verified_windows == MINUTES and replica_status.pending_windows == 0
    assert replica_status.tip_hash == windows[-1].last_block_hash


def test_the_copy_is_retained_at_least_as_long_as_the_source(regions) -> None:
    _, primary, us, eu = regions
    replica = _replica(eu)
    shorter = ReplicateOptions("eu", retention=timedelta(days=1))  # shorter than the primary's 3
    assert replicate(primary, replica, shorter).ok
    for window in read_windows(primary).windows:
        keys = [o.key for o in window.objects] + [primary.key(WINDOWS + window.key_name)]
        for key in keys:
            source = us.head_object(Bucket=PRIMARY, Key=key)
            copy = eu.head_object(Bucket=REPLICA, Key=key)
            assert copy["ObjectLockMode"] == "COMPLIANCE"
            assert copy["ObjectLockRetainUntilDate"] >= source["ObjectLockRetainUntilDate"]


class _UploadsFailAfter:
    """The replica's network path breaks after `n` uploads or server-side copies (reads keep working)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self, **_: object) -> None:
        if self.left <= 0:
            raise EndpointConnectionError(endpoint_url=f"https://{REPLICA}.s3.{REPLICA_REGION}.amazonaws.com")
        self.left -= 1


def test_an_interrupted_copy_resumes_without_copying_again(regions) -> None:
    _, primary, _, _ = regions
    flaky = boto3.client("s3", region_name=REPLICA_REGION)
    breaker = _UploadsFailAfter(3)  # fewer than the first window's objects: nothing can be verified
    for event in ("before-call.s3.PutObject", "before-call.s3.CopyObject"):
        flaky.meta.events.register(event, breaker)
    first = replicate(primary, _replica(flaky), ReplicateOptions("eu", concurrency=1))
    total = _object_count(primary)
    assert not first.ok and first.copied == 3
    assert [p.kind for p in first.problems].count("copy_failed") == total - 3
    assert first.watermark is None and first.windows_verified == 0
    for event in ("before-call.s3.PutObject", "before-call.s3.CopyObject"):
        flaky.meta.events.unregister(event, breaker)
    resumed = replicate(primary, _replica(flaky), ReplicateOptions("eu"))
    assert resumed.ok, resumed.problems
    assert (resumed.skipped, resumed.copied) == (3, total - 3)
    assert resumed.windows_verified == MINUTES


@pytest.mark.parametrize("claims_recorded_sha256", [False, True], ids=["plain", "lying-metadata"])
def test_a_conflicting_replica_object_is_detected_and_blocks_the_watermark(regions, claims_recorded_sha256) -> None:
    _, primary, _, eu = regions
    windows = read_windows(primary).windows
    target = next(o for o in windows[2].objects if o.key.endswith(".ion"))
    # Someone wrote this key in the replica first; the lying variant even claims the recorded sha256,
    # so that the copy step (which trusts metadata to skip) leaves it and only verification can tell.
    metadata = {"sha256": target.sha256} if claims_recorded_sha256 else {}
    eu.put_object(Bucket=REPLICA, Key=target.key, Body=b"not the journal", Metadata=metadata,
                  ChecksumAlgorithm="SHA256")
    report = replicate(primary, _replica(eu), ReplicateOptions("eu"))
    assert not report.ok
    kinds = {p.kind for p in report.problems if p.key == target.key}
    assert "checksum_mismatch" in kinds
    assert ("replica_conflict" in kinds) is not claims_recorded_sha256
    assert report.windows_verified == 2
    assert report.watermark.last_seq == windows[1].last_seq
    assert [m.last_seq for m in read_watermarks(_replica(eu), "eu")] == [windows[1].last_seq]


def test_replicate_copies_the_recorded_version_when_a_newer_one_hides_it(regions) -> None:
    _, primary, us, eu = regions
    target = next(o for o in read_windows(primary).windows[1].objects if o.key.endswith(".ion"))
    us.put_object(Bucket=PRIMARY, Key=target.key, Body=b"forged", ChecksumAlgorithm="SHA256")  # a new version
    report = replicate(primary, _replica(eu), ReplicateOptions("eu"))
    assert report.ok, report.problems
    assert report.windows_verified == MINUTES
    copy = eu.get_object(Bucket=REPLICA, Key=target.key)["Body"].read()
    assert hashlib.sha256(copy).hexdigest() == target.sha256


def test_data_objects_are_copied_server_side_between_buckets(regions) -> None:
    _, primary, _, eu = regions
    metered = Location(MeteredStore(primary.store), primary.prefix)
    report = replicate(metered, _replica(eu), ReplicateOptions("eu"))
    assert report.ok, report.problems
    windows = read_windows(primary).windows
    # only the window records pass through ledgerdr (read once); every recorded object, manifests, data and
    # the records themselves (their sha256 known from that read), is a CopyObject of its recorded version
    assert metered.store.objects_read == len(windows)
    assert metered.store.bytes_read < sum(o.size for w in windows for o in w.objects)
    for obj in (o for w in windows for o in w.objects):
        head = eu.head_object(Bucket=REPLICA, Key=obj.key)
        assert head["Metadata"]["sha256"] == obj.sha256 and head["ObjectLockMode"] == "COMPLIANCE"


class _CopyDenied:
    """S3's answer to a CopyObject whose source bucket belongs to an account these credentials cannot read."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: object) -> None:
        self.calls += 1
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "CopyObject")


def test_a_refused_server_side_copy_reads_the_recorded_version_through_ledgerdr(regions) -> None:
    _, primary, us, _ = regions
    target = next(o for o in read_windows(primary).windows[2].objects if o.key.endswith(".ion"))
    us.put_object(Bucket=PRIMARY, Key=target.key, Body=b"forged", ChecksumAlgorithm="SHA256")  # a new version
    client = boto3.client("s3", region_name=REPLICA_REGION)
    denied = _CopyDenied()
    client.meta.events.register("before-call.s3.CopyObject", denied)
    metered = Location(MeteredStore(primary.store), PREFIX)
    report = replicate(metered, _replica(client), ReplicateOptions("eu", concurrency=1))
    assert report.ok, report.problems
    assert report.windows_verified == MINUTES
    assert denied.calls == 1  # asked once; every later object went straight through get and put
    assert metered.store.bytes_read > sum(o.size for w in read_windows(primary).windows for o in w.objects)
    copy = client.get_object(Bucket=REPLICA, Key=target.key)["Body"].read()
    assert hashlib.sha256(copy).hexdigest() == target.sha256


def test_multipart_objects_are_copied_through_ledgerdr_by_recorded_version(regions, tmp_path) -> None:
    """S3 keeps only a composite checksum for a multipart upload, so it cannot vouch for the whole
    object's sha256: those objects are read (the recorded version) and checked on their way through."""
    base, _, us, eu = regions
    make_bucket(us, "dr-multipart", default_days=1)
    primary = Location(S3Store("dr-multipart", client=us, region=PRIMARY_REGION, multipart_threshold=1), PREFIX)
    source = EmbeddedSource(tmp_path / "ledger.db")
    assert len(run_backup(source, primary, POLICY, now=due_after(base)).recorded) == MINUTES
    source.close()
    target = next(o for o in read_windows(primary).windows[1].objects if o.key.endswith(".ion"))
    us.put_object(Bucket="dr-multipart", Key=target.key, Body=b"forged", ChecksumAlgorithm="SHA256")
    metered = Location(MeteredStore(primary.store), PREFIX)
    report = replicate(metered, _replica(eu), ReplicateOptions("eu"))
    assert report.ok, report.problems
    assert report.windows_verified == MINUTES
    assert metered.store.bytes_read > sum(o.size for w in read_windows(primary).windows for o in w.objects)
    copy = eu.get_object(Bucket=REPLICA, Key=target.key)["Body"].read()
    assert hashlib.sha256(copy).hexdigest() == target.sha256


def test_a_replica_with_another_prefix_is_refused_before_copying(regions) -> None:
    _, primary, _, eu = regions
    elsewhere = Location(S3Store(REPLICA, client=eu, region=REPLICA_REGION), "other-prefix/")
    with pytest.raises(ConfigError) as refused:
        replicate(primary, elsewhere, ReplicateOptions("eu"))
    assert "'other-prefix/'" in str(refused.value) and f"{PREFIX!r}" in str(refused.value)
    assert "Contents" not in eu.list_objects_v2(Bucket=REPLICA)
    # the same bucket under the primary's prefix is fine: prefixes, not buckets, must match
    assert replicate(primary, _replica(eu), ReplicateOptions("eu")).ok


def test_restore_from_the_replica_region(regions, tmp_path) -> None:
    _, primary, _, eu = regions
    assert replicate(primary, _replica(eu), ReplicateOptions("eu")).ok
    options = RestoreOptions(workers=0, state_dir=tmp_path / "restores")
    report = restore(f"s3://{REPLICA}/{PREFIX}", f"embedded://{tmp_path / 'restored.db'}", options)
    assert report.verdict, (report.problems, report.dead_letters[:1])
    assert report.last_block_hash == read_windows(primary).windows[-1].last_block_hash


def test_cross_account_replica_through_an_assumed_role(regions) -> None:
    _, primary, us, _ = regions
    other = open_location(f"s3://dr-other-account/{PREFIX}", role_arn=OTHER_ACCOUNT_ROLE, region=REPLICA_REGION)
    client = unwrap(other.store).client  # the assumed role's client
    make_bucket(client, "dr-other-account")
    report = replicate(primary, other, ReplicateOptions("dr-account"))
    assert report.ok, report.problems
    assert report.windows_verified == MINUTES
    assert "dr-other-account" not in [b["Name"] for b in us.list_buckets()["Buckets"]]
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["dr-other-account"]
    credentials = credentials_of(unwrap(other.store))
    identity = boto3.client("sts", region_name=REPLICA_REGION, **credentials).get_caller_identity()
    assert identity["Account"] == "222222222222"
    assert read_watermarks(other, "dr-account")[-1].last_seq == read_windows(primary).windows[-1].last_seq


def test_a_replica_bucket_without_object_lock_is_refused_when_required(regions, tmp_path) -> None:
    _, primary, _, eu = regions
    make_bucket(eu, "dr-plain-eu", locked=False)
    config = write_config(tmp_path / "ledgerdr.toml", {
        "primary": {"url": f"s3://{PRIMARY}/{PREFIX}", "region": PRIMARY_REGION},
        "eu": {"url": f"s3://dr-plain-eu/{PREFIX}", "region": REPLICA_REGION, "require_object_lock": True},
    })
    check = run_cli("check", "--json", "-c", str(config))
    assert check.exit_code == 2, check.output
    errors = [(r["repository"], r["check"]) for r in json.loads(check.stdout) if r["level"] == "error"]
    assert ("eu", "object_lock") in errors and all(name == "eu" for name, _ in errors)
    assert any("repository eu requires Object Lock" in r["message"] for r in json.loads(check.stdout))
    # `replicate` makes the same check before copying anything (not after S3 refused every locked put)
    result = run_cli("replicate", "-c", str(config))
    assert result.exit_code == 2, result.output
    error = error_line(result)
    assert "repository eu requires Object Lock" in error and "bucket 'dr-plain-eu'" in error
    assert "nothing was copied" in error
    assert "Contents" not in eu.list_objects_v2(Bucket="dr-plain-eu")
    # and so does the flow itself, for callers other than the CLI
    plain = Location(S3Store("dr-plain-eu", client=eu, region=REPLICA_REGION), PREFIX)
    with pytest.raises(ConfigError, match="bucket 'dr-plain-eu' does not provide it"):
        replicate(primary, plain, ReplicateOptions("eu", require_object_lock=True))
    assert "Contents" not in eu.list_objects_v2(Bucket="dr-plain-eu")
    # a locked replica with the same requirement replicates
    locked = write_config(config, {
        "primary": {"url": f"s3://{PRIMARY}/{PREFIX}", "region": PRIMARY_REGION},
        "eu": {"url": f"s3://{REPLICA}/{PREFIX}", "region": REPLICA_REGION, "require_object_lock": True},
    })
    ok = run_cli("replicate", "-c", str(locked))
    assert ok.exit_code == 0, ok.output
    assert read_watermarks(_replica(eu), "eu")[-1].last_seq == read_windows(primary).windows[-1].last_seq


def test_every_run_rechecks_the_replica_copies_by_head_and_copies_a_lost_one_again(regions) -> None:
    """On S3 the re-check of the copies a watermark vouches for is a HEAD each (S3's own checksum of the
    stored bytes), no GET; a newer version put over a copy, or a deleted copy, is named by --verify-only and
    copied again by a plain run."""
    _, primary, _, eu = regions
    assert replicate(primary, _replica(eu), ReplicateOptions("eu")).ok
    windows = read_windows(primary).windows
    altered = next(o.key for o in windows[0].objects if o.key.endswith(".ion"))
    lost = next(o.key for o in windows[1].objects if o.key.endswith(".ion"))
    metered = Location(MeteredStore(_replica(eu).store), PREFIX)
    idle = replicate(primary, metered, ReplicateOptions("eu"))
    assert idle.ok and idle.rechecked == _object_count(primary)
    assert metered.store.objects_read == len(read_watermarks(_replica(eu), "eu"))  # the watermarks, no copy
    eu.put_object(Bucket=REPLICA, Key=altered, Body=b"not the recorded bytes", ChecksumAlgorithm="SHA256")
    eu.delete_object(Bucket=REPLICA, Key=lost)  # a delete marker: the key reads as missing
    checked = replicate(primary, _replica(eu), ReplicateOptions("eu", verify_only=True))
    assert sorted((p.kind, p.key) for p in checked.problems) == sorted([("replica_damaged", altered),
                                                                        ("replica_missing", lost)])
    repaired = replicate(primary, _replica(eu), ReplicateOptions("eu"))  # the altered version is not locked: it can go
    assert repaired.ok and sorted(repaired.repaired) == sorted([(altered, "damaged"), (lost, "missing")])
    assert replicate(primary, _replica(eu), ReplicateOptions("eu", verify_only=True)).ok
