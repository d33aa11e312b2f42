"""`restore`: plan → queue → workers → finalize → report (DESIGN §3).

A local pool of worker processes shares a durable SQLite queue; `ledgerdr worker` processes on
other machines can join through SQS. Everything a restore needs to resume lives in its state
folder: the plan, the queue, and one result record per applied unit.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from ..errors import ConfigError
from ..journal.layout import new_id
from ..queues.sqlite import SqliteQueue
from ..stores import FileStore, Location, open_location
from ..targets import open_target
from ..targets.base import TableDDL
from ..targets.digest import (
    DigestPart,
    digest_of_journal,
    digest_of_parts,
    digest_of_target,
    digest_part_of_rows,
    journal_entries,
)
from .plan import RestorePlan, WorkUnit, plan_restore
from .units import UnitResult, load_unit, read_journal_leaves, result_of
from .worker import read_leaves, read_results, run_worker


@dataclass
class RestoreReport:
    restore_id: str
    source: str
    target: str
    strategy: str = "backup-restore"
    units: int = 0
    units_applied: int = 0
    revisions: int = 0
    tables: int = 0
    last_seq: int | None = None
    last_block_hash: str | None = None
    last_block_time_ms: int | None = None
    dead_letters: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lost_blocks: list[tuple[int, int]] = field(default_factory=list)
    type_lost: int = 0
    type_lost_examples: list[str] = field(default_factory=list)
    journal_state_digest: str | None = None
    target_state_digest: str | None = None
    # Restored from a snapshot: blocks ..snapshot_last_seq came as state and history (verified by their
    # revision hashes and the snapshot's tip hash), not as journal blocks; a target that keeps the journal
    # holds it from journal_from_seq on.
    snapshot_last_seq: int | None = None
    journal_from_seq: int | None = None
    rto_seconds: float = 0.0
    verdict: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RestoreOptions:
    until: datetime | None = None
    until_block: int | None = None
    allow_gaps: bool = False
    workers: int | None = None  # None: one per core; 0: in this process
    state_dir: Path = Path(".ledgerdr-restores")
    resume: str | None = None
    strategy: str = "backup-restore"
    max_attempts: int = 3
    visibility_timeout: float = 120.0
    use_snapshots: bool = True


def restore(source_url: str, target_url: str, options: RestoreOptions = RestoreOptions(),
            *, on_progress: Callable[[int, int, int], None] | None = None) -> RestoreReport:
    """Restore (or continue restoring) into `target_url`; returns the verified report."""
    started = time.monotonic()
    source = open_location(source_url)
    state_root = options.state_dir
    plan = _load_or_plan(source, options)
    # Unit ids are deterministic (block range + object key), so results are shared by every restore
    # using this state folder: a pilot light or standby target's earlier units count as done.
    results_dir = state_root / "unit-results"
    state = Location(FileStore(results_dir, lock_mode=None), "")
    report = RestoreReport(plan.restore_id, source_url, target_url, options.strategy, units=len(plan.units),
                           lost_blocks=list(plan.gaps))
    target = open_target(target_url)
    try:  # the target is the truth of what it holds (a pilot light or standby was preloaded earlier)
        held = target.applied_units()
    finally:
        target.close()
    pending = [u for u in plan.units if u.unit_id not in held]
    queue = SqliteQueue(state_root / plan.restore_id / "queue.db", name=f"run-{new_id()}",
                        max_attempts=options.max_attempts)
    queue.send_batch([u.to_bytes() for u in pending])
    _run_workers(queue, source_url, target_url, results_dir, plan, options, on_progress,
                 total=len(plan.units), already=len(plan.units) - len(pending))
    report.dead_letters = [{"unit": orjson.loads(d.body).get("key"), "attempts": d.attempts, "reason": d.reason}
                           for d in queue.dead_letters()]
    queue.close()
    _finalize(plan, source, target_url, state, report, processes=_worker_count(options))
    report.rto_seconds = round(time.monotonic() - started, 3)
    return report


def _load_or_plan(source: Location, options: RestoreOptions) -> RestorePlan:
    if options.resume:
        path = options.state_dir / options.resume / "plan.json"
        if not path.exists():
            raise ConfigError(f"no restore {options.resume} under {options.state_dir}")
        return RestorePlan.from_bytes(path.read_bytes())
    plan = plan_restore(source, until=options.until, until_block=options.until_block,
                        allow_gaps=options.allow_gaps, use_snapshots=options.use_snapshots)
    plan.units = split_units(plan.units)
    folder = options.state_dir / plan.restore_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.json").write_bytes(plan.to_bytes())
    return plan


# Blocks per work unit. A data object holds up to 10,000 blocks (~35,000 revisions): as one unit it keeps
# one worker busy while another idles, and holds the whole object's values in memory. Each part still
# fetches the object and checks its sha256 and the links of every block it reads.
UNIT_BLOCKS = 2_500


def split_units(units: list[WorkUnit], blocks: int = UNIT_BLOCKS) -> list[WorkUnit]:
    """Cut each journal unit into block ranges of at most `blocks` blocks (snapshot parts stay whole).
    Ids stay deterministic: the range and the object key's tag, as the planner names units."""
    out = []
    for unit in units:
        if unit.fmt == "SNAPSHOT" or unit.last_seq - unit.first_seq < blocks:
            out.append(unit)
            continue
        tag = unit.unit_id.rsplit("-", 1)[-1]
        for first in range(unit.first_seq, unit.last_seq + 1, blocks):
            last = min(first + blocks - 1, unit.last_seq)
            out.append(dataclasses.replace(unit, unit_id=f"{first:020d}-{last:020d}-{tag}", first_seq=first,
                                           last_seq=last))
    return out


