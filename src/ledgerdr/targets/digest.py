"""The restore state digest (CONTRACTS §8): one hash that a restored target and the journal must share.

Leaf per revision: `sha256(tableId ‖ 0x00 ‖ documentId ‖ 0x00 ‖ version as 8-byte big-endian ‖ H)`, all
text UTF-8. `H` is the revision hash recomputed from what is stored — `dot(IonHash(metadata),
IonHash(data))` — or, where it cannot be recomputed, the journal's hash: deletes (QLDB never published
their rule), redacted revisions (the data is gone) and JSON revisions that lost their Ion types. Those
are counted apart, by reason.

Per table: `history` = SHA-256 over all its leaves sorted bytewise; `current` = the same over the leaf
of the newest version of each live document; `status` one byte, 0x00 active, 0x01 dropped (inactive),
as the journal's DDL leaves it (`targets.ddl`) and as the target's catalog holds it. The ledger digest is
SHA-256 over, for each table in `tableId` order, `tableId ‖ 0x00 ‖ history ‖ current ‖ status` (state
digest version 2; version 1 had no status byte, so a raw and a snapshot restore could disagree on a
dropped table and still match). A table appears only once it has a revision, so tables created by DDL
and never written do not change the digest.

Both builders below feed one `_DigestBuilder`, so the journal side and the target side cannot drift.
It keeps each table's leaves packed, 33 bytes a record (leaf ‖ reason byte; the reason is not folded):
memory is 33 bytes per revision plus, over the journal, the newest leaf per document, and a part
computed in another process pickles as one bytes object per table.

`ledgerdr._statedigest` (C) computes the target side straight from the rows a target stores
(`Target.iter_state_rows`, where `gives_state_rows`) and folds the packed leaves; the Python code here stays
the reference: a row the C code does not take (a hash that does not recompute, bytes its reader does
not read) is decided here, and both must give byte-identical digests (tests/test_state_digest_native.py).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Protocol

from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel

from .. import native
from ..journal.hashing import dot, ion_hash
from ..journal.ionread import binary_ion_hash
from .base import NOT_DECODED, HistoryRow, Redaction, RestoredRevision, StateRows, StoredRevision, Target

STATE_DIGEST_VERSION = 2  # 2: each table's status (active/dropped) is folded in (docs/format.md)

# Why the journal's hash stood in for a recomputed one. The byte order also decides which reason a
# revision delivered twice keeps (the higher): a redacted copy wins over one that still had data.
RECOMPUTED, JSON_TYPE_LOST, DELETED, REDACTED = 0, 1, 2, 3
REASONS = {JSON_TYPE_LOST: "json_type_lost", DELETED: "deleted", REDACTED: "redacted"}
RECORD = 33  # a packed leaf: the leaf, then the reason byte


class _Revision(Protocol):
    """What a leaf is computed from: `RestoredRevision` and `StoredRevision` both fit."""

    # read-only (both are frozen dataclasses), hence properties
    @property
    def table_id(self) -> str: ...

    @property
    def table_name(self) -> str: ...

    @property
    def document_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def data(self) -> Any | None: ...

    @property
    def metadata(self) -> Any: ...

    @property
    def hash(self) -> bytes: ...

    @property
    def data_hash(self) -> bytes | None: ...

    @property
    def type_lost(self) -> bool: ...

    @property
    def ion(self) -> bytes | None: ...

    @property
    def deleted(self) -> bool: ...


@dataclass(frozen=True, order=True)
class Mismatch:
    """A revision whose hash, recomputed from stored data and metadata, differs from the journal's."""

    table_id: str
    document_id: str
    version: int
    where: str  # "history" or "current"
    journal_hash: bytes = field(compare=False)
    recomputed_hash: bytes = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"table_id": self.table_id, "document_id": self.document_id, "version": self.version,
                "where": self.where, "journal_hash": _b64(self.journal_hash),
                "recomputed_hash": _b64(self.recomputed_hash)}


@dataclass(frozen=True)
class TableDigest:
    table_id: str
    table_name: str
    history: str  # hex
    current: str  # hex
    revisions: int
    live_documents: int
    dropped: bool = False


