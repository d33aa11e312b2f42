"""Restoring from a snapshot (the format is `ledgerdr.snapshots`): one work unit per part, a part loaded,
verified and turned into what a target applies, and what a worker records for it. Both snapshot formats
are read here; a target that takes rows (`Target.applies_rows`) gets a format-2 part's rows as they are
(`restore.snapshot_rows`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson
from amazon.ion.exceptions import IonException
from amazon.ion.simpleion import IonPyValueModel

from ..errors import VerificationError
from ..journal.ionload import iter_values
from ..journal.model import BlockAddress
from ..journal.verify import Problem
from ..repository import WINDOWS, WindowRecord, parse_iso, window_name
from ..snapshots import (
    MANIFEST,
    SNAPSHOTS,
    Key,
    PartRows,
    SnapshotManifest,
    SnapshotObject,
    Tally,
    check_record,
    gc_paused,
    read_part,
    record_key,
    revision_of_record,
    revision_of_row,
    tip_problem,
)
from ..stores import Store
from ..targets.base import Redaction
from ..targets.ddl import DdlEvent
from .shapes import SNAPSHOT_FORMAT, UnitContent, UnitResult, WorkUnit


def is_snapshot_unit(unit: WorkUnit) -> bool:
    return unit.fmt == SNAPSHOT_FORMAT


def snapshot_units(manifest: SnapshotManifest) -> list[WorkUnit]:
    """One work unit per part. Unit ids are deterministic, so a resumed or shared restore skips parts
    the target already holds. Every unit spans the snapshot's whole block range."""
    return [
        WorkUnit(
            f"snapshot-{manifest.last_seq:020d}-{i:05d}-{obj.sha256[:12]}",
            obj.key,
            SNAPSHOT_FORMAT,
            manifest.first_seq,
            manifest.last_seq,
            obj.sha256,
            obj.version_id,
            None,
        )
        for i, obj in enumerate(manifest.objects)
    ]


@dataclass
class SnapshotContent(UnitContent):
    """A loaded part: `UnitContent` with no blocks, plus what stands in for them."""

    manifest: SnapshotManifest | None = None
    part: int = 0
    tally: Tally = field(default_factory=Tally)

    @property
    def is_tip(self) -> bool:
        """The last part carries the snapshot's block range and tip hash into the restore's chain check."""
        return self.manifest is not None and self.part == len(self.manifest.objects) - 1


def load_snapshot_unit(store: Store, unit: WorkUnit) -> SnapshotContent:
    """Fetch and verify one part; raises VerificationError (naming the key and block address) and
    applies nothing when the manifest, the tip, the bytes or any revision hash does not check.

    Revisions come newest version first within each document, so a target sets a document's current
    row once instead of once per version."""
    manifest, part, data = fetch_part(store, unit)
    expected = manifest.objects[part]
    content = SnapshotContent(unit, strand_id=manifest.strand_id, manifest=manifest, part=part)
    with gc_paused():
        if manifest.format_version >= 2:
            parsed = check_part(unit.key, manifest, part, data)
            content.tally = parsed.tally
            names, lost = dict(parsed.tables), set(parsed.type_lost)
            content.revisions = [revision_of_row(row, names[row[0]], i in lost) for i, row in enumerate(parsed.rows)]
        else:
            try:
                records = list(iter_values(data, value_model=IonPyValueModel.MAY_BE_BARE))
            except (IonException, ValueError, TypeError, IndexError) as exc:
                _refuse(unit.key, "unreadable_object", None, f"cannot decode: {exc}")
            _check_records(content, records, expected)
        if manifest.redactions:
            present = {r.key for r in content.revisions}
            content.redactions = [Redaction(*key) for key in manifest.redactions if tuple(key) in present]
        content.revisions.sort(key=lambda r: (r.table_id, r.document_id, -r.version))
    content.tables = {t.table_id: t for t in manifest.tables}
    if part == 0:  # the snapshot's tables seed the one interpretation of the DDL after it (`targets.ddl`)
        content.ddl = [DdlEvent.seed(t) for t in manifest.tables]
    return content


def fetch_part(store: Store, unit: WorkUnit) -> tuple[SnapshotManifest, int, bytes]:
    """The part's manifest (checked against its tip window), its index and its bytes, checked against the
    manifest's sha256 and size. Raises VerificationError naming the part."""
    manifest, part = manifest_for(store, unit)
    data = store.get(unit.key, version_id=unit.version_id) if unit.version_id else store.get(unit.key)
    expected = manifest.objects[part]
    if hashlib.sha256(data).hexdigest() != expected.sha256 or len(data) != expected.size:
        _refuse(unit.key, "checksum_mismatch", None, "bytes do not match the manifest's sha256 and size")
    return manifest, part, data


def check_part(key: str, manifest: SnapshotManifest, part: int, data: bytes) -> PartRows:
    """A format-2 part read and every revision hash recomputed (`snapshots.read_part`), its order, block
    numbers, counts and first and last keys checked against the manifest. Raises VerificationError naming
    the part and the block of each revision that fails; nothing is applied then."""
    expected = manifest.objects[part]
    try:
        parsed = read_part(data, manifest.first_seq, manifest.last_seq)
    except ValueError as exc:
        _refuse(key, "unreadable_object", None, f"cannot decode: {exc}")
    rows = parsed.rows
    problems = [
        Problem("order" if "after" in detail else "revision_hash", key,
                str(BlockAddress(manifest.strand_id, rows[index][7])),
                f"revision {rows[index][1]} v{rows[index][2]}: {detail}")
        for index, detail in parsed.problems
    ]
    tally = parsed.tally
    stated = (expected.revisions, expected.deleted, expected.redacted, expected.type_lost, expected.rule_unknown)
    found = (tally.revisions, tally.deleted, tally.redacted, tally.type_lost, tally.rule_unknown)
    if stated != found:
        problems.append(Problem("counts", key, None, f"holds {found} (revisions, deleted, redacted, type lost, "
                                                     f"rule unknown), the manifest says {stated}"))
    elif rows and (rows[0][:3] != tuple(expected.first) or rows[-1][:3] != tuple(expected.last)):
        problems.append(Problem("range", key, None, "first or last record is not the manifest's"))
    if problems:
        raise VerificationError(f"snapshot object {key} failed verification; nothing applied", problems)
    return parsed


