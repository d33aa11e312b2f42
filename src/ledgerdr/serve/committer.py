"""Group commit: the sessions of a ledger commit through one connection, many transactions per fsync.

With full durability a commit costs one fsync, and a ledger's commits are serial (one chain), so one
session at a time is bound by the disk's fsync rate. Here a session's CommitTransaction queues its
transaction and then takes the writer's lock. The thread that gets it (the leader) takes every transaction
queued at that moment and commits them with `Ledger.commit_group` in one SQLite transaction — one fsync for
all of them — and answers each. Threads that queued while it worked find their answer when they get the
lock in turn, or lead the next group. No artificial delay: while one group is being fsynced, the next one
gathers by itself. Each transaction is still validated (OCC) and chained one after the other, so the
journal is exactly what serial commits would have written; a session is answered only after its group's
fsync.

Why leaders rather than a writer thread: a lone session then commits on its own thread, with no hand-over
to another thread and back (two wake-ups and two GIL hand-overs per commit, ~0.1 ms of CPU measured).

A session that commits alone again (its group is its own transaction alone, and so was the group before:
one session at work) commits through its own connection, the one the transaction read through, as the
embedded driver does: that connection's page cache then stays valid for the session's next reads (a commit
by another connection makes SQLite drop it, and the next transaction re-reads its pages from the WAL with a
pread each), and the commit continues from that connection's cached chain head. Other groups go through the
writer's connection, warm from the groups before: with many sessions a session's own connection is stale
anyway (others commit between its transactions), and committing through it would make the writer's stale
too. Either way SQLite's data_version tells a connection's cached chain head whether it is still current.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import LedgerError
from ..ledger.engine import Ledger
from ..ledger.staged import CommitResult
from ..ledger.storage import Durability
from ..ledger.transaction import Transaction

MAX_GROUP = 64


class _Waiter:
    """One queued transaction and, once its group is done, its outcome. Written by the leader while it
    holds the writer lock and read by its session only after taking that lock in turn, so the lock orders
    the two: no Future (a Condition per commit, a notify per answer) is needed."""

    __slots__ = ("txn", "done", "result", "error")

    def __init__(self, txn: Transaction) -> None:
        self.txn = txn
        self.done = False
        self.result: CommitResult | None = None
        self.error: BaseException | None = None


class GroupCommitter:
    """The writer of one ledger file. Thread-safe `commit`; `close` once no commit is in progress."""

    def __init__(self, path: Path, durability: Durability | str, max_group: int = MAX_GROUP) -> None:
        self._ledger = Ledger.open(path, durability=durability)
        self._queue: list[_Waiter] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()  # held by the leader while it commits a group
        self._max_group = max_group
        self._lone: Ledger | None = None  # the session connection whose transaction made the last group alone
        self.groups = 0  # groups committed (each one fsync), for the benchmark

    def commit(self, txn: Transaction, own: Ledger | None = None) -> CommitResult | None:
        """Commit `txn` in the next group; returns once it is durable. Raises its LedgerError (OccConflict…).
        `own`: the Ledger `txn` was begun on, used only by the calling thread, which commits through it
        when its group holds `txn` alone, as the group before held its previous one."""
        waiter = _Waiter(txn)
        with self._queue_lock:
            self._queue.append(waiter)
        while not waiter.done:
            with self._writer:
                if not waiter.done:  # no leader took it yet: lead the oldest group (ours, or one before it)
                    with self._queue_lock:
                        group, self._queue[:self._max_group] = self._queue[:self._max_group], []
                    lone = own is not None and len(group) == 1 and group[0] is waiter
                    self._commit(group, own if lone and own is not None and own is self._lone else self._ledger)
                    self._lone = own if lone else None
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def close(self) -> None:
        with self._writer:
            self._ledger.close()

    def _commit(self, group: list[_Waiter], ledger: Ledger) -> None:
        try:
            results = ledger.commit_group([waiter.txn for waiter in group])
        except BaseException as exc:  # the whole group rolled back: every waiter learns why
            for waiter in group:
                waiter.error, waiter.done = exc, True
            return
        self.groups += 1
        for waiter, result in zip(group, results, strict=True):
            if isinstance(result, LedgerError):
                waiter.error = result
            else:
                waiter.result = result
            waiter.done = True