@dataclass(frozen=True)
class StateDigest:
    """The state digest and how it was reached. Equal `digest` ⇔ equal state (up to SHA-256)."""

    digest: str  # hex
    tables: dict[str, TableDigest]  # by tableId
    revisions: int  # distinct history revisions
    recomputed: int  # of those, how many had H recomputed from stored data
    journal_hash_used: dict[str, int]  # the others, by reason (json_type_lost, deleted, redacted)
    mismatches: tuple[Mismatch, ...]

    def differences(self, other: StateDigest) -> list[str]:
        """Human-readable lines naming each table whose history or current state differs from `other`."""
        lines = []
        for table_id in sorted(self.tables.keys() | other.tables.keys()):
            mine, theirs = self.tables.get(table_id), other.tables.get(table_id)
            if mine is None or theirs is None:
                present, side = (mine, "only here") if mine is not None else (theirs, "only in the other")
                assert present is not None  # table_id came from one of the two
                lines.append(f"table {present.table_name!r} ({table_id}) {side}")
                continue
            if mine.dropped != theirs.dropped:
                lines.append(f"table {mine.table_name!r} ({table_id}): "
                             f"{'INACTIVE' if mine.dropped else 'ACTIVE'} here, "
                             f"{'INACTIVE' if theirs.dropped else 'ACTIVE'} in the other")
            for part in ("history", "current"):
                if getattr(mine, part) != getattr(theirs, part):
                    lines.append(f"table {mine.table_name!r} ({table_id}): {part} differs "
                                 f"({mine.revisions} vs {theirs.revisions} revisions, "
                                 f"{mine.live_documents} vs {theirs.live_documents} live documents)")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "version": STATE_DIGEST_VERSION, "revisions": self.revisions,
            "recomputed": self.recomputed,
            "journal_hash_used": dict(self.journal_hash_used),
            "mismatches": [m.to_dict() for m in self.mismatches],
            "tables": [vars(t) for t in sorted(self.tables.values(), key=lambda t: t.table_id)],
        }


def leaf_hash(table_id: str, document_id: str, version: int, revision_hash: bytes) -> bytes:
    """CONTRACTS §8's leaf for one revision."""
    return sha256(b"".join((table_id.encode(), b"\x00", document_id.encode(), b"\x00",
                            version.to_bytes(8, "big"), revision_hash))).digest()


def digest_of_revisions(revisions: Iterable[RestoredRevision], redactions: Iterable[Redaction] = (),
                        dropped: Mapping[str, bool] | None = None) -> StateDigest:
    """The state digest of the journal: what a correct target holds after applying these revisions.

    Applies the target's rules: history keeps each `(tableId, documentId, version)` once (duplicates
    are harmless), the newest version of a document is current unless it is a delete, and a revision
    named by a redaction keeps its hash and loses its data. Order of `revisions` does not matter.
    `dropped`: tableId → the journal's DDL says dropped (`targets.ddl.DdlState.dropped`); absent: active.
    """
    redacted = {r.key for r in redactions}
    builder = _DigestBuilder()
    newest = _NewestLeaves()
    for revision in revisions:
        leaf = builder.add(revision, current=False, redacted=revision.key in redacted)
        newest.offer(revision.table_id, revision.document_id, revision.version, not revision.deleted, leaf)
    newest.add_live_to(builder)
    return builder.finish(dropped)


class _NewestLeaves:
    """The journal side's current state: the leaf of each document's newest version, unless a delete."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str], tuple[int, bool, bytes]] = {}

    def offer(self, table_id: str, document_id: str, version: int, live: bool, leaf: bytes) -> None:
        key = (table_id, document_id)
        candidate = (version, live, leaf)
        known = self._newest.get(key)
        if known is None or candidate > known:
            self._newest[key] = candidate

    def add_live_to(self, builder: _DigestBuilder) -> None:
        for (table_id, _), (_, live, leaf) in self._newest.items():
            if live:
                builder.add_current_leaf(table_id, leaf)


# What `digest_of_journal` needs of a revision besides its key and hash (`journal_entries`).
ENTRY_DELETED, ENTRY_NO_DATA, ENTRY_TYPE_LOST = 1, 2, 4

JournalEntry = tuple[str, str, str, int, bytes, int]  # table id, table name, document id, version, hash, flags


def journal_entries(revisions: Iterable[RestoredRevision]) -> list[JournalEntry]:
    """The digest inputs of *verified* revisions (`restore.units.load_unit`), small enough for a worker
    to record beside its unit result so that the restore's finalize need not read the journal again."""
    return [
        (r.table_id, r.table_name, r.document_id, r.version, bytes(r.hash),
         (ENTRY_DELETED if r.deleted else 0) | (ENTRY_NO_DATA if r.data is None else 0)
         | (ENTRY_TYPE_LOST if r.type_lost else 0))
        for r in revisions
    ]


