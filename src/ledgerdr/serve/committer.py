"""Group commit: one writer thread per ledger commits what the sessions hand it, many at a time.

With full durability a commit costs one fsync, and a ledger's commits are serial (one chain), so one
session at a time is bound by the disk's fsync rate. Here a session's CommitTransaction queues its
transaction and waits; the ledger's writer takes every transaction queued at that moment and commits
them with `Ledger.commit_group` in one SQLite transaction — one fsync for all of them — then answers
each. No artificial delay: while one group is being fsynced, the next one gathers by itself. Each
transaction is still validated (OCC) and chained one after the other, so the journal is exactly what
serial commits would have written; a session is answered only after its group's fsync.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from pathlib import Path

from ..errors import LedgerError
from ..ledger.engine import Ledger
from ..ledger.staged import CommitResult
from ..ledger.storage import Durability
from ..ledger.transaction import Transaction

MAX_GROUP = 64


class GroupCommitter:
    """The writer of one ledger file. Thread-safe `commit`; `close` stops the writer thread."""

    def __init__(self, path: Path, durability: Durability | str, max_group: int = MAX_GROUP) -> None:
        self._ledger = Ledger.open(path, durability=durability)
        self._queue: queue.SimpleQueue[tuple[Transaction, Future] | None] = queue.SimpleQueue()
        self._max_group = max_group
        self.groups = 0  # groups committed (each one fsync), for the benchmark
        self._thread = threading.Thread(target=self._run, name=f"commit-{path.stem}", daemon=True)
        self._thread.start()

    def commit(self, txn: Transaction) -> CommitResult | None:
        """Commit `txn` in the next group; returns once it is durable. Raises its LedgerError (OccConflict…)."""
        future: Future = Future()
        self._queue.put((txn, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._ledger.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            stop = False
            while len(group) < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Transaction, Future]]) -> None:
        try:
            results = self._ledger.commit_group([txn for txn, _ in group])
        except BaseException as exc:  # the whole group rolled back: every waiter learns why
            for _, future in group:
                future.set_exception(exc)
            return
        self.groups += 1
        for (_, future), result in zip(group, results, strict=True):
            if isinstance(result, LedgerError):
                future.set_exception(result)
            else:
                future.set_result(result)
