"""What a statement runner may ask of its transaction, and the values they pass.

The runners (queries.py, writes.py, ddl_statements.py) see a transaction only through
`StatementContext`; `Transaction` (transaction.py) implements it. So the runners never import the
transaction, and the transaction imports them: no cycle, and the runners' reach is written down here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import LedgerError
from .staged import DdlOp, TableInfo
from .storage import IndexRow


@dataclass(frozen=True, slots=True)
class Doc:
    """A document as a statement sees it (user view); `pending` when this transaction wrote it."""

    doc_id: str
    version: int
    data: Any
    pending: bool = False


class UnknownTable(LedgerError):
    """A statement named a table that is not active. `name` lets `serve` word it as QLDB does."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no active table named '{name}'", hint="see information_schema.user_tables")
        self.name = name


@dataclass(frozen=True, slots=True)
class Write:
    """One document change a statement makes. `data is None` deletes the document."""

    table: TableInfo
    doc_id: str
    data: Any | None
    base: Doc | None  # the document as read (None for an insert)


def field_value(data: Any, name: str) -> Any:
    """A top-level field of a document (None when absent or when there is no document)."""
    return data.get(name) if data is not None and hasattr(data, "get") else None


class StatementContext(Protocol):
    """The transaction as the statement runners use it: catalog, reads (recorded for OCC), staging."""

    def resolve(self, name: str) -> TableInfo: ...

    def resolve_any(self, name: str, *, by_table_id: bool) -> TableInfo: ...

    def catalog_tables(self) -> list[TableInfo]: ...

    def catalog_indexes(self, table_id: str) -> list[IndexRow]: ...

    def user_tables(self) -> list[dict[str, Any]]: ...

    def candidates(
        self, table: TableInfo, where: Any, alias: str, by_id_alias: str | None, params: Sequence[Any]
    ) -> Iterator[Doc]: ...

    def committed_revisions(self, table: TableInfo) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def history_revisions(self, table: TableInfo, start: Any, end: Any) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def stage_writes(self, writes: Sequence[Write]) -> None: ...

    def stage_ddl(self, op: DdlOp) -> None: ...

    def stage_redaction(self, strand_id: str, sequence_no: int, table_id: str, doc_id: str) -> dict[str, Any]: ...
