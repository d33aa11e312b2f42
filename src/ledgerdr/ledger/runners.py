"""One runner per PartiQL statement kind; `execute` picks it. Results take QLDB's shapes: `{documentId}`
per written document, `{tableId}` for DDL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import LedgerError
from .context import StatementContext
from .ddl_statements import (
    run_create_index,
    run_create_table,
    run_drop_index,
    run_drop_table,
    run_undrop_table,
)
from .queries import run_select
from .syntax import (
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Exec,
    Insert,
    Select,
    Statement,
    UndropTable,
    Update,
)
from .writes import run_delete, run_exec, run_insert, run_update


def execute(txn: StatementContext, stmt: Statement, params: Sequence[Any]) -> list[Any]:
    """Run one statement; return its result values. Raises LedgerError (QuotaExceeded for quotas)."""
    if stmt.param_count > len(params):
        raise LedgerError(f"the statement has {stmt.param_count} parameters (?) but {len(params)} were given")
    handler = _HANDLERS.get(type(stmt))
    if handler is None:
        raise LedgerError(f"{type(stmt).__name__} statements are not supported by the embedded ledger")
    return handler(txn, stmt, params)



_HANDLERS: dict[type, Callable[[StatementContext, Any, Sequence[Any]], list[Any]]] = {
    Insert: run_insert,
    Update: run_update,
    Delete: run_delete,
    Select: run_select,
    CreateTable: run_create_table,
    DropTable: run_drop_table,
    UndropTable: run_undrop_table,
    CreateIndex: run_create_index,
    DropIndex: run_drop_index,
    Exec: run_exec,
}
