"""What a transaction hands to the ledger at commit, and the narrow view of the ledger it runs against.

A `Transaction` (transaction.py) reads through a `LedgerView` and buffers its writes; at commit it
freezes them into a `StagedTransaction` and passes that to `LedgerView.commit_staged`, which re-checks
the read set under SQLite's write lock and writes the block (engine.py). Neither side reads the other's
private fields, and transaction.py never imports the engine: the engine implements this view.
QLDB's per-transaction quotas live here, beside the value they bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import LedgerError
from ..journal.hashing import ion_hash
from ..journal.model import BlockAddress
from ..journal.writer import EncodedData, Redaction
from .storage import IndexRow, ReadSet, Storage

MAX_ACTIVE_TABLES = 20
MAX_TOTAL_TABLES = 40
MAX_INDEXES_PER_TABLE = 5
MAX_DOCUMENTS_PER_TRANSACTION = 40
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_DOCUMENT_BYTES = 128 * 1024
MAX_STATEMENT_CHARS = 100_000
MAX_TRANSACTION_SECONDS = 30.0
MAX_REDACTIONS_PER_TRANSACTION = 1



@dataclass(frozen=True, slots=True)
class TableInfo:
    table_id: str
    name: str
    status: str


@dataclass(slots=True)
class PendingWrite:
    """A document's state at the end of this transaction, as the block will record it."""

    table: TableInfo
    doc_id: str
    version: int
    data: Any | None
    raw: bytes | None
    base_data: Any | None  # the committed data this write replaces (for index maintenance)
    statements: set[int] = field(default_factory=set)
    encoded: EncodedData | None = None  # `data` encoded and hashed for the block (None: the writer does it)


@dataclass(frozen=True)
class CommitResult:
    """Where a committed transaction's block landed."""

    transaction_id: str
    block_address: BlockAddress
    block_hash: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class DdlOp:
    """A catalog change, applied at commit in statement order. `system_hash` is the hash-only system
    revision the journal records for it (QLDB journals catalog changes only as such hashes)."""

    kind: str  # CREATE_TABLE | DROP_TABLE | UNDROP_TABLE | CREATE_INDEX | DROP_INDEX
    table_id: str
    table_name: str
    index: IndexRow | None = None

    @property
    def system_hash(self) -> bytes:
        entry = {"operation": self.kind, "tableId": self.table_id, "tableName": self.table_name}
        if self.index is not None:
            entry.update(indexId=self.index.index_id, expr=f"[{self.index.field}]")
        return ion_hash(entry)


@dataclass(frozen=True, slots=True)
class StagedTransaction:
    """Everything a commit writes, frozen: the statements' texts, each document's final state, the
    catalog changes in statement order, redactions with the data hash each keeps, and the read set to
    validate (OCC)."""

    transaction_id: str
    statements: tuple[str, ...]
    pending: tuple[PendingWrite, ...]
    ddl: tuple[DdlOp, ...]
    redactions: tuple[tuple[Redaction, bytes], ...]
    reads: ReadSet


def read_only_refusal(ledger: str) -> LedgerError:
    """What a write to ledger `ledger` raises while it is read-only: a statement, or a commit (the engine)."""
    return LedgerError(f"ledger {ledger!r} is read-only: only SELECT is allowed")


class LedgerView(Protocol):
    """What a transaction needs of its ledger (the engine's `Ledger` implements it)."""

    name: str
    strand_id: str
    read_only: bool

    @property
    def storage(self) -> Storage: ...

    def committed_view(self, table_id: str) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def history_view(self, table_id: str, lo_ms: int | None,
                     hi_ms: int | None) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def commit_staged(self, staged: StagedTransaction) -> CommitResult:
        """Validate `staged.reads` and write its block in one write transaction. Raises OccConflict."""
        ...
