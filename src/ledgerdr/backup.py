"""The backup flow: contiguous windows, exported, verified, then recorded (DESIGN §1, CONTRACTS §7).

The next window starts exactly where the last *recorded* window ended, never at "now minus the
interval" (reference defect 1), so a late, skipped or repeated run can neither leave a gap nor
overlap. A window ends at the next interval boundary after its start; an on-demand run (`through`)
also records the *partial* window from there up to `through`, and the next window then starts at that
partial end and ends at the following boundary, so the schedule goes on, contiguous, from there. A window is recorded only after its export verified and chained onto the previous
record; an export that fails is left as an orphan attempt and the next run tries again. The
record is written put-if-absent, so two concurrent runs cannot both record a window.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import SourceError, VerificationError
from .journal.codecs import ExportFormat
from .journal.exports import plan_location
from .journal.ids import new_id
from .journal.proofs import verify_proof
from .journal.verify import Problem, VerifyReport, verify_objects
from .repository import (
    EXPORTS,
    Catalog,
    ObjectRecord,
    WindowRecord,
    current_lineage,
    iso_ms,
    read_incarnations,
    read_windows,
    record_window,
    utcnow,
    window_name,
)
from .sources.base import Source
from .stores import Location


@dataclass(frozen=True)
class BackupPolicy:
    interval: timedelta
    settle: timedelta = timedelta(seconds=5)
    fmt: ExportFormat = ExportFormat.ION_BINARY
    retention: timedelta = timedelta(days=30)
    merge_due_windows: bool = False


@dataclass
class BackupReport:
    recorded: list[WindowRecord] = field(default_factory=list)
    already_recorded: list[str] = field(default_factory=list)  # windows another run recorded first
    failed: list[tuple[str, str]] = field(default_factory=list)  # (window_start, reason)
    next_due: datetime | None = None

    @property
    def nothing_due(self) -> bool:
        return not (self.recorded or self.failed or self.already_recorded)


def floor_boundary(moment: datetime, interval: timedelta) -> datetime:
    """The interval boundary at or before `moment` (boundaries are epoch multiples of the interval)."""
    seconds = int(interval.total_seconds())
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def next_boundary(t0: datetime, interval: timedelta) -> datetime:
    """The first interval boundary strictly after `t0`: where a window starting at `t0` ends. For a
    boundary `t0` that is `t0 + interval`; after a partial (on-demand) window it is the boundary the
    schedule would have reached anyway, so scheduled windows stay on epoch multiples of the interval."""
    return floor_boundary(t0, interval) + interval


def on_demand_cutoff(now: datetime, policy: BackupPolicy) -> datetime:
    """`now - settle`, floored to the whole second: window names (and so record keys) have second
    precision, and the next window's start must name exactly this end."""
    return (now - policy.settle).replace(microsecond=0)


