"""`restore`: plan → queue → workers → finalize → report (DESIGN §3).

A local pool of worker processes shares a durable SQLite queue; `ledgerdr worker` processes on
other machines can join through SQS. Everything a restore needs to resume lives in its state
folder: the plan, the queue, and one result record per applied unit.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from ..errors import ConfigError, ExitCode, RestoreError
from ..journal.ids import new_id
from ..queues import Queue, open_queue
from ..record_trust import refuse_untrusted
from ..signing import TrustedKeys
from ..stores import Location, open_location
from ..targets import open_target
from ..targets.base import Target
from ..targets.ddl import DdlState
from ..targets.digest import (
    STATE_DIGEST_VERSION,
    DigestPart,
    PackedJournal,
    digest_of_packed_journal,
    digest_of_parts,
    digest_of_target,
    digest_part_of_rows,
    digest_part_of_state_rows,
    digests_rows_in_c,
    journal_entries,
    pack_journal,
    target_dropped,
)
from .guard import check_target
from .plan import RestorePlan, plan_restore
from .shapes import SNAPSHOT_FORMAT, UnitResult, WorkUnit
from .units import load_unit, read_journal_leaves, result_of
from .worker import WorkerSpec, open_state, read_failures, read_leaves, read_results, run_worker


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
    state_digest_version: int = STATE_DIGEST_VERSION
    # Restored from a snapshot: blocks ..snapshot_last_seq came as state and history (verified by their
    # revision hashes and the snapshot's tip hash), not as journal blocks; a target that keeps the journal
    # holds it from journal_from_seq on.
    snapshot_last_seq: int | None = None
    journal_from_seq: int | None = None
    rto_seconds: float = 0.0  # from the restore's first start, interruptions included
    resumed: bool = False  # this run continued an interrupted run of the same restore
    resumable: bool = False  # units are missing (e.g. dead-lettered after transient failures): --resume helps
    warnings: list[str] = field(default_factory=list)
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
    force: bool = False  # restore into a writable ledger or one ahead of the backup (guard.check_target)
    protected: tuple[str, ...] = ()  # files never restored into: the configured source ledger
    # store options of a configured source repository (role_arn, endpoint_url, …) that its URL cannot carry
    source_options: dict[str, Any] = field(default_factory=dict)
    trusted: TrustedKeys = TrustedKeys()  # when any: every record of the source must be signed by one

    def identity(self, source_url: str, target_url: str) -> dict:
        """What makes two runs the same restore: a re-run with the same identity resumes it."""
        return {"source": source_url, "target": target_url, "until": self.until.isoformat() if self.until else None,
                "until_block": self.until_block, "allow_gaps": self.allow_gaps, "strategy": self.strategy,
                "use_snapshots": self.use_snapshots}


class RestoreInterrupted(KeyboardInterrupt):
    """Ctrl-C during a restore: what was applied is kept; `restore_id` resumes it (so does the same
    command run again)."""

    def __init__(self, restore_id: str, state_dir: Path) -> None:
        super().__init__(restore_id)
        self.restore_id, self.state_dir = restore_id, state_dir


def restore(source_url: str, target_url: str, options: RestoreOptions = RestoreOptions(),
            *, on_progress: Callable[[int, int, int], None] | None = None) -> RestoreReport:
    """Restore (or continue restoring) into `target_url`; returns the report (`verdict` says verified).

    Raises RestoreError before changing the target when it holds other data (`guard.check_target`) or the
    plan is refused (gap, fork, damaged record), and when a unit fails permanently (a damaged object,
    another lineage): at once, naming the object, since retrying cannot help. Raises RestoreInterrupted
    on Ctrl-C; running the same restore again (or with `resume`) continues it under the same id."""
    source = open_location(source_url, **options.source_options)
    if options.trusted:
        refuse_untrusted(source, options.trusted)  # before the plan reads a record or the target is touched
    state_root = options.state_dir
    plan, run = _load_or_plan(source, source_url, target_url, options)
    try:
        report = _restore(plan, run, source, source_url, target_url, options, on_progress)
    except KeyboardInterrupt:
        raise RestoreInterrupted(plan.restore_id, state_root) from None  # unfinished: a re-run resumes it
    except BaseException:
        _save_run(state_root, plan.restore_id, {**run, "finished": True})  # refused or failed: re-plan next time
        raise
    _save_run(state_root, plan.restore_id, {**run, "finished": True})
    return report


def _restore(plan: RestorePlan, run: dict, source: Location, source_url: str, target_url: str,
             options: RestoreOptions, on_progress: Callable[[int, int, int], None] | None) -> RestoreReport:
    state_root = options.state_dir
    # Unit ids are deterministic (block range + object key), so results are shared by every restore
    # using this state folder: a pilot light or standby target's earlier units count as done.
    results_dir = state_root / "unit-results"
    state = open_state(str(results_dir))
    report = RestoreReport(plan.restore_id, source_url, target_url, options.strategy, units=len(plan.units),
                           lost_blocks=list(plan.gaps), resumed=run["runs"] > 1, warnings=list(plan.warnings))
    target = open_target(target_url)
    try:  # the target is the truth of what it holds (a pilot light or standby was preloaded earlier)
        report.warnings += check_target(target.holding(), plan, force=options.force, protected=options.protected)
        held = target.applied_units()
    finally:
        target.close()
    pending = [u for u in plan.units if u.unit_id not in held]
    run_name = f"run-{new_id()}"
    failures_dir = state_root / plan.restore_id / "failures" / run_name
    queue_url = _queue_url(state_root / plan.restore_id / "queue.db", run_name, options.max_attempts)
    queue = open_queue(queue_url)
    queue.send_batch([u.to_bytes() for u in pending])
    spec = WorkerSpec(source_url, target_url, str(results_dir), plan.ledger_name, str(failures_dir),
                      options.visibility_timeout, options.source_options)
    _run_workers(queue, queue_url, spec, _worker_count(options), on_progress, total=len(plan.units))
    report.dead_letters = [{"unit": orjson.loads(d.body).get("key"), "attempts": d.attempts, "reason": d.reason}
                           for d in queue.dead_letters()]
    queue.close()
    failed = read_failures(open_state(str(failures_dir)))
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more unit(s))" if len(failed) > 1 else ""
        stopped = RestoreError(f"restore {plan.restore_id} stopped: {first['reason']}{more}; the target holds only "
                               f"units applied before it",
                               hint="retrying cannot help until this is fixed (e.g. the object re-copied from a good "
                                    "replica); then run the same command again")
        # The exit code of what failed (a damaged object is a verification failure, 4), as when planning meets it;
        # a record written before the code was recorded keeps RestoreError's.
        stopped.exit_code = ExitCode(first.get("exit_code", ExitCode.RESTORE))
        raise stopped
    _finalize(plan, source, target_url, state, report, processes=_worker_count(options))
    report.rto_seconds = round(time.time() - run["first_started"], 3)
    return report


def _load_or_plan(source: Location, source_url: str, target_url: str,
                  options: RestoreOptions) -> tuple[RestorePlan, dict]:
    """The plan and run record (`run.json`: identity, first start, runs) of `options.resume`, else of an
    unfinished restore with the same identity in the state folder (a re-run resumes it), else new ones."""
    started = time.time()  # RTO counts planning too
    identity = options.identity(source_url, target_url)
    restore_id = options.resume or _unfinished(options.state_dir, identity)
    if restore_id:
        path = options.state_dir / restore_id / "plan.json"
        if not path.exists():
            raise ConfigError(f"no restore {restore_id} under {options.state_dir}")
        plan = RestorePlan.from_bytes(path.read_bytes())
        run = _read_run(options.state_dir, restore_id) or {"identity": identity, "first_started": started,
                                                           "runs": 0, "finished": False}
    else:
        plan = plan_restore(source, until=options.until, until_block=options.until_block,
                            allow_gaps=options.allow_gaps, use_snapshots=options.use_snapshots)
        plan.units = split_units(plan.units)
        folder = options.state_dir / plan.restore_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plan.json").write_bytes(plan.to_bytes())
        run = {"identity": identity, "first_started": started, "runs": 0, "finished": False}
    run = {**run, "runs": run["runs"] + 1, "finished": False}
    _save_run(options.state_dir, plan.restore_id, run)
    return plan, run


RUN_RECORD = "run.json"


def _read_run(state_root: Path, restore_id: str) -> dict | None:
    try:
        return orjson.loads((state_root / restore_id / RUN_RECORD).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _save_run(state_root: Path, restore_id: str, run: dict) -> None:
    """Rewritten in place (the state folder is the restore's own scratch, not write-once storage):
    written to a temporary name and renamed, so a reader sees the old or the new record."""
    path = state_root / restore_id / RUN_RECORD
    temp = path.with_suffix(".tmp")
    temp.write_bytes(orjson.dumps(run))
    temp.replace(path)


def _unfinished(state_root: Path, identity: dict) -> str | None:
    """The newest restore in `state_root` with this identity that never reached its end (interrupted,
    or its process killed): a re-run of the same command continues it. A restore that ended (verified
    or not, refused, failed) is planned afresh, so that a re-run sees what the location holds now."""
    found = []
    if state_root.is_dir():
        for folder in state_root.iterdir():
            run = _read_run(state_root, folder.name)
            if run and not run.get("finished") and run.get("identity") == identity and \
                    (folder / "plan.json").is_file():
                found.append((run.get("first_started", 0), folder.name))
    return max(found)[1] if found else None


# Blocks per work unit. A data object holds up to 10,000 blocks (~35,000 revisions): as one unit it keeps
# one worker busy while another idles, and holds the whole object's values in memory. Each part still
# fetches the object and checks its sha256 and the links of every block it reads.
UNIT_BLOCKS = 2_500


def split_units(units: list[WorkUnit], blocks: int = UNIT_BLOCKS) -> list[WorkUnit]:
    """Cut each journal unit into block ranges of at most `blocks` blocks (snapshot parts stay whole).
    Ids stay deterministic: the range and the object key's tag, as the planner names units."""
    out = []
    for unit in units:
        if unit.fmt == SNAPSHOT_FORMAT or unit.last_seq - unit.first_seq < blocks:
            out.append(unit)
            continue
        tag = unit.unit_id.rsplit("-", 1)[-1]
        for first in range(unit.first_seq, unit.last_seq + 1, blocks):
            last = min(first + blocks - 1, unit.last_seq)
            out.append(dataclasses.replace(unit, unit_id=f"{first:020d}-{last:020d}-{tag}", first_seq=first,
                                           last_seq=last))
    return out


def _queue_url(path: Path, name: str, max_attempts: int) -> str:
    """The restore's own sqlite queue, as `open_queue` names it (a worker process opens it by this URL)."""
    return f"sqlite://{quote(str(path.resolve()))}?{urlencode({'name': name, 'max_attempts': max_attempts})}"


def _run_workers(queue: Queue, queue_url: str, spec: WorkerSpec, count: int,
                 on_progress: Callable[[int, int, int], None] | None, *, total: int) -> None:
    state = open_state(spec.state_url)
    if count == 0:
        run_worker(queue, spec,
                   on_unit=lambda unit, n: on_progress and on_progress(len(read_results(state)), total, n))
        return
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_process, daemon=True, args=(queue_url, spec))
                 for _ in range(count)]
    with _sigint_ignored():  # a Ctrl-C while a worker starts up must not reach it (see _worker_process)
        for process in processes:
            process.start()
    try:
        while any(p.is_alive() for p in processes):
            # woken at once when a worker ends (the last one ending is the restore's end), else every 0.2 s
            wait([p.sentinel for p in processes if p.is_alive()], timeout=0.2)
            if on_progress:
                on_progress(len(read_results(state)), total, 0)
    except KeyboardInterrupt:
        # Workers ignore SIGINT: stop them here. A worker stopped inside a unit's transaction leaves
        # nothing of it (the target rolls it back); the unit is applied again on resume.
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join(timeout=5)


