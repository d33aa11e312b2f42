"""`SqsQueue`: the `Queue` on Amazon SQS (a standard queue plus its dead-letter queue).

Bodies are bytes, SQS bodies are text: each body is stored as the format prefix "1:" followed by its
base64 (the prefix lets a later ledgerdr change the encoding, and recognises foreign messages).

Dead letters. SQS cannot change a message once sent, so a reason given to `release` cannot travel with
the message. ledgerdr therefore moves messages to the dead-letter queue itself, with the reason, the
attempt count and the time as message attributes (durable, visible to every process):
- `release` on a message's last allowed delivery sends it to the DLQ and deletes it;
- `receive` moves any message delivered more than `max_attempts` times instead of returning it (the
  previous delivery expired).
`create_sqs_queue` sets the redrive policy's maxReceiveCount to `max_attempts + 1`, so SQS's own redrive
only acts as a backstop (ledgerdr crashed between the DLQ send and the delete, or a foreign consumer).
Reasons given to earlier, non-final releases are kept in this process's memory and logged; they appear
in a dead letter only if the same process dead-letters the message.

Receipts. SQS does not refuse an outdated receipt handle: AWS documents that DeleteMessage with one
"succeeds, but the message might not be deleted", and moto deletes it. `properties.refuses_stale_receipt`
is False accordingly; idempotent consumers do not depend on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ConfigError, QueueError, QueueNotFound, QueueUnavailable, SendIncomplete, StaleReceipt
from .base import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_VISIBILITY_TIMEOUT,
    DeadLetter,
    Message,
    QueueCounts,
    QueueProperties,
    check_bodies,
    check_receive_args,
    check_visibility_timeout,
    text_body_capacity,
    timeout_reason,
)

log = logging.getLogger(__name__)

BODY_PREFIX = "1:"
MAX_BATCH_ENTRIES = 10  # SQS's limit for every *Batch call
MAX_WAIT_SECONDS = 20  # SQS's limit for one long poll
MAX_RETENTION_SECONDS = 1_209_600  # 14 days: a dead letter or a slow restore must not expire silently
PEEK_VISIBILITY_SECONDS = 60  # how long dead_letters() holds DLQ messages while it enumerates them
MAX_REASON_CHARS = 900  # the reason attribute must fit the 1 KiB allowance in text_body_capacity
_REMEMBERED_REASONS = 10_000  # bound on the in-memory release reasons
_ATTR_ID, _ATTR_REASON = "ledgerdr-message-id", "ledgerdr-reason"
_ATTR_ATTEMPTS, _ATTR_FAILED_AT = "ledgerdr-attempts", "ledgerdr-failed-at"

_NOT_FOUND = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}
_STALE = {"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"}
_EXISTS = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}
_TRANSIENT = {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable",
              "InternalError", "InternalFailure", "KmsThrottled", "KMS.ThrottlingException"}


class SqsQueue:
    """A work queue on the SQS standard queue `queue_url`, dead letters in `dead_letter_url` (found from
    the queue's RedrivePolicy when not given).

    Raises `ConfigError` at construction when there is no dead-letter queue, when the redrive policy would
    dead-letter before `max_attempts` deliveries, or when `dead_letter_url` is not the redrive target;
    `QueueNotFound` when either queue does not exist. Counts are approximate (SQS's own figures).
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        region: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        dead_letter_url: str | None = None,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigError(f"queue {queue_url}: max_attempts must be a positive integer, not {max_attempts!r}")
        self.url = queue_url
        self.max_attempts = max_attempts
        self._owns_client = client is None
        self._client = client or sqs_client(region or region_from_url(queue_url))
        self._reasons: OrderedDict[str, str] = OrderedDict()
        self._redrive_max: int | None = None
        self._max_text = 0
        self.dead_letter_url = self._find_dead_letter_queue(dead_letter_url)
        self.properties = self._describe()

    @classmethod
    def from_name(
        cls, name: str, *, account: str | None = None, region: str | None = None, client: Any = None, **opts: Any
    ) -> SqsQueue:
        """Open the queue called `name` (owned by `account`, default the caller's) in `region`."""
        sqs = client or sqs_client(region)
        args = {"QueueName": name} | ({"QueueOwnerAWSAccountId": account} if account else {})
        url = _call(f"sqs://{name}", "open", lambda: sqs.get_queue_url(**args))["QueueUrl"]
        queue = cls(url, client=sqs, **opts)
        queue._owns_client = client is None
        return queue

    # ---- the Queue interface -------------------------------------------------------------------

    def send_batch(self, bodies: Sequence[bytes]) -> list[str]:
        """Send in SQS batches (10 entries and MaximumMessageSize bytes each). Raises `MessageTooLarge`
        before sending anything, `SendIncomplete` (with the ids that were sent) if some entries failed."""
        check_bodies(self.url, bodies, self.properties.max_message_bytes)
        texts = [encode_body(bytes(body)) for body in bodies]
        sent: dict[int, str] = {}
        failed: dict[int, str] = {}
        for chunk in self._chunks(texts):
            try:
                resp = self._call("send", partial(self._client.send_message_batch, QueueUrl=self.url,
                                                  Entries=[{"Id": str(i), "MessageBody": texts[i]} for i in chunk]))
            except QueueError as exc:
                if not sent:
                    raise
                failed.update((i, str(exc)) for i in chunk)
                continue
            sent.update((int(ok["Id"]), ok["MessageId"]) for ok in resp.get("Successful", []))
            failed.update((int(bad["Id"]), f"{bad.get('Code')}: {bad.get('Message')}")
                          for bad in resp.get("Failed", []))
        if failed:
            raise SendIncomplete(self.url, sent, failed)
        return [sent[i] for i in range(len(texts))]

    def receive(
        self, max_messages: int = 1, visibility_timeout: float = 30.0, wait_seconds: float = 0.0
    ) -> list[Message]:
        """Receive up to `max_messages` (several SQS calls of at most 10), long-polling up to
        `wait_seconds` (rounded up to whole seconds, as are visibility timeouts) for the first ones."""
        check_receive_args(max_messages, visibility_timeout, wait_seconds)
        deadline = time.monotonic() + wait_seconds
        messages: list[Message] = []
        while len(messages) < max_messages:
            remaining = deadline - time.monotonic()
            wait = min(MAX_WAIT_SECONDS, math.ceil(remaining)) if not messages and remaining > 0 else 0
            raw = self._receive_raw(self.url, min(MAX_BATCH_ENTRIES, max_messages - len(messages)),
                                    math.ceil(visibility_timeout), wait)
            messages.extend(self._accept(raw))
            if not raw and (messages or time.monotonic() >= deadline):
                break
        return messages

    def ack(self, message: Message) -> None:
        """Delete the message. An outdated receipt is not detected (see the module docstring)."""
        self._call("ack", lambda: self._client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt),
                   message.id)
        self._reasons.pop(message.id, None)

    def release(self, message: Message, *, reason: str | None = None) -> None:
        """Make the message visible again now; on its last allowed delivery, move it to the DLQ with
        `reason` instead. The reason of an earlier release is remembered in this process only."""
        if reason:
            log.info("queue %s: message %s released (delivery %d): %s", self.url, message.id,
                     message.attempts, reason)
        if message.attempts >= self.max_attempts:
            final = reason or self._reasons.get(message.id) or (
                f"released after {message.attempts} deliveries without a reason")
            self._bury(message.id, encode_body(message.body), message.receipt, message.attempts, final)
            return
        self._remember(message.id, reason)
        self._call("release", lambda: self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt, VisibilityTimeout=0), message.id)

    def extend(self, message: Message, visibility_timeout: float) -> None:
        """Set the message's remaining visibility to `visibility_timeout` (rounded up) seconds."""
        check_visibility_timeout(visibility_timeout)
        self._call("extend", lambda: self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.receipt,
            VisibilityTimeout=math.ceil(visibility_timeout)), message.id)

    def dead_letters(self) -> list[DeadLetter]:
        """Read the DLQ without consuming it, oldest failure first (unknown times last).

        SQS has no peek: each DLQ message is received with a short visibility timeout and made visible
        again at the end. Meanwhile another reader of the DLQ sees fewer messages, and each read adds one
        to the DLQ copy's receive count (harmless: the DLQ has no redrive policy of its own). Copies of one
        message (a move interrupted after the DLQ send) are reported once.
        """
        expected = sum(self._attributes(self.dead_letter_url, "ApproximateNumberOfMessages").values())
        found: dict[str, DeadLetter] = {}
        receipts: list[str] = []
        try:
            while len(receipts) < expected:
                # Long polling (1 s) asks every SQS server; a short poll samples some and may miss messages.
                raw = self._receive_raw(self.dead_letter_url, MAX_BATCH_ENTRIES, PEEK_VISIBILITY_SECONDS, 1)
                if not raw:
                    break
                for item in raw:
                    receipts.append(item["ReceiptHandle"])
                    letter = self._dead_letter(item)
                    found.setdefault(letter.id, letter)
        finally:
            self._make_visible(self.dead_letter_url, receipts)
        oldest = datetime.max.replace(tzinfo=UTC)
        return sorted(found.values(), key=lambda d: (d.failed_at or oldest, d.id))

    def counts(self) -> QueueCounts:
        """SQS's approximate counts; a DLQ message being read by `dead_letters` still counts as dead."""
        names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        main = self._attributes(self.url, *names)
        dead = self._attributes(self.dead_letter_url, *names)
        return QueueCounts(visible=main[names[0]], in_flight=main[names[1]], dead=sum(dead.values()))

    def close(self) -> None:
        """Close the boto3 client if this queue created it. Idempotent."""
        if self._owns_client:
            self._client.close()
            self._owns_client = False

    def __enter__(self) -> SqsQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqsQueue({self.url!r}, max_attempts={self.max_attempts})"

    # ---- receiving and dead-lettering ----------------------------------------------------------------

    def _receive_raw(self, url: str, count: int, visibility: int, wait: int) -> list[dict[str, Any]]:
        resp = self._call("receive", lambda: self._client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=count, VisibilityTimeout=visibility, WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["ApproximateReceiveCount"], MessageAttributeNames=["All"]))
        messages: list[dict[str, Any]] = resp.get("Messages", [])
        return messages

    def _accept(self, raw: list[dict[str, Any]]) -> list[Message]:
        """Turn SQS messages into deliveries, dead-lettering those past their last attempt or unreadable."""
        accepted = []
        for item in raw:
            mid, receipt, text = item["MessageId"], item["ReceiptHandle"], item["Body"]
            attempts = int(item["Attributes"]["ApproximateReceiveCount"])
            if attempts > self.max_attempts:
                reason = timeout_reason(None, attempts - 1, self._reasons.get(mid))
                self._bury(mid, text, receipt, attempts - 1, reason)
                continue
            try:
                accepted.append(Message(mid, decode_body(text), receipt, attempts))
            except ValueError as exc:  # a poison message would otherwise be retried forever by every worker
                self._bury(mid, text, receipt, attempts, f"unreadable body: {exc}")
        return accepted

    def _bury(self, mid: str, text: str, receipt: str, attempts: int, reason: str) -> None:
        """Send the message to the DLQ with its reason, then delete it here. In that order: a crash in
        between leaves a duplicate (dead_letters reports it once), never a loss."""
        attributes = {
            _ATTR_ID: {"DataType": "String", "StringValue": mid},
            _ATTR_REASON: {"DataType": "String", "StringValue": reason[:MAX_REASON_CHARS]},
            _ATTR_ATTEMPTS: {"DataType": "Number", "StringValue": str(attempts)},
            _ATTR_FAILED_AT: {"DataType": "String", "StringValue": datetime.now(UTC).isoformat()},
        }
        log.warning("queue %s: message %s dead-lettered after %d deliveries: %s", self.url, mid, attempts, reason)
        self._call("dead-letter", lambda: self._client.send_message(
            QueueUrl=self.dead_letter_url, MessageBody=text, MessageAttributes=attributes), mid)
        self._call("dead-letter", lambda: self._client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt),
                   mid)
        self._reasons.pop(mid, None)

    def _dead_letter(self, item: dict[str, Any]) -> DeadLetter:
        attrs = {k: v.get("StringValue", "") for k, v in item.get("MessageAttributes", {}).items()}
        try:
            body = decode_body(item["Body"])
        except ValueError:
            body = item["Body"].encode()  # a foreign message: show its text as it is
        if _ATTR_REASON in attrs:
            return DeadLetter(attrs[_ATTR_ID], body, int(attrs[_ATTR_ATTEMPTS]), attrs[_ATTR_REASON],
                              datetime.fromisoformat(attrs[_ATTR_FAILED_AT]))
        # Moved by SQS's redrive, which keeps the message id but records neither the reason nor the time.
        mid = item["MessageId"]
        attempts = self._redrive_max or 0
        reason = f"moved by the SQS redrive policy after {attempts} receives without an ack"
        remembered = self._reasons.get(mid)
        return DeadLetter(mid, body, attempts, reason + (f"; last release reason: {remembered}"
                                                         if remembered else ""), None)

    def _make_visible(self, url: str, receipts: list[str]) -> None:
        for start in range(0, len(receipts), MAX_BATCH_ENTRIES):
            entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                       for i, r in enumerate(receipts[start:start + MAX_BATCH_ENTRIES])]
            self._call("dead_letters", partial(self._client.change_message_visibility_batch, QueueUrl=url,
                                               Entries=entries))

    def _remember(self, mid: str, reason: str | None) -> None:
        if reason:
            self._reasons[mid] = reason
            self._reasons.move_to_end(mid)
            while len(self._reasons) > _REMEMBERED_REASONS:
                self._reasons.popitem(last=False)

    # ---- setup and plumbing --------------------------------------------------------------------------

    def _find_dead_letter_queue(self, given: str | None) -> str:
        raw = self._call("open", lambda: self._client.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["RedrivePolicy"])).get("Attributes", {}).get("RedrivePolicy")
        if raw is None:
            if given is None:
                raise ConfigError(f"queue {self.url} has no dead-letter queue",
                                  hint="create it with create_sqs_queue, or pass dead_letter_url")
            return given
        policy = json.loads(raw)
        self._redrive_max = int(policy["maxReceiveCount"])
        if self._redrive_max < self.max_attempts:
            raise ConfigError(f"queue {self.url}: its redrive policy dead-letters after {self._redrive_max} "
                              f"receives, before max_attempts={self.max_attempts}",
                              hint=f"set maxReceiveCount to {self.max_attempts + 1}")
        target = policy["deadLetterTargetArn"]
        if given is None:
            *_, account, name = target.split(":")
            found: str = self._call("open", lambda: self._client.get_queue_url(
                QueueName=name, QueueOwnerAWSAccountId=account))["QueueUrl"]
            return found
        arn = self._call("open", lambda: self._client.get_queue_attributes(
            QueueUrl=given, AttributeNames=["QueueArn"])).get("Attributes", {})["QueueArn"]
        if arn != target:
            raise ConfigError(f"queue {self.url}: dead_letter_url {given} is not its redrive target {target}")
        return given

    def _describe(self) -> QueueProperties:
        # Both queues' limits count: a body must also fit the DLQ, with the dead-letter attributes.
        self._max_text = min(self._attributes(url, "MaximumMessageSize")["MaximumMessageSize"]
                             for url in (self.url, self.dead_letter_url))
        return QueueProperties(
            name="sqs",
            max_message_bytes=text_body_capacity(self._max_text),
            max_visibility_timeout=MAX_VISIBILITY_TIMEOUT,
            refuses_stale_receipt=False,
            exact_counts=False,
            atomic_batches=False,
            multi_host=True,
        )

    def _chunks(self, texts: list[str]) -> list[list[int]]:
        """Indexes of `texts` grouped into batches SQS accepts: at most 10 entries, and a total no larger
        than the queue's MaximumMessageSize (SQS's batch payload limit is never smaller)."""
        limit = self._max_text
        chunks: list[list[int]] = []
        size = 0
        for index, text in enumerate(texts):
            if not chunks or len(chunks[-1]) == MAX_BATCH_ENTRIES or size + len(text) > limit:
                chunks.append([])
                size = 0
            chunks[-1].append(index)
            size += len(text)
        return chunks

    def _attributes(self, url: str, *names: str) -> dict[str, int]:
        attrs = self._call("counts", lambda: self._client.get_queue_attributes(
            QueueUrl=url, AttributeNames=list(names))).get("Attributes", {})
        return {name: int(attrs.get(name, 0)) for name in names}

    def _call(self, op: str, fn: Callable[[], Any], message_id: str | None = None) -> Any:
        return _call(self.url, op, fn, message_id)