def due_windows(start: datetime, now: datetime, policy: BackupPolicy, *,
                through: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """Windows [t0, t1) from `start` whose end plus the settle time has passed; then, given `through`
    (an on-demand run), the partial window [t0, through) when `through` is past the last of them."""
    windows = []
    t0 = start
    while next_boundary(t0, policy.interval) + policy.settle <= now:
        t1 = next_boundary(t0, policy.interval)
        windows.append((t0, t1))
        t0 = t1
    if through is not None and through > t0:
        windows.append((t0, through))
    if policy.merge_due_windows and len(windows) > 1:
        windows = [(windows[0][0], windows[-1][1])]
    return windows


def run_backup(source: Source, location: Location, policy: BackupPolicy, *, now: datetime | None = None,
               on_demand: bool = False, on_window: Callable[[str, str], None] | None = None) -> BackupReport:
    """Export, verify and record every due window in order; stop at the first failure.

    `on_demand` (`backup --once`) also exports what was committed up to `now - settle` since the last
    due window, as one partial window, when the ledger has blocks no record holds yet. Idempotent:
    running it again, or concurrently, records each window once.
    """
    now = now or utcnow()
    report = BackupReport()
    catalog = read_windows(location)
    previous = catalog.last
    if previous is not None:
        _check_lineage(location, catalog, source)
        start = previous.end
    else:
        first = source.first_block_time()
        if first is None:
            return report  # an empty ledger has nothing to back up yet
        start = floor_boundary(first, policy.interval)
    through = on_demand_cutoff(now, policy) if on_demand and _has_unrecorded_blocks(source, catalog) else None
    for t0, t1 in due_windows(start, now, policy, through=through):
        if on_window:
            on_window("exporting", window_name(t0))
        try:
            record = _backup_with_late_blocks(source, location, t0, t1, previous, policy, now)
        except VerificationError as exc:
            report.failed.append((iso_ms(t0), str(exc) + "".join(f"\n  {p}" for p in exc.problems[:10])))
            break
        if record_window(location, record, retain_until=now + policy.retention):
            report.recorded.append(record)
            if on_window:  # at once, not after the run: a standby notified per record lags by one window at most
                on_window("recorded", window_name(t0))
        else:  # another run recorded this window first: continue from what it recorded
            report.already_recorded.append(record.window_start)
            record = next(w for w in read_windows(location).windows if w.window_start == record.window_start)
        previous = record
    next_start = previous.end if previous else start
    report.next_due = next_boundary(next_start, policy.interval) + policy.settle
    return report


def backup_now(source: Source, location: Location, policy: BackupPolicy, *,
               on_window: Callable[[str, str], None] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> BackupReport:
    """On demand (`backup --once`): back up everything committed before this call, whatever the interval.

    The partial window ends at the next whole second after the call (window names have second
    precision), and, as every window, is exported only `settle` after its end, so this waits up to
    `settle` + 1 s when the ledger has unrecorded blocks (not at all otherwise). A commit that still lands
    in it later is caught by the next run's re-export (`_backup_with_late_blocks`).
    """
    started = utcnow()
    if _has_unrecorded_blocks(source, read_windows(location)):
        settled = started.replace(microsecond=0) + timedelta(seconds=1) + policy.settle
        sleep(max(0.0, (settled - utcnow()).total_seconds()))
    return run_backup(source, location, policy, on_demand=True, on_window=on_window)


def _has_unrecorded_blocks(source: Source, catalog: Catalog) -> bool:
    """Whether the ledger's tip is past the newest recorded block: an on-demand run on an idle ledger
    then records no empty partial window (one digest call, no export)."""
    if source.first_block_time() is None:  # an empty ledger has no digest yet
        return False
    recorded = max((w.last_seq for w in catalog.windows if w.last_seq is not None), default=-1)
    return source.digest().tip.sequence_no > recorded


def _check_lineage(location: Location, catalog: Catalog, source: Source) -> None:
    """A repository continues one chain. Its lineage changes only where a promotion recorded an
    incarnation at the last recorded block; an old primary coming back after a promotion is refused."""
    incarnations = read_incarnations(location)
    expected, promotion = current_lineage(catalog.windows, incarnations)
    if expected is None or expected == source.lineage:
        return
    fenced = next((i for i in reversed(incarnations) if i.previous_lineage == source.lineage), None)
    why = (f"it was fenced when lineage {fenced.lineage} was promoted at block {fenced.last_seq} "
           f"({fenced.promoted_at})" if fenced else f"the repository continues lineage {expected}"
           + (f", promoted at block {promotion.last_seq}" if promotion else ""))
    raise SourceError(f"repository {location.url}: this ledger is lineage {source.lineage}, and {why}: "
                      "refusing to write another history into it",
                      hint="a promoted standby took over this repository, or the config names the wrong ledger")


def _backup_with_late_blocks(source: Source, location: Location, t0: datetime, t1: datetime,
                             previous: WindowRecord | None, policy: BackupPolicy, now: datetime) -> WindowRecord:
    """A block committed before the previous window ended but exported after it (a commit later than
    the settle time) sits in no window; CONTRACTS §7: re-export from the previous window's start."""
    anchor = chain_anchor(location, previous)
    try:
        return backup_window(source, location, t0, t1, anchor, policy, now=now)
    except VerificationError as exc:
        if anchor is None or not any(p.kind == "gap" for p in exc.problems):
            raise
        return backup_window(source, location, t0, t1, anchor, policy, now=now, export_start=anchor.start)


def chain_anchor(location: Location, previous: WindowRecord | None) -> WindowRecord | None:
    """The record a new window must chain onto: the newest one that holds blocks. An empty window has no
    last block to check against, so a block committed late into its time would otherwise be in no window
    (a silent gap); chaining onto the last block recorded finds it, and the re-export brings it in."""
    if previous is None or previous.last_seq is not None:
        return previous
    with_blocks = [w for w in read_windows(location).windows if w.last_seq is not None and w.end <= previous.end]
    return with_blocks[-1] if with_blocks else None


def backup_window(source: Source, location: Location, t0: datetime, t1: datetime, previous: WindowRecord | None,
                  policy: BackupPolicy, *, now: datetime, export_start: datetime | None = None) -> WindowRecord:
    """Export [t0, t1) into a fresh attempt folder, verify it, and build its record (not yet written).

    `export_start` asks the source for an earlier start; the repeated blocks must then match the
    recorded ones hash-for-hash and are not counted again. Raises VerificationError naming every
    problem; the attempt is then an orphan, never recorded.
    """
    attempt_prefix = location.folder(f"{EXPORTS}{window_name(t0)}/{new_id()}/")
    done = source.export(export_start or t0, t1, location, attempt_prefix, policy.fmt, now + policy.retention)
    checked = _verify_attempt(location, attempt_prefix, done.export_id, previous)
    digest = _digest_with_proof(source, checked)
    if checked.problems:
        raise VerificationError(f"export of window {iso_ms(t0)} failed verification; not recorded", checked.problems)
    report = checked.report
    return WindowRecord(
        window_start=iso_ms(t0), window_end=iso_ms(t1),
        source={"kind": source.kind, "ledger": source.ledger_name, "strand_id": checked.strand_id},
        export_id=done.export_id, export_prefix=attempt_prefix, format=policy.fmt.value,
        first_seq=checked.first_seq, last_seq=checked.last_seq,
        first_previous_block_hash=_b64(checked.first_previous_hash),
        last_block_hash=report.tip_hash if checked.last_seq is not None else None,
        blocks=checked.new_blocks, revisions=report.revisions, objects=tuple(checked.objects),
        digest=digest, lineage=source.lineage, recorded_at=iso_ms(utcnow()),
        last_block_time=checked.last_block_time,
    )


@dataclass
class _Checked:
    report: VerifyReport
    problems: list[Problem]
    objects: list[ObjectRecord]
    strand_id: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    first_previous_hash: bytes | None = None
    last_block_time: str | None = None
    new_blocks: int = 0


def _verify_attempt(location: Location, prefix: str, export_id: str, previous: WindowRecord | None) -> _Checked:
    """Read every object once: checksum it, verify its blocks, and check it chains onto `previous`."""
    store = location.store
    plan = plan_location(store, prefix, export_id=export_id)
    report = VerifyReport(exports=len(plan.exports))
    checked = _Checked(report, list(plan.problems), [])
    for export in plan.exports:
        for key in filter(None, (export.ref.started_key, *export.ref.completed_keys.values())):
            checked.objects.append(_object_record(store, key)[0])

    def read(key: str) -> bytes:
        record, data = _object_record(store, key)
        checked.objects.append(record)
        return data

    last_recorded = previous.last_seq if previous else None
    chain = verify_objects(read, plan.objects, report, keep=lambda seq: seq == last_recorded)
    checked.problems.extend(report.problems)
    if not plan.exports or not all(e.complete for e in plan.exports):
        checked.problems.append(Problem("export_incomplete", prefix, None, "the source reported a complete export "
                                                                            "but its completed manifest is missing"))
    if chain.last_seq is None:
        return checked
    checked.strand_id = chain.strand_id
    assert chain.first_seq is not None  # a chain with a last block has a first one
    _check_continuity(checked, chain, chain.first_seq, previous, prefix)
    checked.last_seq = chain.last_seq
    checked.last_block_time = chain.last_block_time
    return checked


def _check_continuity(checked: _Checked, chain, first_seq: int, previous: WindowRecord | None, prefix: str) -> None:
    report = checked.report
    if previous is None or previous.last_seq is None:
        checked.first_seq = first_seq
        checked.first_previous_hash = chain.first_previous_hash
        checked.new_blocks = report.blocks
        return
    if previous.source.get("strand_id") and previous.source["strand_id"] != chain.strand_id:
        checked.problems.append(Problem("strand_mismatch", prefix, report.first_address,
                                        f"export is strand {chain.strand_id}, recorded windows are "
                                        f"{previous.source['strand_id']}"))
    expected_next = previous.last_seq + 1
    if first_seq <= previous.last_seq:  # repeats recorded blocks: they must match hash-for-hash
        repeated = chain.remembered.get(previous.last_seq)
        if repeated is None or _b64(repeated) != previous.last_block_hash:
            checked.problems.append(Problem("overlap_mismatch", prefix, report.first_address,
                                            "export repeats recorded blocks with different hashes (fork)"))
        checked.first_seq = expected_next if chain.last_seq >= expected_next else None
        assert previous.last_block_hash is not None  # a window with blocks records its last block's hash
        checked.first_previous_hash = base64.b64decode(previous.last_block_hash)
        checked.new_blocks = max(0, chain.last_seq - previous.last_seq)
        return
    if first_seq > expected_next:
        checked.problems.append(Problem("gap", prefix, report.first_address,
                                        f"blocks {expected_next}..{first_seq - 1} are in no recorded window"))
    elif _b64(chain.first_previous_hash) != previous.last_block_hash:
        checked.problems.append(Problem("chain_broken", prefix, report.first_address,
                                        "first block does not chain onto the previous window's last block"))
    checked.first_seq = first_seq
    checked.first_previous_hash = chain.first_previous_hash
    checked.new_blocks = report.blocks


def _digest_with_proof(source: Source, checked: _Checked) -> dict | None:
    """CONTRACTS §5: the digest fetched right after the export, and the last block's proof against it."""
    digest = source.digest()
    out: dict[str, Any] = {"digest": _b64(digest.digest), "tip_address": str(digest.tip), "proof": []}
    if checked.last_seq is None or checked.strand_id is None:
        return out
    from .journal.model import BlockAddress

    last = BlockAddress(checked.strand_id, checked.last_seq)
    proof = source.block_proof(last, digest.tip)
    out["proof"] = [_b64(h) for h in proof]
    tip_hash = base64.b64decode(checked.report.tip_hash or "")
    if not verify_proof(tip_hash, proof, digest.digest):
        checked.problems.append(Problem("digest_mismatch", None, str(last),
                                        "the last block's proof does not fold to the ledger digest"))
    return out


def _object_record(store, key: str) -> tuple[ObjectRecord, bytes]:
    """The record of `key` and the bytes it describes. On a versioned store the version is fixed first
    and exactly that version is read: a get followed by a head could name a newer version put in between
    (S3 accepts one over a locked key), recording one object's sha256 under another's version id."""
    if not store.properties.has_versions:
        data = store.get(key)
        return ObjectRecord(key, len(data), hashlib.sha256(data).hexdigest()), data
    version = store.head(key).version_id
    data = store.get(key, version_id=version) if version else store.get(key)
    return ObjectRecord(key, len(data), hashlib.sha256(data).hexdigest(), version), data


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()
