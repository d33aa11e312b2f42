"""An embedded target's state read back for the state digest (`EmbeddedTarget.iter_state_part`,
`iter_state_rows`): the SQL that decides which stored rows cross into Python at all, and, for the reference path,
the merge of each document's history rows with its current row. Read-only, in one snapshot per call."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from operator import itemgetter
from typing import Any
from zlib import crc32

from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel

from ..ledger.storage import DocRow, Storage
from .base import NOT_DECODED, StateRows, StoredRevision, stored_metadata

# A history row (h) and a current row (d) that give one leaf: the same document and version, every other column
# the digest reads equal (`IS`: of one storage class and equal, BLOBs and TEXT byte for byte), and no data hash (a
# current row has none). History rows carry it as `in_current` (base.StateRows), and current rows it holds for are
# left out: their bytes are neither read into Python nor hashed again.
_IDENTICAL = ("SELECT 1 FROM {other} WHERE d.table_id = h.table_id AND d.doc_id = h.doc_id AND d.version = h.version"
              " AND d.data IS h.data AND d.hash IS h.hash AND d.tx_time_ms IS h.tx_time_ms AND d.tx_id IS h.tx_id"
              " AND h.data_hash IS NULL")
_STATE_HISTORY = ("SELECT doc_id, version, data, hash, tx_time_ms, tx_id, data_hash, EXISTS ("
                  + _IDENTICAL.format(other="documents d") + ") FROM history h WHERE table_id = ?")
_STATE_CURRENT = ("SELECT doc_id, version, data, hash, tx_time_ms, tx_id, NULL FROM documents d WHERE table_id = ?"
                  " AND NOT EXISTS (" + _IDENTICAL.format(other="history h") + ")")
_CURRENT_COUNT = "SELECT count(*) FROM documents d WHERE table_id = ?"
_IN_CURRENT = itemgetter(7)  # of a _STATE_HISTORY row
_STATE_BATCH = 8192  # rows per StateRows: big enough to amortise the call into C, small enough to stay cached
_STATE_MMAP = 1 << 40  # bytes of the file a state read maps (SQLite caps it at its SQLITE_MAX_MMAP_SIZE)


def state_revisions(storage: Storage, names: dict[str, str], restored: bool, index: int, count: int, *,
                    decode: bool = True) -> Iterator[StoredRevision]:
    """`EmbeddedTarget.iter_state_part`: table by table, each document's history rows and then its current row, of
    the documents whose id falls in part `index` of `count` (by CRC-32). `restored`: the file has a restore's
    tables (a ledger no restore touched, e.g. a replay's, has no type-lost revisions)."""
    with storage.read_snapshot():
        lost = {tuple(r) for r in storage.conn.execute("SELECT * FROM restore_type_lost")} if restored else set()
        for table_id, name in names.items():
            history, documents = storage.history(table_id), storage.documents(table_id)
            if count > 1:
                history = (r for r in history if crc32(r.doc_id.encode()) % count == index)
                documents = (r for r in documents if crc32(r.doc_id.encode()) % count == index)
            yield from _merged(history, documents, name, lost, decode)


def state_rows(storage: Storage, names: dict[str, str], restored: bool, index: int = 0,
               count: int = 1) -> Iterator[StateRows]:
    """`EmbeddedTarget.iter_state_rows`: every table's history rows, then its current rows, as stored, in batches
    (`base.StateRows`: a current row identical to its history row is that row's `in_current`, compared here, and not
    read again); with `count` > 1 those of part `index`: each table's documents cut into `count` ranges of document
    ids (`_doc_id_bounds`), so that `count` processes each read and hash one range, by index."""
    conn = storage.conn
    # History is read in key order: in a format-2 file each row is then a lookup by rowid, at pages all over the
    # table. Mapped, a page is read where it lies instead of copied into the page cache by a system call: 200,000
    # revisions, the reads' CPU -16% in format 2, -9% in format 1 (BENCHMARKS.md). It serves reads only (writes
    # still go through the page cache), up to SQLite's compile-time limit (2 GiB in common builds).
    conn.execute(f"PRAGMA mmap_size={_STATE_MMAP}")
    with storage.read_snapshot():
        lost: dict[str, set[tuple[str, int]]] = {}
        if restored:
            for table_id, doc_id, version in conn.execute("SELECT * FROM restore_type_lost"):
                lost.setdefault(table_id, set()).add((doc_id, version))
        for table_id, name in names.items():
            type_lost = frozenset(lost.get(table_id, ()))
            where, bounds = _doc_id_range(_doc_id_bounds(storage, table_id, count), index)
            shared = 0  # history rows flagged in_current
            cursor = conn.execute(_STATE_HISTORY + where, (table_id, *bounds))
            while rows := cursor.fetchmany(_STATE_BATCH):
                shared += sum(map(_IN_CURRENT, rows))
                yield StateRows(table_id, name, False, rows, type_lost)
            # A flag pairs a history row with the current row of its document and version, one to one (each key is
            # unique on both sides): as many flags as current rows, and every current row is a flag's. Only
            # otherwise are they searched for the rest, each compared with history again (~1 µs a row).
            if shared < conn.execute(_CURRENT_COUNT + where, (table_id, *bounds)).fetchone()[0]:
                cursor = conn.execute(_STATE_CURRENT + where, (table_id, *bounds))
                while rows := cursor.fetchmany(_STATE_BATCH):
                    yield StateRows(table_id, name, True, rows, type_lost)


def _doc_id_bounds(storage: Storage, table_id: str, count: int) -> list[str]:
    """The document ids that cut table `table_id` into `count` parts of about as many current rows (fewer bounds
    when it has fewer documents); read from the current rows, which a finalize does not change."""
    if count <= 1:
        return []
    conn = storage.conn
    documents = conn.execute("SELECT count(*) FROM documents WHERE table_id = ?", (table_id,)).fetchone()[0]
    if documents < count:
        return []
    return [conn.execute("SELECT doc_id FROM documents WHERE table_id = ? ORDER BY doc_id LIMIT 1 OFFSET ?",
                         (table_id, documents * part // count)).fetchone()[0] for part in range(1, count)]


def _doc_id_range(bounds: list[str], index: int) -> tuple[str, tuple[str, ...]]:
    """The SQL condition (and its parameters) of part `index` between `bounds` (`_doc_id_bounds`): part 0 from
    the first document id, the last part to the end; without bounds, part 0 holds every row."""
    if not bounds:
        return ("", ()) if index == 0 else (" AND 0", ())
    if index == 0:
        return " AND doc_id < ?", (bounds[0],)
    if index >= len(bounds):
        return " AND doc_id >= ?", (bounds[-1],)
    return " AND doc_id >= ? AND doc_id < ?", (bounds[index - 1], bounds[index])


def _merged(history: Iterator[DocRow], documents: Iterator[DocRow], name: str, lost: set[tuple[str, str, int]],
            decode: bool = True) -> Iterator[StoredRevision]:
    """Both inputs are ordered by doc_id (history then by version): a merge, so memory stays flat."""
    current = next(documents, None)
    newest: tuple[DocRow, StoredRevision] | None = None
    for row in history:
        if newest is not None and newest[0].doc_id != row.doc_id:
            yield from _current_rows(newest, current, documents, name, lost, decode)
            current = _skip_to(current, documents, newest[0].doc_id)
            newest = None
        while current is not None and current.doc_id < row.doc_id:  # a current row without history
            yield _stored(current, name, current=True, lost=lost, decode=decode)
            current = next(documents, None)
        stored = _stored(row, name, current=False, lost=lost, decode=decode)
        yield stored
        newest = (row, stored)
    if newest is not None:
        yield from _current_rows(newest, current, documents, name, lost, decode)
        current = _skip_to(current, documents, newest[0].doc_id)
    while current is not None:
        yield _stored(current, name, current=True, lost=lost, decode=decode)
        current = next(documents, None)


def _current_rows(newest: tuple[DocRow, StoredRevision], current: DocRow | None, documents: Iterator[DocRow],
                  name: str, lost: set[tuple[str, str, int]], decode: bool) -> Iterator[StoredRevision]:
    row, stored = newest
    if current is None or current.doc_id != row.doc_id:
        return
    if current.data_hash is None and row.data_hash is None and current == row:  # DocRow equality: every column
        yield dataclasses.replace(stored, current=True)
    else:
        yield _stored(current, name, current=True, lost=lost, decode=decode)


def _skip_to(current: DocRow | None, documents: Iterator[DocRow], doc_id: str) -> DocRow | None:
    """The first current row after `doc_id` (the one for `doc_id` was just handled)."""
    return next(documents, None) if current is not None and current.doc_id == doc_id else current


def _stored(row: DocRow, table_name: str, *, current: bool, lost: set[tuple[str, str, int]], decode: bool = True) -> StoredRevision:
    metadata = stored_metadata(row.doc_id, row.version, row.tx_time_ms, row.tx_id)
    data = None if row.data is None else loads(row.data) if decode else NOT_DECODED
    return StoredRevision(row.table_id, table_name, row.doc_id, row.version, data, metadata, row.hash,
                          row.data_hash, (row.table_id, row.doc_id, row.version) in lost,
                          row.data is None and row.data_hash is None, row.block_seq, current, row.data)


def loads(data: bytes) -> Any:
    """Stored Ion, as plain Python values wherever that loses no Ion type (structs stay IonPyDict):
    about half the cost of IonPy values, and hashed identically (tests/test_ion_hash_property.py)."""
    return simpleion.loads(data, value_model=IonPyValueModel.MAY_BE_BARE)