def sqs_client(region: str | None) -> Any:
    """A boto3 SQS client; boto3 is imported here, on first use, because importing it costs ~130 ms
    that every CLI start would pay otherwise."""
    import boto3

    return boto3.client("sqs", region_name=region)


def _call(queue: str, op: str, fn: Callable[[], Any], message_id: str | None = None) -> Any:
    """Run one SQS request, translating botocore's errors into the QueueError family."""
    try:
        return fn()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        text = f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
        if code in _NOT_FOUND:
            raise QueueNotFound(queue, op, text, message_id=message_id) from exc
        if code in _STALE:
            raise StaleReceipt(queue, op, text, message_id=message_id,
                               hint="the message was delivered again; idempotent consumers can ignore this") from exc
        if code in _TRANSIENT or status >= 500:
            raise QueueUnavailable(queue, op, text, message_id=message_id) from exc
        if code in _EXISTS:
            raise QueueError(queue, op, text, hint="a queue of that name exists with other settings") from exc
        raise QueueError(queue, op, text, message_id=message_id,
                         hint="check the IAM permissions and the queue's settings") from exc
    except BotoCoreError as exc:  # connection failures, timeouts, missing credentials
        raise QueueUnavailable(queue, op, str(exc), message_id=message_id) from exc


def create_sqs_queue(client: Any, name: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> tuple[str, str]:
    """Create the standard queue `name` and its DLQ `name-dlq`; return (url, dlq_url).

    Both keep messages 14 days (the SQS maximum) so neither a slow restore nor an unread dead letter
    expires silently. maxReceiveCount is `max_attempts + 1`: ledgerdr dead-letters a message itself on
    the delivery after its last allowed one, keeping the reason; SQS's redrive is the backstop.
    Idempotent when the queues exist with the same settings; `QueueError` if they exist with others.
    """
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError(f"max_attempts must be a positive integer, not {max_attempts!r}")
    retention = {"MessageRetentionPeriod": str(MAX_RETENTION_SECONDS)}
    label = f"sqs://{name}"
    dlq_url = _call(label, "create", lambda: client.create_queue(
        QueueName=f"{name}-dlq", Attributes=retention))["QueueUrl"]
    dlq_arn = _call(label, "create", lambda: client.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["QueueArn"])).get("Attributes", {})["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_attempts + 1})
    url = _call(label, "create", lambda: client.create_queue(
        QueueName=name, Attributes=retention | {"RedrivePolicy": redrive}))["QueueUrl"]
    return url, dlq_url


def encode_body(body: bytes) -> str:
    return BODY_PREFIX + base64.b64encode(body).decode("ascii")


def decode_body(text: str) -> bytes:
    """Raises ValueError for text that ledgerdr did not encode."""
    if not text.startswith(BODY_PREFIX):
        raise ValueError(f"no {BODY_PREFIX!r} format prefix (not sent by ledgerdr?)")
    try:
        return base64.b64decode(text[len(BODY_PREFIX):], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from exc


def region_from_url(url: str) -> str | None:
    """The region in an SQS queue URL (https://sqs.REGION.amazonaws.com/... or the legacy
    https://REGION.queue.amazonaws.com/...), or None to let boto3 decide."""
    labels = (urlparse(url).hostname or "").split(".")
    if len(labels) >= 4 and labels[0] == "sqs":
        return labels[1]
    if len(labels) >= 4 and labels[1] == "queue":
        return labels[0]
    return None
