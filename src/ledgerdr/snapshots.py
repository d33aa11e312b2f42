"""Snapshots: the compacted form of verified windows, and restoring from one (DESIGN §4, CONTRACTS §2, §8).

A snapshot lives at `<prefix>_ledgerdr/snapshots/<last_seq:020d>/`: objects named
`part-<n:05d>-<sha256[:16]>.ion`, then `manifest.json`, written last and put-if-absent. Each part is an
Ion binary stream of revision records sorted by (tableId, documentId, version):

    {tableId, tableName, blockSeq, hash, metadata, data | dataHash, typeLost?}

`metadata` and `data` are the journal's Ion values as they were (types, precision, annotations), `hash` is
the journal's revision hash. Redactions recorded in the journal are already applied (`dataHash` in place
of `data`) and are also listed in the manifest. A snapshot holds no blocks.

Trust (CONTRACTS §8): a part is used only when its bytes match the manifest's sha256, every data and
redacted revision's hash recomputes from metadata and data (or dataHash), the records are in strict
order inside the range and counts the manifest states, and the manifest's tip hash equals the
`last_block_hash` of the window record it names. Deletes are checked against the known conventions
(CONTRACTS §4); one that fits none, and JSON revisions that lost their Ion types, are counted apart.

This module is the format alone: written by `compact`, read by `restore` and `prune`. Turning a part into
the work a restore applies is `restore/snapshot.py`'s job.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from amazon.ion import simpleion

from .errors import StoreError
from .journal.hashing import dot, ion_hash
from .journal.ionwrite import standalone_hashed
from .repository import WindowRecord, parse_iso, read_windows
from .stores import Location
from .targets.base import RestoredRevision, TableDDL

FORMAT_VERSION = 1
SNAPSHOTS = "_ledgerdr/snapshots/"
MANIFEST = "manifest.json"
_NULL_HASH = ion_hash(None)

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
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"snapshot manifest format_version {raw.get('format_version')} is not {FORMAT_VERSION}"
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
