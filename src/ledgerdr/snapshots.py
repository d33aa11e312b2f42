"""Snapshots: the compacted form of verified windows, and restoring from one (DESIGN §4, CONTRACTS §2, §8).

A snapshot lives at `<prefix>_ledgerdr/snapshots/<last_seq:020d>/`: parts, then `manifest.json`, written
last and put-if-absent. Both formats sort revisions by (tableId, documentId, version) and hold no blocks;
redactions recorded in the journal are already applied (`dataHash` in place of `data`) and are also listed
in the manifest.

Format 2 (`part-<n:05d>-<sha256[:16]>.rows`): the rows a target stores, in its key order, packed so that a
restore is fetch, checksum, one C pass that re-hashes every revision (`_ionhash.snapshot_rows`), and a bulk
insert. Numbers are LEB128 (minimal), text is UTF-8 after its byte length:

    "LDRSNAP2", table count, per table (ascending id): id, name; record count; per record:
    table index, documentId, version, flags (1 deleted, 2 redacted, 4 type lost), blockSeq,
    txTime as epoch ms (8 bytes, big-endian, signed), txId, hash (32 bytes),
    dataHash (32 bytes, redacted only), data as a self-contained Ion binary stream (length-prefixed;
    not for deletes or redacted revisions)

The metadata is not stored as Ion: it is rebuilt from these columns as the targets rebuild it
(`{id, version, txTime: ms_timestamp, txId}`), so its hash is recomputed from exactly what a target will
hold. A journal whose metadata does not have that form is compacted in format 1.

Format 1 (`part-<n:05d>-<sha256[:16]>.ion`, still read): an Ion binary stream of revision records
`{tableId, tableName, blockSeq, hash, metadata, data | dataHash, typeLost?}` — `metadata` and `data` the
journal's Ion values as they were, `hash` the journal's revision hash.

Trust (CONTRACTS §8): a part is used only when its bytes match the manifest's sha256, every data and
redacted revision's hash recomputes from metadata and data (or dataHash), the records are in strict
order inside the range and counts the manifest states (format 2: also the deletes that fit no known
rule, and every block number inside the snapshot's range), and the manifest's tip hash equals the
`last_block_hash` of the window record it names. Deletes are checked against the known conventions
(CONTRACTS §4); one that fits none, and JSON revisions that lost their Ion types, are counted apart.

This module is the format alone: written by `compact`, read by `restore` and `prune`. Turning a part into
the work a restore applies is `restore/snapshot.py`'s job.
"""

from __future__ import annotations

import gc
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from amazon.ion import simpleion
from amazon.ion.exceptions import IonException
from amazon.ion.simpleion import IonPyValueModel

from . import native
from .errors import StoreError
from .journal.hashing import dot, ion_hash
from .journal.ionload import load_value
from .journal.ionread import binary_ion_hash
from .journal.ionwrite import standalone_hashed
from .journal.writer import ms_timestamp
from .ledger.storage import from_ms, to_ms
from .repository import WindowRecord, parse_iso, read_windows
from .stores import Location
from .targets.base import HistoryRow, RestoredRevision, TableDDL

FORMAT_VERSION = 2  # of the snapshot (manifest and parts); 1 is still read, and written where 2 cannot hold a journal
READABLE_VERSIONS = (1, 2)
SNAPSHOTS = "_ledgerdr/snapshots/"
MANIFEST = "manifest.json"
_NULL_HASH = ion_hash(None)
_MEMORY_REPR = re.compile(r"<memory at 0x[0-9a-fA-F]+>")

Key = tuple[str, str, int]  # (tableId, documentId, version): the sort order of records


# ------------------------------------------------------------------------------------------ the manifest


@dataclass(frozen=True)
class SnapshotObject:
    """One part: where, its checksum, and what it must hold (checked when it is read)."""

    key: str
    size: int
    sha256: str
    version_id: str | None
    revisions: int
    deleted: int
    redacted: int
    type_lost: int
    first: Key
    last: Key
    rule_unknown: int = 0  # format 2: deletes whose hash fits no known rule (CONTRACTS §4), checked on read


