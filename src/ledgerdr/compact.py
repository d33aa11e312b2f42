"""`compact`: the nightly job that folds verified windows into a snapshot (DESIGN §4, CONTRACTS §2, §8).

A snapshot holds every revision of every document (full history) sorted by table id, document id and
version, the DDL (tables with their indexes and dropped state), and the journal's redactions applied;
read-only transactions leave nothing in it (they have no revisions). It stands for blocks
`first_seq..last_seq` and its manifest names the tip hash — the last folded window's `last_block_hash`.
The format and the checks a reader makes are in `snapshots.py`.

Every source object is verified as it is read (`load_unit` for raw exports, `load_snapshot_unit` for the
previous snapshot, which is the base of the next one, so compaction keeps working after `prune` removed
raw exports), and the blocks must chain from window to window onto each window record's hashes.
Nothing is written until everything has been read and checked; then parts (content-addressed names,
put-if-absent) and the manifest last. New objects only. Memory: the sort spills to a temporary SQLite
file; what stays in memory is one source object, one part, the DDL and the set of redacted revisions.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from .errors import ObjectExists, VerificationError
from .journal.hashing import ion_hash
from .journal.ionload import load_value
from .journal.verify import Problem
from .repository import WindowRecord, iso_ms, put_record, read_windows, utcnow
from .restore.plan import units_of_window
from .restore.snapshot import load_snapshot_unit, snapshot_units
from .restore.units import load_unit, result_of
from .snapshots import (
    FORMAT_VERSION,
    SNAPSHOTS,
    Key,
    NotInFormat2,
    SnapshotManifest,
    SnapshotObject,
    encode_part,
    encode_records,
    gc_paused,
    manifest_key,
    newest_snapshot,
    part_suffix,
    read_part,
    record_key,
    revision_of_record,
    revision_record,
)
from .stores import Location
from .targets.base import RestoredRevision
from .targets.ddl import DdlState

DEFAULT_PART_BYTES = 4 * 1024 * 1024


@dataclass
class CompactReport:
    location: str
    last_seq: int | None = None
    first_seq: int | None = None
    tip_hash: str | None = None
    manifest_key: str | None = None
    base_snapshot: int | None = None
    # window_start of the windows read from raw exports (the base snapshot's are in windows_covered)
    windows_folded: list[str] = field(default_factory=list)
    windows_covered: int = 0
    objects: int = 0
    bytes_written: int = 0
    revisions: int = 0
    documents: int = 0
    live_documents: int = 0
    redactions_applied: int = 0
    blocks_without_revisions: int = 0  # read-only and DDL-only transactions: nothing of them is kept
    already_compacted: bool = False
    nothing_to_do: str | None = None
    stopped_before: str | None = None  # why the fold stopped before the newest window (a gap)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compact(
    location: Location,
    *,
    up_to_seq: int | None = None,
    retention: timedelta | None = timedelta(days=30),
    now: datetime | None = None,
    part_bytes: int = DEFAULT_PART_BYTES,
    on_progress: Callable[[int, int], None] | None = None,
    format_version: int = FORMAT_VERSION,
) -> CompactReport:
    """Fold the verified windows after the newest snapshot (up to the newest window, or the last one
    ending at or before `up_to_seq`; never past a gap) into a new snapshot.

    Idempotent: when the manifest for that last block exists, nothing is done (`already_compacted`).
    Raises VerificationError (naming key and block address) when a source object, the chain between
    windows or the base snapshot does not verify; nothing is written then. StoreError as the store.
    Snapshot objects are retained until `now + retention` (no retention when None).
    `on_progress(read, total)` counts the source objects (base snapshot parts, then the windows' objects)
    read and verified so far.
    `format_version` 1 writes the earlier format (what `bench/bench_compact.py` compares with); 2 falls back to 1
    by itself for a journal whose metadata a target would not rebuild as it was (`snapshots` module comment).
    """
    started = time.monotonic()
    now = now or utcnow()
    report = CompactReport(location.url)
    windows = read_windows(location).windows
    base = newest_snapshot(location, windows=windows, until_block=up_to_seq)
    selected, report.stopped_before = select_windows(windows, base, up_to_seq)
    last = next((w for w in reversed(selected) if w.last_seq is not None), None)
    report.base_snapshot = base.last_seq if base else None
    if last is None or last.last_seq is None:
        report.already_compacted = base is not None and report.stopped_before is None
        report.nothing_to_do = (
            f"snapshot {base.last_seq} covers every verified window"
            if base
            else "no verified window with blocks"
        ) + (f"; {report.stopped_before}" if report.stopped_before else "")
        report.last_seq = base.last_seq if base else None
        report.seconds = round(time.monotonic() - started, 3)
        return report
    report.last_seq, report.tip_hash = last.last_seq, last.last_block_hash
    report.manifest_key = manifest_key(location, last.last_seq)
    report.windows_folded = [w.window_start for w in selected]
    if location.store.exists(report.manifest_key):
        report.already_compacted = True
    else:
        with tempfile.TemporaryDirectory(prefix="ledgerdr-compact-") as scratch:
            fold = _Fold(Path(scratch) / "spill.db")
            try:
                with gc_paused():  # millions of short-lived Ion objects and no cycles (see gc_paused)
                    _read_sources(location, fold, base, selected, on_progress)
                    manifest = _write_snapshot(location, fold, base, selected, now, retention, part_bytes,
                                               report, Path(scratch), format_version)
            finally:
                fold.close()
        report.already_compacted = not _put_manifest(location, report.manifest_key, manifest)
        report.first_seq, report.windows_covered = manifest.first_seq, len(manifest.windows)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def select_windows(
    windows: list[WindowRecord], base: SnapshotManifest | None, up_to_seq: int | None
) -> tuple[list[WindowRecord], str | None]:
    """The window records to fold after `base`, in order, and why the selection stopped early (a gap).

    Windows end at or before `up_to_seq`; trailing empty windows are left for the next snapshot."""
    covered = set(base.windows) if base else set()
    previous_last = base.last_seq if base else None
    selected: list[WindowRecord] = []
    for window in windows:
        if window.window_start in covered or (
            base and window.last_seq is not None and window.last_seq <= base.last_seq
        ):
            continue
        if window.last_seq is None:
            selected.append(window)
            continue
        if up_to_seq is not None and window.last_seq > up_to_seq:
            break
        if previous_last is not None and window.first_seq != previous_last + 1:
            reason = f"gap before window {window.window_start}: block {previous_last} then {window.first_seq}"
            while selected and selected[-1].last_seq is None:
                selected.pop()
            return selected, reason
        selected.append(window)
        previous_last = window.last_seq
    while selected and selected[-1].last_seq is None:
        selected.pop()
    return selected, None


# ------------------------------------------------------------------------------------------ reading


class _Fold:
    """What compaction accumulates: revisions (spilled to SQLite for the sort), DDL, redactions, counts."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536", "temp_store=FILE"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute(
            "CREATE TABLE revs (t TEXT NOT NULL, d TEXT NOT NULL, v INTEGER NOT NULL, r BLOB NOT NULL)"
        )
        self.ddl = DdlState()
        self.redactions: set[Key] = set()
        self.strand_id: str | None = None
        self.tip: tuple[int, str] | None = None  # (seq, base64 hash) of the last block read
        self.blocks_without_revisions = 0

    def add(self, revisions: list[RestoredRevision]) -> None:
        self.conn.executemany(
            "INSERT INTO revs VALUES (?, ?, ?, ?)",
            (
                (r.table_id, r.document_id, r.version, simpleion.dumps(revision_record(r), binary=True))
                for r in revisions
            ),
        )

    def sorted_records(self) -> Iterator[tuple[Any, int]]:
        """Every revision record once, in (tableId, documentId, version) order, redactions applied, with
        the size of its encoding alone (an upper bound of its share of a part)."""
        previous = None
        for table_id, document_id, version, payload in self.conn.execute(
            "SELECT t, d, v, r FROM revs ORDER BY t, d, v"
        ):
            if (table_id, document_id, version) == previous:
                continue  # the same revision delivered by two sources: history keeps it once
            previous = (table_id, document_id, version)
            record = load_value(payload)
            if previous in self.redactions and "data" in record:
                revision = revision_of_record(record)
                record = revision_record(revision, redacted_hash=ion_hash(revision.data))
                record["redactionApplied"] = True
            yield record, len(payload)

    def close(self) -> None:
        self.conn.close()


def _read_sources(
    location: Location,
    fold: _Fold,
    base: SnapshotManifest | None,
    windows: list[WindowRecord],
    on_progress: Callable[[int, int], None] | None,
) -> None:
    store = location.store
    parts = snapshot_units(base) if base is not None else []
    units = [(window, units_of_window(window)) for window in windows]
    total, done = len(parts) + sum(len(of_window) for _, of_window in units), 0

    def read_one() -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total)

    if on_progress:
        on_progress(0, total)
    if base is not None:
        for unit in parts:
            fold.add(load_snapshot_unit(store, unit).revisions)
            read_one()
        fold.ddl = DdlState(base.tables)
        fold.ddl.index_statements.update(base.index_statements)  # tuples already (SnapshotManifest.from_json)
        fold.redactions.update(base.redactions)
        fold.strand_id, fold.tip = base.strand_id, (base.last_seq, base.tip_hash)
    for window, of_window in units:
        for unit in of_window:
            content = load_unit(store, unit)
            _link(fold, window, unit.key, result_of(content))
            with_revisions = {revision.block_seq for revision in content.revisions}
            fold.blocks_without_revisions += sum(b.sequence_no not in with_revisions for b in content.blocks)
            fold.ddl.apply_all(content.ddl)  # in block order: the one interpretation (`targets.ddl`)
            fold.add(content.revisions)
            fold.redactions.update(r.key for r in content.redactions)
            fold.strand_id = fold.strand_id or content.strand_id
            read_one()
        if window.last_seq is not None and fold.tip != (window.last_seq, window.last_block_hash):
            raise VerificationError(
                f"window {window.window_start}: its objects end at {fold.tip}, the record says "
                f"block {window.last_seq} {window.last_block_hash}; nothing compacted",
                [Problem("chain_broken", window.export_prefix, None, "window end mismatch")],
            )


