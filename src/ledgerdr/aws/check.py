"""`ledgerdr aws check`: a read-only preflight of a deployed ledgerdr stack.

For each resource the stack declares: repository buckets (reachable, versioning, Object Lock, default
retention mode and period against the stack's `RetentionDays`, encryption, replication; the same checks
as `ledgerdr check`, from stores/s3.py), queues (a redrive policy to an existing dead-letter queue),
schedules (enabled), alarms (exist; their state). Only Describe/Get/List calls are made.

Exit codes (errors.py's table): 0 all good; 2 a resource is missing or misconfigured; 8 an RPO alarm is
firing; 7 a dead-letter alarm is firing (a standby stopped, or restore units were dead-lettered); 1 a
function's errors alarm is firing (its JSON log line names the error and its exit code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConfigError, ExitCode
from ..stores.s3 import Finding, S3Store, check_retention, preflight


@dataclass(frozen=True)
class StackResource:
    logical: str
    kind: str
    physical: str


Clients = Callable[[str], Any]  # service name → boto3 client in the stack's region


def stack_resources(cloudformation: Any, stack: str) -> tuple[list[StackResource], dict[str, str]]:
    """The stack's resources and parameters. Raises ConfigError when the stack does not exist."""
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
        resources = [StackResource(r["LogicalResourceId"], r["ResourceType"], r.get("PhysicalResourceId", ""))
                     for page in pages for r in page["StackResourceSummaries"]]
    except ClientError as exc:
        raise ConfigError(f"stack {stack}: {exc.response.get('Error', {}).get('Message', exc)}") from None
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    return resources, params


def check_stack(resources: list[StackResource], params: dict[str, str], clients: Clients) -> list[tuple[str, Finding]]:
    """(logical id, finding) for every checked resource; never raises for what it finds."""
    findings: list[tuple[str, Finding]] = []
    for resource in resources:
        checker = _CHECKS.get(resource.kind)
        if checker is not None:
            findings += [(resource.logical, f) for f in checker(resource, params, clients)]
    return findings


def exit_code(findings: list[tuple[str, Finding]]) -> ExitCode:
    levels = {f.check: f.level for _, f in findings}
    if any(f.level == "error" and not f.check.startswith("alarm_state") for _, f in findings):
        return ExitCode.USAGE
    if levels.get("alarm_state:rpo") == "error":
        return ExitCode.RPO_EXCEEDED
    if levels.get("alarm_state:dead_letters") == "error":
        return ExitCode.RESTORE
    if levels.get("alarm_state:errors") == "error":
        return ExitCode.UNEXPECTED  # a function keeps failing: its JSON log line names the error and its exit code
    return ExitCode.OK


def _bucket(resource: StackResource, params: dict[str, str], clients: Clients) -> list[Finding]:
    s3 = clients("s3")
    try:
        locked = s3.get_object_lock_configuration(Bucket=resource.physical)
    except ClientError:
        locked = None
    if locked is None:  # the scratch bucket of restores: private and encrypted is all it needs
        return [Finding("ok", "scratch_bucket", f"bucket {resource.physical}: no Object Lock (restore state only)")]
    store = S3Store(resource.physical, client=s3, lock_mode=params.get("LockMode", "COMPLIANCE"))
    findings = preflight(store)
    days = int(params.get("RetentionDays") or 0)
    findings.append(check_retention(store, days))
    rule = (locked.get("ObjectLockConfiguration", {}).get("Rule") or {}).get("DefaultRetention") or {}
    lock_days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
    if lock_days < days:
        findings.append(Finding("error", "lock_period", f"bucket {resource.physical} locks objects {lock_days} days, "
                                f"shorter than ledgerdr's retention of {days} days"))
    if params.get("LockMode") and rule.get("Mode") != params["LockMode"]:
        findings.append(Finding("error", "lock_mode", f"bucket {resource.physical} default retention mode "
                                f"{rule.get('Mode')}, the stack asks {params['LockMode']}"))
    if resource.logical == "PrimaryBucket" and not any(f.check == "replication" and "rule" in f.message
                                                       for f in findings):
        findings.append(Finding("error", "replication", f"bucket {resource.physical} has no replication rule"))
    return findings


def _queue(resource: StackResource, params: dict[str, str], clients: Clients) -> list[Finding]:
    if resource.logical.endswith("DLQ"):
        return []
    sqs = clients("sqs")
    try:
        attrs = sqs.get_queue_attributes(QueueUrl=resource.physical, AttributeNames=["RedrivePolicy"])["Attributes"]
    except ClientError as exc:
        return [Finding("error", "queue", f"queue {resource.physical}: {exc}")]
    raw = attrs.get("RedrivePolicy")
    if not raw:
        return [Finding("error", "redrive", f"queue {resource.physical} has no dead-letter queue")]
    policy = json.loads(raw)
    dlq = policy["deadLetterTargetArn"].rsplit(":", 2)
    try:
        sqs.get_queue_url(QueueName=dlq[-1], QueueOwnerAWSAccountId=dlq[-2])
    except ClientError:
        return [Finding("error", "redrive", f"queue {resource.physical}: its dead-letter queue {dlq[-1]} is missing")]
    return [Finding("ok", "redrive", f"queue {resource.physical}: dead-letter queue {dlq[-1]} after "
                    f"{policy['maxReceiveCount']} receives")]


def _schedule(resource: StackResource, params: dict[str, str], clients: Clients) -> list[Finding]:
    name = resource.physical.rsplit("/", 1)[-1]
    try:
        state = clients("scheduler").get_schedule(Name=name)["State"]
    except ClientError as exc:
        return [Finding("error", "schedule", f"schedule {name}: {exc}")]
    level = "ok" if state == "ENABLED" else "error"
    return [Finding(level, "schedule", f"schedule {name} is {state.lower()}")]


def _alarm(resource: StackResource, params: dict[str, str], clients: Clients) -> list[Finding]:
    alarms = clients("cloudwatch").describe_alarms(AlarmNames=[resource.physical])["MetricAlarms"]
    if not alarms:
        return [Finding("error", "alarm", f"alarm {resource.physical} does not exist")]
    state = alarms[0]["StateValue"]
    kind = "rpo" if "Rpo" in resource.logical else "dead_letters" if "DeadLetters" in resource.logical else "errors"
    level = "error" if state == "ALARM" else "ok"
    return [Finding(level, f"alarm_state:{kind}", f"alarm {resource.physical} ({resource.logical}) is {state}")]


_CHECKS: dict[str, Callable[[StackResource, dict[str, str], Clients], list[Finding]]] = {
    "AWS::S3::Bucket": _bucket, "AWS::SQS::Queue": _queue, "AWS::Scheduler::Schedule": _schedule,
    "AWS::CloudWatch::Alarm": _alarm,
}
