"""End to end on AWS under moto: both region stacks deployed from the templates (test_aws_templates.deploy),
then every handler called in order with events shaped as AWS delivers them, each with the environment
its function was deployed with.

- backup: an EventBridge Scheduler invocation (the schedule's own Input, context attributes filled in),
  from QLDB — the simulated QLDB of test_qldb_source.py, answering a real botocore QLDB client from an
  embedded ledger;
- replication: ledgerdr's copier stands in for S3 replication, which moto does not perform; the replica
  bucket's notification configuration (from the template) makes moto send S3 event notifications of the
  new window records to the standby's queue;
- verify_replica, plan_restore; restore_worker fed from SQS as Lambda's poller feeds it (batches of
  `Records`, partial batch failures honoured: successes deleted, failures made visible again), with one
  poisoned unit that is reported in `batchItemFailures` every time and dead-lettered by the queue's redrive
  policy; finalize_restore (refuses while a dead letter exists, verifies once it is dealt with);
  standby fed by the S3 notifications inside SQS bodies; drill; compact.
The restored and standby ledgers' state digests equal the journal's. It runs twice: both stacks in one account,
and the replica stack in a second account (the primary's rule names it, with the owner override).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws

from ledgerdr.aws import handlers
from ledgerdr.aws.runtime import HandlerFailed
from ledgerdr.ledger.engine import Ledger
from ledgerdr.queues.sqs import encode_body
from ledgerdr.restore.plan import RestorePlan
from ledgerdr.restore.shapes import WorkUnit
from ledgerdr.stores import copy_object, open_location
from ledgerdr.targets import open_target
from ledgerdr.targets.digest import digest_of_target
from support.backups import ledger_with_history, recent_base
from support.simulated_qldb import SimulatedQldb
from support.stacks import ACCOUNT, PRIMARY_PARAMS, REPLICA_PARAMS, account_credentials, deploy

US, EU = "us-east-1", "eu-west-1"
OTHER_ACCOUNT = "210987654321"
_DEFAULT_CREDENTIALS: dict[str, str] = {}  # moto's, set by mock_aws


def _scheduler_event(stack, logical: str) -> dict:
    """What EventBridge Scheduler delivers: the schedule's Input with its context attributes filled in."""
    target = stack.client("scheduler").get_schedule(Name=stack.physical[logical])["Target"]
    text = (target["Input"].replace("<aws.scheduler.scheduled-time>", "2026-12-07T10:00:00Z")
            .replace("<aws.scheduler.schedule-arn>", f"arn:aws:scheduler:{stack.region}:123456789012:schedule/"
                                                       f"default/{stack.physical[logical]}")
            .replace("<aws.scheduler.execution-id>", "d32c5kddcf5bb8c3").replace("<aws.scheduler.attempt-number>", "1"))
    return json.loads(text)


def _poll(stack, queue_logical: str, handler, *, rounds: int = 50) -> list[set[str]]:
    """Lambda's SQS poller: receive up to 10, invoke with `Records`, delete what did not fail, make the
    failures visible again (Lambda waits for their visibility timeout; the test does not). Returns the
    failed message ids of each invocation."""
    sqs = stack.client("sqs")
    url = stack.queue_url(queue_logical)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    failures = []
    for _ in range(rounds):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"],
                                       MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return failures
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": {k: m["Attributes"][k] for k in ("ApproximateReceiveCount", "SentTimestamp",
                                                                   "SenderId", "ApproximateFirstReceiveTimestamp")},
                    "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                    "eventSourceARN": arn, "awsRegion": stack.region} for m in messages]
        response = handler({"Records": records}, None)
        assert set(response) == {"batchItemFailures"}
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        failures.append(failed)
        for m in messages:
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    raise AssertionError("the queue never drained")