def _run_workers(queue: SqliteQueue, source_url: str, target_url: str, state_dir: Path, plan: RestorePlan,
                 options: RestoreOptions, on_progress, *, total: int, already: int) -> None:
    count = _worker_count(options)
    state = Location(FileStore(state_dir, lock_mode=None), "")
    if count == 0:
        target = open_target(target_url)
        try:
            run_worker(queue, open_location(source_url), target, state, ledger_name=plan.ledger_name,
                       visibility_timeout=options.visibility_timeout,
                       on_unit=lambda unit, n: on_progress and on_progress(len(read_results(state)), total, n))
        finally:
            target.close()
        return
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_process, daemon=True,
                                 args=(str(queue.path), queue.name, options.max_attempts, source_url, target_url,
                                       str(state_dir), plan.ledger_name, options.visibility_timeout))
                 for _ in range(count)]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(0.2)
            if on_progress:
                on_progress(len(read_results(state)), total, 0)
    finally:
        for process in processes:
            process.join(timeout=5)


def _worker_process(queue_path: str, queue_name: str, max_attempts: int, source_url: str, target_url: str,
                    state_dir: str, ledger_name: str | None, visibility_timeout: float) -> None:
    queue = SqliteQueue(queue_path, name=queue_name, max_attempts=max_attempts)
    target = open_target(target_url)
    try:
        run_worker(queue, open_location(source_url), target, Location(FileStore(state_dir, lock_mode=None), ""),
                   ledger_name=ledger_name, visibility_timeout=visibility_timeout)
    finally:
        target.close()
        queue.close()


def _worker_count(options: RestoreOptions) -> int:
    return (os.cpu_count() or 1) if options.workers is None else options.workers


def finalize_restore(plan: RestorePlan, source: Location, target_url: str, state: Location, *,
                     dead_letters: list[dict] | None = None, started: float | None = None) -> RestoreReport:
    """Finalize a restore whose units were applied elsewhere (Lambda workers fed by SQS): the same checks
    as `restore` — units joined into one chain, indexes built, the target's state digest compared with the
    journal's. `state` holds the workers' unit results (`worker.record_result`); `dead_letters` are the
    units the queue gave up on (each makes the verdict false). `started` (time.monotonic) sets the RTO."""
    report = RestoreReport(plan.restore_id, source.url, target_url, units=len(plan.units),
                           lost_blocks=list(plan.gaps), dead_letters=list(dead_letters or []))
    _finalize(plan, source, target_url, state, report)
    if started is not None:
        report.rto_seconds = round(time.monotonic() - started, 3)
    return report