@dataclass(frozen=True)
class SnapshotManifest:
    """What a snapshot stands for: blocks `first_seq..last_seq` of `strand_id`, ending at `tip_hash`
    (the `last_block_hash` of window `tip_window`), folded from `windows` (their window_start)."""

    first_seq: int
    last_seq: int
    tip_hash: str
    tip_window: str
    tip_time: str | None
    strand_id: str
    ledger: str | None
    lineage: str | None
    windows: tuple[str, ...]
    base_snapshot: int | None
    tables: tuple[TableDDL, ...]
    index_statements: tuple[tuple[int, str, str], ...]
    redactions: tuple[Key, ...]
    objects: tuple[SnapshotObject, ...]
    counts: dict[str, int]
    created_at: str
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> SnapshotManifest:
        """Raises ValueError for a manifest this ledgerdr cannot read (format_version, fields)."""
        raw = orjson.loads(data)
        if raw.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"snapshot manifest format_version {raw.get('format_version')} is not one of {READABLE_VERSIONS}"
            )
        try:
            raw["windows"] = tuple(raw["windows"])
            raw["tables"] = tuple(TableDDL(**{**t, "indexes": tuple(t["indexes"])}) for t in raw["tables"])
            raw["index_statements"] = tuple(tuple(s) for s in raw["index_statements"])
            raw["redactions"] = tuple(tuple(r) for r in raw["redactions"])
            raw["objects"] = tuple(
                SnapshotObject(**{**o, "first": tuple(o["first"]), "last": tuple(o["last"])})
                for o in raw["objects"]
            )
            return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"snapshot manifest is missing or mistypes a field: {exc}") from None

    @property
    def tip_time_ms(self) -> int | None:
        return None if self.tip_time is None else int(parse_iso(self.tip_time).timestamp() * 1000)


def snapshot_folder(location: Location, last_seq: int) -> str:
    return location.folder(f"{SNAPSHOTS}{last_seq:020d}/")


def manifest_key(location: Location, last_seq: int) -> str:
    return location.key(f"{SNAPSHOTS}{last_seq:020d}/{MANIFEST}")


def list_snapshots(location: Location) -> tuple[list[SnapshotManifest], list[str]]:
    """Every readable manifest, oldest first, and the keys of unreadable ones. Parts are not read."""
    manifests, unreadable = [], []
    for info in location.store.list(location.folder(SNAPSHOTS)):
        if not info.key.endswith("/" + MANIFEST):
            continue
        try:
            manifests.append(SnapshotManifest.from_bytes(location.store.get(info.key)))
        except (ValueError, orjson.JSONDecodeError, StoreError):
            unreadable.append(info.key)
    return sorted(manifests, key=lambda m: m.last_seq), unreadable


def tip_problem(manifest: SnapshotManifest, windows: Iterable[WindowRecord]) -> str | None:
    """Why the manifest's tip does not match a window record (None: it matches)."""
    for window in windows:
        if window.window_start == manifest.tip_window:
            if window.last_seq != manifest.last_seq or window.last_block_hash != manifest.tip_hash:
                return (
                    f"snapshot {manifest.last_seq}: tip (block {manifest.last_seq}, {manifest.tip_hash}) is "
                    f"not window {window.window_start}'s last block ({window.last_seq}, "
                    f"{window.last_block_hash})"
                )
            if manifest.strand_id != window.source.get("strand_id", manifest.strand_id):
                return f"snapshot {manifest.last_seq}: strand {manifest.strand_id} is not the window's"
            return None
    return (
        f"snapshot {manifest.last_seq}: no window record {manifest.tip_window} to check its tip hash against"
    )


def newest_snapshot(
    location: Location,
    *,
    windows: Sequence[WindowRecord] | None = None,
    until_block: int | None = None,
    until_ms: int | None = None,
) -> SnapshotManifest | None:
    """The newest snapshot whose tip matches a window record and that lies wholly before the cut
    (`until_block` included; every block before `until_ms`). None when there is none. Reads manifests
    and window records only; the parts are verified when they are loaded."""
    windows = read_windows(location).windows if windows is None else windows
    keys = [
        info.key
        for info in location.store.list(location.folder(SNAPSHOTS))
        if info.key.endswith("/" + MANIFEST)
    ]
    for key in sorted(keys, reverse=True):  # folder names are 20-digit block numbers: newest first
        try:
            manifest = SnapshotManifest.from_bytes(location.store.get(key))
        except (ValueError, orjson.JSONDecodeError, StoreError):
            continue  # unreadable: an older snapshot may still serve
        if until_block is not None and manifest.last_seq > until_block:
            continue
        if until_ms is not None and (manifest.tip_time_ms is None or manifest.tip_time_ms >= until_ms):
            continue
        if tip_problem(manifest, windows) is None:
            return manifest
    return None


# ------------------------------------------------------------------------------------------ records


