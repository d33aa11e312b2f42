"""`prune`: safe retention of raw exports once a verified snapshot stands for them (DESIGN §4).

Deletes only the raw export objects (under `exports/`) named by window records that the newest snapshot
covers, after that snapshot verified in full (every part's sha256, every revision hash, its tip hash
against the window record), whose retention has ended, that no running restore uses, and that lie at or
before `keep_after_seq`. Oldest blocks first, so an interrupted prune leaves a contiguous tail. Window
records, watermarks, snapshots and anything under retention are never deleted. A dry run (the default)
lists what would be deleted and why each other object stays.

With `confirm`, a record of what was deleted is written to `_ledgerdr/prunes/` (a new key each run), so
`status` and `verify` can tell objects pruned by policy from objects lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .errors import ObjectNotFound, RetentionViolation, StoreError
from .journal.ids import new_id
from .journal.layout import parse_data_object_key
from .points import PRUNES  # where restore's range reads what was pruned
from .repository import EXPORTS, ObjectRecord, WindowRecord, iso_ms, put_record, read_windows, utcnow
from .restore.plan import RestorePlan
from .restore.snapshot import load_snapshot_unit, snapshot_units
from .snapshots import SnapshotManifest, newest_snapshot
from .stores import Location


@dataclass(frozen=True)
class PruneItem:
    key: str
    window_start: str
    first_seq: int | None  # the blocks the object holds (a data object), or its window's (a manifest)
    last_seq: int | None
    size: int
    action: str  # "delete" (dry run), "deleted", "keep", "gone" (already deleted by an earlier run)
    reason: str


@dataclass
class PruneReport:
    location: str
    dry_run: bool
    snapshot_last_seq: int | None = None
    snapshot_revisions_verified: int = 0
    items: list[PruneItem] = field(default_factory=list)
    windows_not_covered: int = 0
    record_key: str | None = None
    nothing_to_do: str | None = None

    @property
    def deletable(self) -> list[PruneItem]:
        return [i for i in self.items if i.action in ("delete", "deleted")]

    @property
    def bytes_freed(self) -> int:
        return sum(i.size for i in self.items if i.action == "deleted")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(deletable=len(self.deletable), bytes_freed=self.bytes_freed)
        return out


def prune(
    location: Location,
    *,
    keep_after_seq: int | None = None,
    now: datetime | None = None,
    confirm: bool = False,
    in_use: Iterable[str] = (),
) -> PruneReport:
    """List (dry run) or delete (`confirm`) the raw exports the newest verified snapshot makes redundant.

    Raises VerificationError (nothing deleted) when the snapshot does not verify, StoreError when the
    store fails. Idempotent: objects already gone are reported as such; rerunning deletes nothing more.
    `in_use`: object keys a running restore still reads (its plan's unit keys; see `keys_in_use`).
    """
    now = now or utcnow()
    report = PruneReport(location.url, dry_run=not confirm)
    windows = read_windows(location).windows
    snapshot = newest_snapshot(location, windows=windows)
    if snapshot is None:
        report.nothing_to_do = "no snapshot whose tip matches a window record: nothing is covered"
        return report
    report.snapshot_last_seq = snapshot.last_seq
    report.snapshot_revisions_verified = verify_snapshot(location, snapshot)
    covered = set(snapshot.windows)
    busy = set(in_use)
    deleted: list[str] = []
    for window, last_seq in _with_position(windows):
        if window.window_start not in covered:
            report.windows_not_covered += 1
            continue
        for obj in _in_block_order(window):
            item = _decide(location, window, obj, last_seq, keep_after_seq, busy, now)
            if item.action == "delete" and confirm:
                item = _delete(location, item)
                if item.action == "deleted":
                    deleted.append(item.key)
            report.items.append(item)
    if deleted:
        report.record_key = _record(location, snapshot, deleted, now)
    if not report.deletable:
        report.nothing_to_do = "nothing is both covered by the snapshot and out of retention"
    return report


def verify_snapshot(location: Location, snapshot: SnapshotManifest) -> int:
    """Read every part of `snapshot` through the restore loader (all checks); the revisions verified.
    Raises VerificationError or StoreError."""
    return sum(len(load_snapshot_unit(location.store, unit).revisions) for unit in snapshot_units(snapshot))


def keys_in_use(state_dir: Path) -> set[str]:
    """The object keys of every restore planned under a local restore state folder (`restore --state-dir`).

    Conservative: a restore's folder is taken as running until it is removed, since a plan can be
    resumed at any time (`restore --resume`)."""
    keys: set[str] = set()
    for plan_path in sorted(Path(state_dir).glob("*/plan.json")):
        try:
            keys.update(unit.key for unit in RestorePlan.from_bytes(plan_path.read_bytes()).units)
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
            raise StoreError(
                str(state_dir),
                plan_path.name,
                "read",
                f"unreadable restore plan: {exc}",
                hint="remove the folder of a restore that will not be resumed",
            ) from None
    return keys


def _with_position(windows: list[WindowRecord]) -> Iterator[tuple[WindowRecord, int]]:
    """Each window with the last block at or before its end (an empty window sits after the block
    before it), in block order."""
    position = -1
    for window in windows:
        if window.last_seq is not None:
            position = window.last_seq
        yield window, position


def _in_block_order(window: WindowRecord) -> list[ObjectRecord]:
    """Data objects by first block, then the manifests: an interrupted prune leaves whole blocks behind."""

    def order(obj: ObjectRecord) -> tuple[int, int, str]:
        name = parse_data_object_key(obj.key)
        return (0, name.first, obj.key) if name is not None else (1, 0, obj.key)

    return sorted(window.objects, key=order)


def _decide(
    location: Location,
    window: WindowRecord,
    obj: ObjectRecord,
    last_seq: int,
    keep_after_seq: int | None,
    busy: set[str],
    now: datetime,
) -> PruneItem:
    name = parse_data_object_key(
        obj.key
    )  # a data object names its own blocks; a manifest stands for the window's
    first, last = (name.first, name.last) if name is not None else (window.first_seq, window.last_seq)

    def item(action: str, reason: str) -> PruneItem:
        return PruneItem(obj.key, window.window_start, first, last, obj.size, action, reason)

    if not (obj.key.startswith(window.export_prefix) and obj.key.startswith(location.folder(EXPORTS))):
        return item("keep", "not a raw export object of this window")
    if keep_after_seq is not None and last_seq > keep_after_seq:
        return item("keep", f"window reaches block {last_seq}, after keep_after_seq {keep_after_seq}")
    if obj.key in busy:
        return item("keep", "in use by a restore")
    try:
        info = location.store.head(obj.key)
    except ObjectNotFound:
        return item("gone", "already deleted")
    if info.retain_until is not None and info.retain_until > now:
        return item("keep", f"under retention until {iso_ms(info.retain_until)}")
    ended = f"retention ended {iso_ms(info.retain_until)}" if info.retain_until else "no retention"
    return item("delete", f"covered by the snapshot; {ended}")


def _delete(location: Location, item: PruneItem) -> PruneItem:
    try:
        location.store.delete(item.key)
    except ObjectNotFound:
        return _with(item, "gone", "already deleted")
    except RetentionViolation as exc:  # the store's clock or lock says otherwise: it has the last word
        return _with(item, "keep", f"the store refused: {exc}")
    return _with(item, "deleted", item.reason)


def _with(item: PruneItem, action: str, reason: str) -> PruneItem:
    return PruneItem(item.key, item.window_start, item.first_seq, item.last_seq, item.size, action, reason)


def _record(location: Location, snapshot: SnapshotManifest, deleted: list[str], now: datetime) -> str:
    key = location.key(f"{PRUNES}{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}Z-{new_id()}.json")
    put_record(location, key, {"format_version": 1, "snapshot_last_seq": snapshot.last_seq,
                               "snapshot_tip_hash": snapshot.tip_hash, "deleted": deleted, "pruned_at": iso_ms(now)})
    return key
