"""The templates of `ledgerdr aws template` deployed under moto (`deploy`).

moto's CloudFormation creates the queues (with their redrive policies), roles, log groups, functions and
event source mappings; it creates buckets without their Object Lock, versioning, public access block,
replication and notifications, and has no bucket policies, schedules or alarms. `deploy` therefore
takes those resources out of the stack and creates them with the S3, Scheduler and CloudWatch APIs from
the template's own properties, resolved as CloudFormation would (parameters, conditions, Ref, GetAtt,
Sub, If): nothing of what they declare is re-typed by the tests.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import boto3

from ledgerdr.aws.template import build_template

ACCOUNT = "123456789012"
PRIMARY_PARAMS = {"BucketName": "dr-primary", "CodeBucket": "code-us", "ReplicaBucketName": "dr-replica"}
REPLICA_PARAMS = {"BucketName": "dr-replica", "CodeBucket": "code-eu", "PrimaryBucketName": "dr-primary"}


_BY_API = {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::Scheduler::Schedule", "AWS::CloudWatch::Alarm"}


class Stack:
    """A template deployed under moto: `outputs`, `physical` ids, the `parameters` it was given."""

    def __init__(self, region: str, name: str, template: dict, parameters: dict[str, str],
                 credentials: dict[str, str] | None = None) -> None:
        self.region, self.name, self.template = region, name, template
        self.credentials = credentials or {}  # of the stack's account (default: moto's default account)
        self.account = boto3.client("sts", region_name=region, **self.credentials).get_caller_identity()["Account"]
        self.parameters = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()} | parameters
        self.physical: dict[str, str] = {}
        self.bucket_policies: dict[str, dict] = {}

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region, **self.credentials)

    def environment(self, function_logical: str) -> dict[str, str]:
        """The function's environment variables as deployed (CloudFormation resolved them)."""
        config = self.client("lambda").get_function_configuration(FunctionName=self.physical[function_logical])
        return config["Environment"]["Variables"]

    def queue_url(self, logical: str) -> str:
        return self.physical[logical]

    # -- resolution of intrinsic functions, as CloudFormation does it --

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._name(m[1])), arg)
            if key == "Fn::GetAtt":
                return self._att(*arg)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Join":
                return arg[0].join(self.resolve(arg[1]))
            if key == "Fn::Equals":  # compares as strings (a Number parameter's Ref is its text there)
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Condition":
                return self.condition(arg)
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    def _name(self, name: str) -> Any:
        return self._att(*name.split(".", 1)) if "." in name else self._ref(name)

    def _ref(self, name: str) -> Any:
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::Partition": "aws",
                  "AWS::StackName": self.name, "AWS::NoValue": _NO_VALUE}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            kind, value = self.template["Parameters"][name]["Type"], self.parameters[name]
            return int(value) if kind == "Number" else value.split(",") if kind == "CommaDelimitedList" else value
        return self.physical[name]

    def _att(self, logical: str, attribute: str) -> str:
        kind = self.template["Resources"][logical]["Type"]
        physical = self.physical[logical]
        if kind == "AWS::SQS::Queue":
            name = physical.rsplit("/", 1)[-1]
            return name if attribute == "QueueName" else f"arn:aws:sqs:{self.region}:{self.account}:{name}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::Lambda::Function":
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{physical}"
        if kind == "AWS::IAM::Role":
            return self.client("iam").get_role(RoleName=physical)["Role"]["Arn"]
        if kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{self.region}:{self.account}:log-group:{physical}:*"
        raise AssertionError(f"no GetAtt {logical}.{attribute} in this resolver")


_NO_VALUE = object()


def _locked(resource: dict) -> bool:
    return resource["Type"] == "AWS::S3::Bucket" and resource["Properties"].get("ObjectLockEnabled") is True


def account_credentials(account: str) -> dict[str, str]:
    """Credentials of another account under moto (it tells accounts apart by access key)."""
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/ledgerdr-deployer", RoleSessionName="test")["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}


