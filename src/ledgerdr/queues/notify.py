"""Notifications that something new exists (the warm standby's wake-up call), on sqlite or SQS.

A notification means only "look again": a consumer re-reads the repository and never trusts what the
message says, so a forged, duplicated, reordered or test message costs one re-read and nothing else.
That is also why this is not the work `Queue`: S3 sends its event notifications to SQS as plain JSON
without ledgerdr's body prefix (the `SqsQueue` would dead-letter them as foreign), and a queue that only
says "look again" needs no dead-letter queue.

URLs understood by `open_notifications`:
- `sqlite:///abs/path.db?name=q` (or `sqlite:relative.db?name=q`): a named `SqliteQueue`;
- an SQS queue URL `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or `sqs://NAME` (GetQueueUrl): S3
  event notifications (`s3:ObjectCreated:*` on `<prefix>_ledgerdr/windows/`), SNS envelopes of them,
  EventBridge's "Object Created" and ledgerdr's own message are all accepted, as is `s3:TestEvent`.

One queue per consumer: two standbys on one queue would each see only part of the messages (fan out with
SNS, one SQS queue per standby).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..errors import ConfigError, StaleReceipt
from .base import Message, Queue
from .sqs import MAX_BATCH_ENTRIES, MAX_WAIT_SECONDS, _call, region_from_url, sqs_client

# A consumer acks after the re-read a message asked for; if it dies first, the message is simply seen
# again after this long, which costs one more re-read.
VISIBILITY_SECONDS = 300.0
WINDOW_RECORDED = "window-recorded"


@dataclass(frozen=True)
class Notice:
    """One received notification: its id, what kind of message it looked like (for logs only), and the
    backend's handle for acknowledging it."""

    id: str
    kind: str
    handle: Any = field(repr=False, compare=False)


class Notifications(Protocol):
    url: str

    def wait(self, seconds: float) -> list[Notice]:
        """Up to 10 notices, waiting up to `seconds` for the first; [] on timeout."""

    def done(self, notices: Sequence[Notice]) -> None:
        """Acknowledge notices once the re-read they asked for happened. Idempotent."""

    def publish(self, body: bytes) -> None:
        """Send one notification (what `ledgerdr backup --notify` sends after recording windows)."""

    def close(self) -> None: ...


def window_recorded_message(repository: str, windows: Sequence[str]) -> bytes:
    """ledgerdr's own notification body. Informative only: consumers re-read the repository."""
    return orjson.dumps({"ledgerdr": WINDOW_RECORDED, "format_version": 1, "repository": repository,
                         "windows": list(windows)})


def notice_kind(body: bytes | str) -> str:
    """What a message looks like: `s3:TestEvent`, `s3:ObjectCreated:Put`, `ledgerdr:window-recorded`,
    `eventbridge:Object Created`, or `unknown`. Never raises: an odd message still means "look again"."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "unknown"
    if not isinstance(raw, dict):
        return "unknown"
    if raw.get("Type") == "Notification" and isinstance(raw.get("Message"), str):  # SNS → SQS envelope
        return notice_kind(raw["Message"])
    if raw.get("Event") == "s3:TestEvent":
        return "s3:TestEvent"
    records = raw.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        name = records[0].get("eventName")
        return f"s3:{name}" if isinstance(name, str) else "unknown"
    if "ledgerdr" in raw:
        return f"ledgerdr:{raw['ledgerdr']}"
    if raw.get("source") == "aws.s3" and "detail-type" in raw:
        return f"eventbridge:{raw['detail-type']}"
    return "unknown"


def open_notifications(url: str, **opts: Any) -> Notifications:
    """Open the notification queue at `url`. Raises ConfigError for a URL that is neither sqlite nor SQS."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme == "sqlite":
        from . import open_queue

        return QueueNotifications(open_queue(url, **opts))
    if scheme == "sqs" or (scheme == "https" and (host.startswith("sqs.") or ".queue." in host)):
        query = dict(parse_qsl(parts.query))
        unknown = sorted(set(query) - {"region"})
        if unknown:
            raise ConfigError(f"notification queue URL {url!r}: unknown option(s) {', '.join(unknown)}")
        return SqsNotifications(url, region=query.get("region"), **opts)
    raise ConfigError(f"unknown notification queue URL {url!r}",
                      hint="use sqlite:///path.db?name=q, sqs://NAME or an SQS queue URL")


class QueueNotifications:
    """Notifications over any ledgerdr `Queue` (the sqlite one on a laptop)."""

    def __init__(self, queue: Queue) -> None:
        self.queue, self.url = queue, queue.url

    def wait(self, seconds: float) -> list[Notice]:
        messages = self.queue.receive(MAX_BATCH_ENTRIES, VISIBILITY_SECONDS, wait_seconds=max(0.0, seconds))
        return [Notice(m.id, notice_kind(m.body), m) for m in messages]

    def done(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            message: Message = notice.handle
            try:
                self.queue.ack(message)
            except StaleReceipt:
                pass  # delivered again meanwhile: one more re-read, nothing lost

    def publish(self, body: bytes) -> None:
        self.queue.send_batch([body])

    def close(self) -> None:
        self.queue.close()


class SqsNotifications:
    """Raw SQS: bodies are whatever S3, SNS, EventBridge or ledgerdr sent, read as text."""

    def __init__(self, url: str, *, region: str | None = None, client: Any = None) -> None:
        parts = urlsplit(url)
        self._owns_client = client is None
        if parts.scheme.lower() == "sqs":
            name = [s for s in (parts.netloc, *parts.path.split("/")) if s][-1]
            self._client = client or sqs_client(region)
            self.url = _call(url, "open", lambda: self._client.get_queue_url(QueueName=name))["QueueUrl"]
        else:
            self.url = parts._replace(query="", fragment="").geturl()
            self._client = client or sqs_client(region or region_from_url(self.url))

    def wait(self, seconds: float) -> list[Notice]:
        wait = min(MAX_WAIT_SECONDS, max(0, math.ceil(seconds)))  # SQS long polls in whole seconds
        resp = _call(self.url, "receive", lambda: self._client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=MAX_BATCH_ENTRIES, WaitTimeSeconds=wait,
            VisibilityTimeout=int(VISIBILITY_SECONDS)))
        return [Notice(m["MessageId"], notice_kind(m.get("Body", "")), m["ReceiptHandle"])
                for m in resp.get("Messages", [])]

    def done(self, notices: Sequence[Notice]) -> None:
        for start in range(0, len(notices), MAX_BATCH_ENTRIES):
            chunk = notices[start:start + MAX_BATCH_ENTRIES]
            entries = [{"Id": str(i), "ReceiptHandle": n.handle} for i, n in enumerate(chunk)]
            # Failed entries are not retried: an unacked notice comes back and costs one re-read.
            _call(self.url, "ack", partial(self._client.delete_message_batch, QueueUrl=self.url, Entries=entries))

    def publish(self, body: bytes) -> None:
        _call(self.url, "send", lambda: self._client.send_message(QueueUrl=self.url, MessageBody=body.decode()))

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
