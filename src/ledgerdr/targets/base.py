"""The restore's data model and the `Target` interface every restore target implements.

A restore is *state-based* (DESIGN "Restore semantics"): the planner turns journal blocks into work
units; a worker turns a unit into `RestoredRevision`s, `TableDDL`s and `Redaction`s and hands them to
`Target.apply`, which applies them in one transaction. Targets keep history keyed by
`(tableId, documentId, version)` and the current state "newest version wins", so the result never
depends on the order units arrive in, on how many workers apply them at once, or on re-delivery.

`revisions_of_block` and `redactions_of_block` convert one journal block; they are shared by the
workers, the digest of the journal (`targets.digest`) and the tests, so both sides read the journal
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

from ..errors import RestoreError
from ..journal.hashing import dot, ion_hash
from ..journal.model import Block, RevisionKind, revision_kind
from ..journal.writer import ms_timestamp
from ..ledger.storage import from_ms

# A unit as the C journal verifier hands it to `Target.apply_rows` (restore.rows). A history row: table id,
# document id, version, document Ion (None for a delete), revision hash, txTime (epoch ms), txId, block
# sequence number, data hash (None: not redacted). A block row: sequence number, the block's own Ion binary,
# block hash, block time (epoch ms), revisions.
HistoryRow = tuple[str, str, int, bytes | None, bytes, int, str, int, bytes | None]
JournalBlockRow = tuple[int, bytes, bytes, int, int]
# A stored row as the state digest reads it back (`Target.iter_state_rows`): document id, version, document Ion
# (None: a delete, or redacted), revision hash, txTime (epoch ms), txId, data hash (None: not redacted); a history
# row may carry an eighth column, `in_current` (`StateRows`).
StateRow = (tuple[str, int, bytes | None, bytes, int, str, bytes | None]
            | tuple[str, int, bytes | None, bytes, int, str, bytes | None, bool])


@dataclass(frozen=True, slots=True)
class RestoredRevision:
    """One revision of one document, as the journal holds it, ready to apply.

    `data` is the Ion value of the document, None when the revision is a delete or was redacted.
    `metadata` is the journal's Ion struct `{id, version, txTime, txId}`; `hash` the journal's revision
    hash. `data_hash` is set for a redacted revision (its hash is `dot(IonHash(metadata), data_hash)`).
    `type_lost` marks a revision read from a JSON export whose hash did not recompute (JSON loses Ion
    types, CONTRACTS §6): its data is kept as read, and the digest falls back on the journal's hash.
    `ion` is `data` as a self-contained Ion binary stream, when verification encoded it in the same pass
    that computed the Ion Hash it checked (`restore.units`): a target may store these bytes as they are.
    """

    table_id: str
    table_name: str
    document_id: str
    version: int
    data: Any | None
    metadata: Any
    hash: bytes
    block_seq: int
    data_hash: bytes | None = None
    type_lost: bool = False
    ion: bytes | None = None

    @property
    def deleted(self) -> bool:
        """A delete: no data and no dataHash (reference §2.3)."""
        return self.data is None and self.data_hash is None

    @property
    def redacted(self) -> bool:
        return self.data is None and self.data_hash is not None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.table_id, self.document_id, self.version)


@dataclass(frozen=True, slots=True)
class StoredRevision:
    """A revision as a target holds it, read back from the target's storage (`Target.iter_state`).

    `current` False: a history row. `current` True: a row of the target's current state (the live
    version of a document as the target serves it); every live document yields such a row in addition
    to its history rows, so a digest checks the current state as stored, not as inferred.
    `data` is decoded from storage; `metadata` is rebuilt from stored columns. `ion` is the stored Ion
    binary of `data` where the target keeps it so: the digest then hashes those bytes directly, and a
    target asked not to decode (`iter_state(decode=False)`) leaves `data` as `NOT_DECODED`.
    """

    table_id: str
    table_name: str
    document_id: str
    version: int
    data: Any | None
    metadata: Any
    hash: bytes
    data_hash: bytes | None
    type_lost: bool
    deleted: bool
    block_seq: int
    current: bool = False
    ion: bytes | None = None

    @property
    def redacted(self) -> bool:
        return self.data is None and self.data_hash is not None


def stored_metadata(document_id: str, version: int, tx_time_ms: int, tx_id: str) -> dict[str, Any]:
    """A revision's metadata struct rebuilt from stored columns (txTime at millisecond precision, UTC)."""
    return {"id": document_id, "version": version, "txTime": ms_timestamp(from_ms(tx_time_ms)), "txId": tx_id}


