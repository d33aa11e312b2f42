"""One contract suite for every `Queue` backend (sqlite and SQS on moto), never skipped; then what only
the sqlite backend promises: many processes on one file, and a worker killed while holding messages."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ledgerdr.errors import ConfigError, LedgerDRError, exit_code_for
from ledgerdr.queues import (
    MAX_VISIBILITY_TIMEOUT,
    PORTABLE_MAX_BODY_BYTES,
    Message,
    MessageTooLarge,
    Queue,
    QueueCounts,
    QueueError,
    SqliteQueue,
    SqsQueue,
    StaleReceipt,
    create_sqs_queue,
    open_queue,
)

SHORT = 1.0  # visibility timeout that tests let expire (SQS's smallest useful one: whole seconds)
LONG = 30.0  # visibility timeout that never expires during a test
REGION = "us-east-1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    name: str
    make: Callable[..., Queue]  # make(max_attempts=5) -> a new, empty queue
    let_pass: Callable[[float], None]  # let seconds pass on the clock that decides visibility

    def expire(self) -> None:
        self.let_pass(SHORT + 0.2)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


@pytest.fixture(params=["sqlite", "sqs"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    opened: list[Queue] = []

    def keep(queue: Queue) -> Queue:
        opened.append(queue)
        return queue

    if request.param == "sqlite":
        clock = FakeClock()

        def make_sqlite(max_attempts: int = 5) -> Queue:
            return keep(SqliteQueue(tmp_path / "queue.db", f"q{len(opened)}", max_attempts=max_attempts,
                                    clock=clock))

        yield Harness("sqlite", make_sqlite, clock.advance)
    else:
        client = request.getfixturevalue("aws")

        def make_sqs(max_attempts: int = 5) -> Queue:
            url, _ = create_sqs_queue(client, f"q{len(opened)}", max_attempts)
            return keep(SqsQueue(url, client=client, max_attempts=max_attempts))

        yield Harness("sqs", make_sqs, time.sleep)
    for queue in opened:
        queue.close()


def drain(queue: Queue, visibility: float = LONG) -> list[Message]:
    """Receive until the queue returns nothing."""
    received: list[Message] = []
    while batch := queue.receive(max_messages=10, visibility_timeout=visibility):
        received.extend(batch)
    return received


def send_one(queue: Queue, body: bytes = b"unit") -> str:
    (mid,) = queue.send_batch([body])
    return mid


# ---- the contract, on every backend -------------------------------------------------------------


def test_backend_describes_itself(harness: Harness) -> None:
    queue = harness.make()
    assert isinstance(queue, Queue)
    assert queue.properties.name == harness.name
    assert queue.properties.max_message_bytes >= PORTABLE_MAX_BODY_BYTES
    assert queue.properties.max_visibility_timeout == MAX_VISIBILITY_TIMEOUT
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)


def test_send_receive_ack_round_trips_any_bytes(harness: Harness) -> None:
    queue = harness.make()
    bodies = [b"", bytes(range(256)), "ünïcödé".encode(), b"\x00" * 1000]
    ids = queue.send_batch(bodies)
    assert len(set(ids)) == len(bodies)
    assert queue.send_batch([]) == []

    received = drain(queue)
    assert {m.id: m.body for m in received} == dict(zip(ids, bodies, strict=True))
    assert [m.attempts for m in received] == [1] * len(bodies)
    assert queue.counts() == QueueCounts(visible=0, in_flight=len(bodies), dead=0)

    for message in received:
        queue.ack(message)
    assert queue.receive() == []
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)


def test_batches_larger_than_ten(harness: Harness) -> None:
    queue = harness.make()
    bodies = [f"unit-{i}".encode() for i in range(25)]
    ids = queue.send_batch(bodies)
    assert len(set(ids)) == 25
    assert queue.counts() == QueueCounts(visible=25, in_flight=0, dead=0)

    first = queue.receive(max_messages=15, visibility_timeout=LONG)
    assert 1 <= len(first) <= 15  # "up to": SQS may return fewer than are available
    received = first + drain(queue)
    assert {m.id: m.body for m in received} == dict(zip(ids, bodies, strict=True))
    assert len(received) == 25  # each exactly once
    for message in received:
        queue.ack(message)
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)


def test_largest_bodies_are_split_and_oversized_ones_refused(harness: Harness) -> None:
    queue = harness.make()
    limit = queue.properties.max_message_bytes
    bodies = [bytes([i]) * limit for i in range(3)]  # together far over any single SQS request
    ids = queue.send_batch(bodies)
    assert {m.id: m.body for m in drain(queue)} == dict(zip(ids, bodies, strict=True))

    with pytest.raises(MessageTooLarge) as caught:
        queue.send_batch([b"fine", b"x" * (limit + 1)])
    assert "body #1" in str(caught.value)
    assert exit_code_for(caught.value) == 3
    assert queue.counts().visible == 0  # nothing of the batch was sent


def test_expired_visibility_redelivers_with_next_attempt(harness: Harness) -> None:
    queue = harness.make()
    mid = send_one(queue, b"slow")
    (first,) = queue.receive(visibility_timeout=SHORT)
    assert queue.receive(visibility_timeout=SHORT) == []  # invisible while held
    assert queue.counts() == QueueCounts(visible=0, in_flight=1, dead=0)

    harness.expire()
    (second,) = queue.receive(visibility_timeout=LONG)
    assert (second.id, second.body, second.attempts) == (mid, b"slow", 2)
    assert second.receipt != first.receipt
    queue.ack(second)
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)


def test_outdated_receipt(harness: Harness) -> None:
    queue = harness.make()
    send_one(queue)
    (stale,) = queue.receive(visibility_timeout=SHORT)
    harness.expire()
    (current,) = queue.receive(visibility_timeout=LONG)

    if queue.properties.refuses_stale_receipt:
        for refused in (lambda: queue.ack(stale), lambda: queue.release(stale, reason="late"),
                        lambda: queue.extend(stale, LONG)):
            with pytest.raises(StaleReceipt) as caught:
                refused()
            assert caught.value.message_id == stale.id
        assert queue.counts() == QueueCounts(visible=0, in_flight=1, dead=0)  # the holder keeps it
        queue.ack(current)
        with pytest.raises(StaleReceipt, match="acked already"):
            queue.ack(current)
    else:
        # SQS accepts an outdated receipt handle; moto deletes the message with it, as AWS may.
        assert harness.name == "sqs"
        queue.ack(stale)
        assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)
        queue.ack(current)  # the holder's ack of a deleted message is accepted too
    assert queue.receive() == []


def test_release_makes_the_message_visible_now(harness: Harness) -> None:
    queue = harness.make()
    mid = send_one(queue)
    (first,) = queue.receive(visibility_timeout=LONG)
    queue.release(first, reason="target busy")
    (again,) = queue.receive(visibility_timeout=LONG)  # no time passed
    assert (again.id, again.attempts) == (mid, 2)
    assert queue.counts() == QueueCounts(visible=0, in_flight=1, dead=0)


def test_extend_keeps_the_message_invisible(harness: Harness) -> None:
    queue = harness.make()
    send_one(queue)
    (held,) = queue.receive(visibility_timeout=SHORT)
    queue.extend(held, LONG)
    harness.expire()
    assert queue.receive() == []
    assert queue.counts() == QueueCounts(visible=0, in_flight=1, dead=0)
    queue.ack(held)
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)


def test_dead_letter_after_max_attempts_with_last_reason(harness: Harness) -> None:
    queue = harness.make(max_attempts=3)
    mid = send_one(queue, b"poison")
    send_one(queue, b"healthy")
    for attempt in (1, 2, 3):
        batch = queue.receive(max_messages=10, visibility_timeout=LONG)
        poison = next(m for m in batch if m.body == b"poison")
        assert poison.attempts == attempt
        for message in batch:
            if message is poison:
                queue.release(message, reason=f"boom {attempt}")
            else:
                queue.ack(message)

    assert queue.receive(visibility_timeout=LONG) == []
    (dead,) = queue.dead_letters()
    assert (dead.id, dead.body, dead.attempts, dead.reason) == (mid, b"poison", 3, "boom 3")
    assert dead.failed_at is not None and dead.failed_at.utcoffset() is not None
    assert queue.dead_letters() == [dead]  # reading consumes nothing
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=1)


def test_dead_letter_after_visibility_timeouts(harness: Harness) -> None:
    queue = harness.make(max_attempts=2)
    mid = send_one(queue, b"crashes its worker")
    for attempt in (1, 2):
        (message,) = queue.receive(visibility_timeout=SHORT)
        assert message.attempts == attempt
        harness.expire()

    assert queue.receive(visibility_timeout=LONG) == []
    (dead,) = queue.dead_letters()
    assert (dead.id, dead.body, dead.attempts) == (mid, b"crashes its worker", 2)
    assert "visibility timeout expired" in dead.reason
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=1)


def test_dead_letter_after_timeout_mentions_the_earlier_release_reason(harness: Harness) -> None:
    queue = harness.make(max_attempts=2)
    send_one(queue)
    (first,) = queue.receive(visibility_timeout=LONG)
    queue.release(first, reason="target unreachable")
    queue.receive(visibility_timeout=SHORT)
    harness.expire()

    assert queue.receive() == []
    (dead,) = queue.dead_letters()
    assert "visibility timeout expired" in dead.reason and "target unreachable" in dead.reason


def test_arguments_no_backend_can_honour_are_refused(harness: Harness) -> None:
    queue = harness.make()
    for bad in ({"max_messages": 0}, {"visibility_timeout": -1}, {"wait_seconds": -1},
                {"visibility_timeout": MAX_VISIBILITY_TIMEOUT + 1}, {"visibility_timeout": float("nan")}):
        with pytest.raises(ValueError):
            queue.receive(**bad)
    with pytest.raises(TypeError):
        queue.send_batch(["text, not bytes"])  # type: ignore[list-item]


def test_wait_seconds_returns_early_or_after_the_wait(harness: Harness) -> None:
    queue = harness.make()
    started = time.monotonic()
    assert queue.receive(wait_seconds=0.3) == []
    assert time.monotonic() - started >= 0.3
    send_one(queue)
    started = time.monotonic()
    assert len(queue.receive(wait_seconds=5)) == 1
    assert time.monotonic() - started < 2


# ---- sqlite only ----------------------------------------------------------------------------------


def test_sqlite_named_queues_share_a_file_independently(tmp_path: Path) -> None:
    restore = SqliteQueue(tmp_path / "q.db", "restore")
    standby = SqliteQueue(tmp_path / "q.db", "standby")
    restore.send_batch([b"a", b"b"])
    standby.send_batch([b"c"])
    assert [m.body for m in drain(standby)] == [b"c"]
    assert sorted(m.body for m in drain(restore)) == [b"a", b"b"]
    assert standby.counts() == QueueCounts(visible=0, in_flight=1, dead=0)


def test_sqlite_messages_survive_reopening(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.db", "work")
    ids = queue.send_batch([b"durable"])
    queue.close()
    queue.close()  # idempotent
    with pytest.raises(QueueError, match="closed"):
        queue.receive()
    with SqliteQueue(tmp_path / "q.db", "work") as reopened:
        assert [m.id for m in reopened.receive()] == ids


def test_sqlite_refuses_inconsistent_configuration(tmp_path: Path) -> None:
    SqliteQueue(tmp_path / "q.db", "work", max_attempts=3).close()
    with pytest.raises(ConfigError, match="max_attempts=3"):
        SqliteQueue(tmp_path / "q.db", "work", max_attempts=4)
    for kwargs in ({"name": "spaces are not allowed"}, {"max_attempts": 0}):
        with pytest.raises(ConfigError):
            SqliteQueue(tmp_path / "q.db", **kwargs)
    with pytest.raises(ConfigError, match="does not exist"):
        SqliteQueue(tmp_path / "missing" / "q.db")


def _drain_and_record(queue: SqliteQueue, out: Path, visibility: float) -> None:
    """A worker: process (record) then ack, until every message of the queue is acked."""
    deadline = time.monotonic() + 30  # a bug must fail the test, not hang it
    with out.open("a") as record:
        while time.monotonic() < deadline:
            batch = queue.receive(max_messages=5, visibility_timeout=visibility, wait_seconds=0.05)
            if not batch:
                counts = queue.counts()
                if counts.visible == 0 and counts.in_flight == 0:
                    return
                continue
            for message in batch:
                time.sleep(0.001)  # the work; without any, one process can starve the others (see below)
                record.write(json.dumps([message.id, message.attempts, message.body.decode()]) + "\n")
                record.flush()  # the "apply" is durable before the ack, as a real worker's commit is
                queue.ack(message)
    raise TimeoutError("queue not drained in time")


def _hold_and_hang(queue: SqliteQueue, out: Path, ready: multiprocessing.synchronize.Event) -> None:
    """A worker that takes messages and then hangs until it is killed."""
    held = queue.receive(max_messages=10, visibility_timeout=SHORT)
    out.write_text(json.dumps([m.id for m in held]))
    ready.set()
    time.sleep(60)


def _run_workers(queue: SqliteQueue, tmp_path: Path, count: int, visibility: float) -> list[list[list]]:
    """Run `count` draining workers to the end; return each one's records [id, attempts, body]."""
    # 'fork' on purpose: the children inherit the parent's open queue object, which must notice the new
    # pid and open its own connection rather than share the parent's.
    context = multiprocessing.get_context("fork")
    outs = [tmp_path / f"worker-{i}.jsonl" for i in range(count)]
    workers = [context.Process(target=_drain_and_record, args=(queue, out, visibility)) for out in outs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=40)
        assert worker.exitcode == 0
    return [[json.loads(line) for line in out.read_text().splitlines()] for out in outs]