def _link(fold: _Fold, window: WindowRecord, key: str, result) -> None:
    """The unit must continue the chain read so far (or, first of all, start where its window says)."""
    if result.first_seq is None:
        return
    expected = fold.tip or (result.first_seq - 1, window.first_previous_block_hash)
    if (result.first_seq - 1, result.first_previous_hash) != expected:
        raise VerificationError(
            f"object {key}: block {result.first_seq} (previous hash {result.first_previous_hash}) does not "
            f"continue block {expected[0]} ({expected[1]}); nothing compacted",
            [
                Problem(
                    "chain_broken",
                    key,
                    f"sequenceNo {result.first_seq}",
                    "does not chain onto what precedes it",
                )
            ],
        )
    fold.tip = (result.last_seq, result.last_hash)


# ------------------------------------------------------------------------------------------ writing


@dataclass
class _Part:
    records: list[Any] = field(default_factory=list)
    size: int = 0
    deleted: int = 0
    redacted: int = 0
    type_lost: int = 0


@dataclass(frozen=True)
class _Staged:
    """A part encoded into the scratch folder (and, in format 2, read back as a restore reads it), not yet
    put: every part is staged before the first is written, so a fallback to format 1 leaves nothing behind."""

    path: Path
    size: int
    sha256: str
    revisions: int
    deleted: int
    redacted: int
    type_lost: int
    rule_unknown: int
    first: Key
    last: Key


