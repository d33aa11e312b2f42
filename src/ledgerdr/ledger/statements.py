"""Statement execution for the embedded ledger: one function per PartiQL statement kind.

Each function runs one parsed statement inside a `Transaction` (engine.py), reading through it (so the
read set is recorded and the transaction's own pending writes are visible) and handing it the writes
or catalog changes the statement makes. A statement is atomic: it stages its changes only after it
has computed all of them, so a statement that fails (bad value, quota) leaves the transaction as it
was. Results take QLDB's shapes: `{documentId}` per written document, `{tableId}` for DDL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amazon.ion.simple_types import IonPyNull

from ..errors import LedgerError, QuotaExceeded
from ..journal.hashing import ion_hash
from . import expr as ev
from .partiql import (
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Exec,
    Insert,
    Select,
    Statement,
    TableRef,
    UndropTable,
    Update,
)
from .storage import IndexRow

if TYPE_CHECKING:
    from .engine import Doc, TableInfo, Transaction

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_ACTIVE_TABLES = 20
MAX_TOTAL_TABLES = 40
MAX_INDEXES_PER_TABLE = 5


@dataclass(frozen=True, slots=True)
class Write:
    """One document change a statement makes. `data is None` deletes the document."""

    table: TableInfo
    doc_id: str
    data: Any | None
    base: Doc | None  # the document as read (None for an insert)


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


def new_id() -> str:
    """A random 22-character Base62 id (128 random bits), QLDB's id shape. Same shape as
    `journal.layout.new_id`, about ten times faster: ids are drawn on the commit path."""
    value = int.from_bytes(os.urandom(16), "big")
    chars = []
    for _ in range(22):
        value, digit = divmod(value, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def execute(txn: Transaction, stmt: Statement, params: Sequence[Any]) -> list[Any]:
    """Run one statement; return its result values. Raises LedgerError (QuotaExceeded for quotas)."""
    if stmt.param_count > len(params):
        raise LedgerError(f"the statement has {stmt.param_count} parameters (?) but {len(params)} were given")
    handler = _HANDLERS.get(type(stmt))
    if handler is None:
        raise LedgerError(f"{type(stmt).__name__} statements are not supported by the embedded ledger")
    return handler(txn, stmt, params)


# ------------------------------------------------------------------------------------------ DML


def _insert(txn: Transaction, stmt: Insert, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    value = ev.evaluate(stmt.values, {}, params)
    documents = list(value) if isinstance(value, list) and not hasattr(value, "items") else [value]
    writes = []
    for document in documents:
        if not hasattr(document, "items") or isinstance(document, IonPyNull):
            raise LedgerError(f"INSERT INTO {stmt.table}: a document must be a struct, got {_type_name(document)}")
        writes.append(Write(table, new_id(), document, None))
    txn.stage_writes(writes)
    return [{"documentId": w.doc_id} for w in writes]


def _update(txn: Transaction, stmt: Update, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    writes = []
    for doc, env in _matching(txn, table, stmt.where, stmt.alias, stmt.by_id_alias, params):
        writes.append(Write(table, doc.doc_id, ev.apply_update(stmt, doc.data, env, params), doc))
    txn.stage_writes(writes)
    return [{"documentId": w.doc_id} for w in writes]


def _delete(txn: Transaction, stmt: Delete, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    writes = [Write(table, doc.doc_id, None, doc)
              for doc, _env in _matching(txn, table, stmt.where, stmt.alias, stmt.by_id_alias, params)]
    txn.stage_writes(writes)
    return [{"documentId": w.doc_id} for w in writes]


def _matching(txn: Transaction, table: TableInfo, where: Any, alias: str, by_id_alias: str | None,
              params: Sequence[Any]) -> list[tuple[Doc, dict]]:
    """The user-view documents of `table` that satisfy `where`, with their evaluation environments.

    Materialised before any change is staged, so an UPDATE never sees its own writes."""
    out = []
    for doc in txn.candidates(table, where, alias, by_id_alias, params):
        env = ev.make_env(doc.data, alias, by_id_alias=by_id_alias, doc_id=doc.doc_id)
        if ev.matches(where, env, params):
            out.append((doc, env))
    return out


# --------------------------------------------------------------------------------------- SELECT


def _select(txn: Transaction, stmt: Select, params: Sequence[Any]) -> list[Any]:
    envs = _source_envs(txn, stmt.source, stmt.where, params)
    rows = (env for env in envs if ev.matches(stmt.where, env, params))
    if stmt.is_aggregate:
        return [ev.aggregate(stmt, rows, params)]
    return [ev.project(stmt, env, params) for env in rows]


def _source_envs(txn: Transaction, source: TableRef, where: Any, params: Sequence[Any]) -> Iterator[dict]:
    alias, by_id = source.alias, source.by_id_alias
    if source.information_schema:
        for row in txn.user_tables():
            yield ev.make_env(row, alias)
    elif source.history:
        table = txn.resolve_any(source.name, by_table_id=source.by_table_id)
        start = None if source.history_start is None else ev.evaluate(source.history_start, {}, params)
        end = None if source.history_end is None else ev.evaluate(source.history_end, {}, params)
        for doc_id, revision in txn.history_revisions(table, start, end):
            yield ev.make_env(revision, alias, by_id_alias=by_id, doc_id=doc_id)
    elif source.committed_view:
        table = txn.resolve(source.name)
        for doc_id, revision in txn.committed_revisions(table):
            yield ev.make_env(revision, alias, by_id_alias=by_id, doc_id=doc_id)
    else:
        table = txn.resolve(source.name)
        for doc in txn.candidates(table, where, alias, by_id, params):
            yield ev.make_env(doc.data, alias, by_id_alias=by_id, doc_id=doc.doc_id)


# ------------------------------------------------------------------------------------------ DDL


def _create_table(txn: Transaction, stmt: CreateTable, params: Sequence[Any]) -> list[Any]:
    tables = txn.catalog_tables()
    if any(t.name == stmt.name and t.status == "ACTIVE" for t in tables):
        raise LedgerError(f"table '{stmt.name}' already exists")
    _check_table_quotas(tables, adding_total=1)
    table_id = new_id()
    txn.stage_ddl(DdlOp("CREATE_TABLE", table_id, stmt.name))
    return [{"tableId": table_id}]


def _check_table_quotas(tables: Sequence[TableInfo], *, adding_total: int) -> None:
    active = sum(1 for t in tables if t.status == "ACTIVE")
    if active + 1 > MAX_ACTIVE_TABLES:
        raise QuotaExceeded(f"a ledger may have at most {MAX_ACTIVE_TABLES} active tables ({active} exist)",
                            hint="drop a table you no longer need")
    if len(tables) + adding_total > MAX_TOTAL_TABLES:
        raise QuotaExceeded(f"a ledger may have at most {MAX_TOTAL_TABLES} tables in total, dropped ones included "
                            f"({len(tables)} exist)")


def _drop_table(txn: Transaction, stmt: DropTable, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.name)
    txn.stage_ddl(DdlOp("DROP_TABLE", table.table_id, table.name))
    return [{"tableId": table.table_id}]


def _undrop_table(txn: Transaction, stmt: UndropTable, params: Sequence[Any]) -> list[Any]:
    tables = txn.catalog_tables()
    table = next((t for t in tables if t.table_id == stmt.table_id), None)
    if table is None:
        raise LedgerError(f"no table with id '{stmt.table_id}'")
    if table.status == "ACTIVE":
        raise LedgerError(f"table '{table.name}' ({table.table_id}) is not dropped")
    if any(t.name == table.name and t.status == "ACTIVE" for t in tables):
        raise LedgerError(f"cannot undrop {table.table_id}: an active table is already named '{table.name}'")
    _check_table_quotas(tables, adding_total=0)
    txn.stage_ddl(DdlOp("UNDROP_TABLE", table.table_id, table.name))
    return [{"tableId": table.table_id}]


def _create_index(txn: Transaction, stmt: CreateIndex, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    field = stmt.path[0]
    existing = txn.catalog_indexes(table.table_id)
    if any(i.field == field for i in existing):
        raise LedgerError(f"table '{table.name}' already has an index on [{field}]")
    if len(existing) >= MAX_INDEXES_PER_TABLE:
        raise QuotaExceeded(f"table '{table.name}' already has {len(existing)} indexes; the limit is "
                            f"{MAX_INDEXES_PER_TABLE} per table")
    index = IndexRow(new_id(), table.table_id, field, "ONLINE")
    txn.stage_ddl(DdlOp("CREATE_INDEX", table.table_id, table.name, index))
    return [{"tableId": table.table_id}]


def _drop_index(txn: Transaction, stmt: DropIndex, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    index = next((i for i in txn.catalog_indexes(table.table_id) if i.index_id == stmt.index_id), None)
    if index is None:
        raise LedgerError(f"table '{table.name}' has no index '{stmt.index_id}'")
    txn.stage_ddl(DdlOp("DROP_INDEX", table.table_id, table.name, index))
    return [{"tableId": table.table_id}]


# ----------------------------------------------------------------------------------------- EXEC


def _exec(txn: Transaction, stmt: Exec, params: Sequence[Any]) -> list[Any]:
    if stmt.name.lower() != "redact_revision":
        raise LedgerError(f"unknown stored procedure '{stmt.name}' (supported: redact_revision)")
    if len(stmt.args) != 3:
        raise LedgerError("redact_revision takes 3 arguments: a block address, a table id and a document id")
    address, table_id, doc_id = (ev.evaluate(arg, {}, params) for arg in stmt.args)
    if not hasattr(address, "get") or address.get("sequenceNo") is None or address.get("strandId") is None:
        raise LedgerError("redact_revision: the first argument must be a block address {strandId, sequenceNo}")
    if not isinstance(table_id, str) or not isinstance(doc_id, str):
        raise LedgerError("redact_revision: the table id and the document id must be strings")
    request = txn.stage_redaction(str(address["strandId"]), int(address["sequenceNo"]), str(table_id), str(doc_id))
    return [request]


def _type_name(value: Any) -> str:
    ion_type = getattr(value, "ion_type", None)
    return ion_type.name.lower() if ion_type is not None else type(value).__name__


_HANDLERS: dict[type, Callable[[Transaction, Any, Sequence[Any]], list[Any]]] = {
    Insert: _insert,
    Update: _update,
    Delete: _delete,
    Select: _select,
    CreateTable: _create_table,
    DropTable: _drop_table,
    UndropTable: _undrop_table,
    CreateIndex: _create_index,
    DropIndex: _drop_index,
    Exec: _exec,
}
