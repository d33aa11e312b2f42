"""Small builders for CloudFormation data: intrinsic functions, IAM statements, the pieces every
function of the templates repeats (its log group, role and function). Plain dicts, so a test can read
every property the templates declare."""

from __future__ import annotations

import json
from typing import Any

NO_VALUE = {"Ref": "AWS::NoValue"}
LAMBDA_TIMEOUT = 900  # the maximum: an export of a large window or a big unit must not be cut short


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def if_(condition: str, then: Any, otherwise: Any = NO_VALUE) -> dict[str, Any]:
    return {"Fn::If": [condition, then, otherwise]}


def not_empty(parameter: str) -> dict[str, Any]:
    return {"Fn::Not": [{"Fn::Equals": [ref(parameter), ""]}]}


def allow(actions: list[str], resources: list[Any], condition: dict | None = None, sid: str | None = None) -> dict:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    if sid:
        statement["Sid"] = sid
    return statement


def bucket_arn(bucket_param: str) -> dict[str, Any]:
    return sub(f"arn:${{AWS::Partition}}:s3:::${{{bucket_param}}}")


def objects_arn(bucket_param: str, folder: str = "") -> dict[str, Any]:
    """ARN of the objects under the repository prefix (and `folder` under it) of a bucket parameter."""
    return sub(f"arn:${{AWS::Partition}}:s3:::${{{bucket_param}}}/${{RepositoryPrefix}}/{folder}*")


def tls_only(resource_arns: list[Any], service: str = "s3") -> dict[str, Any]:
    """Deny every request that does not use TLS. A Deny grants nothing, so its `<service>:*` is the one
    wildcard action the templates contain (the security test checks that no Allow has one)."""
    return {"Sid": "DenyWithoutTLS", "Effect": "Deny", "Principal": "*", "Action": f"{service}:*",
            "Resource": resource_arns, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def assume(service: str, extra: dict | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if extra:
        statement["Condition"] = extra
    return {"Version": "2012-10-17", "Statement": [statement]}


def role(logical: str, statements: list[dict], log_group: str | None = None, service: str = "lambda.amazonaws.com",
         trust_condition: dict | None = None) -> dict[str, Any]:
    """An IAM role with one inline policy; a function's role may also write to its own log group only."""
    statements = list(statements)
    if log_group:
        statements.insert(0, allow(["logs:CreateLogStream", "logs:PutLogEvents"], [get_att(log_group, "Arn")],
                                   sid="OwnLogGroupOnly"))
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": assume(service, trust_condition),
        "Policies": [{"PolicyName": logical, "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]}}


def function(name: str, handler: str, role_logical: str, log_group: str, env: dict[str, Any], *,
             memory: int = 1024, reserved: int | None = None, storage: Any = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "FunctionName": sub(f"${{AWS::StackName}}-{name}"),
        "Description": f"ledgerdr {handler}",
        "Runtime": ref("Runtime"), "Architectures": [ref("Architecture")],
        "Handler": f"ledgerdr.aws.handlers.{handler}",
        "Code": {"S3Bucket": ref("CodeBucket"), "S3Key": ref("CodeKey")},
        "Role": get_att(role_logical, "Arn"), "Timeout": LAMBDA_TIMEOUT, "MemorySize": memory,
        "LoggingConfig": {"LogGroup": ref(log_group), "LogFormat": "Text"},
        "Environment": {"Variables": env},
    }
    if reserved is not None:
        props["ReservedConcurrentExecutions"] = reserved
    if storage is not None:
        props["EphemeralStorage"] = {"Size": storage}
    return {"Type": "AWS::Lambda::Function", "Properties": props}


def log_group(name: str) -> dict[str, Any]:
    return {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {"LogGroupName": sub(f"/aws/lambda/${{AWS::StackName}}-{name}"),
                           "RetentionInDays": ref("LogRetentionDays")}}


def alarm(description: str | dict[str, Any], namespace: Any, metric: str, dimensions: list[dict], threshold: Any, *,
          statistic: str = "Maximum", period: Any = 300, missing: str = "notBreaching") -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "Namespace": namespace, "MetricName": metric, "Dimensions": dimensions,
        "Statistic": statistic, "Period": period, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold" if threshold == 1 else "GreaterThanThreshold",
        "TreatMissingData": missing,
        "AlarmActions": if_("HasAlarmTopic", [ref("AlarmTopicArn")], []),
        "OKActions": if_("HasAlarmTopic", [ref("AlarmTopicArn")], [])}}


def schedule(expression: Any, function_logical: str, handler: str) -> dict[str, Any]:
    """An EventBridge Scheduler schedule invoking a function. Its input carries the Scheduler's context
    attributes for the logs; no handler takes its window from them."""
    payload = json.dumps({"ledgerdr": handler, "scheduled_time": "<aws.scheduler.scheduled-time>",
                          "schedule_arn": "<aws.scheduler.schedule-arn>",
                          "execution_id": "<aws.scheduler.execution-id>", "attempt": "<aws.scheduler.attempt-number>"})
    return {"Type": "AWS::Scheduler::Schedule", "Properties": {
        "Description": f"ledgerdr {handler}", "ScheduleExpression": expression, "State": "ENABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": get_att(function_logical, "Arn"), "RoleArn": get_att("SchedulerRole", "Arn"),
                   "Input": payload,
                   "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}}}}


def locked_bucket(bucket_param: str, extra: dict | None = None) -> dict[str, Any]:
    """A repository bucket: versioning, Object Lock with a default retention equal to ledgerdr's own
    (`RetentionDays` is both: never shorter, and never longer, which `ledgerdr check` refuses), default
    encryption (SSE-S3, or SSE-KMS with `KmsKeyArn`), public access blocked, ACLs disabled."""
    props: dict[str, Any] = {
        "BucketName": ref(bucket_param),
        "ObjectLockEnabled": True,
        "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {
            "Mode": ref("LockMode"), "Days": ref("RetentionDays")}}},
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": encryption(),
        "PublicAccessBlockConfiguration": public_access_blocked(),
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        **(extra or {}),
    }
    return {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": props}


def encryption() -> dict[str, Any]:
    kms = {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": ref("KmsKeyArn")},
           "BucketKeyEnabled": True}
    s3 = {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    return {"ServerSideEncryptionConfiguration": [if_("UseKms", kms, s3)]}


def public_access_blocked() -> dict[str, bool]:
    return {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}


def queue_pair(name: str) -> dict[str, Any]:
    """An SQS queue and its dead-letter queue: SSE, 14 days' retention (a slow restore or an unread dead
    letter must not expire), redrive after `MaxAttempts` receives, visibility 6× the function timeout
    (what AWS asks of a queue that triggers a function)."""
    keep = 1_209_600
    return {
        f"{name}DLQ": {"Type": "AWS::SQS::Queue", "Properties": {
            "SqsManagedSseEnabled": True, "MessageRetentionPeriod": keep}},
        name: {"Type": "AWS::SQS::Queue", "Properties": {
            "SqsManagedSseEnabled": True, "MessageRetentionPeriod": keep, "VisibilityTimeout": 6 * LAMBDA_TIMEOUT,
            "RedrivePolicy": {"deadLetterTargetArn": get_att(f"{name}DLQ", "Arn"),
                              "maxReceiveCount": ref("MaxAttempts")}}},
    }