def _as_function(monkeypatch, stack, logical: str) -> None:
    """The environment the function runs with: its variables, its region, its account's credentials (as
    Lambda passes its role's), and a fresh default boto3 session (each function is its own process)."""
    for name in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
        if name in stack.credentials:
            monkeypatch.setenv(name.upper(), stack.credentials[name])
        elif name == "aws_session_token":
            monkeypatch.delenv(name.upper(), raising=False)
        else:
            monkeypatch.setenv(name.upper(), _DEFAULT_CREDENTIALS[name.upper()])
    for name in ("LEDGERDR_REPOSITORY", "LEDGERDR_STATE_URL", "LEDGERDR_TARGET_URL", "LEDGERDR_STANDBY_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in stack.environment(logical).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", stack.region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", stack.region)
    boto3.setup_default_session()
    qldb = stack.qldb  # the handlers' QLDB client comes from the default session
    boto3.DEFAULT_SESSION._session.register("before-parameter-build.qldb", qldb._stash)
    boto3.DEFAULT_SESSION._session.register("before-send.qldb", qldb._answer)


def _metrics(out: str, name: str) -> list[dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line and name in line]


@pytest.fixture(params=["same-account", "cross-account"])
def deployed(request, tmp_path, monkeypatch):
    """Both stacks; in the cross-account variant the replica stack lives in another account, which the
    primary's replication rule names (owner override) and whose bucket policy admits the primary's role."""
    base = recent_base(minutes_back=20)  # four minutes of history, in 5-minute windows closed by now
    path = ledger_with_history(tmp_path / "ledger.db", base)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with mock_aws():
        _DEFAULT_CREDENTIALS.update({k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        cross = request.param == "cross-account"
        replica = deploy(EU, "replica", {**REPLICA_PARAMS, "RetentionDays": "2",
                                         **({"SourceAccountId": ACCOUNT} if cross else {}),
                                         "TargetUrl": f"embedded:{tmp_path / 'restored.db'}",
                                         "StandbyUrl": f"embedded:{tmp_path / 'standby.db'}"},
                         credentials=account_credentials(OTHER_ACCOUNT) if cross else None)
        primary = deploy(US, "primary", {**PRIMARY_PARAMS, "RetentionDays": "2", "BackupIntervalMinutes": "5",
                                         "LedgerName": "vehicle-registration",
                                         **({"ReplicaAccountId": OTHER_ACCOUNT} if cross else {})})
        assert (replica.account == OTHER_ACCOUNT) is cross
        owned_by_primary = [b["Name"] for b in primary.client("s3").list_buckets()["Buckets"]]
        assert ("dr-replica" in owned_by_primary) is not cross
        [rule] = primary.client("s3").get_bucket_replication(Bucket="dr-primary")["ReplicationConfiguration"]["Rules"]
        assert ("AccessControlTranslation" in rule["Destination"]) is cross
        lam = replica.client("lambda")
        for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:  # the test is Lambda's poller
            lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        ledger = Ledger.open(path)
        primary.qldb = replica.qldb = SimulatedQldb(ledger, boto3.client("s3", region_name=US))
        yield primary, replica, primary.qldb
        ledger.close()


def test_the_whole_architecture_runs_on_its_handlers(deployed, monkeypatch, capsys, tmp_path):
    primary, replica, qldb = deployed

    # -- region A: scheduled backup from QLDB -------------------------------------------------------------
    _as_function(monkeypatch, primary, "BackupFunction")
    backed = handlers.backup(_scheduler_event(primary, "BackupSchedule"), None)
    assert backed["ok"] and backed["recorded"] and not backed["failed"]
    assert backed["scheduled_time"] == "2026-12-07T10:00:00Z"
    assert [c["RoleArn"] for c in qldb.calls("ExportJournalToS3")] == [
        primary.client("iam").get_role(RoleName=primary.physical["ExportRole"])["Role"]["Arn"]] * len(backed["recorded"])
    [rpo] = _metrics(capsys.readouterr().out, "RPOSeconds")
    assert rpo["Repository"] == "primary" and rpo["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ledgerdr"
    again = handlers.backup(_scheduler_event(primary, "BackupSchedule"), None)  # a retried invocation
    assert again["failed"] == [] and not set(again["recorded"]) & set(backed["recorded"])  # nothing twice
    # It records a window only when one closed between the two calls (the clock crossed a 5-minute boundary).
    assert again["recorded"] == [] or datetime.fromisoformat(backed["next_due"]) <= datetime.now(UTC)
    capsys.readouterr()

    # -- S3 replication: every object under the prefix, as S3 copies it (ledgerdr's copy_object stands in)
    source = open_location("s3://dr-primary/qldb-dr/", client=primary.client("s3"))
    replica_location = open_location("s3://dr-replica/qldb-dr/", client=replica.client("s3"))
    keys = [info.key for info in source.store.list(source.prefix)]
    for key in keys:
        copy_object(source.store, replica_location.store, key)
    assert any("/_ledgerdr/windows/" in key for key in keys)

    # -- region B: verify what arrived ---------------------------------------------------------------------
    _as_function(monkeypatch, replica, "VerifyFunction")
    verified = handlers.verify_replica(_scheduler_event(replica, "VerifySchedule"), None)
    assert verified["ok"] and verified["windows_verified"] == len(backed["recorded"]) and not verified["problems"]
    assert verified["watermark"]["last_seq"] == qldb.ledger.last_block().seq
    [replica_rpo] = _metrics(capsys.readouterr().out, "RPOSeconds")
    assert replica_rpo["Repository"] == "replica"

    # -- restore: plan → SQS → workers (one poisoned unit) → finalize --------------------------------------
    _as_function(monkeypatch, replica, "PlanFunction")
    planned = handlers.plan_restore({}, None)
    assert planned["ok"] and planned["sent"] == planned["units"] > 0
    state = open_location(replica.environment("PlanFunction")["LEDGERDR_STATE_URL"], client=replica.client("s3"))
    plan = RestorePlan.from_bytes(state.store.get(state.key(f"plans/{planned['restore_id']}.json")))
    poisoned = WorkUnit("poisoned", plan.units[0].key, plan.units[0].fmt, plan.units[0].first_seq,
                        plan.units[0].last_seq, sha256="0" * 64)
    sqs = replica.client("sqs")
    sent = sqs.send_message(QueueUrl=replica.queue_url("WorkQueue"), MessageBody=encode_body(poisoned.to_bytes()))
    _as_function(monkeypatch, replica, "WorkerFunction")
    failures = _poll(replica, "WorkQueue", handlers.restore_worker)
    assert {m for failed in failures for m in failed} == {sent["MessageId"]}
    assert sum(sent["MessageId"] in failed for failed in failures) == 3  # MaxAttempts deliveries, then the DLQ
    dead = sqs.receive_message(QueueUrl=replica.queue_url("WorkQueueDLQ"), MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in dead] == [sent["MessageId"]]
    sqs.change_message_visibility(QueueUrl=replica.queue_url("WorkQueueDLQ"), ReceiptHandle=dead[0]["ReceiptHandle"],
                                  VisibilityTimeout=0)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"message_id"' in line]
    errors = [line for line in logged if line["message_id"] == sent["MessageId"]]
    assert len(errors) == 3 and all(line["error_type"] == "VerificationError" and poisoned.key in line["error"]
                                    and "sha256" in line["error"] for line in errors)

    _as_function(monkeypatch, replica, "FinalizeFunction")
    with pytest.raises(HandlerFailed) as refused:
        handlers.finalize_restore({"restore_id": planned["restore_id"]}, None)
    result = refused.value.result
    assert result["exit_code"] == 7 and [d["unit"] for d in result["dead_letters"]] == [poisoned.key]
    assert result["certificate"] is None  # a certificate vouches for a verified restore only
    assert result["journal_state_digest"] == result["target_state_digest"]  # every real unit was applied
    sqs.purge_queue(QueueUrl=replica.queue_url("WorkQueueDLQ"))  # the operator looked: not a unit of the plan
    final = handlers.finalize_restore({"restore_id": planned["restore_id"]}, None)
    assert final["ok"] and final["verdict"] and final["units_applied"] == planned["units"]
    journal_digest = final["journal_state_digest"]
    assert final["target_state_digest"] == journal_digest
    state = open_location(replica.environment("FinalizeFunction")["LEDGERDR_STATE_URL"], client=replica.client("s3"))
    certificate = json.loads(state.store.get(final["certificate"]))  # in the state bucket, as the CLI's beside the file
    assert certificate["verdict"] == "verified" and certificate["restore_id"] == planned["restore_id"]
    assert certificate["target"]["state_digest"] == certificate["journal_state_digest"] == journal_digest
    restored = open_target(replica.environment("PlanFunction")["LEDGERDR_TARGET_URL"])
    try:
        assert digest_of_target(restored).digest == journal_digest
    finally:
        restored.close()

    # -- warm standby fed by the S3 notifications of the replica bucket ------------------------------------
    notify = replica.queue_url("NotifyQueue")
    peek = sqs.receive_message(QueueUrl=notify, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    bodies = [json.loads(m["Body"]) for m in peek]
    assert bodies[0]["Event"] == "s3:TestEvent"  # S3 sends one when the notification is configured
    events = [b["Records"][0] for b in bodies[1:]]
    assert events and all(e["eventSource"] == "aws:s3" and e["eventName"].startswith("ObjectCreated")
                          and unquote_plus(e["s3"]["object"]["key"]).startswith("qldb-dr/_ledgerdr/windows/")
                          for e in events)  # keys arrive URL-encoded
    _as_function(monkeypatch, replica, "StandbyFunction")
    assert all(not failed for failed in _poll(replica, "NotifyQueue", handlers.standby))
    standby = open_target(replica.environment("StandbyFunction")["LEDGERDR_STANDBY_URL"])
    try:
        assert digest_of_target(standby).digest == journal_digest
    finally:
        standby.close()
    assert _metrics(capsys.readouterr().out, "StandbyLagSeconds")

    # -- a drill in region B, and the nightly compaction in region A ---------------------------------------
    _as_function(monkeypatch, replica, "DrillFunction")
    drilled = handlers.drill({}, None)
    assert drilled["verified"] and drilled["target_state_digest"] == journal_digest
    assert drilled["certificate"]["verdict"] == "verified"
    assert drilled["certificate"]["target"]["state_digest"] == journal_digest
    assert drilled["rpo_seconds"] > 0 and drilled["rto_seconds"] > 0
    [drill_metrics] = _metrics(capsys.readouterr().out, "DrillRTOSeconds")
    assert drill_metrics["DrillRPOSeconds"] == drilled["rpo_seconds"]
    _as_function(monkeypatch, primary, "CompactFunction")
    compacted = handlers.compact(_scheduler_event(primary, "CompactSchedule"), None)
    assert compacted["ok"] and compacted["manifest_key"].startswith("qldb-dr/_ledgerdr/snapshots/")


def test_errors_become_results_with_the_tables_exit_code(monkeypatch, capsys):
    monkeypatch.delenv("LEDGERDR_CONFIG_TOML", raising=False)
    with pytest.raises(HandlerFailed) as missing:
        handlers.backup({}, None)
    assert missing.value.result["exit_code"] == 2 and "LEDGERDR_CONFIG_TOML" in missing.value.result["error"]
    logged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert logged["level"] == "error" and logged["handler"] == "backup" and logged["exit_code"] == 2
    monkeypatch.setenv("LEDGERDR_CONFIG_TOML", '[backup]\ninterval = "soon"\n[repositories.p]\nurl = "/tmp/x"\n')
    with pytest.raises(HandlerFailed) as invalid:
        handlers.compact({}, None)
    assert invalid.value.exit_code == 2 and "backup.interval" in invalid.value.result["error"]


def test_objects_still_in_flight_are_pending_then_a_failure(tmp_path, monkeypatch, capsys):
    """verify_replica on a replica where S3 replication has delivered the window records but not yet
    their exports (replication does not keep order): within the grace period the watermark waits and
    the run succeeds, naming what is pending; past it, the same state fails with exit 4, naming the key."""
    from ledgerdr.backup import BackupPolicy, run_backup
    from ledgerdr.sources.embedded import EmbeddedSource

    base = recent_base()
    source = EmbeddedSource(ledger_with_history(tmp_path / "ledger.db", base))
    primary = open_location(str(tmp_path / "primary"))
    assert run_backup(source, primary, BackupPolicy(interval=timedelta(minutes=1))).recorded
    source.close()
    replica = open_location(str(tmp_path / "replica"))
    for info in primary.store.list(""):
        if "/windows/" in info.key:  # only the records have arrived
            copy_object(primary.store, replica.store, info.key)
    monkeypatch.setenv("LEDGERDR_CONFIG_TOML", f'[repositories.primary]\nurl = "{tmp_path / "primary"}"\n'
                                               f'[repositories.replica]\nurl = "{tmp_path / "replica"}"\n')
    waiting = handlers.verify_replica({"Records": []}, None)
    assert waiting["ok"] and waiting["windows_verified"] == 0 and waiting["pending"] and not waiting["problems"]
    missing = [p["key"] for p in waiting["pending"] if p["kind"] == "missing_object"]
    assert missing and all(key.startswith("exports/") for key in missing)
    assert {p["kind"] for p in waiting["pending"]} <= {"missing_object", "gap"}  # the gap their absence leaves
    monkeypatch.setenv("LEDGERDR_REPLICATION_GRACE", "0s")
    with pytest.raises(HandlerFailed) as late:
        handlers.verify_replica({}, None)
    assert late.value.exit_code == 4 and not late.value.result["pending"]
    assert {p["key"] for p in late.value.result["problems"]} == {p["key"] for p in waiting["pending"]}