@dataclass(frozen=True)
class StateRows:
    """A batch of one table's stored rows, as the state digest reads them (`Target.iter_state_rows`): history
    rows, or (`current`) rows of its current state. `type_lost`: (document id, version) of the table's
    revisions read from JSON whose hash did not recompute.

    A history row's eighth column, when it has one and it is true (`in_current`), says that the target's current
    state holds this very row: the current row of the same document id and version, whose every column the leaf
    depends on (document id, version, txTime, txId, the data bytes, hash, data hash, type-lost, deleted) the
    target compared with this row's and found equal, byte for byte, in the query that read the history rows (so
    the current row's bytes are not read at all). The digest takes this row's leaf for the current state too,
    and no current batch holds that row again; every other current row (one that differs in any byte from its
    history row, or has none) comes in a current batch and is hashed on its own. Either way each live document's
    current row counts once: the state is the one `iter_state` describes, row for row."""

    table_id: str
    table_name: str
    current: bool
    rows: Sequence[StateRow]
    type_lost: frozenset[tuple[str, int]] = frozenset()
    # True: rows whose stored columns `StateRow` cannot carry as they are (a target's txTime at another precision,
    # a `deleted` flag its data columns do not imply): the digest decides each through `revision`, in Python.
    in_python: bool = False

    def revision(self, index: int) -> StoredRevision:
        """Row `index` as `iter_state(decode=False)` gives it (its `block_seq`, which the digest does not
        read, is -1)."""
        document_id, version, ion, revision_hash, tx_time_ms, tx_id, data_hash = self.rows[index][:7]
        return StoredRevision(self.table_id, self.table_name, document_id, version,
                              None if ion is None else NOT_DECODED,
                              stored_metadata(document_id, version, tx_time_ms, tx_id), revision_hash, data_hash,
                              (document_id, version) in self.type_lost, ion is None and data_hash is None, -1,
                              self.current, ion)

    def in_current(self, index: int) -> bool:
        """Whether history row `index` is also, as stored, the current row of its document (see above)."""
        row = self.rows[index]
        return not self.current and len(row) > 7 and bool(row[7])