def _write_snapshot(
    location: Location,
    fold: _Fold,
    base: SnapshotManifest | None,
    windows: list[WindowRecord],
    now: datetime,
    retention: timedelta | None,
    part_bytes: int,
    report: CompactReport,
    scratch: Path,
    format_version: int,
) -> SnapshotManifest:
    last = next(w for w in reversed(windows) if w.last_seq is not None)
    assert last.last_seq is not None and last.last_block_hash is not None
    first_seq = base.first_seq if base else next(w.first_seq for w in windows if w.first_seq is not None)
    try:
        if format_version < 2:
            raise NotInFormat2("format 1 asked for")
        version, staged = 2, _stage(fold, part_bytes, report, scratch, (first_seq, last.last_seq))
    except NotInFormat2:  # metadata a target would not rebuild as it was: every revision as Ion (format 1)
        version, staged = 1, _stage(fold, part_bytes, report, scratch, None)
    retain_until = now + retention if retention else None
    objects = [_put_part(location, last.last_seq, i, part, retain_until, version) for i, part in enumerate(staged)]
    report.objects = len(objects)
    report.bytes_written = sum(o.size for o in objects)
    report.revisions = sum(o.revisions for o in objects)
    report.blocks_without_revisions = fold.blocks_without_revisions
    return SnapshotManifest(
        first_seq=first_seq,
        last_seq=last.last_seq,
        tip_hash=last.last_block_hash,
        tip_window=last.window_start,
        tip_time=last.last_block_time,
        strand_id=fold.strand_id or last.source.get("strand_id", ""),
        ledger=last.source.get("ledger"),
        lineage=last.lineage,
        windows=(base.windows if base else ()) + tuple(w.window_start for w in windows),
        base_snapshot=base.last_seq if base else None,
        tables=fold.ddl.tables(),
        index_statements=tuple(sorted(fold.ddl.index_statements)),
        redactions=tuple(sorted(fold.redactions)),
        objects=tuple(objects),
        counts={
            "revisions": report.revisions,
            "documents": report.documents,
            "live_documents": report.live_documents,
            "deleted": sum(o.deleted for o in objects),
            "redacted": sum(o.redacted for o in objects),
            "type_lost": sum(o.type_lost for o in objects),
            "tables": len(fold.ddl.tables()),
            "blocks": last.last_seq - first_seq + 1,
            "blocks_without_revisions": fold.blocks_without_revisions
            + (base.counts.get("blocks_without_revisions", 0) if base else 0),
        },
        created_at=iso_ms(now),
        format_version=version,
    )


