"""`ledgerdr aws check` against stacks deployed under moto (test_aws_templates.deploy): all good exits 0,
a disabled schedule or a bucket locked otherwise than the stack says exits 2, a firing RPO alarm 8, a
firing dead-letter alarm 7; nothing is changed by the check."""

from __future__ import annotations

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from ledgerdr.aws.check import StackResource, check_stack, exit_code
from ledgerdr.cli import cli
from support.stacks import PRIMARY_PARAMS, REPLICA_PARAMS, deploy


@pytest.fixture
def stacks():
    with mock_aws():
        yield (deploy("eu-west-1", "replica", {**REPLICA_PARAMS, "StandbyUrl": "embedded:/tmp/standby.db"}),
               deploy("us-east-1", "primary", PRIMARY_PARAMS))


def _check(stack) -> tuple[int, list]:
    """Every resource of the deployment, whether moto's CloudFormation or the API created it."""
    resources = [StackResource(logical, stack.template["Resources"][logical]["Type"], physical)
                 for logical, physical in stack.physical.items()]
    findings = check_stack(resources, stack.parameters, stack.client)
    return exit_code(findings), findings


def test_a_deployment_as_declared_passes(stacks):
    for stack in stacks:
        code, findings = _check(stack)
        assert code == 0, [f for _, f in findings if f.level == "error"]
    replica, primary = stacks
    checks = {(logical, f.check): f for logical, f in _check(primary)[1]}
    assert checks[("PrimaryBucket", "default_retention")].message == "default retention COMPLIANCE 30 days"
    assert "dr-replica" in checks[("PrimaryBucket", "replication")].message
    assert checks[("BackupSchedule", "schedule")].level == "ok"
    checks = {(logical, f.check): f for logical, f in _check(replica)[1]}
    assert "after 3 receives" in checks[("WorkQueue", "redrive")].message
    assert checks[("StateBucket", "scratch_bucket")].level == "ok"


def test_misconfiguration_and_firing_alarms_have_their_exit_codes(stacks):
    replica, primary = stacks
    scheduler = primary.client("scheduler")
    schedule = scheduler.get_schedule(Name=primary.physical["BackupSchedule"])
    scheduler.update_schedule(Name=schedule["Name"], ScheduleExpression=schedule["ScheduleExpression"],
                              FlexibleTimeWindow=schedule["FlexibleTimeWindow"], Target=schedule["Target"],
                              State="DISABLED")
    code, findings = _check(primary)
    assert code == 2 and any(f.check == "schedule" and "disabled" in f.message for _, f in findings)

    cloudwatch = replica.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=replica.physical["WorkDeadLettersAlarm"], StateValue="ALARM",
                               StateReason="test")
    assert _check(replica)[0] == 7
    cloudwatch.set_alarm_state(AlarmName=replica.physical["RpoAlarm"], StateValue="ALARM", StateReason="test")
    assert _check(replica)[0] == 8

    replica.client("s3").put_object_lock_configuration(Bucket="dr-replica", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 7}}})
    code, findings = _check(replica)
    assert code == 2
    errors = {f.check: f.message for _, f in findings if f.level == "error"}
    assert "GOVERNANCE" in errors["lock_mode"] and "7 days" in errors["lock_period"]


def test_the_command_reads_the_stack_from_cloudformation(stacks):
    result = CliRunner().invoke(cli, ["aws", "check", "--stack", "ledgerdr-replica", "--region", "eu-west-1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert '"redrive"' in result.output
    result = CliRunner().invoke(cli, ["aws", "check", "--stack", "no-such-stack", "--region", "eu-west-1"])
    assert result.exit_code == 2 and "no-such-stack" in result.output
    assert boto3.client("sqs", region_name="eu-west-1").list_queues()["QueueUrls"]  # nothing was removed
