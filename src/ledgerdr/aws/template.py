"""The CloudFormation templates, one per region role, built as data (`ledgerdr aws template`).

- `primary` (the ledger's region): the primary bucket (Object Lock, versioning, encryption, public access
  blocked, TLS only) with S3 replication to the replica bucket (optionally another account, optionally
  Replication Time Control); QLDB's export role (only `s3:PutObject` under `<prefix>/exports/`); the
  `backup` and `compact` functions on EventBridge Scheduler schedules; alarms on backup errors and on the
  primary's RPO.
- `replica` (the recovery region; deployed first): the replica bucket (same protections, plus the
  bucket policy a cross-account replication needs) with S3 event notifications of new window records to
  SQS; the work queue and both queues' dead-letter queues; a scratch bucket for restore state;
  `verify_replica` on a schedule, `plan_restore` → SQS → `restore_worker` (partial batch failures) →
  `finalize_restore`, `standby` on the notifications (when a standby target is given), `drill`; alarms
  on dead letters, verification errors and the replica's RPO.

Every function has its own role with the actions and resources it uses and nothing else, and writes only
to its own log group. The ledgerdr configuration each function gets (`LEDGERDR_CONFIG_TOML`) is built
from the same parameters, so the bucket's lock period and ledgerdr's retention cannot disagree.
`--param K=V` sets a parameter's default; every parameter can still be overridden at deploy time.
"""

from __future__ import annotations

import json
from typing import Any

from ..config import Config
from ..errors import ConfigError
from .cfn import (
    LAMBDA_TIMEOUT,
    NO_VALUE,
    alarm,
    allow,
    bucket_arn,
    function,
    get_att,
    if_,
    locked_bucket,
    log_group,
    not_empty,
    objects_arn,
    public_access_blocked,
    queue_pair,
    ref,
    role,
    schedule,
    sub,
    tls_only,
)

ROLES = ("primary", "replica")
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653]
_NAME = {"Type": "String", "AllowedPattern": "^[A-Za-z0-9_-]+$"}


def _common_parameters(config: Config | None) -> dict[str, dict[str, Any]]:
    retention = config.backup.retention_days if config else 30
    prefix = _prefix_of(config)
    return {
        "BucketName": {"Type": "String", "AllowedPattern": "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
                       "Description": "This region's repository bucket (created by this stack)."},
        "RepositoryPrefix": {"Type": "String", "Default": prefix, "AllowedPattern": "^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
                             "Description": "Key prefix of the repository, without a trailing slash and "
                                            "without a dot (the same in both regions)."},
        "RetentionDays": {"Type": "Number", "Default": str(max(retention, 1)), "MinValue": 1,
                          "Description": "ledgerdr's retention, and the buckets' default Object Lock period."},
        "LockMode": {"Type": "String", "Default": "COMPLIANCE", "AllowedValues": ["COMPLIANCE", "GOVERNANCE"]},
        "KmsKeyArn": {"Type": "String", "Default": "",
                      "Description": "KMS key for default encryption; empty: SSE-S3."},
        "CodeBucket": {"Type": "String", "Description": "Bucket in this region holding the Lambda zip "
                                                        "(`ledgerdr aws package`)."},
        "CodeKey": {"Type": "String", "Default": "ledgerdr-lambda.zip"},
        "Runtime": {"Type": "String", "Default": "python3.12",
                    "AllowedValues": ["python3.11", "python3.12", "python3.13"]},
        "Architecture": {"Type": "String", "Default": "x86_64", "AllowedValues": ["x86_64", "arm64"]},
        "RpoTargetSeconds": {"Type": "Number", "Default": str(_rpo_target(config)), "MinValue": 60,
                             "Description": "Alarm when a repository's RPO is above this."},
        "AlarmPeriodSeconds": {"Type": "Number", "Default": str(_alarm_period(config)), "MinValue": 60,
                               "Description": "RPO alarm period: at least the interval between the runs that "
                                              "emit the metric (no metric in a period also alarms)."},
        "AlarmTopicArn": {"Type": "String", "Default": "", "Description": "SNS topic for alarms; empty: none."},
        "MetricsNamespace": {"Type": "String", "Default": "ledgerdr"},
        "LogRetentionDays": {"Type": "Number", "Default": "30", "AllowedValues": [str(d) for d in LOG_RETENTION_DAYS]},
    }