class _sigint_ignored:
    """Ignore SIGINT in this process while child processes start. An ignored signal stays ignored across
    exec and Python's start-up keeps it so, so a Ctrl-C while a child imports cannot raise a traceback
    there; the child confirms it (`_ignore_sigint`). Only the moment of the fork+exec is affected here."""

    def __enter__(self) -> None:
        self.before = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.before)


def _ignore_sigint() -> None:
    """In a child process: Ctrl-C is the parent's to handle (it stops the children, without a
    traceback from each of them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_process(queue_url: str, spec: WorkerSpec) -> None:
    _ignore_sigint()
    queue = open_queue(queue_url)
    try:
        run_worker(queue, spec)
    finally:
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
    journals: list[PackedJournal] = []
    redactions: list = []
    results: dict[str, UnitResult] = {}
    recorded = read_results(state)
    revisions = 0
    for unit in plan.units:
        if unit.unit_id not in held:
            continue
        result, journal, unit_redactions = _journal_side(source, state, unit, recorded.get(unit.unit_id))
        results[unit.unit_id] = result
        journals.append(journal)
        redactions.extend(unit_redactions)
        revisions += result.revisions
    report.units_applied = len(results)
    if plan.snapshot_last_seq is not None:
        report.snapshot_last_seq, report.journal_from_seq = plan.snapshot_last_seq, plan.snapshot_last_seq + 1
    ordered = sorted((r for r in results.values() if r.first_seq is not None), key=lambda r: r.first_seq or 0)
    _check_links(ordered, plan, report)
    report.revisions = revisions
    lost = [name for r in results.values() for name in r.type_lost]
    report.type_lost, report.type_lost_examples = len(lost), lost[:50]
    if ordered:
        report.last_seq, report.last_block_hash = ordered[-1].last_seq, ordered[-1].last_hash
        report.last_block_time_ms = ordered[-1].last_block_time_ms
    if report.dead_letters:
        report.problems.append(f"{len(report.dead_letters)} unit(s) dead-lettered; the target is incomplete")
    missing = [u for u in plan.units if u.unit_id not in held]
    if missing:  # never an unverified verdict without its reason
        report.problems.append(f"{len(missing)} of {len(plan.units)} unit(s) not applied, the first: {missing[0].key} "
                               f"(blocks {missing[0].first_seq}..{missing[0].last_seq})")
        report.resumable = True
    # One interpretation of the whole journal's DDL, in block order (units only extracted their events)
    ddl = DdlState().apply_all(event for result in results.values() for event in result.ddl_events())
    target = open_target(target_url)
    try:
        if processes > 1 and target.splits_state:
            # Hashing every stored row is most of finalize (decoding it too, in Python): spread it over processes.
            # The journal's digest is computed in one of them while the target finalizes (a bulk-loaded target
            # builds its current rows there, single-threaded); then the processes read what it stores (each from
            # its own snapshot; no unit is being applied any more), while the target builds what they do not read.
            context = multiprocessing.get_context("spawn")
            with _sigint_ignored():  # only while its processes start (see _sigint_ignored)
                pool = context.Pool(processes, initializer=_ignore_sigint)
            with pool:
                journal_part = pool.apply_async(digest_of_packed_journal, (journals, redactions, ddl.dropped()))
                _apply_ddl(target, ddl, plan.restore_id)
                digest_part = _digest_rows_part if digests_rows_in_c(target) else _digest_part

                def start_reads() -> Callable[[], list[DigestPart]]:
                    parts = pool.starmap_async(digest_part, [(target_url, i, processes) for i in range(processes)])
                    return parts.get

                # what of finalize no state read sees (the embedded ledger's index entries) runs beside the reads
                target_parts = target.finalize_beside_reads(start_reads)
                journal_digest = journal_part.get()
                target_digest = digest_of_parts(target_parts, target_dropped(target))
        else:
            # The journal's side needs only the units' records: it is computed meanwhile (a PostgreSQL target's
            # finalize and read-back are mostly the server's work, its threads waiting with the GIL released).
            with ThreadPoolExecutor(1) as beside:
                journal_side = beside.submit(digest_of_packed_journal, journals, redactions, ddl.dropped())
                _apply_ddl(target, ddl, plan.restore_id)
                target.finalize()
                target_digest = digest_of_target(target)
                journal_digest = journal_side.result()
        report.tables = len(target_digest.tables)
    finally:
        target.close()
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
                  recorded: UnitResult | None) -> tuple[UnitResult, PackedJournal, list]:
    """A held unit's result, digest entries and redaction keys: as its worker recorded them, or read
    and verified again from the source when no usable record exists."""
    leaves = read_leaves(state, unit.unit_id) if recorded is not None else None
    if leaves is not None and recorded is not None:
        try:
            journal, redactions = read_journal_leaves(leaves, unit)
        except ValueError:
            pass
        else:
            if journal.count == recorded.revisions:
                return recorded, journal, redactions
    content = load_unit(source.store, unit)
    return result_of(content), pack_journal(journal_entries(content.revisions)), [r.key for r in content.redactions]


def _digest_part(target_url: str, index: int, count: int) -> DigestPart:
    """One process's share of the target digest (finalize)."""
    target = open_target(target_url)
    try:
        return digest_part_of_rows(target.iter_state_part(index, count, decode=False))
    finally:
        target.close()