def revision_record(revision: RestoredRevision, *, redacted_hash: bytes | None = None) -> dict[str, Any]:
    """The snapshot record of one revision; `redacted_hash` erases its data (a later redaction)."""
    record: dict[str, Any] = {
        "tableId": revision.table_id,
        "tableName": revision.table_name,
        "blockSeq": revision.block_seq,
        "hash": bytes(revision.hash),
        "metadata": revision.metadata,
    }
    if redacted_hash is not None:
        record["dataHash"] = redacted_hash
    elif revision.data is not None:
        record["data"] = revision.data
    elif revision.data_hash is not None:
        record["dataHash"] = bytes(revision.data_hash)
    if revision.type_lost and "data" in record:
        record["typeLost"] = True
    return record


def encode_records(records: Sequence[Any]) -> bytes:
    """One Ion binary stream (one symbol table for the part, so field names cost nothing per record)."""
    return simpleion.dumps(list(records), binary=True, sequence_as_stream=True)


def record_key(record: Any) -> Key:
    metadata = record["metadata"]
    return str(record["tableId"]), str(metadata["id"]), int(metadata["version"])


def revision_of_record(record: Any, ion: bytes | None = None) -> RestoredRevision:
    """`ion`: the data's Ion binary as `check_record` encoded it while hashing it, for the target to store."""
    table_id, document_id, version = record_key(record)
    data_hash = record.get("dataHash")
    return RestoredRevision(
        table_id=table_id,
        table_name=str(record["tableName"]),
        document_id=document_id,
        version=version,
        data=record["data"] if "data" in record else None,
        metadata=record["metadata"],
        hash=bytes(record["hash"]),
        block_seq=int(record["blockSeq"]),
        data_hash=None if data_hash is None else bytes(data_hash),
        type_lost=bool(record.get("typeLost", False)),
        ion=ion,
    )


@dataclass
class Tally:
    revisions: int = 0
    deleted: int = 0
    redacted: int = 0
    type_lost: int = 0
    rule_unknown: int = 0


def check_record(record: Any, tally: Tally) -> tuple[str | None, bytes | None]:
    """Recompute the record's revision hash: (the problem's detail or None, the data's Ion binary).

    A data value is encoded and hashed in one walk (`ionwrite.standalone_hashed`), so the bytes a target
    stores are those of the very value whose hash was checked; a value the encoder does not write is
    hashed by `ion_hash` and left for the target to encode."""
    stated = bytes(record["hash"])
    meta_hash = ion_hash(record["metadata"])
    tally.revisions += 1
    if "data" in record:
        if record.get("typeLost"):
            tally.type_lost += 1
            return None, None
        data_hash, ion = _hash_and_encode(record["data"])
        return (None if dot(meta_hash, data_hash) == stated else "hash does not recompute from metadata and data"), ion
    if "dataHash" in record:
        tally.redacted += 1
        return (
            None
            if dot(meta_hash, bytes(record["dataHash"])) == stated
            else "redacted revision: hash != dot(metadata, dataHash)"
        ), None
    tally.deleted += 1
    if stated not in (meta_hash, dot(meta_hash, _NULL_HASH)):
        tally.rule_unknown += 1  # QLDB never published the rule for deletes (CONTRACTS §4)
    return None, None


def _hash_and_encode(value: Any) -> tuple[bytes, bytes | None]:
    return standalone_hashed(value) or (ion_hash(value), None)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a part is parsed and checked.

    A part becomes a few hundred thousand Ion objects, none of them garbage; with the collector on,
    every few hundred allocations trigger a collection and the older generations are rescanned again
    and again: parsing an 8,000-record part took 2.2 s with it and 0.75 s without (measured, amazon.ion
    0.15). Process-wide but restored on exit; workers are processes, so no other thread is affected."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------------------------------ format 2

PART_MAGIC = b"LDRSNAP2"
FLAG_DELETED, FLAG_REDACTED, FLAG_TYPE_LOST = 1, 2, 4
_TX_MS = struct.Struct(">q")


class NotInFormat2(ValueError):
    """A revision format 2 cannot hold as it is (its metadata is not what a target rebuilds): compact falls
    back to format 1 for that snapshot."""


def part_suffix(format_version: int) -> str:
    return ".rows" if format_version >= 2 else ".ion"