def _prefix_of(config: Config | None) -> str:
    if config is not None and config.primary.url.startswith("s3://"):
        prefix = config.primary.url[len("s3://"):].partition("/")[2].strip("/")
        if prefix:
            return prefix
    return "qldb-dr"


def _interval_seconds(config: Config | None) -> int:
    return int(config.backup.interval.total_seconds()) if config else 3600


def _rpo_target(config: Config | None) -> int:
    return 2 * _interval_seconds(config) + 300  # one missed run, plus time to export and verify


def _alarm_period(config: Config | None) -> int:
    seconds = max(_interval_seconds(config), 300)
    return min(86_400, -(-seconds // 60) * 60)


def _common_conditions() -> dict[str, Any]:
    return {"UseKms": not_empty("KmsKeyArn"), "HasAlarmTopic": not_empty("AlarmTopicArn")}


# ------------------------------------------------------------------------------------------- primary


def _primary_parameters(config: Config | None) -> dict[str, dict[str, Any]]:
    seconds = _interval_seconds(config)
    if seconds % 60:  # EventBridge Scheduler's rate() counts whole minutes
        raise ConfigError(f"backup.interval of {seconds}s: on AWS the interval is a whole number of minutes")
    minutes = seconds // 60
    fmt = config.backup.format.value.lower() if config else "ion_binary"
    return {
        "LedgerName": {"Type": "String", "Default": config.source.ledger if config else "ledger",
                       "AllowedPattern": "^[A-Za-z0-9_-]+$"},
        "LedgerEndpointUrl": {"Type": "String", "Default": "",
                              "Description": "A QLDB-compatible endpoint instead of QLDB's; empty: QLDB."},
        "BackupIntervalMinutes": {"Type": "Number", "Default": str(minutes), "MinValue": 1,
                                  "Description": "Export window and schedule (the RPO knob)."},
        "ExportFormat": {"Type": "String", "Default": fmt, "AllowedValues": ["ion_binary", "ion_text", "json"]},
        "CompactScheduleExpression": {"Type": "String", "Default": "cron(30 2 * * ? *)"},
        "ReplicaBucketName": {"Type": "String", "AllowedPattern": "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
                              "Description": "The replica stack's bucket (deploy the replica stack first)."},
        "ReplicaAccountId": {"Type": "String", "Default": "", "AllowedPattern": "^([0-9]{12})?$",
                             "Description": "The replica's account when it is another one; empty: this account."},
        "ReplicaKmsKeyArn": {"Type": "String", "Default": "",
                             "Description": "With KmsKeyArn: the key the replica bucket encrypts with."},
        "ReplicationRoleName": {"Type": "String", "Default": "ledgerdr-replication", **_NAME},
        "ReplicationTimeControl": {"Type": "String", "Default": "false", "AllowedValues": ["true", "false"],
                                   "Description": "S3 RTC: 99.99% of objects within 15 minutes, with metrics."},
        "CompactStorageMB": {"Type": "Number", "Default": "2048", "MinValue": 512, "MaxValue": 10240},
    }


def _primary_config() -> dict[str, Any]:
    """LEDGERDR_CONFIG_TOML of the primary's functions (with and without a QLDB-compatible endpoint)."""
    def toml(endpoint: str) -> dict[str, Any]:
        return sub("\n".join([
            "[source]", 'kind = "qldb"', 'ledger = "${LedgerName}"', 'region = "${AWS::Region}"',
            'role_arn = "${ExportRole.Arn}"', *endpoint.splitlines(),
            "[backup]", 'interval = "${BackupIntervalMinutes}m"', 'format = "${ExportFormat}"',
            "retention_days = ${RetentionDays}",
            "[repositories.primary]", 'url = "s3://${BucketName}/${RepositoryPrefix}/"', 'region = "${AWS::Region}"',
            'lock_mode = "${LockMode}"', "require_object_lock = true", ""]))
    return if_("HasEndpoint", toml('endpoint_url = "${LedgerEndpointUrl}"'), toml(""))


def _replication() -> dict[str, Any]:
    destination = {
        "Bucket": bucket_arn("ReplicaBucketName"),
        "Account": if_("CrossAccount", ref("ReplicaAccountId")),
        "AccessControlTranslation": if_("CrossAccount", {"Owner": "Destination"}),
        "ReplicationTime": if_("UseRtc", {"Status": "Enabled", "Time": {"Minutes": 15}}),
        "Metrics": if_("UseRtc", {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}),
        "EncryptionConfiguration": if_("UseReplicaKms", {"ReplicaKmsKeyID": ref("ReplicaKmsKeyArn")}),
    }
    return {"Role": get_att("ReplicationRole", "Arn"), "Rules": [{
        "Id": "ledgerdr-repository", "Status": "Enabled", "Priority": 1,
        "Filter": {"Prefix": sub("${RepositoryPrefix}/")},
        "DeleteMarkerReplication": {"Status": "Disabled"},  # nothing is deleted; never propagate a delete
        "SourceSelectionCriteria": if_("UseKms", {"SseKmsEncryptedObjects": {"Status": "Enabled"}}),
        "Destination": destination}]}


def _replication_role() -> dict[str, Any]:
    statements = [
        allow(["s3:GetReplicationConfiguration", "s3:ListBucket"], [bucket_arn("BucketName")]),
        allow(["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
               "s3:GetObjectRetention", "s3:GetObjectLegalHold"], [objects_arn("BucketName")]),
        allow(["s3:ReplicateObject", "s3:ReplicateTags"], [objects_arn("ReplicaBucketName")]),
        if_("CrossAccount", allow(["s3:ObjectOwnerOverrideToBucketOwner"], [objects_arn("ReplicaBucketName")])),
        if_("UseKms", allow(["kms:Decrypt"], [ref("KmsKeyArn")])),
        if_("UseReplicaKms", allow(["kms:Encrypt"], [ref("ReplicaKmsKeyArn")])),
    ]
    resource = role("ReplicationRole", statements, service="s3.amazonaws.com",
                    trust_condition={"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}})
    resource["Properties"]["RoleName"] = ref("ReplicationRoleName")
    return resource


def _export_role() -> dict[str, Any]:
    """The role QLDB assumes to write an export: s3:PutObject under `<prefix>/exports/`, nothing else;
    only this account's ledger may use it (confused-deputy conditions)."""
    ledger_arn = sub("arn:${AWS::Partition}:qldb:${AWS::Region}:${AWS::AccountId}:ledger/${LedgerName}")
    return role("ExportRole", [allow(["s3:PutObject"], [objects_arn("BucketName", "exports/")])],
                service="qldb.amazonaws.com",
                trust_condition={"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                                 "ArnEquals": {"aws:SourceArn": ledger_arn}})


def _reader(bucket_param: str) -> list[dict[str, Any]]:
    return [allow(["s3:ListBucket"], [bucket_arn(bucket_param)]),
            allow(["s3:GetObject", "s3:GetObjectVersion"], [objects_arn(bucket_param)])]


def _writer(bucket_param: str, folder: str) -> dict[str, Any]:
    """Put-if-absent with a per-object retention (S3 asks s3:PutObjectRetention for the lock headers)."""
    return allow(["s3:PutObject", "s3:PutObjectRetention"], [objects_arn(bucket_param, folder)])


def primary_template(config: Config | None = None) -> dict[str, Any]:
    ledger_arn = sub("arn:${AWS::Partition}:qldb:${AWS::Region}:${AWS::AccountId}:ledger/${LedgerName}")
    env = {"LEDGERDR_CONFIG_TOML": _primary_config(), "LEDGERDR_METRICS_NAMESPACE": ref("MetricsNamespace")}
    backup_statements = [
        allow(["qldb:DescribeLedger", "qldb:ExportJournalToS3", "qldb:DescribeJournalS3Export", "qldb:GetDigest",
               "qldb:GetBlock"], [ledger_arn]),
        allow(["iam:PassRole"], [get_att("ExportRole", "Arn")],
              condition={"StringEquals": {"iam:PassedToService": "qldb.amazonaws.com"}}),
        *_reader("BucketName"), _writer("BucketName", "_ledgerdr/windows/")]
    resources: dict[str, Any] = {
        "PrimaryBucket": locked_bucket("BucketName", {"ReplicationConfiguration": _replication()}),
        "PrimaryBucketPolicy": _bucket_policy("PrimaryBucket", "BucketName"),
        "ReplicationRole": _replication_role(),
        "ExportRole": _export_role(),
        "BackupLogGroup": log_group("backup"),
        "BackupRole": role("BackupRole", backup_statements, "BackupLogGroup"),
        # One export at a time: QLDB allows two concurrent exports per ledger, and windows are sequential.
        "BackupFunction": function("backup", "backup", "BackupRole", "BackupLogGroup", env, reserved=1),
        "CompactLogGroup": log_group("compact"),
        "CompactRole": role("CompactRole", [*_reader("BucketName"), _writer("BucketName", "_ledgerdr/snapshots/")],
                            "CompactLogGroup"),
        "CompactFunction": function("compact", "compact", "CompactRole", "CompactLogGroup", env, memory=2048,
                                    reserved=1, storage=ref("CompactStorageMB")),
        "SchedulerRole": _scheduler_role(["BackupFunction", "CompactFunction"]),
        "BackupSchedule": schedule(if_("EveryMinute", "rate(1 minute)", sub("rate(${BackupIntervalMinutes} minutes)")),
                                   "BackupFunction", "backup"),
        "CompactSchedule": schedule(ref("CompactScheduleExpression"), "CompactFunction", "compact"),
        "BackupErrorsAlarm": _errors_alarm("BackupFunction", "a scheduled backup failed (see its JSON log line)"),
        "CompactErrorsAlarm": _errors_alarm("CompactFunction", "the nightly compaction failed"),
        "RpoAlarm": _rpo_alarm("primary"),
    }
    return _template(
        "ledgerdr primary region: repository bucket with Object Lock and replication, scheduled verified backups",
        {**_common_parameters(config), **_primary_parameters(config)},
        {**_common_conditions(), "HasEndpoint": not_empty("LedgerEndpointUrl"),
         "CrossAccount": not_empty("ReplicaAccountId"), "UseReplicaKms": not_empty("ReplicaKmsKeyArn"),
         "UseRtc": {"Fn::Equals": [ref("ReplicationTimeControl"), "true"]},
         "EveryMinute": {"Fn::Equals": [ref("BackupIntervalMinutes"), "1"]}},  # rate() wants "1 minute"
        resources,
        {"BucketName": ref("PrimaryBucket"), "BackupFunction": ref("BackupFunction"),
         "ExportRoleArn": get_att("ExportRole", "Arn"), "ReplicationRoleArn": get_att("ReplicationRole", "Arn")},
        rules={"ReplicaKeyWithKms": {
            "RuleCondition": {"Fn::Not": [{"Fn::Equals": [ref("KmsKeyArn"), ""]}]},
            "Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [ref("ReplicaKmsKeyArn"), ""]}]},
                            "AssertDescription": "with KmsKeyArn, ReplicaKmsKeyArn names the replica's key"}]}})


# ------------------------------------------------------------------------------------------- replica


def _replica_parameters(config: Config | None) -> dict[str, dict[str, Any]]:
    replica = config.replicas[0] if config and config.replicas else None
    primary_bucket = ""
    if config is not None and config.primary.url.startswith("s3://"):
        primary_bucket = config.primary.url[len("s3://"):].partition("/")[0]
    return {
        "PrimaryBucketName": {"Type": "String", "Default": primary_bucket,
                              "Description": "The primary's bucket (named in the configuration only)."},
        "PrimaryRegion": {"Type": "String", "Default": config.primary.region if config else "us-east-1"},
        "ReplicaName": {"Type": "String", "Default": replica.name if replica else "replica", **_NAME,
                        "Description": "This repository's name in the configuration (its watermarks' folder)."},
        "SourceAccountId": {"Type": "String", "Default": "", "AllowedPattern": "^([0-9]{12})?$",
                            "Description": "The primary's account when it is another one; empty: this account."},
        "SourceReplicationRoleName": {"Type": "String", "Default": "ledgerdr-replication", **_NAME},
        "VerifyScheduleExpression": {"Type": "String", "Default": "rate(15 minutes)"},
        "DrillScheduleExpression": {"Type": "String", "Default": "",
                                    "Description": "Run the restore drill on this schedule (e.g. "
                                                   "cron(0 3 1 * ? *)), like AWS Backup's restore testing; "
                                                   "empty: on demand only."},
        "ReplicationGraceMinutes": {"Type": "Number", "Default": "60", "MinValue": 1,
                                    "Description": "How long a recorded window's objects may still be in flight "
                                                   "(15 with RTC)."},
        "MaxAttempts": {"Type": "Number", "Default": "3", "MinValue": 1, "MaxValue": 1000,
                        "Description": "Deliveries of a message before its dead-letter queue."},
        "WorkerConcurrency": {"Type": "Number", "Default": "10", "MinValue": 2, "MaxValue": 1000},
        "TargetUrl": {"Type": "String", "Default": "", "NoEcho": True,
                      "Description": "Restore target (postgresql://...); set it when restoring."},
        "StandbyUrl": {"Type": "String", "Default": "", "NoEcho": True,
                       "Description": "Warm standby target; empty: no standby function."},
        "StateRetentionDays": {"Type": "Number", "Default": "30", "MinValue": 1},
        "SubnetIds": {"Type": "CommaDelimitedList", "Default": "",
                      "Description": "Subnets for the functions that reach a restore, standby or drill database "
                                     "in a VPC; empty: no VPC."},
        "SecurityGroupIds": {"Type": "CommaDelimitedList", "Default": "",
                             "Description": "Their security groups (with SubnetIds)."},
    }


def _replica_config() -> dict[str, Any]:
    return sub("\n".join([
        "[backup]", "retention_days = ${RetentionDays}",
        "[repositories.primary]", 'url = "s3://${PrimaryBucketName}/${RepositoryPrefix}/"',
        'region = "${PrimaryRegion}"',
        "[repositories.${ReplicaName}]", 'url = "s3://${BucketName}/${RepositoryPrefix}/"',
        'region = "${AWS::Region}"', 'lock_mode = "${LockMode}"', "require_object_lock = true", ""]))


def _replica_bucket_policy() -> dict[str, Any]:
    policy = _bucket_policy("ReplicaBucket", "BucketName")
    source_role = sub("arn:${AWS::Partition}:iam::${SourceAccountId}:role/${SourceReplicationRoleName}")
    # The role lives in the other account and may not exist yet: name the account as principal and the
    # role in a condition, so the policy is valid before the primary stack is deployed.
    principal = {"AWS": sub("arn:${AWS::Partition}:iam::${SourceAccountId}:root")}
    condition = {"ArnEquals": {"aws:PrincipalArn": source_role}}
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    statements.append(if_("CrossAccount", {**allow(
        ["s3:ReplicateObject", "s3:ReplicateTags", "s3:ObjectOwnerOverrideToBucketOwner"],
        [objects_arn("BucketName")], condition, sid="ReplicationFromPrimaryAccount"), "Principal": principal}))
    statements.append(if_("CrossAccount", {**allow(
        ["s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:ListBucket"],
        [bucket_arn("BucketName")], condition, sid="ReplicationChecksFromPrimaryAccount"), "Principal": principal}))
    return policy


def _notifications() -> dict[str, Any]:
    """New window records in the replica → the standby's queue (a message means only "look again")."""
    return {"QueueConfigurations": [{
        "Event": "s3:ObjectCreated:*", "Queue": get_att("NotifyQueue", "Arn"),
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": sub("${RepositoryPrefix}/_ledgerdr/windows/")}]}}}]}


def replica_template(config: Config | None = None) -> dict[str, Any]:
    state_url = sub("s3://${StateBucket}/restores/")
    base = {"LEDGERDR_CONFIG_TOML": _replica_config(), "LEDGERDR_REPOSITORY": ref("ReplicaName"),
            "LEDGERDR_METRICS_NAMESPACE": ref("MetricsNamespace")}
    work = {**base, "LEDGERDR_STATE_URL": state_url, "LEDGERDR_WORK_QUEUE_URL": ref("WorkQueue"),
            "LEDGERDR_MAX_ATTEMPTS": ref("MaxAttempts"), "LEDGERDR_TARGET_URL": ref("TargetUrl")}
    reader = _reader("BucketName")
    queue_info = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    work_queues = [get_att("WorkQueue", "Arn"), get_att("WorkQueueDLQ", "Arn")]
    consume = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    resources: dict[str, Any] = {
        "ReplicaBucket": {**locked_bucket("BucketName", {"NotificationConfiguration": _notifications()}),
                          "DependsOn": "NotifyQueuePolicy"},
        "ReplicaBucketPolicy": _replica_bucket_policy(),
        **queue_pair("NotifyQueue"), "NotifyQueuePolicy": _notify_queue_policy(),
        **queue_pair("WorkQueue"), "WorkQueuePolicy": _tls_queue_policy("WorkQueue"),
        "StateBucket": _state_bucket(), "StateBucketPolicy": _bucket_policy("StateBucket", None),
        "VerifyLogGroup": log_group("verify-replica"),
        "VerifyRole": role("VerifyRole", [
            *reader, _writer("BucketName", "_ledgerdr/watermarks/${ReplicaName}/"),
            allow(["s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning"], [bucket_arn("BucketName")])],
            "VerifyLogGroup"),
        "VerifyFunction": function("verify-replica", "verify_replica", "VerifyRole", "VerifyLogGroup",
                                   {**base, "LEDGERDR_REPLICATION_GRACE": sub("${ReplicationGraceMinutes}m")},
                                   reserved=1),
        "PlanLogGroup": log_group("plan-restore"),
        "PlanRole": role("PlanRole", [
            *reader, allow(["s3:PutObject"], [sub("arn:${AWS::Partition}:s3:::${StateBucket}/restores/plans/*")]),
            allow(["sqs:SendMessage", *queue_info], [get_att("WorkQueue", "Arn")]),
            allow(queue_info, [get_att("WorkQueueDLQ", "Arn")])], "PlanLogGroup"),
        "PlanFunction": function("plan-restore", "plan_restore", "PlanRole", "PlanLogGroup", work),
        "WorkerLogGroup": log_group("restore-worker"),
        "WorkerRole": role("WorkerRole", [
            *reader, allow(["s3:PutObject"], [sub("arn:${AWS::Partition}:s3:::${StateBucket}/restores/unit-results/*")]),
            allow(consume, [get_att("WorkQueue", "Arn")])], "WorkerLogGroup"),
        "WorkerFunction": function("restore-worker", "restore_worker", "WorkerRole", "WorkerLogGroup", work,
                                   memory=2048),
        "WorkerMapping": _mapping("WorkQueue", "WorkerFunction", ref("WorkerConcurrency")),
        "FinalizeLogGroup": log_group("finalize-restore"),
        "FinalizeRole": role("FinalizeRole", [
            *reader, allow(["s3:ListBucket"], [get_att("StateBucket", "Arn")]),
            allow(["s3:GetObject"], [sub("arn:${AWS::Partition}:s3:::${StateBucket}/restores/*")]),
            allow(queue_info, work_queues),
            allow(["sqs:ChangeMessageVisibility", "sqs:ReceiveMessage"], [get_att("WorkQueueDLQ", "Arn")])],
            "FinalizeLogGroup"),
        "FinalizeFunction": function("finalize-restore", "finalize_restore", "FinalizeRole", "FinalizeLogGroup",
                                     work, memory=2048),
        "StandbyLogGroup": {**log_group("standby"), "Condition": "HasStandby"},
        "StandbyRole": {**role("StandbyRole", [*reader, allow(consume, [get_att("NotifyQueue", "Arn")])],
                               "StandbyLogGroup"), "Condition": "HasStandby"},
        "StandbyFunction": {**function("standby", "standby", "StandbyRole", "StandbyLogGroup",
                                       {**base, "LEDGERDR_STANDBY_URL": ref("StandbyUrl")}, reserved=1),
                            "Condition": "HasStandby"},
        "StandbyMapping": {**_mapping("NotifyQueue", "StandbyFunction", 2), "Condition": "HasStandby"},
        "DrillLogGroup": log_group("drill"),
        "DrillRole": role("DrillRole", reader, "DrillLogGroup"),
        "DrillFunction": function("drill", "drill", "DrillRole", "DrillLogGroup", base, memory=2048, storage=4096),
        "SchedulerRole": _scheduler_role(["VerifyFunction", if_("HasDrillSchedule", "DrillFunction")]),
        "VerifySchedule": schedule(ref("VerifyScheduleExpression"), "VerifyFunction", "verify_replica"),
        "DrillSchedule": {**schedule(ref("DrillScheduleExpression"), "DrillFunction", "drill"),
                          "Condition": "HasDrillSchedule"},
        "DrillErrorsAlarm": _errors_alarm("DrillFunction", "a restore drill did not verify (see its JSON log line)"),
        "VerifyErrorsAlarm": _errors_alarm("VerifyFunction", "replica verification failed: a missing, altered or "
                                                             "late object (see its JSON log line)"),
        "NotifyDeadLettersAlarm": _dead_letter_alarm("NotifyQueueDLQ", "standby notifications dead-lettered: the "
                                                                       "standby stopped (gap, fork or bad object)"),
        "WorkDeadLettersAlarm": _dead_letter_alarm("WorkQueueDLQ", "restore units dead-lettered: the restore is "
                                                                   "incomplete until they are fixed and re-sent"),
        "RpoAlarm": _rpo_alarm("${ReplicaName}"),
    }
    for function_logical in ("PlanFunction", "WorkerFunction", "FinalizeFunction", "StandbyFunction", "DrillFunction"):
        _in_vpc(resources, function_logical)
    return _template(
        "ledgerdr replica region: locked replica bucket, replica verification, restore, standby and drills",
        {**_common_parameters(config), **_replica_parameters(config)},
        {**_common_conditions(), "CrossAccount": not_empty("SourceAccountId"), "HasStandby": not_empty("StandbyUrl"),
         "HasDrillSchedule": not_empty("DrillScheduleExpression"),
         "HasVpc": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("SubnetIds")]}, ""]}]}},
        resources,
        {"BucketName": ref("ReplicaBucket"), "StateUrl": state_url, "WorkQueueUrl": ref("WorkQueue"),
         "WorkDeadLetterQueueUrl": ref("WorkQueueDLQ"), "NotifyQueueUrl": ref("NotifyQueue"),
         "PlanRestoreFunction": ref("PlanFunction"), "FinalizeRestoreFunction": ref("FinalizeFunction"),
         "DrillFunction": ref("DrillFunction"), "VerifyFunction": ref("VerifyFunction")})


# ------------------------------------------------------------------------------------------- shared pieces


def _in_vpc(resources: dict[str, Any], function_logical: str) -> None:
    """With SubnetIds: the function runs in the VPC (to reach a private database), and its role gets the
    network-interface permissions Lambda uses for that. DescribeNetworkInterfaces has no resource-level
    permissions (its Resource must be "*"); the others are limited to this account and region."""
    function_props = resources[function_logical]["Properties"]
    function_props["VpcConfig"] = if_("HasVpc", {"SubnetIds": ref("SubnetIds"),
                                                 "SecurityGroupIds": ref("SecurityGroupIds")})
    role_logical = function_props["Role"]["Fn::GetAtt"][0]
    statements = resources[role_logical]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append(if_("HasVpc", allow(["ec2:DescribeNetworkInterfaces"], ["*"])))
    statements.append(if_("HasVpc", allow(
        ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
         "ec2:UnassignPrivateIpAddresses"], [sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*")])))


def _bucket_policy(bucket_logical: str, bucket_param: str | None) -> dict[str, Any]:
    arn = bucket_arn(bucket_param) if bucket_param else get_att(bucket_logical, "Arn")
    objects = sub(f"${{{bucket_logical}.Arn}}/*")
    return {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": ref(bucket_logical),
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [tls_only([arn, objects])]}}}


def _tls_queue_policy(queue: str) -> dict[str, Any]:
    return {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [ref(queue), ref(f"{queue}DLQ")],
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            tls_only([get_att(queue, "Arn"), get_att(f"{queue}DLQ", "Arn")], "sqs")]}}}