def digest_of_journal(entries: Iterable[JournalEntry], redactions: Iterable[tuple[str, str, int]] = (),
                      dropped: Mapping[str, bool] | None = None) -> StateDigest:
    """`digest_of_revisions` of revisions that verification already recomputed: equal to it for them.

    H is the journal's hash throughout: where `digest_of_revisions` recomputes `dot(IonHash(metadata),
    IonHash(data))`, the verifier has recomputed that very value and found it equal to the journal's
    hash (or, for JSON, marked the revision type-lost); so no value is hashed twice. Revisions that did
    not pass verification must go through `digest_of_revisions`, which recomputes.
    """
    redacted = set(redactions)
    builder = _DigestBuilder()
    newest = _NewestLeaves()
    for table_id, table_name, document_id, version, journal_hash, flags in entries:
        if flags & ENTRY_DELETED:
            reason = DELETED
        elif flags & ENTRY_NO_DATA or (table_id, document_id, version) in redacted:
            reason = REDACTED
        elif flags & ENTRY_TYPE_LOST:
            reason = JSON_TYPE_LOST
        else:
            reason = RECOMPUTED
        leaf = builder.add_leaf(table_id, table_name, leaf_hash(table_id, document_id, version, journal_hash), reason)
        newest.offer(table_id, document_id, version, not flags & ENTRY_DELETED, leaf)
    newest.add_live_to(builder)
    return builder.finish(dropped)


# A packed journal entry: the table's position in its part's `tables`, flags, version, revision hash, the
# document id's length, then the document id (UTF-8). Little-endian, no padding: 47 bytes and the id.
_ENTRY = struct.Struct("<IBQ32sH")


@dataclass(frozen=True)
class PackedJournal:
    """Journal entries (`JournalEntry`) packed (`pack_journal`): what a restore worker records beside its unit
    result and finalize folds (`digest_of_packed_journal`), without a Python object per revision.
    `tables`: (table id, table name) pairs that entries name by position (the last name given wins)."""

    tables: tuple[tuple[str, str], ...]
    packed: bytes
    count: int

    def check(self) -> None:
        """Raises ValueError unless `packed` holds `count` whole entries, each naming a listed table."""
        found = len(unpack_journal(self)) if native.statedigest is None else \
            native.statedigest.entries(self.packed, len(self.tables))
        if found != self.count:
            raise ValueError(f"{found} packed journal entries where {self.count} were recorded")


def pack_journal(entries: Iterable[JournalEntry]) -> PackedJournal:
    """Raises ValueError for an entry that does not pack: a hash not of 32 bytes, a document id over 65,535
    bytes, a version outside 0..2**64-1 (a verified revision has none of these)."""
    tables: dict[str, int] = {}
    names: dict[str, str] = {}
    parts: list[bytes] = []
    pack = _ENTRY.pack
    for table_id, table_name, document_id, version, revision_hash, flags in entries:
        index = tables.setdefault(table_id, len(tables))
        names[table_id] = table_name
        doc = document_id.encode()
        if len(revision_hash) != 32:
            raise ValueError(f"revision {table_id}/{document_id} v{version}: a hash of {len(revision_hash)} bytes")
        try:
            parts.append(pack(index, flags, version, revision_hash, len(doc)))
        except struct.error as exc:
            raise ValueError(f"revision {table_id}/{document_id} v{version} does not pack: {exc}") from None
        parts.append(doc)
    return PackedJournal(tuple((t, names[t]) for t in tables), b"".join(parts), len(parts) // 2)


def pack_history_rows(rows: Sequence[HistoryRow], names: Mapping[str, str]) -> PackedJournal:
    """`pack_journal` of the journal entries of verified history rows (`restore.rows`; a row without data is a
    delete there), `names` giving each table's name; in C where it is built."""
    if native.statedigest is None:
        return pack_journal((row[0], names[row[0]], row[1], row[2], row[4],
                             0 if row[3] is not None else ENTRY_DELETED | ENTRY_NO_DATA) for row in rows)
    table_ids, packed = native.statedigest.pack_rows(rows)
    return PackedJournal(tuple((t, names[t]) for t in table_ids), packed, len(rows))


def unpack_journal(journal: PackedJournal) -> list[JournalEntry]:
    """The entries `pack_journal` packed. Raises ValueError when the bytes are truncated or name a table
    `tables` does not list."""
    entries: list[JournalEntry] = []
    data, pos, size = journal.packed, 0, _ENTRY.size
    try:
        while pos < len(data):
            index, flags, version, revision_hash, length = _ENTRY.unpack_from(data, pos)
            doc = data[pos + size:pos + size + length]
            if len(doc) != length:
                raise ValueError("packed journal entries are truncated")
            table_id, table_name = journal.tables[index]
            entries.append((table_id, table_name, doc.decode(), version, revision_hash, flags))
            pos += size + length
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"unreadable packed journal entries: {exc}") from None
    return entries