def _finalize(plan: RestorePlan, source: Location, target_url: str, state: Location, report: RestoreReport,
              *, processes: int = 0) -> None:
    """Link the units into one chain, build indexes, compare the target's state with the journal's.

    The journal side of the comparison never comes from the target: it is what the workers recorded
    when they verified each unit (its result and journal leaves, `units.journal_leaves`), and for a
    unit the target holds without such a record (a worker killed between its commit and its record,
    or units applied by an older version) the unit is fetched and verified again here. The target
    side is recomputed from what the target stores (`digest_of_target`)."""
    target = open_target(target_url)
    try:
        held = target.applied_units()
    finally:
        target.close()
    entries: list = []
    redactions: list = []
    results: dict[str, UnitResult] = {}
    recorded = read_results(state)
    revisions = 0
    for unit in plan.units:
        if unit.unit_id not in held:
            continue
        result, unit_entries, unit_redactions = _journal_side(source, state, unit, recorded.get(unit.unit_id))
        results[unit.unit_id] = result
        entries.extend(unit_entries)
        redactions.extend(unit_redactions)
        revisions += result.revisions
    report.units_applied = len(results)
    if plan.snapshot_last_seq is not None:
        report.snapshot_last_seq, report.journal_from_seq = plan.snapshot_last_seq, plan.snapshot_last_seq + 1
    ordered = sorted((r for r in results.values() if r.first_seq is not None), key=lambda r: r.first_seq)
    _check_links(ordered, plan, report)
    report.revisions = revisions
    lost = [name for r in results.values() for name in r.type_lost]
    report.type_lost, report.type_lost_examples = len(lost), lost[:50]
    if ordered:
        report.last_seq, report.last_block_hash = ordered[-1].last_seq, ordered[-1].last_hash
        report.last_block_time_ms = ordered[-1].last_block_time_ms
    if report.dead_letters:
        report.problems.append(f"{len(report.dead_letters)} unit(s) dead-lettered; the target is incomplete")
    target = open_target(target_url)
    try:
        if processes > 1 and hasattr(target, "iter_state_part"):
            # Decoding and hashing every stored row is most of finalize: spread it over processes, and
            # build the indexes meanwhile (they touch neither history nor current rows, which the digest
            # reads from its own snapshot; no unit is being applied any more).
            context = multiprocessing.get_context("spawn")
            with context.Pool(processes) as pool:
                parts = pool.starmap_async(_digest_part, [(target_url, i, processes) for i in range(processes)])
                _create_indexes(target, results, plan.restore_id)
                if hasattr(target, "finalize"):
                    target.finalize()
                target_digest = digest_of_parts(parts.get())
        else:
            _create_indexes(target, results, plan.restore_id)
            if hasattr(target, "finalize"):
                target.finalize()
            target_digest = digest_of_target(target)
        report.tables = len(target_digest.tables)
    finally:
        target.close()
    journal_digest = digest_of_journal(entries, redactions)
    report.journal_state_digest, report.target_state_digest = journal_digest.digest, target_digest.digest
    if journal_digest.digest != target_digest.digest:
        report.problems.append("the target's state digest differs from the journal's: "
                               + "; ".join(journal_digest.differences(target_digest)[:5]))
    for mismatch in target_digest.mismatches[:20]:
        report.problems.append(f"restored revision does not recompute: {mismatch}")
    if plan.expected_last_hash and report.last_block_hash != plan.expected_last_hash and not plan.gaps:
        report.problems.append(f"last applied block hash {report.last_block_hash} is not the recorded "
                               f"{plan.expected_last_hash}")
    report.verdict = not report.problems and not report.lost_blocks and report.units_applied == report.units


def _journal_side(source: Location, state: Location, unit: WorkUnit,
                  recorded: UnitResult | None) -> tuple[UnitResult, list, list]:
    """A held unit's result, digest entries and redaction keys: as its worker recorded them, or read
    and verified again from the source when no usable record exists."""
    leaves = read_leaves(state, unit.unit_id) if recorded is not None else None
    if leaves is not None and recorded is not None:
        try:
            entries, redactions = read_journal_leaves(leaves, unit)
        except ValueError:
            pass
        else:
            if len(entries) == recorded.revisions:
                return recorded, entries, redactions
    content = load_unit(source.store, unit)
    return result_of(content), journal_entries(content.revisions), [r.key for r in content.redactions]


def _digest_part(target_url: str, index: int, count: int) -> DigestPart:
    """One process's share of the target digest (finalize)."""
    target = open_target(target_url)
    try:
        decode = {"decode": False} if getattr(target, "stores_ion", False) else {}
        return digest_part_of_rows(target.iter_state_part(index, count, **decode))  # type: ignore[attr-defined]
    finally:
        target.close()


def _check_links(ordered: list[UnitResult], plan: RestorePlan, report: RestoreReport) -> None:
    gap_starts = {a for a, _ in plan.gaps}
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.first_seq != (before.last_seq or 0) + 1:
            if after.first_seq - 1 - (before.last_seq or 0) > 0 and (before.last_seq or 0) + 1 in gap_starts:
                continue
            report.problems.append(f"units do not join: block {before.last_seq} then {after.first_seq}")
        elif after.first_previous_hash != before.last_hash:
            report.problems.append(f"chain broken between units at block {after.first_seq}: previousBlockHash "
                                   f"{after.first_previous_hash} != {before.last_hash}")


def _create_indexes(target, results: dict[str, UnitResult], restore_id: str) -> None:
    """CREATE INDEX statements name tables, not table ids; map names to the ids the target holds."""
    wanted: dict[str, set[str]] = {}
    for result in results.values():
        for _seq, table, field_name in result.index_statements:
            wanted.setdefault(table, set()).add(field_name)
    if not wanted:
        return
    tables = [TableDDL(table_id, name, tuple(sorted(wanted[name])), False)
              for table_id, name in target.table_names().items() if name in wanted]
    if tables:
        target.apply(f"{restore_id}-indexes-{new_id()}", tables, [], [], None)


