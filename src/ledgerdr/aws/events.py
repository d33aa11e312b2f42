"""The events AWS delivers to the handlers, read defensively (a handler never trusts their content).

- EventBridge Scheduler: whatever `Input` the schedule names; the templates send
  `{"ledgerdr": "<handler>", "scheduled_time": "<aws.scheduler.scheduled-time>", ...}`, substituted by the
  Scheduler. No handler takes its window from it: windows come from the repository's records, so a late,
  retried or skipped invocation never leaves a gap or an overlap (reference defect 1).
- SQS → Lambda: `{"Records": [{"messageId", "receiptHandle", "body", "attributes": {...}, "eventSource":
  "aws:sqs", "eventSourceARN", ...}]}`; a handler answers `{"batchItemFailures": [{"itemIdentifier":
  messageId}]}` for the records to retry (the function needs `ReportBatchItemFailures` on its mapping).
- S3 event notifications: `{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3":
  {"bucket": {"name"}, "object": {"key" (URL-encoded), "size", "sequencer"}}}]}`, delivered to SQS as the
  message body (or an `s3:TestEvent` when the notification is first configured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson


@dataclass(frozen=True)
class SqsRecord:
    message_id: str
    body: str
    receive_count: int


def sqs_records(event: Any) -> list[SqsRecord]:
    """The SQS records of a Lambda event ([] when it holds none)."""
    records = event.get("Records") if isinstance(event, dict) else None
    out = []
    for record in records or []:
        if isinstance(record, dict) and record.get("eventSource") == "aws:sqs":
            attributes = record.get("attributes") or {}
            count = str(attributes.get("ApproximateReceiveCount") or "1")
            out.append(SqsRecord(str(record.get("messageId", "")), str(record.get("body", "")),
                                 int(count) if count.isdigit() else 1))
    return out


def s3_objects(event: Any) -> list[tuple[str, str]]:
    """(bucket, key) of every S3 object-created record in an event: S3 records directly (S3 → Lambda), or
    inside SQS bodies (S3 → SQS → Lambda). Keys are URL-decoded as S3 encodes them. Test events and
    unreadable bodies give nothing."""
    found = []
    for record in _s3_records(event):
        s3 = record.get("s3") or {}
        bucket, key = (s3.get("bucket") or {}).get("name"), (s3.get("object") or {}).get("key")
        if isinstance(bucket, str) and isinstance(key, str) and str(record.get("eventName", "")).startswith(
                "ObjectCreated"):
            found.append((bucket, unquote_plus(key)))
    return found


def _s3_records(event: Any) -> list[dict[str, Any]]:
    if not isinstance(event, dict):
        return []
    records = [r for r in event.get("Records") or [] if isinstance(r, dict)]
    direct = [r for r in records if r.get("eventSource") == "aws:s3"]
    for record in records:
        if record.get("eventSource") == "aws:sqs":
            try:
                body = orjson.loads(record.get("body") or "")
            except orjson.JSONDecodeError:
                continue
            if isinstance(body, dict) and body.get("Type") == "Notification":  # SNS → SQS envelope
                try:
                    body = orjson.loads(body.get("Message") or "")
                except orjson.JSONDecodeError:
                    continue
            direct.extend(_s3_records(body))
    return direct


def parameters(event: Any, allowed: set[str]) -> dict[str, Any]:
    """The on-demand parameters of an event (`aws lambda invoke --payload '{...}'`): only `allowed` keys;
    the Scheduler's own fields (`ledgerdr`, `scheduled_time`, ...) and anything else are ignored."""
    if not isinstance(event, dict):
        return {}
    return {k: v for k, v in event.items() if k in allowed}
