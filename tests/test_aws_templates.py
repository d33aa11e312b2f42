"""The CloudFormation templates of `ledgerdr aws template`: cfn-lint clean in every variant, the security
properties the issue asks for, and a deployment under moto (`support.stacks.deploy`, which says what moto
creates and what it leaves to the API calls made from the template's own properties).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from moto import mock_aws

from ledgerdr.aws.template import build_template, render
from ledgerdr.cli import cli
from support.stacks import PRIMARY_PARAMS, REPLICA_PARAMS, Stack, deploy

VARIANTS = {
    "primary": ("primary", PRIMARY_PARAMS),
    "primary-cross-account-rtc-kms": ("primary", {
        **PRIMARY_PARAMS, "ReplicaAccountId": "210987654321", "ReplicationTimeControl": "true",
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1111", "LedgerEndpointUrl": "https://ledger.internal",
        "ReplicaKmsKeyArn": "arn:aws:kms:eu-west-1:210987654321:key/2222", "AlarmTopicArn":
            "arn:aws:sns:us-east-1:123456789012:ops"}),
    "replica": ("replica", REPLICA_PARAMS),
    "replica-cross-account-standby": ("replica", {
        **REPLICA_PARAMS, "SourceAccountId": "123456789012", "StandbyUrl": "postgresql://standby.internal/ledger",
        "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b", "SecurityGroupIds": "sg-0123456789abcdef0",
        "DrillScheduleExpression": "cron(0 3 1 * ? *)",
        "TargetUrl": "postgresql://restore.internal/ledger", "KmsKeyArn": "arn:aws:kms:eu-west-1:210987654321:key/2"}),
}


# --- cfn-lint and the security properties -------------------------------------------------------------------


def test_every_variant_is_cfn_lint_clean(tmp_path):
    paths = []
    for variant, (role, params) in sorted(VARIANTS.items()):
        for fmt in ("json", "yaml"):
            args = ["aws", "template", "--role", role, "--format", fmt, *[f"--param={k}={v}" for k, v in params.items()]]
            printed = CliRunner().invoke(cli, args)
            assert printed.exit_code == 0, printed.output
            paths.append(tmp_path / f"{variant}.{fmt}")
            paths[-1].write_text(printed.output)
    # one run over every file (cfn-lint takes a second or two to start)
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), *map(str, paths)], capture_output=True,
                          text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def _statements(template: dict) -> list[tuple[str, dict]]:
    """(resource, statement) of every IAM statement in roles, bucket policies and queue policies, with the
    branches of Fn::If statements (both could be deployed)."""
    found = []
    for name, resource in template["Resources"].items():
        props = resource["Properties"]
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            docs.append(props["PolicyDocument"])
        for doc in docs:
            for statement in doc["Statement"]:
                branches = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
                found += [(name, s) for s in branches if isinstance(s, dict) and "Effect" in s]
    return found


def _listify(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_least_privilege(variant):
    role, params = VARIANTS[variant]
    template = build_template(role, params)
    allows = [(name, s) for name, s in _statements(template) if s["Effect"] == "Allow"]
    assert allows
    for name, statement in allows:
        for action in _listify(statement["Action"]):
            assert "*" not in action, f"{name}: wildcard action {action}"
        for resource in _listify(statement.get("Resource", [])):
            # the one action without resource-level permissions (AWS's service authorization reference)
            assert resource != "*" or statement["Action"] == ["ec2:DescribeNetworkInterfaces"], f"{name}: '*'"
    for name, statement in _statements(template):
        if statement["Effect"] == "Deny":  # the only Deny: TLS only, which grants nothing
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, name


def test_the_export_role_may_only_put_objects_under_its_prefix():
    template = build_template("primary", PRIMARY_PARAMS)
    export = template["Resources"]["ExportRole"]["Properties"]
    [policy] = export["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement == {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/${RepositoryPrefix}/exports/*"}]}
    trust = export["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "qldb.amazonaws.com"}
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}  # this account's ledger only


@pytest.mark.parametrize("role", ["primary", "replica"])
def test_repository_buckets_are_locked_private_encrypted_and_tls_only(role):
    template = build_template(role, PRIMARY_PARAMS if role == "primary" else REPLICA_PARAMS)
    resources = template["Resources"]
    bucket_name = "PrimaryBucket" if role == "primary" else "ReplicaBucket"
    bucket = resources[bucket_name]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": {"Ref": "LockMode"},
                                                                           "Days": {"Ref": "RetentionDays"}}
    assert template["Parameters"]["LockMode"]["Default"] == "COMPLIANCE"
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    for props in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::S3::Bucket"):
        assert all(props["PublicAccessBlockConfiguration"].values())
    policies = {r["Properties"]["Bucket"]["Ref"] for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"
                if any(s["Effect"] == "Deny" for s in r["Properties"]["PolicyDocument"]["Statement"]
                       if "Effect" in s)}
    assert policies == {name for name, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
    # ledgerdr's retention comes from the same parameter as the lock period: they cannot disagree
    config = json.dumps(next(r for r in resources.values() if r["Type"] == "AWS::Lambda::Function")
                        ["Properties"]["Environment"]["Variables"]["LEDGERDR_CONFIG_TOML"])
    assert "retention_days = ${RetentionDays}" in config


def test_replication_to_another_account_overrides_the_owner_and_the_replica_admits_the_role():
    primary = build_template("primary", VARIANTS["primary-cross-account-rtc-kms"][1])
    [rule] = primary["Resources"]["PrimaryBucket"]["Properties"]["ReplicationConfiguration"]["Rules"]
    destination = rule["Destination"]
    assert destination["AccessControlTranslation"] == {"Fn::If": ["CrossAccount", {"Owner": "Destination"},
                                                                  {"Ref": "AWS::NoValue"}]}
    assert destination["ReplicationTime"]["Fn::If"][1] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    replica = build_template("replica", VARIANTS["replica-cross-account-standby"][1])
    statements = [s for name, s in _statements(replica) if name == "ReplicaBucketPolicy" and s["Effect"] == "Allow"]
    assert {"s3:ObjectOwnerOverrideToBucketOwner", "s3:ReplicateObject"} <= {a for s in statements
                                                                             for a in s["Action"]}


def test_param_errors_name_the_parameter():
    result = CliRunner().invoke(cli, ["aws", "template", "--role", "primary", "--param", "LockMode=NONE"])
    assert result.exit_code == 2 and "LockMode=NONE" in result.output
    result = CliRunner().invoke(cli, ["aws", "template", "--role", "replica", "--param", "NoSuch=1"])
    assert result.exit_code == 2 and "NoSuch" in result.output


def test_a_one_minute_interval_is_scheduled_as_aws_spells_it_and_seconds_are_refused(tmp_path):
    template = build_template("primary", {**PRIMARY_PARAMS, "BackupIntervalMinutes": "1"})
    expression = template["Resources"]["BackupSchedule"]["Properties"]["ScheduleExpression"]
    with mock_aws():
        assert Stack("us-east-1", "s", template, {}).resolve(expression) == "rate(1 minute)"
        assert Stack("us-east-1", "s", build_template("primary", PRIMARY_PARAMS), {}).resolve(
            expression) == "rate(60 minutes)"
    config = tmp_path / "ledgerdr.toml"
    config.write_text('[backup]\ninterval = "90s"\n[repositories.primary]\nurl = "s3://b/p/"\n')
    result = CliRunner().invoke(cli, ["aws", "template", "--role", "primary", "-c", str(config)])
    assert result.exit_code == 2 and "whole number of minutes" in result.output


def test_defaults_follow_the_config(tmp_path):
    config = tmp_path / "ledgerdr.toml"
    config.write_text('[source]\nkind = "embedded"\nledger = "orders"\n[backup]\ninterval = "15m"\n'
                      'retention_days = 400\nformat = "ion_text"\n[repositories.primary]\nurl = "s3://b1/orders-dr/"\n'
                      'region = "us-east-2"\n[repositories.dr]\nurl = "s3://b2/orders-dr/"\n')
    result = CliRunner().invoke(cli, ["aws", "template", "--role", "primary", "-c", str(config)])
    params = json.loads(result.output)["Parameters"]
    assert (params["RetentionDays"]["Default"], params["BackupIntervalMinutes"]["Default"],
            params["ExportFormat"]["Default"], params["LedgerName"]["Default"],
            params["RepositoryPrefix"]["Default"]) == ("400", "15", "ion_text", "orders", "orders-dr")
    replica = json.loads(CliRunner().invoke(cli, ["aws", "template", "--role", "replica", "-c", str(config)]).output)
    assert replica["Parameters"]["ReplicaName"]["Default"] == "dr"
    assert replica["Parameters"]["PrimaryRegion"]["Default"] == "us-east-2"


def test_both_stacks_deploy_under_moto_as_declared():
    with mock_aws():
        replica = deploy("eu-west-1", "replica", {**REPLICA_PARAMS, "StandbyUrl": "embedded:/tmp/standby.db"})
        primary = deploy("us-east-1", "primary", PRIMARY_PARAMS)
        s3 = replica.client("s3")
        lock = s3.get_object_lock_configuration(Bucket="dr-replica")["ObjectLockConfiguration"]
        assert (lock["Rule"]["DefaultRetention"]["Mode"], lock["Rule"]["DefaultRetention"]["Days"]) == ("COMPLIANCE", 30)
        notification = s3.get_bucket_notification_configuration(Bucket="dr-replica")["QueueConfigurations"][0]
        assert notification["QueueArn"].endswith(replica.physical["NotifyQueue"].rsplit("/", 1)[-1])
        sqs = replica.client("sqs")
        redrive = json.loads(sqs.get_queue_attributes(QueueUrl=replica.queue_url("WorkQueue"),
                                                      AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == 3
        mappings = replica.client("lambda").list_event_source_mappings()["EventSourceMappings"]
        assert {tuple(m.get("FunctionResponseTypes", [])) for m in mappings} == {("ReportBatchItemFailures",)}
        rules = primary.client("s3").get_bucket_replication(Bucket="dr-primary")["ReplicationConfiguration"]["Rules"]
        assert rules[0]["Destination"]["Bucket"] == "arn:aws:s3:::dr-replica"
        toml = primary.environment("BackupFunction")["LEDGERDR_CONFIG_TOML"]
        assert 'url = "s3://dr-primary/qldb-dr/"' in toml and "retention_days = 30" in toml
        assert render(primary.template).startswith("{")


def test_only_the_functions_that_reach_a_database_join_the_vpc():
    template = build_template("replica", VARIANTS["replica-cross-account-standby"][1])
    in_vpc = {name for name, r in template["Resources"].items()
              if r["Type"] == "AWS::Lambda::Function" and "VpcConfig" in r["Properties"]}
    assert in_vpc == {"PlanFunction", "WorkerFunction", "FinalizeFunction", "StandbyFunction", "DrillFunction"}
    assert template["Resources"]["WorkerFunction"]["Properties"]["VpcConfig"]["Fn::If"][0] == "HasVpc"