def manifest_for(store: Store, unit: WorkUnit) -> tuple[SnapshotManifest, int]:
    """The part's manifest, checked against the window record it names; and the part's index."""
    folder, _, _ = unit.key.rpartition("/")
    prefix = folder[: folder.rfind(SNAPSHOTS)]
    try:
        manifest = SnapshotManifest.from_bytes(store.get(f"{folder}/{MANIFEST}"))
        window = WindowRecord.from_bytes(
            store.get(f"{prefix}{WINDOWS}{window_name(parse_iso(manifest.tip_window))}.json")
        )
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
        _refuse(unit.key, "unreadable_manifest", None, f"manifest or its tip window record unreadable: {exc}")
    problem = tip_problem(manifest, [window])
    if problem:
        _refuse(unit.key, "tip_mismatch", str(BlockAddress(manifest.strand_id, manifest.last_seq)), problem)
    for index, obj in enumerate(manifest.objects):
        if obj.key == unit.key:
            if unit.sha256 and unit.sha256 != obj.sha256:
                _refuse(unit.key, "checksum_mismatch", None, "the plan's sha256 is not the manifest's")
            return manifest, index
    _refuse(
        unit.key, "not_in_manifest", None, f"the manifest of snapshot {manifest.last_seq} does not list it"
    )


def _check_records(content: SnapshotContent, records: list[Any], expected: SnapshotObject) -> None:
    problems: list[Problem] = []
    key = content.unit.key
    previous: Key | None = None
    for record in _records(records, key):
        current = record_key(record)
        where = str(BlockAddress(content.strand_id or "", int(record["blockSeq"])))
        if previous is not None and current <= previous:
            problems.append(Problem("order", key, where, f"record {current} is not after {previous}"))
        previous = current
        detail, ion = check_record(record, content.tally)
        if detail:
            problems.append(
                Problem("revision_hash", key, where, f"revision {current[1]} v{current[2]}: {detail}")
            )
        content.revisions.append(revision_of_record(record, ion))
    tally = content.tally
    stated = (expected.revisions, expected.deleted, expected.redacted, expected.type_lost)
    found = (tally.revisions, tally.deleted, tally.redacted, tally.type_lost)
    if stated != found:
        problems.append(
            Problem(
                "counts",
                key,
                None,
                f"holds {found} (revisions, deleted, redacted, type lost), the manifest says {stated}",
            )
        )
    elif records and (record_key(records[0]) != tuple(expected.first) or previous != tuple(expected.last)):
        problems.append(Problem("range", key, None, "first or last record is not the manifest's"))
    if problems:
        raise VerificationError(f"snapshot object {key} failed verification; nothing applied", problems)


def _records(records: list[Any], key: str) -> Iterator[Any]:
    for index, record in enumerate(records):
        try:
            record_key(record)
            bytes(record["hash"])
        except (KeyError, TypeError, ValueError):
            _refuse(key, "unreadable_object", None, f"record #{index} is not a revision record")
        yield record


def _refuse(key: str, kind: str, address: str | None, detail: str) -> NoReturn:
    raise VerificationError(
        f"snapshot object {key}: {detail}; nothing applied", [Problem(kind, key, address, detail)]
    )


def snapshot_result(content: SnapshotContent) -> UnitResult:
    """What a worker records for a part (`part_result`)."""
    assert content.manifest is not None
    return part_result(content.unit, content.manifest, content.part, len(content.revisions),
                       tuple(f"{r.table_name} {r.document_id} v{r.version}" for r in content.revisions if r.type_lost),
                       [event.to_list() for event in content.ddl])


def part_result(unit: WorkUnit, manifest: SnapshotManifest, part: int, revisions: int,
                type_lost: tuple[str, ...] = (), ddl: list[list] | None = None) -> UnitResult:
    """The result of part `part`. Only the tip part states a block range (the snapshot's, ending at its tip
    hash), so the restore's chain check links the first later window onto the tip."""
    tip = manifest if part == len(manifest.objects) - 1 else None
    return UnitResult(
        unit_id=unit.unit_id,
        first_seq=tip.first_seq if tip is not None else None,
        first_previous_hash=None,
        last_seq=tip.last_seq if tip is not None else None,
        last_hash=tip.tip_hash if tip is not None else None,
        last_block_time_ms=tip.tip_time_ms if tip is not None else None,
        revisions=revisions,
        type_lost=type_lost,
        ddl=tuple(ddl or ()),
    )


def last_block_of(content: UnitContent) -> tuple[int, bytes] | None:
    """The (sequence number, block hash) a target records for a unit: the last block, or for the tip
    part of a snapshot its tip; None for other parts."""
    if isinstance(content, SnapshotContent):
        if content.is_tip and content.manifest is not None:
            return content.manifest.last_seq, base64.b64decode(content.manifest.tip_hash)
        return None
    last = content.blocks[-1] if content.blocks else None
    return (last.sequence_no, last.block_hash) if last else None
