"""`SqliteQueue`: the `Queue` on one SQLite file, for a laptop or a single host.

Many processes on the same host may share one file (SQLite's locking is only reliable on a local disk;
workers on several hosts need SQS). Several named queues live in one file.

How it works: every message is a row; `invisible_until` is the time its current delivery expires (or the
time it became visible). Receiving claims rows inside a short `BEGIN IMMEDIATE` transaction, gives each
delivery a fresh random receipt and pushes `invisible_until` forward; ack/release/extend only touch the
row when the receipt still matches, which is how a worker whose lease expired is told `StaleReceipt`
instead of deleting a message another worker now holds. Deliveries that expired on their last allowed
attempt are moved to the dead-letter table by whichever call looks next (receive, counts, dead_letters).

Durability: WAL with `synchronous=FULL`. NORMAL would survive a process crash but may lose the last
commits on power loss; losing an ack only causes a redelivery, but losing a send loses a work unit that
the planner already recorded as queued. One fsync per commit is cheap next to the work units themselves.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from ..errors import ConfigError, QueueError, QueueUnavailable, StaleReceipt
from .base import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_VISIBILITY_TIMEOUT,
    PORTABLE_MAX_BODY_BYTES,
    DeadLetter,
    Message,
    QueueCounts,
    QueueProperties,
    check_bodies,
    check_receive_args,
    check_visibility_timeout,
    timeout_reason,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0  # a claim holds the write lock for milliseconds; 30 s means "something is wrong"
_POLL_MIN, _POLL_MAX = 0.01, 0.25  # receive(wait_seconds) polls with a growing sleep between these
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")  # SQS's rule, so a name works on both backends

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS queue_registry ("
    " name TEXT PRIMARY KEY, max_attempts INTEGER NOT NULL, created_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS queue_messages ("
    " seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, id TEXT NOT NULL UNIQUE, body BLOB NOT NULL,"
    " sent_at REAL NOT NULL, invisible_until REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " expiries INTEGER NOT NULL DEFAULT 0, receipt TEXT, last_reason TEXT)",
    # receive takes the rows visible longest first, straight from this index (no sort, no scan).
    "CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, invisible_until, seq)",
    # the dead-letter sweep looks only at leased rows, which are few however long the queue is.
    "CREATE INDEX IF NOT EXISTS queue_messages_leased ON queue_messages (queue, invisible_until)"
    " WHERE receipt IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS queue_dead_letters ("
    " queue TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL, attempts INTEGER NOT NULL,"
    " reason TEXT NOT NULL, failed_at REAL NOT NULL, PRIMARY KEY (queue, id))",
)

PROPERTIES = QueueProperties(
    name="sqlite",
    max_message_bytes=PORTABLE_MAX_BODY_BYTES,
    max_visibility_timeout=MAX_VISIBILITY_TIMEOUT,
    refuses_stale_receipt=True,
    exact_counts=True,
    atomic_batches=True,
    multi_host=False,
)

# SQLite forbids using a connection in a process forked after it was opened, and closing it counts as
# using it (the child's copy of SQLite's lock bookkeeping no longer matches the kernel's). A child parks
# inherited connections here, unclosed, and opens its own.
_INHERITED: list[sqlite3.Connection] = []
_LIVE: weakref.WeakSet[SqliteQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another parent thread at fork time would stay held forever in the child.
    for queue in list(_LIVE):
        queue._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SqliteQueue:
    """A durable work queue in the SQLite file `path`, queue `name` within it.

    `clock` returns epoch seconds and decides visibility (tests inject a fake one); `wait_seconds` in
    `receive` always waits in real time. `max_attempts` is recorded with the queue when first created:
    opening it later with another value raises `ConfigError`, because processes that disagree on it would
    dead-letter inconsistently. The object may be shared by threads (calls serialize) and used in forked
    children (each process opens its own connection on first use).
    """

    properties = PROPERTIES

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str = "default",
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.name = name
        self.max_attempts = max_attempts
        self.url = f"sqlite://{quote(Path(self.path).as_posix())}?name={name}"
        self._clock = clock
        self._validate()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._closed = False
        _LIVE.add(self)
        with self._transaction("open") as conn:
            self._register(conn)

    # ---- the Queue interface -------------------------------------------------------------------

    def send_batch(self, bodies: Sequence[bytes]) -> list[str]:
        """Store all bodies in one transaction (all or none); return their new ids in order."""
        check_bodies(self.url, bodies, PROPERTIES.max_message_bytes)
        ids = [str(uuid.uuid4()) for _ in bodies]
        if not ids:
            return ids
        with self._transaction("send") as conn:
            now = self._clock()
            conn.executemany(
                "INSERT INTO queue_messages (queue, id, body, sent_at, invisible_until) VALUES (?,?,?,?,?)",
                [(self.name, mid, bytes(body), now, now) for mid, body in zip(ids, bodies, strict=True)],
            )
        return ids

    def receive(
        self, max_messages: int = 1, visibility_timeout: float = 30.0, wait_seconds: float = 0.0
    ) -> list[Message]:
        """Claim up to `max_messages` visible messages, waiting up to `wait_seconds` for the first."""
        check_receive_args(max_messages, visibility_timeout, wait_seconds)
        deadline = time.monotonic() + wait_seconds
        pause = _POLL_MIN
        while True:
            messages = self._claim(max_messages, visibility_timeout)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, _POLL_MAX)

    def ack(self, message: Message) -> None:
        """Delete the message. Raises `StaleReceipt` when this delivery no longer holds it (including a
        second ack). A delivery whose visibility expired but that nobody took since still acks fine."""
        with self._transaction("ack", message.id) as conn:
            cur = conn.execute(
                "DELETE FROM queue_messages WHERE queue=? AND id=? AND receipt=?",
                (self.name, message.id, message.receipt),
            )
            if cur.rowcount == 0:
                raise self._stale(conn, "ack", message)

    def release(self, message: Message, *, reason: str | None = None) -> None:
        """Make the message visible again now, or dead-letter it if this was its last allowed delivery.
        Raises `StaleReceipt` when this delivery no longer holds it."""
        with self._transaction("release", message.id) as conn:
            row = conn.execute(
                "SELECT attempts, last_reason FROM queue_messages WHERE queue=? AND id=? AND receipt=?",
                (self.name, message.id, message.receipt),
            ).fetchone()
            if row is None:
                raise self._stale(conn, "release", message)
            attempts, last_reason = row
            if attempts >= self.max_attempts:
                final = reason or last_reason or f"released after {attempts} deliveries without a reason"
                self._bury(conn, [(message.id, final)])
            else:
                conn.execute(
                    "UPDATE queue_messages SET receipt=NULL, invisible_until=?, "
                    "last_reason=COALESCE(?, last_reason) WHERE queue=? AND id=?",
                    (self._clock(), reason, self.name, message.id),
                )

    def extend(self, message: Message, visibility_timeout: float) -> None:
        """Keep the message invisible for `visibility_timeout` more seconds from now. Raises
        `StaleReceipt` when this delivery no longer holds it."""
        check_visibility_timeout(visibility_timeout)
        with self._transaction("extend", message.id) as conn:
            cur = conn.execute(
                "UPDATE queue_messages SET invisible_until=? WHERE queue=? AND id=? AND receipt=?",
                (self._clock() + visibility_timeout, self.name, message.id, message.receipt),
            )
            if cur.rowcount == 0:
                raise self._stale(conn, "extend", message)

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter of this queue, oldest failure first. Reading consumes nothing."""
        with self._transaction("dead_letters") as conn:
            self._sweep(conn, self._clock())
            rows = conn.execute(
                "SELECT id, body, attempts, reason, failed_at FROM queue_dead_letters WHERE queue=? "
                "ORDER BY failed_at, id",
                (self.name,),
            ).fetchall()
        return [
            DeadLetter(mid, bytes(body), attempts, reason, datetime.fromtimestamp(failed_at, UTC))
            for mid, body, attempts, reason, failed_at in rows
        ]

    def counts(self) -> QueueCounts:
        """Exact counts at one instant (after moving expired last deliveries to the dead letters)."""
        with self._transaction("counts") as conn:
            now = self._clock()
            self._sweep(conn, now)
            total, in_flight = conn.execute(
                "SELECT count(*), count(receipt IS NOT NULL AND invisible_until > ? OR NULL) "
                "FROM queue_messages WHERE queue=?",
                (now, self.name),
            ).fetchone()
            (dead,) = conn.execute(
                "SELECT count(*) FROM queue_dead_letters WHERE queue=?", (self.name,)
            ).fetchone()
        return QueueCounts(visible=total - in_flight, in_flight=in_flight, dead=dead)

    def close(self) -> None:
        """Close this process's connection. Idempotent; the queue cannot be used afterwards."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                if self._pid == os.getpid():
                    self._conn.close()
                else:
                    _INHERITED.append(self._conn)  # the parent's: closing it here would be a use
            self._conn = None

    def __enter__(self) -> SqliteQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteQueue({self.url!r}, max_attempts={self.max_attempts})"

    # ---- claiming and dead-lettering ---------------------------------------------------------------

    def _claim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        with self._transaction("receive") as conn:
            now = self._clock()
            self._sweep(conn, now)
            rows = conn.execute(
                "SELECT id, body, attempts, receipt IS NOT NULL FROM queue_messages "
                "WHERE queue=? AND invisible_until <= ? ORDER BY invisible_until, seq LIMIT ?",
                (self.name, now, max_messages),
            ).fetchall()
            messages = [Message(mid, bytes(body), secrets.token_urlsafe(18), attempts + 1)
                        for mid, body, attempts, _ in rows]
            # A row that still has a receipt was delivered and never acked or released: it expired.
            conn.executemany(
                "UPDATE queue_messages SET attempts=attempts+1, expiries=expiries+?, receipt=?, "
                "invisible_until=? WHERE queue=? AND id=?",
                [(int(expired), m.receipt, now + visibility_timeout, self.name, m.id)
                 for m, (*_, expired) in zip(messages, rows, strict=True)],
            )
        return messages

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        """Dead-letter the messages whose last allowed delivery expired."""
        rows = conn.execute(
            "SELECT id, attempts, expiries, last_reason FROM queue_messages WHERE queue=? "
            "AND receipt IS NOT NULL AND invisible_until <= ? AND attempts >= ?",
            (self.name, now, self.max_attempts),
        ).fetchall()
        self._bury(conn, [(mid, timeout_reason(expiries + 1, attempts, last))
                          for mid, attempts, expiries, last in rows])

    def _bury(self, conn: sqlite3.Connection, reasons: list[tuple[str, str]]) -> None:
        """Move messages to the dead letters, inside the caller's transaction."""
        failed_at = self._clock()
        for mid, reason in reasons:
            log.warning("queue %s: message %s dead-lettered: %s", self.url, mid, reason)
            conn.execute(
                "INSERT OR REPLACE INTO queue_dead_letters (queue, id, body, attempts, reason, failed_at) "
                "SELECT queue, id, body, attempts, ?, ? FROM queue_messages WHERE queue=? AND id=?",
                (reason, failed_at, self.name, mid),
            )
            conn.execute("DELETE FROM queue_messages WHERE queue=? AND id=?", (self.name, mid))

    def _stale(self, conn: sqlite3.Connection, op: str, message: Message) -> StaleReceipt:
        """Explain why a receipt no longer holds its message."""
        row = conn.execute(
            "SELECT attempts FROM queue_messages WHERE queue=? AND id=?", (self.name, message.id)
        ).fetchone()
        if row is not None:
            why = f"delivered again since (now delivery {row[0]}, this receipt was delivery {message.attempts})"
        elif conn.execute("SELECT 1 FROM queue_dead_letters WHERE queue=? AND id=?",
                          (self.name, message.id)).fetchone():
            why = "it was dead-lettered after this delivery's visibility timeout expired"
        else:
            why = "it was acked already"
        return StaleReceipt(self.url, op, why, message_id=message.id,
                            hint="the work may have been done twice; idempotent consumers can ignore this")

    # ---- connections and transactions --------------------------------------------------------------

    def _validate(self) -> None:
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"name {self.name!r} must be 1-80 letters, digits, '-' or '_'")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            problems.append(f"max_attempts must be a positive integer, not {self.max_attempts!r}")
        if not os.path.isdir(os.path.dirname(self.path)):
            problems.append(f"directory {os.path.dirname(self.path)} does not exist")
        if problems:
            raise ConfigError(f"queue {self.url}: " + "; ".join(problems))

    def _register(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:  # not executescript(): it would COMMIT our transaction first
            conn.execute(statement)
        conn.execute("INSERT OR IGNORE INTO queue_meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
        (version,) = conn.execute("SELECT value FROM queue_meta WHERE key='format_version'").fetchone()
        if int(version) > FORMAT_VERSION:
            raise ConfigError(f"queue file {self.path} has format {version}; this ledgerdr reads "
                              f"up to {FORMAT_VERSION}", hint="upgrade ledgerdr")
        conn.execute("INSERT OR IGNORE INTO queue_registry VALUES (?, ?, ?)",
                     (self.name, self.max_attempts, self._clock()))
        (stored,) = conn.execute("SELECT max_attempts FROM queue_registry WHERE name=?",
                                 (self.name,)).fetchone()
        if stored != self.max_attempts:
            raise ConfigError(f"queue {self.url} was created with max_attempts={stored}, "
                              f"not {self.max_attempts}", hint="use the same value or another queue name")

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise QueueError(self.url, "use", "the queue is closed")
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:
                _INHERITED.append(self._conn)  # opened by the parent before fork: never touch it
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so that a claim takes the write lock
        # up front instead of failing to upgrade a read lock halfway (SQLITE_BUSY without waiting).
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _transaction(self, op: str, message_id: str | None = None) -> Iterator[sqlite3.Connection]:
        """One short write transaction; rolled back on any error. SQLite errors become QueueErrors."""
        with self._lock:
            conn = None
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise self._translate(op, exc, message_id) from exc
            except BaseException:
                _rollback(conn)
                raise

    def _translate(self, op: str, exc: sqlite3.Error, message_id: str | None) -> QueueError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return QueueUnavailable(self.url, op, text, message_id=message_id,
                                    hint=f"another process held the queue for over {BUSY_TIMEOUT_SECONDS:g} s")
        return QueueError(self.url, op, text, message_id=message_id,
                          hint="check that the file is on a local disk, writable, and not corrupt")


def queue_names(path: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """The queues in the SQLite file `path` as (name, max_attempts), oldest first; [] when there is no such
    file. Changes nothing (a reader, e.g. the metrics, must not create a queue file or a queue)."""
    if not os.path.isfile(path):
        return []
    try:
        conn = sqlite3.connect(os.fspath(path), timeout=BUSY_TIMEOUT_SECONDS)
        try:
            return [(name, attempts) for name, attempts in conn.execute(
                "SELECT name, max_attempts FROM queue_registry ORDER BY created_at, name")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise QueueError(f"sqlite://{quote(Path(path).as_posix())}", "list", str(exc),
                         hint="check that the file is a ledgerdr queue, readable and not corrupt") from None


def _rollback(conn: sqlite3.Connection | None) -> None:
    if conn is not None and conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
