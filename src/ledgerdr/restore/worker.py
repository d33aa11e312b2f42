"""Restore workers: receive a unit, verify it, apply it in one target transaction, record, ack.

A worker killed at any point loses nothing: the message comes back after its visibility timeout
and re-applying is harmless (the target skips a unit it already applied, and history rows are
inserted once). A unit that keeps failing goes to the dead-letter queue with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import ObjectExists, RestoreError, StoreError, VerificationError, exit_code_for
from ..queues import Queue
from ..snapshots import gc_paused
from ..stores import Location, open_location
from ..targets import open_target
from ..targets.base import Target
from .rows import load_rows
from .shapes import UnitResult, WorkUnit
from .snapshot import is_snapshot_unit, last_block_of
from .snapshot_rows import load_snapshot_rows
from .units import journal_leaves, load_unit, result_of

RESULTS = "units/"
LEAVES_SUFFIX = ".leaves"
FAILED = "failed/"


def is_permanent(exc: BaseException) -> bool:
    """A failure that the same unit will meet again however often it is retried: a damaged or
    undecodable object, a broken chain, another lineage in the target, a missing object or a denied
    access (store errors not marked retryable). Connection drops and throttling are not."""
    if isinstance(exc, StoreError):
        return not exc.retryable
    return isinstance(exc, VerificationError | RestoreError)


def failure_reason(unit: WorkUnit, exc: BaseException) -> str:
    """The reason a unit failed, naming its object and, where the error has them, the block addresses."""
    text = f"{type(exc).__name__}: {exc}"
    problems = exc.problems if isinstance(exc, VerificationError) else []
    addresses = [p.block_address for p in problems if p.block_address]
    where = f" at block {', '.join(addresses[:3])}" if addresses else ""
    return f"unit {unit.unit_id} (object {unit.key}, blocks {unit.first_seq}..{unit.last_seq}){where}: {text}"


def record_failure(failures: Location, unit: WorkUnit, exc: BaseException) -> None:
    """Record a permanent failure (first one per unit wins): the restore stops and reports it, with the exit
    code of what failed (a damaged object 4, an unreadable one 3, another lineage 7), as the same failure met
    while planning would give."""
    body = orjson.dumps({"unit": unit.unit_id, "key": unit.key, "reason": failure_reason(unit, exc)[:4000],
                         "exit_code": int(exit_code_for(exc))})
    try:
        failures.store.put(failures.key(FAILED + unit.unit_id + ".json"), body)
    except ObjectExists:
        pass


def read_failures(failures: Location) -> list[dict]:
    """The permanent failures recorded so far, ordered by unit id (block order)."""
    return [orjson.loads(failures.store.get(info.key)) for info in failures.store.list(failures.folder(FAILED))
            if info.key.endswith(".json")]


def read_leaves(state: Location, unit_id: str) -> bytes | None:
    """The journal leaves a worker recorded for `unit_id`, or None (an older worker, none yet, or a
    record that cannot be read as written: the caller then reads and verifies the unit again)."""
    try:
        return state.store.get(state.key(RESULTS + unit_id + LEAVES_SUFFIX))
    except StoreError:
        return None


@dataclass(frozen=True)
class WorkerSpec:
    """What a restore worker works with, built once by whoever starts it (`restore`'s pool, `ledgerdr worker`)
    and passed whole, to a worker process too (it holds only strings and numbers).

    `state_url` is where unit results are recorded (`record_result`); `ledger_name` is recorded with the
    lineage by an empty target; `failures_url`, when set, is where a permanent failure stops every worker
    of the restore (see `run_worker`)."""

    source_url: str
    target_url: str
    state_url: str
    ledger_name: str | None = None
    failures_url: str | None = None
    visibility_timeout: float = 300.0
    source_options: dict[str, Any] = field(default_factory=dict)  # a configured repository's store options


def open_state(url: str) -> Location:
    """A restore's own scratch folder (results, failures): plain files, no retention lock."""
    return open_location(url, lock_mode=None)


@dataclass
class WorkerStats:
    applied: int = 0
    skipped: int = 0
    failed: int = 0


def apply_unit(source: Location, target: Target, unit: WorkUnit, ledger_name: str | None) -> UnitResult:
    return _apply_unit(source, target, unit, ledger_name)[0]


def _apply_unit(source: Location, target: Target, unit: WorkUnit,
                ledger_name: str | None) -> tuple[UnitResult, bytes]:
    """Load (verify), apply; the unit's result and its journal leaves (`units.journal_leaves`)."""
    # A unit is held in memory whole (every block, until the target's transaction commits): hundreds of
    # thousands of objects, none of them garbage, that the cyclic collector would otherwise rescan again
    # and again while they are built (measured: 23 s of a 100 s restore went to collections). The unit is
    # freed (its frame returns) before the collector is back on, so no collection then scans it.
    with gc_paused():
        return _load_and_apply(source, target, unit, ledger_name)


def _load_and_apply(source: Location, target: Target, unit: WorkUnit,
                    ledger_name: str | None) -> tuple[UnitResult, bytes]:
    if target.applies_rows:  # the C verifier's rows, when it reads the unit's object (or snapshot part)
        rows = load_snapshot_rows(source.store, unit) if is_snapshot_unit(unit) else load_rows(source.store, unit)
        if rows is not None:
            if rows.strand_id:
                target.open_lineage(rows.strand_id, ledger_name or "")
            target.apply_rows(unit.unit_id, list(rows.tables.values()), rows.rows, rows.blocks, rows.last_block)
            return rows.result(), rows.leaves()
    content = load_unit(source.store, unit)
    if content.strand_id:
        target.open_lineage(content.strand_id, ledger_name or "")
    # Targets that keep the journal itself (the embedded ledger) also get the blocks.
    target.apply(unit.unit_id, list(content.tables.values()), content.revisions, content.redactions,
                 last_block_of(content), blocks=content.blocks if target.keeps_journal else ())
    return result_of(content), journal_leaves(content)


def process_unit(source: Location, target: Target, state: Location, unit: WorkUnit,
                 ledger_name: str | None = None) -> UnitResult:
    """Verify and apply one unit in the target, then record its result (what a worker does with each
    message before acking it; the Lambda worker calls it per SQS record). Idempotent."""
    result, leaves = _apply_unit(source, target, unit, ledger_name)
    record_result(state, result, leaves)
    return result


def record_result(state: Location, result: UnitResult, leaves: bytes | None = None) -> None:
    """Record a unit's result; `leaves` (written first, so a result implies them) spare finalize a
    second read of the unit. Idempotent: a re-delivered unit's records are the first worker's."""
    if leaves is not None:
        try:
            state.store.put(state.key(RESULTS + result.unit_id + LEAVES_SUFFIX), leaves)
        except ObjectExists:
            pass
    try:
        state.store.put(state.key(RESULTS + result.unit_id + ".json"), result.to_bytes())
    except ObjectExists:
        pass  # a re-delivered unit: the first worker's record stands (the content is the same)


def read_results(state: Location) -> dict[str, UnitResult]:
    return {info.key.rsplit("/", 1)[-1][:-5]: UnitResult.from_bytes(state.store.get(info.key))
            for info in state.store.list(state.folder(RESULTS)) if info.key.endswith(".json")}


def run_worker(queue: Queue, spec: WorkerSpec, *, exit_when_idle: bool = True,
               on_unit: Callable[[str, int], None] | None = None) -> WorkerStats:
    """Process units until the queue is empty (or forever with exit_when_idle=False).

    With `spec.failures_url`, a permanent failure (`is_permanent`) is recorded there, its message acked, and
    this worker stops, as does every worker sharing it before its next unit: the restore fails at once with
    the reason instead of retrying what cannot succeed. Without it (a `ledgerdr worker` on a shared queue),
    every failure is released for retry and ends as a dead letter with its reason."""
    opened = _Opened(open_location(spec.source_url, **spec.source_options), open_target(spec.target_url), open_state(spec.state_url),
                     open_state(spec.failures_url) if spec.failures_url else None)
    try:
        return _work(queue, spec, opened, exit_when_idle, on_unit)
    finally:
        opened.target.close()


def _idle(queue: Queue) -> bool:
    """Nothing left to receive and nothing in flight (a unit in flight elsewhere may still be released)."""
    counts = queue.counts()
    return counts.visible == 0 and counts.in_flight == 0


@dataclass(frozen=True)
class _Opened:
    """What a `WorkerSpec` names, opened once per worker."""

    source: Location
    target: Target
    state: Location
    failures: Location | None


def _work(queue: Queue, spec: WorkerSpec, opened: _Opened, exit_when_idle: bool,
          on_unit: Callable[[str, int], None] | None) -> WorkerStats:
    source, target, state, failures = opened.source, opened.target, opened.state, opened.failures
    stats = WorkerStats()
    while True:
        if failures is not None and read_failures(failures):
            return stats  # another worker met a permanent failure: the restore stops
        # A worker that exits when idle looks without waiting first: at the end of a restore the queue is
        # empty and a waiting receive would add its whole wait to the RTO (half a second per restore).
        messages = queue.receive(1, spec.visibility_timeout) if exit_when_idle else []
        if not messages:
            if exit_when_idle and _idle(queue):
                return stats
            messages = queue.receive(1, spec.visibility_timeout, wait_seconds=0.5)
        if not messages:
            time.sleep(0.05)
            continue
        message = messages[0]
        try:
            unit = WorkUnit.from_bytes(message.body)
            result = process_unit(source, target, state, unit, spec.ledger_name)
        except Exception as exc:  # every failure is the unit's: record or release it, never crash
            stats.failed += 1
            if failures is not None and is_permanent(exc):
                record_failure(failures, unit, exc)
                queue.ack(message)
                return stats
            queue.release(message, reason=f"{type(exc).__name__}: {exc}"[:2000])
            continue
        queue.ack(message)
        stats.applied += 1
        if on_unit:
            on_unit(unit.unit_id, result.revisions)