class _NotDecoded:
    """`StoredRevision.data` of a row read without decoding it (its `ion` holds the stored bytes)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_DECODED"


NOT_DECODED: Any = _NotDecoded()


@dataclass(frozen=True, slots=True)
class TableDDL:
    """What the DDL statements of the journal say about one table (keyed by tableId, CONTRACTS §8).

    `indexes` are top-level field names (QLDB indexes one top-level field each); targets take the union
    of every unit's indexes. `dropped` is the table's state as of block `block_seq`: when units disagree,
    the highest `block_seq` wins (QLDB has UNDROP TABLE), and at equal `block_seq` dropped wins.
    """

    table_id: str
    table_name: str
    indexes: tuple[str, ...] = ()
    dropped: bool = False
    block_seq: int = -1


@dataclass(frozen=True, slots=True)
class Redaction:
    """A later `redactionInfo` entry: revision `(table_id, document_id, version)` keeps its hash and
    loses its data, whether that revision reaches the target before or after this marker.

    `data_hash` is the erased data's Ion hash when known (a redacted revision carries it); None lets
    the target compute it from the data it holds (redactionInfo itself does not carry it).
    """

    table_id: str
    document_id: str
    version: int
    data_hash: bytes | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.table_id, self.document_id, self.version)


class LastBlock(TypedDict):
    sequence_no: int
    hash: str  # padded base64, as QLDB prints hashes (CONTRACTS §3)


class TargetInfo(TypedDict):
    """What `Target.info()` returns. Counts are of what is stored, so they survive a restart."""

    kind: str
    strand_id: str | None
    ledger_name: str | None
    units: int  # units applied
    revisions: int  # history rows
    documents: int  # live documents (rows of the current state)
    tables: int
    last_block: LastBlock | None  # the highest block of any applied unit


@dataclass(frozen=True)
class TargetHolding:
    """What a target holds before a restore changes anything (`Target.holding`), so that a restore can
    refuse, unchanged, a target that holds other data: a live ledger, another lineage, newer blocks.

    `strand_id` is the strand its data belongs to (None: it holds nothing); `last_seq` its highest block;
    `restore_target` whether a restore bound it (else the data is its own, e.g. a live ledger);
    `writable` whether it accepts writes (a live or promoted ledger); `where` names it in messages and
    `path` is the file it lives in, when it is one (compared with the configured source)."""

    where: str
    strand_id: str | None
    last_seq: int | None
    restore_target: bool
    writable: bool
    path: str | None = None

    @property
    def empty(self) -> bool:
        return self.strand_id is None and self.last_seq is None


_R = TypeVar("_R")  # what a target's state reads give (`Target.finalize_beside_reads`)


@runtime_checkable
class Target(Protocol):
    """A restore target. One instance per worker (each holds its own connection); several instances
    may apply different units to the same target at once.
    """

    kind: str
    # Capabilities, as data: a flow reads these once and never probes for a method. Every method below exists
    # on every target; one whose capability is False is not called by the flows (and refuses, or does
    # nothing, as its docstring says).
    # `keeps_journal`: `apply` also stores the blocks themselves (`blocks=`), so the target holds the journal
    # (the embedded ledger); other targets ignore `blocks`.
    keeps_journal: bool
    # `splits_state`: `iter_state_part` divides the rows between processes (finalize's parallel digest), where
    # a plain filter would read every row each time.
    splits_state: bool
    # `writable_ledger`: can become a writable ledger (`promote(lineage)`): only an embedded target (CONTRACTS
    # §8); PostgreSQL is a queryable replica.
    writable_ledger: bool
    # `has_position_record`: keeps a standby's position record in its own metadata
    # (`read_position_record`/`write_position_record`); a target without it resumes from its newest applied
    # block (`info()["last_block"]`).
    has_position_record: bool
    # `applies_rows`: `apply_rows` takes a unit as the C verifier's rows (restore.rows).
    applies_rows: bool
    # `gives_state_rows`: `iter_state_rows` gives the stored rows back as the C state digest reads them.
    gives_state_rows: bool

    def open_lineage(self, strand_id: str, ledger_name: str) -> None:
        """Bind this target to the source's strand. The first call on an empty target records both;
        later calls (from any instance) must name the same strand and ledger, else RestoreError naming
        both. Must be called before `apply`. Idempotent."""

    def applied_units(self) -> set[str]:
        """Ids of every unit whose transaction committed."""

    def holding(self) -> TargetHolding:
        """What the target holds now. Reads only: a restore that refuses the target leaves it unchanged."""

    def apply(
        self,
        unit_id: str,
        tables: Sequence[TableDDL],
        revisions: Sequence[RestoredRevision],
        redactions: Sequence[Redaction],
        last_block: tuple[int, bytes] | None,
        *,
        blocks: Sequence[Block] = (),
    ) -> bool:
        """Apply one unit in ONE transaction; return False and change nothing if `unit_id` was applied.

        Creates tables and indexes idempotently; inserts each history row once; sets a document's
        current row to its newest version (a newest delete removes it; an older revision arriving
        later changes nothing); applies `redactions` to rows present now and remembers them for rows
        arriving later; records the unit and `last_block` (sequence number, block hash). `blocks` (the unit's
        verified journal blocks) are stored where `keeps_journal`, ignored elsewhere. Raises RestoreError when
        `open_lineage` was not called or the data cannot be stored."""


    def apply_rows(self, unit_id: str, tables: Sequence[TableDDL], rows: Sequence[HistoryRow],
                   blocks: Sequence[JournalBlockRow], last_block: tuple[int, bytes] | None) -> bool:
        """`apply` for a unit the C journal verifier turned into rows (`restore.rows`: history rows in the
        history table's column order, block rows). Same contract as `apply`, except that a target may leave
        the current state of a table it is bulk loading to `finalize` (reads through the target see it built).
        Only where `applies_rows`; other targets raise RestoreError."""
        ...
    def iter_state(self, *, decode: bool = True) -> Iterator[StoredRevision]:
        """Every history row, then (flagged `current`) every current row, from one consistent snapshot.
        Rows carry their stored Ion (`ion`); `decode=False` leaves `data` as `NOT_DECODED`."""

    def iter_state_part(self, index: int, count: int, *, decode: bool = True) -> Iterator[StoredRevision]:
        """`iter_state` for the documents in part `index` of `count`; called only where `splits_state`."""

    def iter_state_rows(self, index: int = 0, count: int = 1) -> Iterator[StateRows]:
        """What `iter_state` reads, as the stored rows themselves in batches, from one consistent snapshot (the
        state digest in C hashes them without building Python values). Only where `gives_state_rows`; other
        targets raise RestoreError. With `count` > 1 (only where `splits_state` too), the rows of the documents
        in part `index` of `count`: the parts of one unchanged state hold every row once."""

    def finalize(self) -> None:
        """After a run's last unit (or a standby's round): bring derived state up to date (the embedded
        ledger's digest accumulator). May do nothing. Idempotent."""

    def finalize_beside_reads(self, start_reads: Callable[[], Callable[[], _R]]) -> _R:
        """`finalize`, with the state read meanwhile by other connections (the restore's digest processes):
        `start_reads()` is called once what the state reads return (`iter_state_rows`, `iter_state_part`) is
        what the applied units define; it starts the reads and returns a function that waits for them and gives
        their result, which this returns. The part of finalize that no state read sees may run while they read,
        what readers would hold back (the embedded ledger's checkpoint) after they have ended. A target whose
        reads need the whole of finalize (PostgreSQL) finalizes first, then reads: nothing runs beside them."""

    def table_ddls(self) -> list[TableDDL]:
        """Every table the target holds, by tableId: name, indexes, and the status (dropped) of the
        highest `block_seq` applied, which the state digest includes."""

    def info(self) -> TargetInfo:
        """Lineage, counts and the highest applied block."""

    def promote(self, lineage: str) -> None:
        """Open the restored ledger for writes under `lineage` (finalizing first). Only where
        `writable_ledger`; elsewhere raises RestoreError."""

    def read_position_record(self) -> bytes | None:
        """The standby position record last written, or None. Only where `has_position_record` (else None)."""

    def write_position_record(self, record: bytes) -> None:
        """Replace the standby position record, in a transaction of its own. Only where `has_position_record`;
        elsewhere raises RestoreError."""

    def close(self) -> None:
        """Release connections. Idempotent."""


# ------------------------------------------------------------------------------ reading journal blocks


def revisions_of_block(block: Block, *, json_export: bool = False,
                       encoded: Mapping[int, bytes] | None = None) -> list[RestoredRevision]:
    """The document revisions of `block` (system entries skipped), in block order.

    `encoded` maps `id(revision struct)` to its data's Ion binary, as the verifier encoded it (`ion`).

    Tables come from `transactionInfo.documents`. With `json_export`, a data revision whose hash does
    not recompute is marked `type_lost` (CONTRACTS §6); for Ion the verifier has already checked it.
    Raises RestoreError when a revision's document has no table in `transactionInfo`.
    """
    out = []
    for revision in block.revisions:
        kind = revision_kind(revision)
        if kind is RevisionKind.SYSTEM:
            continue
        metadata = revision["metadata"]
        document_id = str(metadata["id"])
        table_id, table_name = block.table_of(document_id)
        if table_id is None or table_name is None:
            raise RestoreError(
                f"block {block.address}: revision of document {document_id} names no table in transactionInfo"
            )
        data = revision["data"] if kind is RevisionKind.DATA else None
        data_hash = bytes(revision["dataHash"]) if kind is RevisionKind.REDACTED else None
        journal_hash = bytes(revision["hash"])
        type_lost = json_export and data is not None and _recomputed(metadata, data) != journal_hash
        out.append(RestoredRevision(
            table_id=table_id, table_name=table_name, document_id=document_id, version=int(metadata["version"]),
            data=data, metadata=metadata, hash=journal_hash, block_seq=block.sequence_no,
            data_hash=data_hash, type_lost=type_lost, ion=encoded.get(id(revision)) if encoded else None,
        ))
    return out


def redactions_of_block(block: Block) -> list[Redaction]:
    """The revisions that `block`'s `redactionInfo` erased (reference §2.2); dataHash left to the target."""
    info: Mapping[str, Any] = block.redaction_info or {}
    return [
        Redaction(str(r["tableId"]), str(r["documentId"]), int(r["version"]))
        for r in info.get("revisions") or ()
    ]


def _recomputed(metadata: Any, data: Any) -> bytes:
    return dot(ion_hash(metadata), ion_hash(data))