def _stage(fold: _Fold, part_bytes: int, report: CompactReport, scratch: Path,
           block_range: tuple[int, int] | None) -> list[_Staged]:
    """Every part encoded into `scratch`: format 2 when `block_range` is given (raises NotInFormat2 when a
    revision does not fit), else format 1. Counts documents into `report`."""
    staged: list[_Staged] = []
    part = _Part()
    document: tuple[str, str] | None = None
    live = False
    report.documents = report.live_documents = report.redactions_applied = 0
    for record, size in fold.sorted_records():  # each part's records are freed once it is staged
        key = record_key(record)
        if key[:2] != document:
            report.documents += 1
            report.live_documents += live
            document = key[:2]
        live = "data" in record or "dataHash" in record
        report.redactions_applied += bool(record.pop("redactionApplied", False))
        _add(part, record, size)
        if part.size >= part_bytes:
            staged.append(_stage_part(part, scratch / f"part-{len(staged):05d}", block_range))
            part = _Part()
    report.live_documents += live
    if part.records:
        staged.append(_stage_part(part, scratch / f"part-{len(staged):05d}", block_range))
    return staged


def _stage_part(part: _Part, path: Path, block_range: tuple[int, int] | None) -> _Staged:
    rule_unknown = 0
    if block_range is None:
        data = encode_records(part.records)
    else:
        data = encode_part(part.records)
        try:  # read back as a restore will: a revision that does not recompute does not fit format 2
            parsed = read_part(data, *block_range)
        except ValueError as exc:
            raise NotInFormat2(str(exc)) from None
        if parsed.problems:
            raise NotInFormat2(f"revision #{parsed.problems[0][0]}: {parsed.problems[0][1]}")
        rule_unknown = parsed.tally.rule_unknown
    path.write_bytes(data)
    return _Staged(path, len(data), hashlib.sha256(data).hexdigest(), len(part.records), part.deleted,
                   part.redacted, part.type_lost, rule_unknown, record_key(part.records[0]),
                   record_key(part.records[-1]))


def _add(part: _Part, record: Any, size: int) -> None:
    part.records.append(record)
    part.size += size
    if "data" not in record:
        part.deleted += "dataHash" not in record
        part.redacted += "dataHash" in record
    part.type_lost += bool(record.get("typeLost", False))


def _put_part(location: Location, last_seq: int, index: int, part: _Staged, retain_until: datetime | None,
              version: int) -> SnapshotObject:
    """Write one staged part put-if-absent under a content-addressed name: a rerun after an interruption
    finds its own earlier part (same bytes, same name) and keeps it."""
    data, digest = part.path.read_bytes(), part.sha256
    key = location.key(f"{SNAPSHOTS}{last_seq:020d}/part-{index:05d}-{digest[:16]}{part_suffix(version)}")
    try:
        version_id = location.store.put(key, data, retain_until=retain_until, sha256=digest).version_id
    except ObjectExists:
        existing = location.store.head(key)
        if (existing.sha256 or hashlib.sha256(location.store.get(key)).hexdigest()) != digest:
            raise
        version_id = existing.version_id
    return SnapshotObject(key, part.size, digest, version_id, part.revisions, part.deleted, part.redacted,
                          part.type_lost, part.first, part.last, part.rule_unknown)


def _put_manifest(location: Location, key: str, manifest: SnapshotManifest) -> bool:
    """Written last, put-if-absent: False when a concurrent run recorded this snapshot first."""
    try:
        put_record(location, key, asdict(manifest))
    except ObjectExists:
        return False
    return True
