"""What `ledgerdr status` reports for one repository: windows, newest verified block, RPO, gaps.

RPO (CONTRACTS §7) = now − `window_end` of the repository's newest *verified* window. In the
primary a window is verified before it is recorded; in a replica, only its own watermark says
what was verified there. A warm standby's lag is read from the position it keeps in its own target
(`status --standby TARGET`, see restore/standby.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import takewhile

from .errors import LedgerDRError, StoreError, VerificationError
from .replicate import copy_damage
from .repository import (
    ObjectRecord,
    WindowRecord,
    current_lineage,
    find_orphans,
    parse_iso,
    read_incarnations,
    read_watermarks,
    read_windows,
)
from .stores import Location, Store


@dataclass(frozen=True)
class HeldRecord:
    """A verified window's record as one repository holds it: what `durable.py` compares across regions."""

    window_start: str
    window_end: str
    record_sha256: str
    digest: dict | None


@dataclass
class RepositoryStatus:
    name: str
    region: str
    url: str
    windows: int = 0
    verified_windows: int = 0
    newest_verified_window_end: str | None = None
    last_seq: int | None = None
    tip_hash: str | None = None
    last_block_time: str | None = None
    rpo_seconds: float | None = None
    gaps: list[tuple[str, str]] = field(default_factory=list)
    breaks: list[dict] = field(default_factory=list)  # {kind, key, detail}: gap | overlap | fork | unreadable_record
    damaged: list[dict] = field(default_factory=list)  # {key, was}: a replica's copy that is missing or altered
    orphans: list[str] = field(default_factory=list)
    unreadable_records: list[str] = field(default_factory=list)
    pending_windows: int = 0
    lineage: str | None = None
    incarnation: int = 0  # promotions recorded in this repository (0: the original ledger)
    promoted_at_block: int | None = None
    held: list[HeldRecord] = field(default_factory=list, repr=False)  # verified windows' records (not in JSON)

    @property
    def broken(self) -> bool:
        """A break, damage or unreadable record: `status` exits 4, whatever the RPO."""
        return bool(self.breaks or self.damaged)

    def to_json(self) -> dict:
        out = asdict(self)
        del out["held"]
        return {**out, "broken": self.broken}

    def render(self) -> str:
        rpo = "unknown (nothing verified)" if self.rpo_seconds is None else f"{self.rpo_seconds:.0f}s"
        promoted = f", promoted at block {self.promoted_at_block}" if self.promoted_at_block is not None else ""
        lines = [f"[{self.name}] region {self.region}  {self.url}",
                 f"  windows: {self.windows} recorded, {self.verified_windows} verified, "
                 f"{self.pending_windows} pending",
                 f"  newest verified block: {self.last_seq}  at {self.last_block_time}",
                 f"  tip hash: {self.tip_hash}",
                 f"  lineage: {self.lineage}  (incarnation {self.incarnation}{promoted})",
                 f"  RPO now: {rpo}" + ("  (counted up to the first break)" if self.broken else "")]
        lines += [f"  {b['kind'].upper()}: {b['key']}: {b['detail']}" for b in self.breaks]
        lines += [f"  DAMAGED copy ({d['was']}): {d['key']}" for d in self.damaged]
        if self.orphans:
            lines.append(f"  orphans: {len(self.orphans)} export attempts no record names (harmless leftovers of "
                         "failed runs; `ledgerdr verify` lists them)")
        return "\n".join(lines)


def repository_status(name: str, region: str, location: Location, *, now: datetime, primary: bool,
                      primary_name: str | None = None,
                      damage: Callable[[Store, ObjectRecord], str | None] = copy_damage) -> RepositoryStatus:
    """The repository's windows, breaks and RPO, counted only up to its first break (CONTRACTS §7). For a
    replica, only windows its own watermark vouches for count, and each of their copies is hashed again
    (as `replicate` does; `damage` checks a copy, `copies.CheckedCopies.damage` for a metrics server): the
    first window with a missing or altered copy is a break."""
    catalog = read_windows(location)
    status = RepositoryStatus(name, region, location.url, windows=len(catalog.windows), gaps=catalog.gaps(),
                              unreadable_records=catalog.unreadable)
    status.breaks = [{"kind": b.kind, "key": b.key, "detail": b.detail} for b in catalog.breaks()]
    status.orphans = find_orphans(location, catalog) if primary else []
    intact = catalog.intact()
    if primary:
        verified = intact
    else:
        marks = read_watermarks(location, name)
        done = set(marks[-1].windows_verified) if marks else set()
        verified = list(takewhile(lambda w: w.window_start in done, intact))
        verified = _up_to_damage(location, verified, status, damage)
    status.verified_windows = len(verified)
    sha256 = {w.window_start: catalog.record_sha256.get(k, "") for k, w in zip(catalog.keys, catalog.windows,
                                                                                 strict=True)}
    status.held = [HeldRecord(w.window_start, w.window_end, sha256[w.window_start], w.digest) for w in verified]
    status.pending_windows = len(catalog.windows) - len(verified)
    _lineage(location, catalog.windows, status)
    if verified:
        newest = verified[-1]
        status.newest_verified_window_end = newest.window_end
        status.rpo_seconds = (now - parse_iso(newest.window_end)).total_seconds()
        with_blocks = [w for w in verified if w.last_seq is not None]
        if with_blocks:
            status.last_seq = with_blocks[-1].last_seq
            status.tip_hash = with_blocks[-1].last_block_hash
            status.last_block_time = with_blocks[-1].last_block_time
    return status