def digest_of_packed_journal(parts: Sequence[PackedJournal], redactions: Iterable[tuple[str, str, int]] = (),
                             dropped: Mapping[str, bool] | None = None) -> StateDigest:
    """`digest_of_journal` of the parts' entries, in order: equal to it. The leaves and each document's
    newest entry come from `_statedigest.journal` where it is built."""
    if native.statedigest is None:
        return digest_of_journal((e for part in parts for e in unpack_journal(part)), redactions, dropped)
    builder = _DigestBuilder()
    for table_id, table_name, history, current in native.statedigest.journal(
            [(part.tables, part.packed) for part in parts], set(redactions)):
        builder._names[table_id] = table_name
        builder._history[table_id] = bytearray(history)
        if current:
            builder._current[table_id] = bytearray(current)
    return builder.finish(dropped)


def digest_of_rows(rows: Iterable[StoredRevision], dropped: Mapping[str, bool] | None = None) -> StateDigest:
    """The state digest of rows as a target stores them (history rows and rows flagged `current`);
    `dropped` is the target's catalog (tableId → dropped)."""
    builder = _DigestBuilder()
    for row in rows:
        builder.add(row, current=row.current)
    return builder.finish(dropped)


def target_dropped(target: Target) -> dict[str, bool]:
    """tableId → dropped, as the target's catalog holds it."""
    return {table.table_id: table.dropped for table in target.table_ddls()}


def digest_of_target(target: Target, *, statuses: bool = True) -> StateDigest:
    """The state digest of what `target` holds, read back through `Target.iter_state` (its stored Ion
    bytes, undecoded: the digest hashes those bytes directly), or, where the target gives its rows
    (`gives_state_rows`) and the C digest is built, through `Target.iter_state_rows` (`digest_of_state_rows`).
    `statuses=False` folds every table as active, for a journal side that did not interpret the DDL."""
    dropped = target_dropped(target) if statuses else None
    if digests_rows_in_c(target):
        return digest_of_state_rows(target.iter_state_rows(), dropped)
    return digest_of_rows(target.iter_state(decode=False), dropped)


def digests_rows_in_c(target: Target) -> bool:
    """Whether `digest_of_target` reads `target`'s stored rows into the C digest (else it decodes and hashes
    each `StoredRevision` in Python, which finalize may spread over processes)."""
    return target.gives_state_rows and native.statedigest is not None


def digest_of_state_rows(batches: Iterable[StateRows], dropped: Mapping[str, bool] | None = None) -> StateDigest:
    """`digest_of_rows` of stored rows in batches (`Target.iter_state_rows`): equal to it for the same rows.
    Each batch's leaves come from `_statedigest.leaves`; the rows it leaves to Python (and every row, when the
    extension is not in use) go through `_DigestBuilder.add`, the reference."""
    builder = _DigestBuilder()
    for batch in batches:
        builder.add_rows(batch)
    return builder.finish(dropped)


@dataclass
class DigestPart:
    """The leaves of part of a target's rows (`digest_part_of_rows`), computed apart (in another process)
    and folded by `digest_of_parts`. Plain data, so it pickles."""

    history: dict[str, bytearray]  # packed leaves (RECORD bytes each)
    current: dict[str, bytearray]
    names: dict[str, str]
    mismatches: set[Mismatch]


def digest_part_of_rows(rows: Iterable[StoredRevision]) -> DigestPart:
    builder = _DigestBuilder()
    for row in rows:
        builder.add(row, current=row.current)
    return DigestPart(builder._history, builder._current, builder._names, builder._mismatches)


def digest_part_of_state_rows(batches: Iterable[StateRows]) -> DigestPart:
    """`digest_part_of_rows` of stored rows in batches (`Target.iter_state_rows` of one part), their leaves in C
    as `digest_of_state_rows` computes them."""
    builder = _DigestBuilder()
    for batch in batches:
        builder.add_rows(batch)
    return DigestPart(builder._history, builder._current, builder._names, builder._mismatches)