def encode_part(records: Sequence[Any]) -> bytes:
    """Format-2 bytes of revision records (format 1's shape, as compaction folds them), in their order.
    Raises NotInFormat2 when a record does not fit."""
    tables = sorted({(str(r["tableId"]), str(r["tableName"])) for r in records})
    index = {table_id: i for i, (table_id, _) in enumerate(tables)}
    if len(index) != len(tables):
        raise NotInFormat2("a table id with two names")
    out = [PART_MAGIC, _leb(len(tables))]
    out.extend(_text(table_id) + _text(name) for table_id, name in tables)
    out.append(_leb(len(records)))
    out.extend(_record_bytes(record, index) for record in records)
    return b"".join(out)


def _record_bytes(record: Any, tables: dict[str, int]) -> bytes:
    metadata = record["metadata"]
    try:
        tx_ms = to_ms(metadata["txTime"])
        head = [_leb(tables[str(record["tableId"])]), _text(str(metadata["id"])), _leb(int(metadata["version"]))]
        fields = [_leb(int(record["blockSeq"])), _TX_MS.pack(tx_ms), _text(str(metadata["txId"])), bytes(record["hash"])]
    except (KeyError, TypeError, AttributeError, ValueError, struct.error) as exc:
        raise NotInFormat2(f"metadata {metadata!r}: {exc}") from None
    if "data" in record:
        flags = FLAG_TYPE_LOST if record.get("typeLost") else 0
        encoded = standalone_hashed(record["data"])  # as restores store documents; amazon.ion for the rest
        ion = encoded[1] if encoded is not None else simpleion.dumps(record["data"], binary=True)
        tail = _leb(len(ion)) + ion
    elif "dataHash" in record:
        flags, tail = FLAG_REDACTED, bytes(record["dataHash"])
    else:
        flags, tail = FLAG_DELETED, b""
    return b"".join((*head, bytes((flags,)), *fields, tail))


def _leb(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"{value} is negative")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _leb(len(raw)) + raw


def canonical_metadata(document_id: str, version: int, tx_ms: int, tx_id: str) -> dict[str, Any]:
    """A revision's metadata as the targets rebuild it from their columns (and format 2 stores it)."""
    return {"id": document_id, "version": version, "txTime": ms_timestamp(from_ms(tx_ms)), "txId": tx_id}


@dataclass
class PartRows:
    """A format-2 part read and checked: its tables (id, name), history rows in key order (`HistoryRow`),
    counts, the rows that lost their Ion types, and problems (row index, detail)."""

    tables: list[tuple[str, str]]
    rows: list[HistoryRow]
    tally: Tally
    type_lost: list[int]
    problems: list[tuple[int, str]]