def test_sqlite_many_processes_process_each_message_exactly_once(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.db", "restore")
    bodies = [f"unit-{i}" for i in range(500)]
    ids = queue.send_batch([b.encode() for b in bodies])

    per_worker = _run_workers(queue, tmp_path, count=4, visibility=LONG)
    records = [record for worker in per_worker for record in worker]

    assert sorted(mid for mid, _, _ in records) == sorted(ids)  # none lost, none twice
    assert sorted(body for _, _, body in records) == sorted(bodies)
    assert {attempts for _, attempts, _ in records} == {1}
    # The work really was shared. SQLite's busy handler is not fair: processes that do no work between
    # calls can leave one of them with everything; the 1 ms of "work" per message avoids that here.
    assert sum(1 for worker in per_worker if worker) > 1
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)
    assert queue.dead_letters() == []


def test_sqlite_killed_worker_messages_come_back(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.db", "restore")
    ids = queue.send_batch([f"unit-{i}".encode() for i in range(100)])
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    held_file = tmp_path / "held.json"
    victim = context.Process(target=_hold_and_hang, args=(queue, held_file, ready))
    victim.start()
    assert ready.wait(timeout=10)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=10)
    assert victim.exitcode == -signal.SIGKILL
    held = json.loads(held_file.read_text())
    assert len(held) == 10
    assert queue.counts().in_flight == 10  # still leased to the dead worker until the timeout

    records = [record for worker in _run_workers(queue, tmp_path, count=3, visibility=LONG)
               for record in worker]

    assert sorted(mid for mid, _, _ in records) == sorted(ids)  # nothing lost, nothing twice
    attempts = {mid: n for mid, n, _ in records}
    assert {attempts[mid] for mid in held} == {2}
    assert queue.counts() == QueueCounts(visible=0, in_flight=0, dead=0)


