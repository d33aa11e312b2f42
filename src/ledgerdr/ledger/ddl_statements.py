"""CREATE/DROP/UNDROP TABLE and CREATE/DROP INDEX: checked against the catalog as this transaction
sees it and QLDB's table and index quotas, then staged as `DdlOp`s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LedgerError, QuotaExceeded
from ..journal.ids import time_ordered_id
from .context import StatementContext
from .staged import MAX_ACTIVE_TABLES, MAX_INDEXES_PER_TABLE, MAX_TOTAL_TABLES, DdlOp, TableInfo
from .storage import IndexRow
from .syntax import CreateIndex, CreateTable, DropIndex, DropTable, UndropTable


def run_create_table(txn: StatementContext, stmt: CreateTable, params: Sequence[Any]) -> list[Any]:
    tables = txn.catalog_tables()
    if any(t.name == stmt.name and t.status == "ACTIVE" for t in tables):
        raise LedgerError(f"table '{stmt.name}' already exists")
    _check_table_quotas(tables, adding_total=1)
    table_id = time_ordered_id()
    txn.stage_ddl(DdlOp("CREATE_TABLE", table_id, stmt.name))
    return [{"tableId": table_id}]


def _check_table_quotas(tables: Sequence[TableInfo], *, adding_total: int) -> None:
    active = sum(1 for t in tables if t.status == "ACTIVE")
    if active + 1 > MAX_ACTIVE_TABLES:
        raise QuotaExceeded(
            f"a ledger may have at most {MAX_ACTIVE_TABLES} active tables ({active} exist)",
            hint="drop a table you no longer need",
        )
    if len(tables) + adding_total > MAX_TOTAL_TABLES:
        raise QuotaExceeded(
            f"a ledger may have at most {MAX_TOTAL_TABLES} tables in total, dropped ones included "
            f"({len(tables)} exist)"
        )


def run_drop_table(txn: StatementContext, stmt: DropTable, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.name)
    txn.stage_ddl(DdlOp("DROP_TABLE", table.table_id, table.name))
    return [{"tableId": table.table_id}]


def run_undrop_table(txn: StatementContext, stmt: UndropTable, params: Sequence[Any]) -> list[Any]:
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


def run_create_index(txn: StatementContext, stmt: CreateIndex, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    field = stmt.path[0]
    existing = txn.catalog_indexes(table.table_id)
    if any(i.field == field for i in existing):
        raise LedgerError(f"table '{table.name}' already has an index on [{field}]")
    if len(existing) >= MAX_INDEXES_PER_TABLE:
        raise QuotaExceeded(
            f"table '{table.name}' already has {len(existing)} indexes; the limit is "
            f"{MAX_INDEXES_PER_TABLE} per table"
        )
    index = IndexRow(time_ordered_id(), table.table_id, field, "ONLINE")
    txn.stage_ddl(DdlOp("CREATE_INDEX", table.table_id, table.name, index))
    return [{"tableId": table.table_id}]


def run_drop_index(txn: StatementContext, stmt: DropIndex, params: Sequence[Any]) -> list[Any]:
    table = txn.resolve(stmt.table)
    index = next((i for i in txn.catalog_indexes(table.table_id) if i.index_id == stmt.index_id), None)
    if index is None:
        raise LedgerError(f"table '{table.name}' has no index '{stmt.index_id}'")
    txn.stage_ddl(DdlOp("DROP_INDEX", table.table_id, table.name, index))
    return [{"tableId": table.table_id}]