def digest_of_parts(parts: Iterable[DigestPart], dropped: Mapping[str, bool] | None = None) -> StateDigest:
    """The digest of the union of the parts' rows: equal to `digest_of_rows` over all of them, since
    leaves are sorted and de-duplicated per table before they are folded."""
    builder = _DigestBuilder()
    for part in parts:
        for table_id, leaves in part.history.items():
            builder._history.setdefault(table_id, bytearray()).extend(leaves)
        for table_id, leaves in part.current.items():
            builder._current.setdefault(table_id, bytearray()).extend(leaves)
        builder._names.update(part.names)
        builder._mismatches |= part.mismatches
    return builder.finish(dropped)


class _DigestBuilder:
    """Collects leaves per table; `finish` sorts, de-duplicates and folds them."""

    def __init__(self) -> None:
        self._history: dict[str, bytearray] = {}  # packed leaf ‖ reason byte
        self._current: dict[str, bytearray] = {}  # the same (the reason is not counted)
        self._names: dict[str, str] = {}
        self._mismatches: set[Mismatch] = set()
        self._last: tuple[Any, Any, bytes] | None = None

    def add(self, revision: _Revision, *, current: bool, redacted: bool = False) -> bytes:
        """Add one revision's leaf to history (or to the current state) and return the leaf."""
        revision_hash, reason = self._revision_hash(revision, redacted, "current" if current else "history")
        leaf = leaf_hash(revision.table_id, revision.document_id, revision.version, revision_hash)
        self._names[revision.table_id] = revision.table_name
        side = self._current if current else self._history
        packed = side.setdefault(revision.table_id, bytearray())
        packed += leaf
        packed.append(reason)
        return leaf

    def add_rows(self, batch: StateRows) -> None:
        """Add a batch of stored rows (`Target.iter_state_rows`): their leaves from C where it is built, the
        rows it leaves over (and every row without it) through `_row_record`, the reference. A history row
        flagged `in_current` adds its record to the current state too (what hashing its identical current row
        would add), so that row's bytes are hashed once."""
        rows = batch.rows
        if not rows:
            return
        self._names[batch.table_id] = batch.table_name
        side = (self._current if batch.current else self._history).setdefault(batch.table_id, bytearray())
        if native.statedigest is None or batch.in_python:
            for index in range(len(rows)):
                record = self._row_record(batch, index)
                side += record
                if batch.in_current(index):
                    self._current.setdefault(batch.table_id, bytearray()).extend(record)
            return
        packed, fallback, shared = native.statedigest.leaves(batch.table_id, rows, batch.type_lost or None)
        if shared and not batch.current:  # (a target flags history rows only; C does not know the side)
            self._current.setdefault(batch.table_id, bytearray()).extend(shared)
        if fallback:
            packed = bytearray(packed)
            for index in fallback:
                record = self._row_record(batch, index)
                packed[index * RECORD:(index + 1) * RECORD] = record
                if batch.in_current(index):
                    self._current.setdefault(batch.table_id, bytearray()).extend(record)
        side.extend(packed)

    def _row_record(self, batch: StateRows, index: int) -> bytes:
        """The packed record (leaf ‖ reason) of row `index` of `batch`, as `add` computes it. A mismatch is named
        for the current state too when the row stands for its current row as well (`StateRows.in_current`)."""
        revision = batch.revision(index)
        revision_hash, reason = self._revision_hash(revision, False, "current" if batch.current else "history")
        if reason == RECOMPUTED and revision_hash != bytes(revision.hash) and batch.in_current(index):
            self._mismatches.add(Mismatch(revision.table_id, revision.document_id, revision.version, "current",
                                          bytes(revision.hash), revision_hash))
        return leaf_hash(revision.table_id, revision.document_id, revision.version, revision_hash) + bytes((reason,))

    def add_leaf(self, table_id: str, table_name: str, leaf: bytes, reason: int) -> bytes:
        """Add a history leaf computed elsewhere (`digest_of_journal`)."""
        self._names[table_id] = table_name
        packed = self._history.setdefault(table_id, bytearray())
        packed += leaf
        packed.append(reason)
        return leaf

    def add_current_leaf(self, table_id: str, leaf: bytes) -> None:
        packed = self._current.setdefault(table_id, bytearray())
        packed += leaf
        packed.append(RECOMPUTED)

    def _revision_hash(self, revision: _Revision, redacted: bool, where: str) -> tuple[bytes, int]:
        journal_hash = bytes(revision.hash)
        if revision.deleted:
            return journal_hash, DELETED
        if redacted or revision.data is None:
            return journal_hash, REDACTED
        if revision.type_lost:
            return journal_hash, JSON_TYPE_LOST
        last = self._last
        ion = revision.ion
        data = revision.data if ion is None else ion
        if last is not None and last[0] is data and last[1] is revision.metadata:
            recomputed = last[2]  # the very objects just hashed (a target's current row sharing its history row's)
        else:
            recomputed = _recompute(revision.metadata, revision.data, ion, journal_hash)
            self._last = (data, revision.metadata, recomputed)  # held, so their ids cannot be reused
        if recomputed != journal_hash:
            self._mismatches.add(Mismatch(revision.table_id, revision.document_id, revision.version, where,
                                          journal_hash, recomputed))
        return recomputed, RECOMPUTED

    def finish(self, dropped: Mapping[str, bool] | None = None) -> StateDigest:
        tables: dict[str, TableDigest] = {}
        reasons: dict[str, int] = {name: 0 for name in REASONS.values()}
        recomputed = 0
        ledger = sha256()
        fold = _fold_python if native.statedigest is None else native.statedigest.fold
        for table_id in sorted(self._history.keys() | self._current.keys()):
            history_hash, current_hash, revisions, live, counts = fold(
                self._history.get(table_id, b""), self._current.get(table_id, b""))
            recomputed += counts[RECOMPUTED]
            for reason, name in REASONS.items():
                reasons[name] += counts[reason]
            is_dropped = bool(dropped and dropped.get(table_id, False))
            ledger.update(table_id.encode() + b"\x00" + history_hash + current_hash + bytes((is_dropped,)))
            tables[table_id] = TableDigest(table_id, self._names[table_id], history_hash.hex(), current_hash.hex(),
                                           revisions, live, is_dropped)
        return StateDigest(
            digest=ledger.hexdigest(), tables=tables, revisions=sum(t.revisions for t in tables.values()),
            recomputed=recomputed, journal_hash_used=reasons, mismatches=tuple(sorted(self._mismatches)),
        )