def deploy(region: str, role: str, parameters: dict[str, str], name: str | None = None,
           credentials: dict[str, str] | None = None) -> Stack:
    """Deploy a template under moto (inside mock_aws), in the account of `credentials` (default: moto's
    default account): moto's CloudFormation for what it supports, the rest from the template's properties
    (see the module docstring)."""
    template = build_template(role, parameters)
    stack = Stack(region, name or f"ledgerdr-{role}", template, parameters, credentials)
    s3 = stack.client("s3")
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    s3.create_bucket(Bucket=stack.parameters["CodeBucket"], **location)
    s3.put_object(Bucket=stack.parameters["CodeBucket"], Key=stack.parameters["CodeKey"], Body=buffer.getvalue())
    later = {k: r for k, r in template["Resources"].items() if r["Type"] in _BY_API or _locked(r)}
    body = json.loads(json.dumps(template))
    for logical in later:
        del body["Resources"][logical]
    for resource in body["Resources"].values():
        resource.pop("DependsOn", None)
    body["Outputs"] = {k: v for k, v in body["Outputs"].items() if not any(x in json.dumps(v) for x in later)}
    cfn = stack.client("cloudformation")
    cfn.create_stack(StackName=stack.name, TemplateBody=json.dumps(body), Capabilities=["CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    for summary in cfn.list_stack_resources(StackName=stack.name)["StackResourceSummaries"]:
        stack.physical[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
    for logical, resource in later.items():
        if stack.resolve(resource.get("Condition") and {"Condition": resource["Condition"]}) is False:
            continue
        _create(stack, logical, resource["Type"], stack.resolve(resource["Properties"]), location)
    return stack


def _create(stack: Stack, logical: str, kind: str, props: dict, location: dict) -> None:
    if kind == "AWS::S3::Bucket":
        s3, bucket = stack.client("s3"), props["BucketName"]
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=props["ObjectLockEnabled"], **location)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"])
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=props["ObjectLockConfiguration"])
        rules = [{"ApplyServerSideEncryptionByDefault": {k.replace("ServerSide", "Apply"): v for k, v in
                                                         r["ServerSideEncryptionByDefault"].items()}}
                 for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=props[
            "PublicAccessBlockConfiguration"])
        if "ReplicationConfiguration" in props:  # the API spells the rule's Id "ID"
            replication = props["ReplicationConfiguration"]
            replication["Rules"] = [{("ID" if k == "Id" else k): v for k, v in r.items()} for r in replication["Rules"]]
            s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration=replication)
        for queue in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
            rules = queue["Filter"]["S3Key"]["Rules"]
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue["Queue"], "Events": [queue["Event"]],
                                         "Filter": {"Key": {"FilterRules": rules}}}]})
        stack.physical[logical] = bucket
    elif kind == "AWS::S3::BucketPolicy":
        # Kept, not applied: moto 5 evaluates a Deny statement whose condition does not match as a denial
        # (moto/iam/access_control.py, IAMPolicyStatement.is_action_permitted), so under moto the TLS-only
        # policy would refuse every request, TLS or not. Its content is checked by the tests above.
        stack.bucket_policies[props["Bucket"]] = props["PolicyDocument"]
    elif kind == "AWS::SQS::QueuePolicy":
        for url in props["Queues"]:
            stack.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={
                "Policy": json.dumps(props["PolicyDocument"])})
    elif kind == "AWS::Scheduler::Schedule":
        name = f"{stack.name}-{logical}"
        stack.client("scheduler").create_schedule(Name=name, **props)
        stack.physical[logical] = name
    elif kind == "AWS::CloudWatch::Alarm":
        stack.client("cloudwatch").put_metric_alarm(AlarmName=f"{stack.name}-{logical}", **props)
        stack.physical[logical] = f"{stack.name}-{logical}"
