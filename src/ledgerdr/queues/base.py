"""The `Queue` interface: a work queue with visibility timeouts, retries and dead letters.

Used by the parallel restore (a planner sends work units; workers receive, apply, ack) and by the warm
standby (notifications of new window records). A queue moves opaque bytes; what a body means is the
caller's business.

Delivery is **at least once**. A message can be delivered again after its visibility timeout, after a
worker dies, after an ack that was lost, and on SQS occasionally for no reason at all. Consumers must
therefore be idempotent: applying the same work unit twice must leave the same state (ledgerdr's restore
is state-based for exactly this reason, see DESIGN.md "Restore semantics"). The order of delivery is
not guaranteed either.

Backends live one per file and raise only the `QueueError` family (in errors.py, with the other errors).
They do not retry: `QueueUnavailable.retryable` tells a wrapper or the caller that trying again is safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..errors import MessageTooLarge

# SQS bodies are text: the SQS backend stores a 2-character format prefix plus base64, and keeps 1 KiB
# for the attributes a dead letter carries. Both count against the queue's MaximumMessageSize.
TEXT_ENCODING_OVERHEAD = 1_024 + 2


def text_body_capacity(max_message_size: int) -> int:
    """Largest raw body whose encoded form (prefix + base64 + attribute allowance) fits the limit."""
    return max(0, (max_message_size - TEXT_ENCODING_OVERHEAD) // 4 * 3)


# SQS's long-standing default limit (256 KiB). Backends without a natural limit enforce the same one, so
# a flow that works on the laptop also works on any SQS queue, including ones created before AWS raised
# the limit to 1 MiB.
PORTABLE_MAX_BODY_BYTES = text_body_capacity(262_144)  # = 195_837
# SQS's hard ceiling; enforced everywhere for the same reason.
MAX_VISIBILITY_TIMEOUT = 43_200.0
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Message:
    """One delivery of a message. `receipt` identifies this delivery (not the message): ack, release and
    extend need it. `attempts` counts deliveries including this one (1 on the first)."""

    id: str
    body: bytes = field(repr=False)
    receipt: str = field(repr=False)
    attempts: int


@dataclass(frozen=True)
class DeadLetter:
    """A message that was delivered `attempts` times without an ack. `failed_at` is UTC, or None when the
    backend cannot tell (a message SQS's own redrive moved)."""

    id: str
    body: bytes = field(repr=False)
    attempts: int
    reason: str
    failed_at: datetime | None


@dataclass(frozen=True)
class QueueCounts:
    visible: int  # ready to be received now (including deliveries whose visibility timed out)
    in_flight: int  # received, neither acked nor released, visibility not yet expired
    dead: int


@dataclass(frozen=True)
class QueueProperties:
    """What a backend can do, as data, so callers choose behaviour without isinstance."""

    name: str
    max_message_bytes: int  # largest body `send_batch` accepts
    max_visibility_timeout: float
    refuses_stale_receipt: bool  # ack/release/extend with an outdated receipt raise StaleReceipt
    exact_counts: bool  # counts() is exact (SQS's are approximate and lag by up to a minute)
    atomic_batches: bool  # send_batch stores all bodies or none
    multi_host: bool  # workers on several hosts may share the queue


@runtime_checkable
class Queue(Protocol):
    """A work queue (contract checked by tests/test_queue_contract.py on every backend).

    - `send_batch` takes any number of bodies (split internally as the backend needs) and returns their
      ids in order. A body over `properties.max_message_bytes` raises `MessageTooLarge` before anything
      is sent.
    - `receive` returns up to `max_messages` deliveries, possibly fewer than are available, waiting up to
      `wait_seconds` for the first one. Each stays invisible to other receivers for `visibility_timeout`
      seconds; without an ack or release by then it is delivered again with `attempts` + 1.
    - `ack` removes the message for good. `release` makes it visible again now (a retryable failure);
      `reason` is reported if the message ends as a dead letter. `extend` sets the remaining visibility
      to `visibility_timeout` seconds from now (a long piece of work). With an outdated receipt these
      raise `StaleReceipt` where `properties.refuses_stale_receipt`.
    - After `max_attempts` deliveries without an ack, the message leaves the queue for the dead-letter
      list, with the last reason given to `release`, or one saying the visibility timeout expired.
    - `dead_letters` reads that list without consuming it. `counts` reports the three populations.
    - `close` releases resources; it is idempotent, and the queue must not be used afterwards.
    """

    properties: QueueProperties
    url: str
    max_attempts: int

    def send_batch(self, bodies: Sequence[bytes]) -> list[str]: ...

    def receive(
        self, max_messages: int = 1, visibility_timeout: float = 30.0, wait_seconds: float = 0.0
    ) -> list[Message]: ...

    def ack(self, message: Message) -> None: ...

    def release(self, message: Message, *, reason: str | None = None) -> None: ...

    def extend(self, message: Message, visibility_timeout: float) -> None: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def counts(self) -> QueueCounts: ...

    def close(self) -> None: ...


def check_receive_args(max_messages: int, visibility_timeout: float, wait_seconds: float) -> None:
    """Refuse arguments no backend can honour (a programming error, hence ValueError)."""
    if not isinstance(max_messages, int) or max_messages < 1:
        raise ValueError(f"max_messages must be a positive integer, not {max_messages!r}")
    check_visibility_timeout(visibility_timeout)
    if not math.isfinite(wait_seconds) or wait_seconds < 0:
        raise ValueError(f"wait_seconds must be finite and >= 0, not {wait_seconds!r}")


def check_visibility_timeout(visibility_timeout: float) -> None:
    if not 0 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:  # also refuses NaN
        raise ValueError(f"visibility_timeout must be within [0, {MAX_VISIBILITY_TIMEOUT:g}] s, "
                         f"not {visibility_timeout!r}")


def check_bodies(queue: str, bodies: Sequence[bytes], limit: int) -> None:
    """Validate a whole batch up front so that a bad body sends nothing."""
    for index, body in enumerate(bodies):
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"body #{index} is {type(body).__name__}, not bytes")
        if len(body) > limit:
            raise MessageTooLarge(queue, "send", f"body #{index} has {len(body)} bytes, limit {limit}",
                                  hint="send a reference (an object key) instead of the data")


def timeout_reason(expiries: int | None, deliveries: int, last_release_reason: str | None) -> str:
    """The dead-letter reason when the final delivery's visibility ran out (shared wording)."""
    times = f" {expiries} time{'s' if expiries != 1 else ''}" if expiries is not None else ""
    reason = f"visibility timeout expired{times} in {deliveries} deliveries without an ack"
    return reason + (f"; last release reason: {last_release_reason}" if last_release_reason else "")