def _recompute(metadata: Any, data: Any, ion: bytes | None, journal_hash: bytes) -> bytes:
    """`dot(IonHash(metadata), IonHash(data))`, with IonHash(data) read from the stored Ion bytes `ion`
    when there are some (`ionread.binary_ion_hash`: no Python values built). A result that differs from
    the journal's hash, or bytes that reader does not read, are decided by decoding the bytes and hashing
    the value, so a mismatch is only ever reported from the decoded value (as without the fast path)."""
    meta_hash = ion_hash(metadata)
    if ion is not None:
        data_hash = binary_ion_hash(ion)
        if data_hash is not None:
            recomputed = dot(meta_hash, data_hash)
            if recomputed == journal_hash:
                return recomputed
        if data is NOT_DECODED or data is None:
            data = simpleion.loads(ion, value_model=IonPyValueModel.MAY_BE_BARE)
    return dot(meta_hash, ion_hash(data))


def _fold_python(history: bytes | bytearray, current: bytes | bytearray) -> tuple[bytes, bytes, int, int, list[int]]:
    """One table's history and current hashes from its packed leaves (`_statedigest.fold` is its twin): each
    side sorted, one record per leaf, the leaves folded with SHA-256; the history records kept, counted by
    reason (a revision delivered twice counts once, the higher reason kept)."""
    history_records = _distinct_by_leaf(history)
    counts = [0] * (max(REASONS) + 1)
    for record in history_records:
        counts[record[32]] += 1
    current_records = _distinct_by_leaf(current)
    return (_fold(history_records), _fold(current_records), len(history_records), len(current_records), counts)


def _distinct_by_leaf(packed: bytes | bytearray) -> list[bytes]:
    """The packed records sorted, one per leaf: of records sharing a leaf the last, which sorts highest."""
    records = sorted(bytes(packed[i:i + RECORD]) for i in range(0, len(packed), RECORD))
    return [record for i, record in enumerate(records)
            if i + 1 == len(records) or records[i + 1][:32] != record[:32]]


def _fold(records: Iterable[bytes]) -> bytes:
    digest = sha256()
    for record in records:
        digest.update(record[:32])
    return digest.digest()


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