def _digest_rows_part(target_url: str, index: int, count: int) -> DigestPart:
    """One process's share of the target digest, its stored rows hashed in C (finalize)."""
    target = open_target(target_url)
    try:
        return digest_part_of_state_rows(target.iter_state_rows(index, count))
    finally:
        target.close()


def _check_links(ordered: list[UnitResult], plan: RestorePlan, report: RestoreReport) -> None:
    gap_starts = {a for a, _ in plan.gaps}
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.first_seq != (before.last_seq or 0) + 1:
            if (after.first_seq or 0) - 1 - (before.last_seq or 0) > 0 and (before.last_seq or 0) + 1 in gap_starts:
                continue
            report.problems.append(f"units do not join: block {before.last_seq} then {after.first_seq}")
        elif after.first_previous_hash != before.last_hash:
            report.problems.append(f"chain broken between units at block {after.first_seq}: previousBlockHash "
                                   f"{after.first_previous_hash} != {before.last_hash}")


def _apply_ddl(target: Target, ddl: DdlState, restore_id: str) -> None:
    """The tables' final status and indexes, as the one interpretation of the journal's DDL says (the
    target keeps the status of the highest block; what it already holds is not applied again)."""
    tables = ddl.changes_to(target.table_ddls())
    if tables:
        target.apply(f"{restore_id}-ddl-{new_id()}", tables, [], [], None)


