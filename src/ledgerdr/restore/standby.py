"""Warm standby and promotion (DESIGN §3, issue "warm standby").

`follow_once` applies every new window record, in order, if and only if it chains onto the last block
the standby applied; otherwise it stops and names the gap or fork by block address. An empty standby
starts from the newest verified snapshot and then loads only the windows after it. `run_standby` repeats
that, woken by notifications (S3 events → SQS, or the sqlite queue) or by polling, and re-lists the
repository now and then even with a queue, in case a message was lost.

Durable position. The target is the truth of what it holds (each unit is applied in one transaction and
recorded by its deterministic id). After each window commits, the standby also writes a `StandbyPosition`
into the target's own metadata (the embedded ledger's meta table): the last block applied, its hash, when
it was applied, and the repository's newest block at that moment. A standby killed between the two
commits re-applies that one window on restart, which changes nothing (the target skips units it holds).
`ledgerdr status --standby TARGET` reads the same record to show the lag. A target without a metadata
store (PostgreSQL) falls back to its newest applied block, so it still resumes, but status then shows
only what it can compute from the repository.

`promote` applies the rest, verifies the whole target against the journal, records a write-once
*incarnation* in the repository, and opens the ledger for writes under a new lineage.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import CheckpointHeldBack, LedgerDRError, RestoreError
from ..journal.ids import new_id
from ..journal.model import BlockAddress
from ..queues.notify import Notifications
from ..repository import (
    Incarnation,
    RecordCache,
    WindowRecord,
    current_lineage,
    iso_ms,
    parse_iso,
    read_incarnations,
    read_windows,
    utcnow,
    write_incarnation,
)
from ..snapshots import newest_snapshot
from ..stores import Location
from ..targets.base import Target
from ..targets.ddl import DdlState
from .plan import units_of_window
from .shapes import UnitContent, WorkUnit
from .snapshot import last_block_of, snapshot_units
from .units import load_unit

if TYPE_CHECKING:
    from .run import RestoreReport

FORMAT_VERSION = 1


@dataclass(frozen=True)
class StandbyPosition:
    """Where a standby is (CONTRACTS-style record, JSON, kept in the target's metadata).

    `window` is the newest window (its `window_start`) the standby has consumed, empty ones included; it
    is also where the next round starts reading records. `repository_*` describe the newest window record
    the standby saw at `checked_at`. `stopped` holds the gap or fork message once it stopped."""

    source: str
    strand_id: str | None
    last_seq: int | None
    last_block_hash: str | None
    last_block_time: str | None
    window: str | None
    applied_at: str | None
    checked_at: str
    repository_last_seq: int | None
    repository_window: str | None
    snapshot_last_seq: int | None = None
    stopped: str | None = None
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> StandbyPosition:
        """Raises ValueError for a record this ledgerdr cannot read."""
        raw = orjson.loads(data)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"standby position format_version {raw.get('format_version')} is not {FORMAT_VERSION}")
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


def read_position(target: Target) -> StandbyPosition | None:
    """The position the standby last recorded in `target`, or None (none yet, or no position record)."""
    if not target.has_position_record:
        return None
    value = target.read_position_record()
    return None if value is None else StandbyPosition.from_bytes(value)


def _write_position(target: Target, position: StandbyPosition) -> None:
    if target.has_position_record:  # else the target's newest applied block is the position (module docstring)
        target.write_position_record(position.to_bytes())


@dataclass
class FollowReport:
    windows_applied: list[str] = field(default_factory=list)
    applied_at: list[str] = field(default_factory=list)  # when each of windows_applied committed
    snapshot_last_seq: int | None = None  # set when this round started the standby from a snapshot
    position_seq: int | None = None
    position_hash: str | None = None
    repository_seq: int | None = None
    lag_blocks: int = 0
    lag_seconds: float | None = None
    notices: list[str] = field(default_factory=list)  # kinds of the notifications that woke this round
    # Set when finalize's checkpoint was held back by a reader: the windows are applied and committed, only the
    # checkpoint that syncs them is not done; the next round tries it again.
    finalize_deferred: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Cursor:
    seq: int | None
    block_hash: str | None
    block_time: str | None
    window: str | None
    applied_at: str | None
    snapshot_last_seq: int | None


def follow_once(location: Location, target: Target, *, now: Callable[[], datetime] | datetime | None = None,
                cache: RecordCache | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                finalize: bool = False) -> FollowReport:
    """Apply every recorded window after the standby's position, each checked to chain onto the last
    block applied before anything of it is applied. Idempotent; resumable after a kill at any point.
    `run_standby` passes one `cache` to every round: records already read are not fetched again.
    `on_progress(blocks_applied, blocks_to_apply)` is called before the first window and after each one
    (the catch-up of a standby that fell behind can take a while). The target is finalized when a window
    was applied, or with `finalize` (a checkpoint an earlier round could not finish).

    Raises RestoreError naming the block address on a gap or a fork, after recording why it stopped. A
    checkpoint held back by a reader does not stop the standby: it is `finalize_deferred` in the report."""
    clock = now if callable(now) else (lambda: now) if now is not None else utcnow
    position = read_position(target)
    cursor = _start(position, target)
    report = FollowReport()
    windows, unreadable = _windows_after(location, cursor.window, cache)
    newest = next((w for w in reversed(windows) if w.last_seq is not None), None)
    try:
        catch_up = _CatchUp(cursor.seq, windows, on_progress)
        if cursor.seq is None:
            _start_from_snapshot(location, target, cursor, report, clock, windows, catch_up)
            if report.snapshot_last_seq is not None:
                _write_position(target, _position(location, cursor, newest, clock, position))
        for window in windows:
            if window.last_seq is None or (cursor.seq is not None and window.last_seq <= cursor.seq):
                if cursor.seq is not None and (window.last_seq is not None or _after(window, cursor)):
                    cursor.window = window.window_start  # consumed: the next round reads after it
                continue
            _check_chains(window, cursor.seq, cursor.block_hash, unreadable)
            _apply_window(location, target, window, cursor.block_hash)
            cursor.seq, cursor.block_hash = window.last_seq, window.last_block_hash
            cursor.block_time, cursor.window = window.last_block_time, window.window_start
            cursor.applied_at = iso_ms(clock())
            report.windows_applied.append(window.window_start)
            report.applied_at.append(cursor.applied_at)
            _write_position(target, _position(location, cursor, newest, clock, position))
            catch_up.applied((window.last_seq or 0) - (window.first_seq or 0) + 1)
    except LedgerDRError as exc:  # gap, fork, an object that does not verify: the standby stops here
        _write_position(target, _position(location, cursor, newest, clock, position, stopped=str(exc)))
        raise
    if report.windows_applied or finalize:
        try:
            target.finalize()
        except CheckpointHeldBack as exc:  # everything is committed; only the sync waits for a reader
            report.finalize_deferred = exc.args[0]  # the message; the hint depends on how the standby runs
    _write_position(target, _position(location, cursor, newest, clock, position))  # also a heartbeat
    report.position_seq, report.position_hash = cursor.seq, cursor.block_hash
    report.repository_seq = newest.last_seq if newest is not None else cursor.seq
    report.lag_blocks, report.lag_seconds = lag(cursor.seq, windows, clock())
    return report


class _CatchUp:
    """Blocks applied out of the blocks this round has to apply, told to `on_progress`."""

    def __init__(self, seq: int | None, windows: list[WindowRecord],
                 on_progress: Callable[[int, int], None] | None) -> None:
        self.on_progress, self.done = on_progress, 0
        self.total = lag(seq, windows, utcnow())[0]
        if on_progress is not None:
            on_progress(0, self.total)

    def applied(self, blocks: int) -> None:
        self.done += blocks
        if self.on_progress is not None:
            self.on_progress(min(self.done, self.total), self.total)


def lag(seq: int | None, windows: list[WindowRecord], now: datetime) -> tuple[int, float]:
    """(blocks, seconds) behind the repository: the blocks recorded after `seq`, and how long the oldest
    window not yet applied has been waiting since it was recorded (0 when caught up)."""
    pending = [w for w in windows if w.last_seq is not None and (seq is None or w.last_seq > seq)]
    if not pending:
        return 0, 0.0
    newest = pending[-1].last_seq
    assert newest is not None  # pending holds windows with blocks only
    blocks = newest - (seq if seq is not None else -1)
    return blocks, round(max(0.0, (now - parse_iso(pending[0].recorded_at)).total_seconds()), 3)


def _after(window: WindowRecord, cursor: _Cursor) -> bool:
    return cursor.window is None or window.start > parse_iso(cursor.window)


def _start(position: StandbyPosition | None, target: Target) -> _Cursor:
    if position is not None:
        return _Cursor(position.last_seq, position.last_block_hash, position.last_block_time, position.window,
                       position.applied_at, position.snapshot_last_seq)
    last = target.info().get("last_block")  # a target preloaded by `restore`, or one without metadata
    if last:
        return _Cursor(last["sequence_no"], last["hash"], None, None, None, None)
    return _Cursor(None, None, None, None, None, None)


def _windows_after(location: Location, window: str | None, cache: RecordCache | None = None
                   ) -> tuple[list[WindowRecord], list[str]]:
    """Window records after `window` (all when None), oldest first, and the keys that did not parse.

    Keys are `<t0>.json` with a fixed-width t0, so names sort as times: only new records are fetched. A
    standby with no window position (a PostgreSQL target keeps none) reads every record each round; `cache`
    then saves the GETs of those it read before."""
    catalog = read_windows(location, after=window, cache=cache)
    return catalog.windows, catalog.unreadable


def _start_from_snapshot(location: Location, target: Target, cursor: _Cursor, report: FollowReport,
                         clock: Callable[[], datetime], windows: list[WindowRecord], catch_up: _CatchUp) -> None:
    """An empty standby loads the newest verified snapshot, then only the windows after its tip.

    `windows` is every record (a standby with no position reads them all). A kill halfway through leaves
    some parts applied and no position: the next round picks the same snapshot and skips those parts."""
    base = newest_snapshot(location, windows=windows)
    if base is None:
        return
    parts, blocks = snapshot_units(base), base.last_seq + 1
    for done, unit in enumerate(parts, 1):
        _apply(location, target, unit, load_unit(location.store, unit), base.ledger)
        catch_up.applied(blocks * done // len(parts) - blocks * (done - 1) // len(parts))  # a part's share
    tip = next((w for w in windows if w.window_start == base.tip_window), None)
    cursor.seq, cursor.block_hash, cursor.block_time = base.last_seq, base.tip_hash, base.tip_time
    cursor.window = tip.window_start if tip is not None else None
    cursor.applied_at, cursor.snapshot_last_seq = iso_ms(clock()), base.last_seq
    report.snapshot_last_seq = base.last_seq


def _apply_window(location: Location, target: Target, window: WindowRecord, block_hash: str | None) -> None:
    """Each unit is loaded and verified, then checked to chain onto the block before it, then applied;
    then the window's DDL, interpreted in block order from the tables the target holds (`targets.ddl`)."""
    running = block_hash
    ddl = DdlState(target.table_ddls())
    for unit in sorted(units_of_window(window), key=lambda u: u.first_seq):
        content = load_unit(location.store, unit)
        for block in content.blocks[:1]:
            previous = _b64(block.previous_block_hash) or None
            if running is not None and previous != running:
                raise RestoreError(
                    f"standby stopped: block {block.sequence_no} of {unit.key} does not chain onto the standby's "
                    f"last block (previousBlockHash {previous}, expected {running}; fork at {block.address})",
                    hint="the object is not the history the window record describes")
        if content.blocks:
            running = _b64(content.blocks[-1].block_hash)
        _apply(location, target, unit, content, window.source.get("ledger"))
        ddl.apply_all(content.ddl)
    tables = ddl.changes_to(target.table_ddls())  # a window without DDL writes nothing more
    if tables:
        target.apply(f"standby-ddl-{window.window_start}-{new_id()}", tables, [], [], None)


def _apply(location: Location, target: Target, unit: WorkUnit, content: UnitContent,
           ledger_name: str | None) -> None:
    # worker.apply_unit without its load, so that the chain is checked between verifying and applying
    if content.strand_id:
        target.open_lineage(content.strand_id, ledger_name or "")
    target.apply(unit.unit_id, list(content.tables.values()), content.revisions, content.redactions,
                 last_block_of(content), blocks=content.blocks if target.keeps_journal else ())


def _position(location: Location, cursor: _Cursor, newest: WindowRecord | None, clock: Callable[[], datetime],
              before: StandbyPosition | None, *, stopped: str | None = None) -> StandbyPosition:
    strand = newest.source.get("strand_id") if newest is not None else before.strand_id if before else None
    return StandbyPosition(
        source=location.url, strand_id=strand, last_seq=cursor.seq, last_block_hash=cursor.block_hash,
        last_block_time=cursor.block_time, window=cursor.window, applied_at=cursor.applied_at,
        checked_at=iso_ms(clock()),
        repository_last_seq=newest.last_seq if newest is not None else (
            before.repository_last_seq if before and before.repository_last_seq is not None else cursor.seq),
        repository_window=newest.window_start if newest is not None else (
            before.repository_window if before else cursor.window),
        snapshot_last_seq=cursor.snapshot_last_seq, stopped=stopped)


def _check_chains(window: WindowRecord, seq: int | None, block_hash: str | None, unreadable: list[str]) -> None:
    expected = 0 if seq is None else seq + 1
    first = window.first_seq
    address = BlockAddress(window.source.get("strand_id") or "", expected)
    if first != expected:
        hint = "a window is missing from the repository; restore it before following on"
        if unreadable:
            hint += f" (unreadable records: {', '.join(unreadable[:3])})"
        raise RestoreError(f"standby stopped: window {window.window_start} starts at block {first}, the standby "
                           f"holds up to {seq} (gap at {address})", hint=hint)
    if seq is not None and window.first_previous_block_hash != block_hash:
        raise RestoreError(f"standby stopped: window {window.window_start} does not chain onto the standby's last "
                           f"block {seq} ({block_hash}); its first block names {window.first_previous_block_hash} "
                           f"(fork at {address})", hint="the repository holds another history")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode() if value else ""


@dataclass(frozen=True)
class StandbyOptions:
    """How a standby follows, built once by the CLI from its flags. Without notifications it looks every
    `every` seconds; with them, when one arrives and at least every `relist_every` seconds (a lost message
    must not leave it behind); with `once`, one round and no more."""

    every: float = 2.0
    relist_every: float = 60.0
    once: bool = False


def run_standby(location: Location, target: Target, options: StandbyOptions = StandbyOptions(), *,
                notifications: Notifications | None = None, on_round: Callable[[FollowReport], None] | None = None,
                should_stop: Callable[[], bool] = lambda: False,
                on_progress: Callable[[int, int], None] | None = None) -> FollowReport:
    """Follow until `should_stop()` (or after one round with `options.once`); `on_progress` as in
    `follow_once`, for each round.

    A notification is acknowledged only after the round it woke has run. Raises RestoreError on a gap or
    fork (the position then records why the standby stopped). A checkpoint held back by a reader is tried
    again in the next round; with `options.once` there is none, so it raises CheckpointHeldBack."""
    woke: list = []
    cache = RecordCache()  # records are write-once: a round re-reads only what the listing shows new or changed
    # The first round finalizes even with nothing new: an earlier process's checkpoint may have been held back.
    finalize = True
    while True:
        report = follow_once(location, target, cache=cache, on_progress=on_progress, finalize=finalize)
        report.notices = [n.kind for n in woke]
        if notifications is not None and woke:
            notifications.done(woke)
        if on_round is not None:
            on_round(report)
        finalize = report.finalize_deferred is not None
        if options.once and finalize:  # one round and no more: its checkpoint is not done, so it did not end well
            raise CheckpointHeldBack(str(report.finalize_deferred), hint="nothing is lost; run the same command "
                                     "again once the reader is done: its first round finalizes")
        if options.once or should_stop():
            return report
        woke = _wait(notifications, options, should_stop)


def _wait(notifications: Notifications | None, options: StandbyOptions, should_stop: Callable[[], bool]) -> list:
    if notifications is None:
        time.sleep(options.every)
        return []
    deadline = time.monotonic() + options.relist_every
    while not should_stop():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []  # the periodic re-list: a lost message must not leave the standby behind
        notices = notifications.wait(min(remaining, 5.0))
        if notices:
            return notices + notifications.wait(0)  # a burst of records becomes one round
    return []


def promote(location: Location, target_url: str, *, state_dir: str | Path | None = None,
            source_options: dict[str, Any] | None = None,
            on_verified: Callable[[RestoreReport], None] | None = None) -> Incarnation:
    """Stop following, apply the rest, verify, record the incarnation, open the ledger for writes.
    `source_options`: the store options `location` was opened with (a configured repository's), for the
    catch-up restore, which opens the repository again from its URL. `on_verified` gets the verified
    catch-up restore's report (the promote certificate is built from it)."""
    from .run import RestoreOptions, restore

    _refuse_unpromotable(target_url)  # before anything: a refusal must not fence the old primary

    # The whole journal, not the newest snapshot: a writable ledger continues the chain and serves digests and
    # proofs over every block, and a snapshot holds no blocks. A standby that started from a snapshot loads
    # the raw windows it covers here (state-based apply: its documents do not change).
    report = restore(location.url, target_url, RestoreOptions(workers=0, use_snapshots=False,
                                                              state_dir=Path(state_dir or ".ledgerdr-restores"),
                                                              source_options=source_options or {}))
    if not report.verdict:
        raise RestoreError("promote refused: the standby does not verify against the journal: "
                           + "; ".join(report.problems[:5]))
    assert report.last_seq is not None and report.last_block_hash is not None  # a verified restore has a tip
    if on_verified is not None:
        on_verified(report)
    previous, _ = current_lineage(read_windows(location).windows, read_incarnations(location))
    incarnation = Incarnation(new_id(), previous, report.last_seq, report.last_block_hash, iso_ms(utcnow()))
    write_incarnation(location, incarnation)
    _open_for_writes(target_url, incarnation.lineage)
    return incarnation


def detach(target_url: str) -> str:
    """Open a restored ledger for writes as a *detached* copy: a new lineage of its own, and nothing written
    into any repository. A test or drill restore made writable this way fences nothing (production keeps
    backing up), and no repository takes its backups as the production chain's (its lineage is refused by
    the backup's lineage check). Returns the new lineage. Raises RestoreError for a target that cannot be
    opened for writes; TargetError when it cannot be opened at all."""
    _refuse_unpromotable(target_url)
    lineage = new_id()
    _open_for_writes(target_url, lineage)
    return lineage


def _refuse_unpromotable(target_url: str) -> None:
    from ..targets import open_target

    target = open_target(target_url)
    try:
        if not target.writable_ledger:
            raise RestoreError(f"only an embedded target can be opened for writes ({target.kind} is a "
                               "queryable replica)")
    finally:
        target.close()


def _open_for_writes(target_url: str, lineage: str) -> None:
    from ..targets import open_target

    target = open_target(target_url)
    try:
        target.promote(lineage)  # writable_ledger, checked by _refuse_unpromotable
    finally:
        target.close()