def _up_to_damage(location: Location, windows: list[WindowRecord], status: RepositoryStatus,
                  damage: Callable[[Store, ObjectRecord], str | None]) -> list[WindowRecord]:
    """The windows before the first one with a missing or altered copy (named in `status.damaged`)."""
    for index, window in enumerate(windows):
        for obj in window.objects:
            try:
                was = damage(location.store, obj)
            except StoreError as exc:
                was = f"unreadable: {exc}"
            if was is not None:
                status.damaged.append({"key": obj.key, "was": was})
        if status.damaged:
            return windows[:index]
    return windows


def _lineage(location: Location, windows: list[WindowRecord], status: RepositoryStatus) -> None:
    """The lineage the repository's next window must carry, and how many promotions it has seen."""
    try:
        incarnations = read_incarnations(location)
    except VerificationError as exc:
        status.breaks += [{"kind": p.kind, "key": p.key, "detail": p.detail} for p in exc.problems]
        incarnations = []
    status.lineage, _ = current_lineage(windows, incarnations)
    status.incarnation = len(incarnations)
    status.promoted_at_block = incarnations[-1].last_seq if incarnations else None


@dataclass
class StandbyStatus:
    """A warm standby's position and lag (`status --standby TARGET`).

    Lag is computed now, against the repository the standby follows: `lag_blocks` = the repository's
    newest recorded block − the standby's last applied block; `lag_seconds` = how long the oldest window
    the standby has not applied has been recorded (0 when caught up). `checked_at` is when the standby
    last looked: a standby that died shows an old one even while the repository is idle."""

    target: str
    source: str | None = None
    state: str = "unknown"  # following | stopped | not started | unknown (no position recorded)
    last_seq: int | None = None
    last_block_hash: str | None = None
    last_block_time: str | None = None
    window: str | None = None
    applied_at: str | None = None
    checked_at: str | None = None
    checked_seconds_ago: float | None = None
    snapshot_last_seq: int | None = None
    repository_last_seq: int | None = None
    repository_window: str | None = None
    lag_blocks: int | None = None
    lag_seconds: float | None = None
    stopped: str | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        lines = [f"[standby] {self.target}  following {self.source or 'unknown'}  ({self.state})"]
        if self.error:
            return "\n".join([*lines, f"  ERROR: {self.error}"])
        lines.append(f"  applied up to block {self.last_seq}  ({self.last_block_hash}), window {self.window}, "
                     f"at {self.applied_at}")
        if self.snapshot_last_seq is not None:
            lines.append(f"  started from the snapshot at block {self.snapshot_last_seq}")
        lines.append(f"  repository newest block: {self.repository_last_seq}  (window {self.repository_window})")
        lines.append(f"  lag now: {self.lag_blocks} blocks, {_seconds(self.lag_seconds)}")
        if self.checked_at:
            lines.append(f"  last checked: {self.checked_at} ({_seconds(self.checked_seconds_ago)} ago)")
        if self.stopped:
            lines.append(f"  STOPPED: {self.stopped}")
        return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}s"


def standby_status(target_url: str, *, now: datetime, default_source: str | None = None,
                   known: dict[str, Location] | None = None) -> StandbyStatus:
    """Read the standby's recorded position from its target (never creating one) and compute its lag
    against the repository it follows (`default_source` when it recorded none). `known` maps URLs to
    configured locations, whose store options (region, endpoint) are then used. Problems become `error`."""
    from .restore.standby import lag, read_position
    from .stores import open_location
    from .targets import embedded_path, open_target

    status = StandbyStatus(target_url)
    path = embedded_path(target_url)
    if path is not None and not path.exists():
        status.error = f"no standby ledger at {path}"
        return status
    try:
        target = open_target(target_url)
        try:
            position, info = read_position(target), target.info()
        finally:
            target.close()
    except (LedgerDRError, ValueError) as exc:
        status.error = str(exc)
        return status
    last = info.get("last_block")
    if position is not None:
        status.source, status.last_seq, status.last_block_hash = position.source, position.last_seq, \
            position.last_block_hash
        status.last_block_time, status.window, status.applied_at = position.last_block_time, position.window, \
            position.applied_at
        status.checked_at, status.snapshot_last_seq, status.stopped = position.checked_at, \
            position.snapshot_last_seq, position.stopped
        status.checked_seconds_ago = round((now - parse_iso(position.checked_at)).total_seconds(), 3)
        status.state = "stopped" if position.stopped else "following"
    elif last:
        status.source, status.last_seq, status.last_block_hash = default_source, last["sequence_no"], last["hash"]
    else:
        status.source, status.state = default_source, "not started"
    if status.source is None:
        return status
    try:
        location = (known or {}).get(status.source) or open_location(status.source)
        catalog = read_windows(location)
    except LedgerDRError as exc:
        status.error = f"cannot read the repository {status.source}: {exc}"
        return status
    newest = next((w for w in reversed(catalog.windows) if w.last_seq is not None), None)
    if newest is not None:
        status.repository_last_seq, status.repository_window = newest.last_seq, newest.window_start
    status.lag_blocks, status.lag_seconds = lag(status.last_seq, catalog.windows, now)
    return status

