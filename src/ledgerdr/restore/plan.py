"""Planning a restore: which data objects, which block ranges, in which order (DESIGN §3).

From ledgerdr's window records when the location has them; otherwise from raw QLDB exports alone —
for example years of the reference architecture's hourly exports, overlapping and with holes:
completed manifests are discovered, objects ordered by block range, blocks already covered
skipped, and a gap refused unless the caller allows it (then it is named exactly).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime

import orjson

from ..errors import ConfigError, RestoreError, StoreError
from ..journal.codecs import ExportFormat
from ..journal.exports import plan_location
from ..journal.ids import new_id
from ..journal.layout import parse_data_object_key
from ..points import check_restore_point, pruned_floor, restorable_range
from ..repository import WindowRecord, read_windows
from ..snapshots import SnapshotManifest, newest_snapshot
from ..stores import Location, Store
from ..stores.base import validate_key
from .overlaps import Claim, ForkError, check_repeat
from .shapes import WorkUnit
from .snapshot import snapshot_units


@dataclass
class RestorePlan:
    restore_id: str
    source: str
    units: list[WorkUnit] = field(default_factory=list)
    strand_id: str | None = None
    ledger_name: str | None = None
    expected_last_seq: int | None = None
    expected_last_hash: str | None = None  # from the window records, when planned from them
    gaps: list[tuple[int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    from_records: bool = False
    snapshot_last_seq: int | None = None  # blocks up to here come from this snapshot (`ledgerdr.snapshots`)

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_bytes(cls, data: bytes) -> RestorePlan:
        raw = orjson.loads(data)
        raw["units"] = [WorkUnit(**u) for u in raw["units"]]
        raw["gaps"] = [tuple(g) for g in raw["gaps"]]
        return cls(**raw)


def plan_restore(location: Location, *, until: datetime | None = None, until_block: int | None = None,
                 allow_gaps: bool = False, restore_id: str | None = None,
                 use_snapshots: bool = True) -> RestorePlan:
    """Raises RestoreError for a gap (unless `allow_gaps`), a fork (`overlaps.ForkError`), a record naming
    an invalid key, or when there is nothing to restore; ConfigError for `until` with `until_block`, or
    an `until_block` past the newest block the location holds (never a silently shorter restore).

    With `use_snapshots`, the newest snapshot wholly before the cut replaces the windows it covers."""
    if until is not None and until_block is not None:
        raise ConfigError("--until and --until-block both give the restore's end: pass one of them")
    if until_block is not None and until_block < 0:
        raise ConfigError(f"--until-block {until_block} is not a block sequence number (0 or more)")
    catalog = read_windows(location)
    plan = RestorePlan(restore_id or new_id(), location.url)
    until_ms = int(until.timestamp() * 1000) if until else None
    if catalog.windows:
        span = restorable_range(catalog.windows, pruned_floor(location))
        if span is not None:  # the same range `ledgerdr info` shows
            check_restore_point(span, location.url, until=until, until_block=until_block)
        base = None
        if use_snapshots:
            base = newest_snapshot(location, windows=catalog.windows, until_block=until_block,
                                   until_ms=until_ms)
        _plan_from_records(plan, location.store, catalog.windows, until, until_block, until_ms, base)
    else:
        _plan_from_exports(plan, location, until_block, until_ms)
    if until_block is not None and plan.units and (plan.expected_last_seq is None or
                                                   plan.expected_last_seq < until_block):
        raise ConfigError(f"--until-block {until_block} is past the newest block under {location.url} "
                          f"({plan.expected_last_seq}): nothing was restored",
                          hint=f"pass --until-block {plan.expected_last_seq} or less, or omit it")
    if plan.gaps and not allow_gaps:
        lost = ", ".join(f"{a}..{b}" for a, b in plan.gaps)
        raise RestoreError(f"cannot restore across a gap: blocks {lost} are in no export under {location.url}",
                           hint="find the missing exports, or pass --allow-gaps to restore the rest and report "
                                "what is lost")
    if not plan.units:
        raise RestoreError(f"nothing to restore under {location.url}" + (" before the given point" if until or
                                                                          until_block is not None else ""))
    return plan


def _plan_from_records(plan: RestorePlan, store: Store, windows: list[WindowRecord], until: datetime | None,
                       until_block: int | None, until_ms: int | None,
                       base: SnapshotManifest | None = None) -> None:
    plan.from_records = True
    previous: _Tip | None = None
    if base is not None:  # a SnapshotManifest: its parts first, then the windows after its tip
        plan.units.extend(snapshot_units(base))
        plan.snapshot_last_seq = base.last_seq
        previous = _Tip(f"snapshot {base.last_seq:020d}", base.last_seq, base.tip_hash)
        plan.strand_id, plan.ledger_name = base.strand_id, base.ledger
        plan.expected_last_seq, plan.expected_last_hash = base.last_seq, base.tip_hash
    for window in windows:
        if until is not None and window.start >= until:
            break
        if window.last_seq is None:
            continue
        if plan.snapshot_last_seq is not None and window.last_seq <= plan.snapshot_last_seq:
            continue  # covered by the snapshot
        plan.strand_id = plan.strand_id or window.source.get("strand_id")
        plan.ledger_name = plan.ledger_name or window.source.get("ledger")
        units = units_of_window(window, until_block, until_ms)
        if previous is not None and window.first_seq is not None:
            if window.first_seq > previous.last_seq + 1:
                plan.gaps.append((previous.last_seq + 1, window.first_seq - 1))
            elif window.first_seq == previous.last_seq + 1:
                _check_junction(previous, window)
            else:
                units = _without_repeat(plan, store, window, units, previous.last_seq, previous.record)
        plan.units.extend(units)
        if previous is None or window.last_seq > previous.last_seq:
            previous = _Tip(f"the window record of {window.window_start}", window.last_seq, window.last_block_hash)
            plan.expected_last_seq, plan.expected_last_hash = window.last_seq, window.last_block_hash
        if until_block is not None and previous.last_seq >= until_block:
            plan.expected_last_seq, plan.expected_last_hash = until_block, None
            break
    if until is not None:
        plan.expected_last_hash = None  # the cut falls inside a window: known only after applying


@dataclass(frozen=True)
class _Tip:
    """The newest block planned so far, and the record (or snapshot) that holds it."""

    record: str
    last_seq: int
    last_hash: str | None


def _check_junction(previous: _Tip, window: WindowRecord) -> None:
    """A record that starts right after the previous one must chain onto its last block."""
    if previous.last_hash and window.first_previous_block_hash and \
            previous.last_hash != window.first_previous_block_hash:
        raise ForkError(f"fork: {previous.record} ends with block {window.source.get('strand_id')}:"
                        f"{previous.last_seq} hash {previous.last_hash}, but the window record of "
                        f"{window.window_start} continues from a block with hash {window.first_previous_block_hash}; "
                        f"nothing applied",
                        hint="the window records describe two histories: remove neither (write-once), restore "
                             "from a repository that holds one")


def _without_repeat(plan: RestorePlan, store: Store, window: WindowRecord, units: list[WorkUnit],
                    covered: int, previous_record: str) -> list[WorkUnit]:
    """A record that repeats blocks already planned (a duplicated or overlapping record): the repeated
    blocks must be the same (else ForkError); they are skipped, said once."""
    first = window.first_seq if window.first_seq is not None else covered + 1
    repeat_last = min(covered, window.last_seq if window.last_seq is not None else covered)
    earlier = [_claim(u) for u in plan.units if u.fmt != "SNAPSHOT" and u.last_seq >= first]
    for unit in units:
        lo, hi = max(first, unit.first_seq), min(repeat_last, unit.last_seq)
        if lo <= hi:
            check_repeat(store, earlier, _claim(unit), lo, hi)
    plan.warnings.append(f"overlap: the window record of {window.window_start} repeats blocks {first}..{repeat_last} "
                         f"of {previous_record}, with the same hashes: planned once")
    # the rest of each unit, renamed for its new range (unit ids name their range)
    return [_unit(u.key, u.fmt, max(u.first_seq, covered + 1), u.last_seq, u.sha256, u.version_id, u.until_ms)
            for u in units if u.last_seq > covered]


def _claim(unit: WorkUnit) -> Claim:
    return Claim(unit.key, unit.fmt, unit.first_seq, unit.last_seq, unit.sha256, unit.version_id)


def units_of_window(window: WindowRecord, until_block: int | None = None, until_ms: int | None = None) -> list[WorkUnit]:
    """The work units of one recorded window: its data objects, cut to the window's own blocks.

    Raises RestoreError naming the record and the key when the record names an invalid key (`../`, an
    absolute path: a hostile or damaged record), or when its data objects do not cover its blocks."""
    if window.last_seq is None:
        return []
    first = window.first_seq if window.first_seq is not None else window.last_seq + 1
    last = window.last_seq if until_block is None else min(window.last_seq, until_block)
    units = []
    for obj in window.objects:
        try:
            validate_key("record", obj.key)
        except StoreError as exc:
            raise RestoreError(f"window record {window.key_name} names object key {obj.key!r}, which is not a "
                               f"valid key ({exc}): refusing the record; nothing applied") from None
        name = parse_data_object_key(obj.key)
        if name is None or name.last < first or name.first > last:
            continue
        units.append(_unit(obj.key, window.format, max(first, name.first), min(last, name.last), obj.sha256,
                           obj.version_id, until_ms))
    _check_cover(window, units, first, last)
    return units


def _check_cover(window: WindowRecord, units: list[WorkUnit], first: int, last: int) -> None:
    reach = first - 1
    for unit in sorted(units, key=lambda u: u.first_seq):
        if unit.first_seq > reach + 1:
            break
        reach = max(reach, unit.last_seq)
    if reach < last:
        raise RestoreError(f"window record {window.key_name} covers blocks {first}..{window.last_seq}, but its "
                           f"data objects hold no block {reach + 1}: the record is damaged; nothing applied")


def _plan_from_exports(plan: RestorePlan, location: Location, until_block: int | None, until_ms: int | None) -> None:
    export_plan = plan_location(location.store, location.prefix)
    for problem in export_plan.problems:
        plan.warnings.append(str(problem))
    covered = -1
    repeated: list[tuple[int, int]] = []
    for obj in export_plan.objects:
        if obj.first is None or obj.last is None:
            plan.warnings.append(f"object {obj.key}: its name declares no block range; skipped")
            continue
        last = obj.last if until_block is None else min(obj.last, until_block)
        first = max(obj.first, covered + 1)
        if obj.resolved_key is not None and obj.first <= min(covered, last):
            # blocks an earlier export holds too: they must be the same blocks (else a fork)
            repeat = Claim(obj.resolved_key, obj.fmt.value, obj.first, last, obj.sha256)
            check_repeat(location.store, [_claim(u) for u in plan.units if u.last_seq >= obj.first], repeat,
                         obj.first, min(covered, last))
            repeated.append((obj.first, min(covered, last)))
        if first > last:
            continue  # every block already covered by an earlier export
        if obj.resolved_key is None:
            plan.gaps.append((first, last))
        else:
            if first > covered + 1:
                plan.gaps.append((covered + 1, first - 1))
            plan.units.append(_unit(obj.resolved_key, obj.fmt.value, first, last, obj.sha256, None, until_ms))
            name = parse_data_object_key(obj.key)
            plan.strand_id = plan.strand_id or (name.strand_id if name else None)
        covered = last
        if until_block is not None and covered >= until_block:
            break
    if repeated:  # one line, however many objects overlap
        plan.warnings.append(f"{len(repeated)} object(s) repeat blocks another export holds (blocks "
                             f"{repeated[0][0]}..{repeated[0][1]} first), hash for hash the same: skipped")
    if plan.units:
        plan.expected_last_seq = plan.units[-1].last_seq
    for export in export_plan.exports:
        if export.manifest and not plan.ledger_name:
            plan.ledger_name = export.manifest.ledger_name


def _unit(key: str, fmt: str, first: int, last: int, sha256: str | None, version_id: str | None,
          until_ms: int | None) -> WorkUnit:
    ExportFormat.parse(fmt)
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    return WorkUnit(f"{first:020d}-{last:020d}-{tag}", key, fmt, first, last, sha256, version_id, until_ms)
