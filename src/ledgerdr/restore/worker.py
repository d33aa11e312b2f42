"""Restore workers: receive a unit, verify it, apply it in one target transaction, record, ack.

A worker killed at any point loses nothing: the message comes back after its visibility timeout
and re-applying is harmless (the target skips a unit it already applied, and history rows are
inserted once). A unit that keeps failing goes to the dead-letter queue with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ObjectExists, StoreError
from ..queues import Queue
from ..stores import Location
from ..targets.base import Target
from .plan import WorkUnit
from .rows import load_rows
from .snapshot import gc_paused, last_block_of
from .units import UnitResult, journal_leaves, load_unit, result_of

RESULTS = "units/"
LEAVES_SUFFIX = ".leaves"


def read_leaves(state: Location, unit_id: str) -> bytes | None:
    """The journal leaves a worker recorded for `unit_id`, or None (an older worker, none yet, or a
    record that cannot be read as written: the caller then reads and verifies the unit again)."""
    try:
        return state.store.get(state.key(RESULTS + unit_id + LEAVES_SUFFIX))
    except StoreError:
        return None


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
    if target.applies_rows:  # the C verifier's rows, when it reads the unit's object
        rows = load_rows(source.store, unit)
        if rows is not None:
            if rows.strand_id:
                target.open_lineage(rows.strand_id, ledger_name or "")
            target.apply_rows(unit.unit_id, list(rows.tables.values()), rows.rows, rows.blocks,  # type: ignore[attr-defined]
                              rows.last_block)
            return rows.result(), rows.leaves()
    content = load_unit(source.store, unit)
    if content.strand_id:
        target.open_lineage(content.strand_id, ledger_name or "")
    target.apply(unit.unit_id, list(content.tables.values()), content.revisions, content.redactions,
                 last_block_of(content), **_journal_of(target, content))
    return result_of(content), journal_leaves(content)


def _journal_of(target: Target, content) -> dict:
    """Targets that keep the journal itself (the embedded ledger) also get the blocks' bytes."""
    if getattr(target, "keeps_journal", False):
        return {"blocks": content.blocks}
    return {}


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


def run_worker(queue: Queue, source: Location, target: Target, state: Location, *, ledger_name: str | None = None,
               visibility_timeout: float = 300.0, exit_when_idle: bool = True,
               on_unit: Callable[[str, int], None] | None = None) -> WorkerStats:
    """Process units until the queue is empty (or forever with exit_when_idle=False)."""
    stats = WorkerStats()
    while True:
        messages = queue.receive(1, visibility_timeout, wait_seconds=0.5)
        if not messages:
            counts = queue.counts()
            if exit_when_idle and counts.visible == 0 and counts.in_flight == 0:
                return stats
            time.sleep(0.05)
            continue
        message = messages[0]
        try:
            unit = WorkUnit.from_bytes(message.body)
            result, leaves = _apply_unit(source, target, unit, ledger_name)
            record_result(state, result, leaves)
        except Exception as exc:  # every failure is the unit's: release it with the reason, never crash
            stats.failed += 1
            queue.release(message, reason=f"{type(exc).__name__}: {exc}"[:2000])
            continue
        queue.ack(message)
        stats.applied += 1
        if on_unit:
            on_unit(unit.unit_id, result.revisions)