def _notify_queue_policy() -> dict[str, Any]:
    policy = _tls_queue_policy("NotifyQueue")
    policy["Properties"]["PolicyDocument"]["Statement"].append({
        "Sid": "S3NotificationsFromTheReplicaBucket", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": get_att("NotifyQueue", "Arn"),
        "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn("BucketName")},
                      "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}})
    return policy


def _state_bucket() -> dict[str, Any]:
    """Scratch space of restores (plans, unit results): encrypted, private, expiring; no Object Lock."""
    return {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": public_access_blocked(),
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": [{"Id": "expire-restore-state", "Status": "Enabled",
                                              "ExpirationInDays": ref("StateRetentionDays")}]}}}


def _mapping(queue: str, function_logical: str, concurrency: Any) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
        "EventSourceArn": get_att(queue, "Arn"), "FunctionName": ref(function_logical), "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 5, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": concurrency}}}


def _scheduler_role(functions: list[Any]) -> dict[str, Any]:
    """May invoke `functions` (logical ids, or Fn::If of one: a conditional schedule's function)."""
    arns = [if_(f["Fn::If"][0], get_att(f["Fn::If"][1], "Arn")) if isinstance(f, dict) else get_att(f, "Arn")
            for f in functions]
    return role("SchedulerRole", [allow(["lambda:InvokeFunction"], arns)],
                service="scheduler.amazonaws.com",
                trust_condition={"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}})


def _errors_alarm(function_logical: str, description: str) -> dict[str, Any]:
    return alarm(description, "AWS/Lambda", "Errors", [{"Name": "FunctionName", "Value": ref(function_logical)}], 1,
                 statistic="Sum")


def _dead_letter_alarm(queue: str, description: str) -> dict[str, Any]:
    return alarm(description, "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                 [{"Name": "QueueName", "Value": get_att(queue, "QueueName")}], 1)


def _rpo_alarm(repository: str) -> dict[str, Any]:
    """The RPO metric the handlers emit (embedded metric format); no metric for a whole period is a
    breach too: the backups or verifications stopped."""
    text = f"RPO of repository {repository} is above its target"
    return alarm(sub(text) if "$" in text else text, ref("MetricsNamespace"), "RPOSeconds",
                 [{"Name": "Repository", "Value": sub(repository) if "$" in repository else repository}],
                 ref("RpoTargetSeconds"), period=ref("AlarmPeriodSeconds"), missing="breaching")


def _template(description: str, parameters: dict, conditions: dict, resources: dict, outputs: dict,
              rules: dict | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Description": description,
                                "Parameters": parameters}
    if rules:
        template["Rules"] = rules
    template.update({"Conditions": conditions, "Resources": resources,
                     "Outputs": {name: {"Value": value} for name, value in outputs.items()}})
    return template


def build_template(role_name: str, params: dict[str, str] | None = None, config: Config | None = None) -> dict:
    """The template of `role_name` ("primary" or "replica"); `params` set parameters' defaults.
    Raises ConfigError for an unknown role or parameter, or a value the parameter does not allow."""
    if role_name not in ROLES:
        raise ConfigError(f"--role {role_name!r}: use one of {', '.join(ROLES)}")
    template = primary_template(config) if role_name == "primary" else replica_template(config)
    for name, value in (params or {}).items():
        spec = template["Parameters"].get(name)
        if spec is None:
            raise ConfigError(f"--param {name}: the {role_name} template has no such parameter "
                              f"(it has: {', '.join(sorted(template['Parameters']))})")
        allowed = spec.get("AllowedValues")
        if allowed and value not in allowed:
            raise ConfigError(f"--param {name}={value}: allowed values are {', '.join(allowed)}")
        spec["Default"] = value
    return template


def render(template: dict[str, Any], fmt: str = "json") -> str:
    """JSON (always available), or YAML when PyYAML is installed (cfn-lint brings it)."""
    if fmt == "yaml":
        try:
            import yaml
        except ImportError:
            raise ConfigError("--format yaml needs PyYAML (pip install pyyaml); JSON needs nothing") from None
        class NoAliases(yaml.SafeDumper):  # CloudFormation rejects YAML aliases; shared dicts are written out
            def ignore_aliases(self, data: Any) -> bool:
                return True

        return yaml.dump(template, Dumper=NoAliases, sort_keys=False, width=120)
    return json.dumps(template, indent=2) + "\n"


__all__ = ["LAMBDA_TIMEOUT", "NO_VALUE", "ROLES", "build_template", "primary_template", "render", "replica_template"]
