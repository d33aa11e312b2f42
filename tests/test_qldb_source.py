"""`QldbSource` on a real botocore QLDB client, answered by a simulated QLDB backed by an embedded ledger.

How the simulation works: a handler on the client's `before-send.qldb.*` event returns the HTTP
response QLDB would send (its JSON body, or an error body naming the error code), which botocore takes
in place of sending the request: no HTTP is made, and botocore's own parameter validation, response
parsing and retries (throttling, the two-exports-at-once quota) run as against QLDB. A
`before-parameter-build.qldb.*` handler first stashes the call's parameters in the request context,
so the simulator sees exactly what QLDB would receive. ExportJournalToS3 writes the export into the
moto bucket under the requested prefix with `export_journal`, as QLDB writes it (QLDB sets no
per-object retention: the bucket's default Object Lock retention applies). Botocore's `Stubber` was
not needed.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.errors import SourceError, exit_code_for
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.exports import verify_location
from ledgerdr.journal.proofs import verify_proof
from ledgerdr.ledger.engine import Ledger
from ledgerdr.repository import find_orphans, read_windows
from ledgerdr.sources.qldb import QldbSource, client_config
from ledgerdr.stores import open_location
from support.backups import MINUTES, due_after, ledger_with_history, recent_base
from support.s3 import make_bucket
from support.simulated_qldb import SimulatedQldb, ion_address

REGION = "us-east-1"
LEDGER = "vehicle-registration"
BUCKET = "qldb-export"
PREFIX = "qldb-dr/"
ROLE = "arn:aws:iam::123456789012:role/qldb-s3-export"
POLICY = BackupPolicy(interval=timedelta(minutes=1), fmt=ExportFormat.ION_TEXT, retention=timedelta(days=2))
# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path):
    """A locked bucket (default COMPLIANCE retention, as QLDB exports rely on), a ledger with history
    behind a simulated QLDB, and a QldbSource on a real botocore QLDB client."""
    base = recent_base()
    path = ledger_with_history(tmp_path / "ledger.db", base)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        make_bucket(s3, BUCKET, default_days=1)
        ledger = Ledger.open(path)
        sim = SimulatedQldb(ledger, boto3.client("s3", region_name=REGION))
        sleeps: list[float] = []
        client = sim.attach(boto3.client("qldb", region_name=REGION, config=client_config()))
        source = QldbSource(LEDGER, role_arn=ROLE, client=client, sleep=sleeps.append)
        location = open_location(f"s3://{BUCKET}/{PREFIX}", client=s3, region=REGION)
        yield base, sim, source, location, s3, sleeps
        ledger.close()


def _assert_contiguous(windows) -> None:
    for before, after in zip(windows, windows[1:], strict=False):
        assert before.window_end == after.window_start and after.first_seq == before.last_seq + 1
        assert after.first_previous_block_hash == before.last_block_hash


# --- tests -------------------------------------------------------------------------------------------------


def test_backup_through_qldb_records_verified_windows_with_digest_proofs(world) -> None:
    base, sim, source, location, s3, sleeps = world
    report = run_backup(source, location, POLICY, now=due_after(base))
    assert len(report.recorded) == MINUTES and not report.failed
    windows = read_windows(location).windows
    _assert_contiguous(windows)
    assert windows[0].first_seq == 0 and windows[-1].last_seq == sim.ledger.block_count - 1
    digest = sim.ledger.get_digest()
    for window in windows:
        assert window.source == {"kind": "qldb", "ledger": LEDGER, "strand_id": sim.ledger.strand_id}
        assert window.export_id in sim.exports and window.format == "ION_TEXT"
        assert window.digest["digest"] == base64.b64encode(digest["digest"]).decode()
        assert window.digest["tip_address"] == ion_address(digest["digestTipAddress"])
        proof = [base64.b64decode(h) for h in window.digest["proof"]]
        assert verify_proof(base64.b64decode(window.last_block_hash), proof, bytes(digest["digest"]))
        for obj in window.objects:  # QLDB's objects: SSE-S3, locked by the bucket's default, versioned
            head = s3.head_object(Bucket=BUCKET, Key=obj.key, VersionId=obj.version_id)
            assert head["ServerSideEncryption"] == "AES256" and head["ObjectLockMode"] == "COMPLIANCE"
    assert sleeps == [1.0] * MINUTES  # each export was polled once while IN_PROGRESS
    assert verify_location(location.store, PREFIX).ok


@pytest.mark.parametrize("kms", [False, True], ids=["sse-s3", "sse-kms"])
def test_export_request_carries_role_bucket_attempt_prefix_encryption_and_format(world, kms: bool) -> None:
    base, sim, source, location, s3, _ = world
    expected_encryption = {"ObjectEncryptionType": "SSE_S3"}
    if kms:
        key_arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        source = QldbSource(LEDGER, role_arn=ROLE, client=source.client, kms_key_arn=key_arn, sleep=lambda _: None)
        expected_encryption = {"ObjectEncryptionType": "SSE_KMS", "KmsKeyArn": key_arn}
    run_backup(source, location, POLICY, now=due_after(base, 2))
    windows = read_windows(location).windows
    requests = sim.calls("ExportJournalToS3")
    assert len(requests) == len(windows) == 2
    for request, window in zip(requests, windows, strict=True):
        assert request["Name"] == LEDGER and request["RoleArn"] == ROLE and request["OutputFormat"] == "ION_TEXT"
        assert (request["InclusiveStartTime"], request["ExclusiveEndTime"]) == (window.start, window.end)
        config = request["S3ExportConfiguration"]
        assert config == {"Bucket": BUCKET, "Prefix": window.export_prefix,
                          "EncryptionConfiguration": expected_encryption}
        name = window.start.strftime("%Y%m%dT%H%M%SZ")
        assert config["Prefix"].startswith(f"{PREFIX}exports/{name}/") and "." not in config["Prefix"]
        head = s3.head_object(Bucket=BUCKET, Key=window.objects[-1].key)
        assert head["ServerSideEncryption"] == ("aws:kms" if kms else "AES256")


def test_cancelled_export_raises_leaves_the_window_unrecorded_and_is_retried(world) -> None:
    base, sim, source, location, _, _ = world
    sim.export_scripts.extend([["IN_PROGRESS", "COMPLETED"], ["IN_PROGRESS", "CANCELLED"]])
    with pytest.raises(SourceError, match="CANCELLED") as caught:
        run_backup(source, location, POLICY, now=due_after(base))
    assert exit_code_for(caught.value) == 6 and "next backup run retries" in caught.value.hint
    recorded = read_windows(location)
    assert len(recorded.windows) == 1  # the window before the cancelled one stays recorded
    cancelled_prefix = sim.calls("ExportJournalToS3")[1]["S3ExportConfiguration"]["Prefix"]
    retry = run_backup(source, location, POLICY, now=due_after(base))
    assert len(retry.recorded) == MINUTES - 1
    catalog = read_windows(location)
    _assert_contiguous(catalog.windows)
    assert catalog.windows[1].window_start == recorded.windows[0].window_end
    assert find_orphans(location, catalog) == [cancelled_prefix]


def test_limit_exceeded_once_is_retried_by_botocore_and_succeeds(world) -> None:
    base, sim, source, location, _, sleeps = world
    sim.fail["ExportJournalToS3"].append("LimitExceededException")
    report = run_backup(source, location, POLICY, now=due_after(base))
    assert len(report.recorded) == MINUTES and not report.failed
    assert len(sim.calls("ExportJournalToS3")) == MINUTES + 1 and len(sim.exports) == MINUTES
    assert sleeps == [1.0] * MINUTES  # only the polls: the retry was botocore's, not a second layer of ours
    assert find_orphans(location, read_windows(location)) == []


@pytest.mark.parametrize("code", ["ThrottlingException", "LimitExceededException"])
def test_throttling_past_botocores_attempts_is_a_clear_source_error(world, code: str) -> None:
    base, sim, _, location, s3, _ = world
    client = sim.attach(boto3.client("qldb", region_name=REGION, config=client_config(max_attempts=2)))
    source = QldbSource(LEDGER, role_arn=ROLE, client=client, sleep=lambda _: None)
    sim.fail["ExportJournalToS3"].extend([code] * 2)
    with pytest.raises(SourceError) as caught:
        run_backup(source, location, POLICY, now=due_after(base))
    error = caught.value
    assert f"QLDB export_journal_to_s3 on ledger {LEDGER}: still throttled ({code}) after 2 attempts" in str(error)
    assert "next backup run retries it" in error.hint and exit_code_for(error) == 6
    assert len(sim.calls("ExportJournalToS3")) == 2  # botocore's attempts, and no layer of ours on top
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_access_denied_is_a_source_error_with_a_hint(world) -> None:
    base, sim, source, location, s3, _ = world
    sim.fail["ExportJournalToS3"].append("AccessDeniedException")
    with pytest.raises(SourceError) as caught:
        run_backup(source, location, POLICY, now=due_after(base))
    error = caught.value
    assert f"QLDB export_journal_to_s3 on ledger {LEDGER}: access denied" in str(error)
    assert "qldb:ExportJournalToS3" in error.hint and "iam:PassRole" in error.hint
    assert exit_code_for(error) == 6
    assert len(sim.calls("ExportJournalToS3")) == 1  # not retried: it cannot succeed
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