def read_part(data: bytes, first_seq: int, last_seq: int) -> PartRows:
    """Read a format-2 part and recompute every revision hash, in C where the extension is built (documents
    it does not read are hashed here from their decoded value). Raises ValueError when unreadable."""
    if native.ionhash is None:
        return read_part_python(data, first_seq, last_seq)
    tables, rows, counts, lost, unread, problems = native.ionhash.snapshot_rows(data, first_seq, last_seq)
    for index in unread:
        detail = _data_problem(rows[index])
        if detail:
            problems.append((index, detail))
    return PartRows(tables, rows, Tally(*counts), lost, sorted(problems))


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or len(self.data) - self.pos < n:
            raise ValueError("truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def number(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if (byte == 0 and shift) or value >= 1 << 64:
                    raise ValueError("bad or truncated number")
                return value
            shift += 7
            if shift > 63:
                raise ValueError("bad or truncated number")

    def text(self) -> str:
        try:
            return self.take(self.number()).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("text is not UTF-8") from None


def read_part_python(data: bytes, first_seq: int, last_seq: int) -> PartRows:
    """`read_part` in Python: the reference the C reader (`_ionhash.snapshot_rows`) is tested against."""
    cursor = _Cursor(data)
    out = PartRows([], [], Tally(), [], [])
    try:
        if cursor.take(8) != PART_MAGIC:
            raise ValueError("not a format-2 snapshot part")
    except ValueError:
        raise ValueError("record #0 at byte 0: not a format-2 snapshot part") from None
    try:
        tables = cursor.number()
        if tables > (len(data) - cursor.pos) // 2:  # each table takes two texts, at least a byte each
            raise ValueError("table count beyond the object")
        for _ in range(tables):
            out.tables.append((cursor.text(), cursor.text()))
            if len(out.tables) > 1 and out.tables[-2][0] >= out.tables[-1][0]:
                raise ValueError("tables not in id order")
        count = cursor.number()
        before: tuple[int, bytes, int] | None = None
        for index in range(count):
            before = _read_record(cursor, out, index, before, first_seq, last_seq)
        if cursor.pos != len(data):
            raise ValueError("bytes after the last record")
    except ValueError as exc:
        raise ValueError(f"record #{len(out.rows)} at byte {cursor.pos}: {exc}") from None
    out.tally.revisions = len(out.rows)
    out.problems.sort()
    return out


def _read_record(cursor: _Cursor, out: PartRows, index: int, before: tuple[int, bytes, int] | None,
                 first_seq: int, last_seq: int) -> tuple[int, bytes, int]:
    table, document_id, version, flags = cursor.number(), cursor.text(), cursor.number(), cursor.number()
    seq, tx_ms, tx_id, stated = cursor.number(), _TX_MS.unpack(cursor.take(8))[0], cursor.text(), cursor.take(32)
    if (table >= len(out.tables) or flags > 7 or (flags & FLAG_DELETED and flags & ~FLAG_DELETED)
            or flags & FLAG_REDACTED and flags & FLAG_TYPE_LOST or version >= 1 << 63 or seq >= 1 << 63):
        raise ValueError("a field is out of range")
    data_hash = cursor.take(32) if flags & FLAG_REDACTED else None
    ion = cursor.take(cursor.number()) if not flags & (FLAG_DELETED | FLAG_REDACTED) else None
    key = (table, document_id.encode(), version)
    if before is not None and key <= before:
        out.problems.append((index, "not after the record before it"))
    if not first_seq <= seq <= last_seq:
        out.problems.append((index, "block outside the snapshot's range"))
    row = (out.tables[table][0], document_id, version, ion, stated, tx_ms, tx_id, seq, data_hash)
    detail = _check_row(row, flags, out)
    if detail:
        out.problems.append((index, detail))
    if flags & FLAG_TYPE_LOST:
        out.type_lost.append(index)
    out.rows.append(row)
    return key


def _check_row(row: HistoryRow, flags: int, out: PartRows) -> str | None:
    tally = out.tally
    try:
        meta_hash = _metadata_hash(row)
    except OverflowError:
        return "txTime outside years 1..9999"
    stated = row[4]
    if flags & FLAG_DELETED:
        tally.deleted += 1
        if stated not in (meta_hash, dot(meta_hash, _NULL_HASH)):
            tally.rule_unknown += 1  # QLDB never published the rule for deletes (CONTRACTS §4)
        return None
    if flags & FLAG_REDACTED:
        tally.redacted += 1
        assert row[8] is not None
        return None if dot(meta_hash, row[8]) == stated else "redacted revision: hash != dot(metadata, dataHash)"
    if flags & FLAG_TYPE_LOST:
        tally.type_lost += 1
        return None  # JSON lost its types: checked by the chain only
    return _data_problem(row, meta_hash)


def _metadata_hash(row: HistoryRow) -> bytes:
    return ion_hash(canonical_metadata(row[1], row[2], row[5], row[6]))


def _data_problem(row: HistoryRow, meta_hash: bytes | None = None) -> str | None:
    """Why a data row's hash does not recompute from its columns and its document (None: it does)."""
    ion = row[3]
    assert ion is not None
    if meta_hash is None:
        try:
            meta_hash = _metadata_hash(row)
        except OverflowError:
            return "txTime outside years 1..9999"
    data_hash = binary_ion_hash(ion)
    if data_hash is None:
        try:
            data_hash = ion_hash(load_value(ion, value_model=IonPyValueModel.MAY_BE_BARE))
        except (IonException, ValueError, TypeError, IndexError) as exc:
            # amazon.ion names the bytes it choked on by a memoryview's repr (its address): say what, not where
            return f"cannot decode the document: {_MEMORY_REPR.sub('its bytes', str(exc))}"
    return None if dot(meta_hash, data_hash) == row[4] else "hash does not recompute from metadata and data"


def revision_of_row(row: HistoryRow, table_name: str, type_lost: bool) -> RestoredRevision:
    """A format-2 row as the revision `Target.apply` takes (its data decoded from the stored Ion)."""
    table_id, document_id, version, ion, revision_hash, tx_ms, tx_id, seq, data_hash = row
    return RestoredRevision(
        table_id=table_id, table_name=table_name, document_id=document_id, version=version,
        data=None if ion is None else load_value(ion, value_model=IonPyValueModel.MAY_BE_BARE),
        metadata=canonical_metadata(document_id, version, tx_ms, tx_id), hash=revision_hash, block_seq=seq,
        data_hash=data_hash, type_lost=type_lost, ion=None if type_lost else ion,
    )