# ---- SQS only: setup, encoding ------------------------------------------------------------------


def test_sqs_queue_requires_a_consistent_dead_letter_queue(aws: object) -> None:
    plain = aws.create_queue(QueueName="no-dlq")["QueueUrl"]
    with pytest.raises(ConfigError, match="no dead-letter queue"):
        SqsQueue(plain, client=aws)
    url, dlq_url = create_sqs_queue(aws, "work", max_attempts=3)
    assert create_sqs_queue(aws, "work", max_attempts=3) == (url, dlq_url)  # idempotent
    with pytest.raises(ConfigError, match="before max_attempts=5"):
        SqsQueue(url, client=aws, max_attempts=5)
    with pytest.raises(ConfigError, match="not its redrive target"):
        SqsQueue(url, client=aws, max_attempts=3, dead_letter_url=plain)
    assert SqsQueue(url, client=aws, max_attempts=3).dead_letter_url == dlq_url


def test_sqs_redrive_backstop_is_reported(aws: object) -> None:
    # A queue whose redrive acts at max_attempts (not max_attempts + 1, as create_sqs_queue sets it):
    # SQS moves the message itself, without reason or time, and dead_letters still reports it.
    dlq = aws.create_queue(QueueName="backstop-dlq")["QueueUrl"]
    arn = aws.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1})
    url = aws.create_queue(QueueName="backstop", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    queue = SqsQueue(url, client=aws, max_attempts=1)
    mid = send_one(queue, b"orphan")
    (message,) = queue.receive(visibility_timeout=SHORT)
    queue.extend(message, 0)  # let it expire at once
    assert queue.receive() == []
    (dead,) = queue.dead_letters()
    assert (dead.id, dead.body, dead.attempts, dead.failed_at) == (mid, b"orphan", 1, None)
    assert "redrive policy" in dead.reason


def test_sqs_foreign_message_is_dead_lettered_not_retried_forever(aws: object) -> None:
    url, _ = create_sqs_queue(aws, "work")
    queue = SqsQueue(url, client=aws)
    aws.send_message(QueueUrl=url, MessageBody="not written by ledgerdr")
    assert queue.receive() == []
    (dead,) = queue.dead_letters()
    assert "unreadable body" in dead.reason and dead.body == b"not written by ledgerdr"


# ---- open_queue ---------------------------------------------------------------------------------


def test_open_queue_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_queue(f"sqlite://{tmp_path.as_posix()}/a.db?name=restore&max_attempts=3")
    assert isinstance(absolute, SqliteQueue)
    assert (absolute.name, absolute.max_attempts) == ("restore", 3)
    assert Path(absolute.path) == tmp_path / "a.db"
    monkeypatch.chdir(tmp_path)
    relative = open_queue("sqlite:b.db", clock=FakeClock())
    assert (Path(relative.path), relative.name) == (tmp_path / "b.db", "default")
    send_one(relative)
    assert open_queue(relative.url).counts().visible == 1  # its url opens the same queue


def test_open_queue_sqs_urls(aws: object) -> None:
    url, _ = create_sqs_queue(aws, "restore-work", max_attempts=4)
    by_url = open_queue(url, client=aws, max_attempts=4)
    by_name = open_queue(f"sqs://restore-work?region={REGION}&max_attempts=4")
    assert isinstance(by_url, SqsQueue) and isinstance(by_name, SqsQueue)
    assert by_name.url == by_url.url == url
    send_one(by_url)
    assert by_name.counts().visible == 1
    by_name.close()


@pytest.mark.parametrize("url, options, problem", [
    ("ftp://host/queue", {}, "unknown queue URL"),
    ("queue.db", {}, "unknown queue URL"),
    ("sqlite://host/queue.db", {}, "no file path"),
    ("sqlite:q.db?colour=blue", {}, "unknown option"),
    ("sqlite:q.db", {"region": REGION}, "unknown option"),
    ("sqlite:q.db?max_attempts=two", {}, "must be an integer"),
    ("sqlite:q.db?name=a", {"name": "b"}, "conflicts"),
    ("sqs://a/b/c", {}, "sqs://NAME"),
])
def test_open_queue_refuses_bad_urls(url: str, options: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        open_queue(url, **options)
    assert isinstance(caught.value, LedgerDRError) and exit_code_for(caught.value) == 2
