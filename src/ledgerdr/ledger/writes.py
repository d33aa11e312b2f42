"""INSERT, UPDATE, DELETE and `EXEC redact_revision`: each computes all its changes, then stages them
at once, so a statement that fails leaves the transaction as it was."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from amazon.ion.simple_types import IonPyNull

from ..errors import LedgerError
from ..journal.ids import time_ordered_id
from . import expr as ev
from .context import Doc, StatementContext, Write
from .staged import TableInfo
from .syntax import Delete, Exec, Insert, Update


def run_insert(txn: StatementContext, stmt: Insert, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    value = ev.evaluate(stmt.values, {}, params)
    documents = list(value) if isinstance(value, list) and not hasattr(value, "items") else [value]
    writes = []
    for document in documents:
        if not hasattr(document, "items") or isinstance(document, IonPyNull):
            raise LedgerError(
                f"INSERT INTO {stmt.table}: a document must be a struct, got {_type_name(document)}"
            )
        writes.append(Write(table, time_ordered_id(), document, None))
    txn.stage_writes(writes)
    return [{"documentId": w.doc_id} for w in writes]


def run_update(txn: StatementContext, stmt: Update, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    writes = []
    for doc, env in _matching(txn, table, stmt.where, stmt.alias, stmt.by_id_alias, params):
        writes.append(Write(table, doc.doc_id, ev.apply_update(stmt, doc.data, env, params), doc))
    txn.stage_writes(writes)
    return [{"documentId": w.doc_id} for w in writes]


def run_delete(txn: StatementContext, stmt: Delete, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    writes = [
        Write(table, doc.doc_id, None, doc)
        for doc, _env in _matching(txn, table, stmt.where, stmt.alias, stmt.by_id_alias, params)
    ]
    txn.stage_writes(writes)
    return [{"documentId": w.doc_id} for w in writes]


def _matching(
    txn: StatementContext, table: TableInfo, where: Any, alias: str, by_id_alias: str | None, params: Sequence[Any]
) -> list[tuple[Doc, dict]]:
    """The user-view documents of `table` that satisfy `where`, with their evaluation environments.

    Materialised before any change is staged, so an UPDATE never sees its own writes."""
    out = []
    for doc in txn.candidates(table, where, alias, by_id_alias, params):
        env = ev.make_env(doc.data, alias, by_id_alias=by_id_alias, doc_id=doc.doc_id)
        if ev.matches(where, env, params):
            out.append((doc, env))
    return out


def run_exec(txn: StatementContext, stmt: Exec, params: Sequence[Any]) -> list[Any]:
    if stmt.name.lower() != "redact_revision":
        raise LedgerError(f"unknown stored procedure '{stmt.name}' (supported: redact_revision)")
    if len(stmt.args) != 3:
        raise LedgerError("redact_revision takes 3 arguments: a block address, a table id and a document id")
    address, table_id, doc_id = (ev.evaluate(arg, {}, params) for arg in stmt.args)
    if not hasattr(address, "get") or address.get("sequenceNo") is None or address.get("strandId") is None:
        raise LedgerError(
            "redact_revision: the first argument must be a block address {strandId, sequenceNo}"
        )
    if not isinstance(table_id, str) or not isinstance(doc_id, str):
        raise LedgerError("redact_revision: the table id and the document id must be strings")
    request = txn.stage_redaction(
        str(address["strandId"]), int(address["sequenceNo"]), str(table_id), str(doc_id)
    )
    return [request]


def _type_name(value: Any) -> str:
    ion_type = getattr(value, "ion_type", None)
    return ion_type.name.lower() if ion_type is not None else type(value).__name__
