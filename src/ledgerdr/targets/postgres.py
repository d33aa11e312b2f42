"""PostgreSQL restore target: a queryable replica of the ledger (CONTRACTS §8: never promoted).

Layout, all inside one schema (default `ledgerdr`):

* catalog tables `_lineage` (strand and ledger name), `_units` (applied unit ids with their highest block
  and the number of history rows they added), `_tables` (tableId → original name, PostgreSQL table
  names, indexes, dropped state), `_redactions` (every redaction seen, so a revision arriving later
  is stored redacted), `_scrub` (tables to rewrite after a redaction) and `_stale` (tables being bulk loaded,
  whose current state `finalize` builds);
* per ledger table a history table (`…_history`, key `(id, version)`) and a current-state table (key
  `id`), both with the columns of `COLUMNS`. `ion` holds the exact Ion binary of `data` (the source
  of truth, what the digest reads); `data` is QLDB's JSON down-conversion (for SQL queries, indexed by
  expression indexes `(data->>'field')`); `tx_time_ion` keeps `txTime` at Ion precision, which
  `timestamptz` cannot.

Journal table names are untrusted: PostgreSQL names are derived (sanitized lower-case prefix + a hash
of the tableId, ≤ 63 bytes, so a name reused after DROP under another tableId is another table) and
every identifier goes through `psycopg.sql.Identifier`; the original name is kept in `_tables` and as
the table COMMENT.

Two ways in: `apply` stages a unit's revisions in a temporary table and merges them (history once per
key, current from history); `apply_rows` takes the C verifier's rows as binary COPY data (`pgcopy.py`) straight
into history, and leaves the current state of a table created since the last `finalize` to it, which builds it
once from history (a table that holds a built current state is merged per unit, as a standby's is).

Concurrency: several workers (one `PostgresTarget` each) apply different units at once. A unit's
transaction first claims its unit id (a concurrent duplicate waits on that row, then sees it taken),
then takes a transaction-level advisory lock per ledger table it touches in sorted order. Every write
to a ledger table, its catalog row or its redactions happens under that lock, so `CREATE TABLE/INDEX IF NOT
EXISTS` never races. The lock is exclusive, except for a unit of rows into tables being bulk loaded
(`_write_bulk`): it holds them shared, beside other such units, since each writes only the history rows it
adds; the locks are still taken in one order, and the one wait in a cycle left (two units re-delivering each
other's rows at once) is PostgreSQL's detected deadlock, which rolls the unit back to apply it exclusively.

Finalize's build of the current state and the state digest's read-back divide by table: up to `_STREAMS`
connections of this instance's work side by side (`streamed`), each one backend, one core of the server's.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, TypeVar
from zlib import crc32

import psycopg
from amazon.ion import simpleion
from psycopg import errors, sql

from ..errors import RestoreError
from ..journal.codecs import timestamp_text
from ..journal.hashing import ion_hash
from ..journal.model import Block
from .base import (
    HistoryRow,
    JournalBlockRow,
    LastBlock,
    Redaction,
    RestoredRevision,
    StateRows,
    StoredRevision,
    TableDDL,
    TargetHolding,
    TargetInfo,
)
from .pgcopy import history_copy, jsonb_text
from .postgres_state import STATE_SETTINGS, state_rows, stored_revisions
from .postgres_streams import in_parallel, streamed

COLUMNS = ("id", "version", "tx_time", "tx_time_ion", "tx_id", "data", "ion", "hash", "data_hash", "deleted",
           "type_lost", "block_seq")
_R = TypeVar("_R")  # what the state reads of `finalize_beside_reads` give
_STAGE = sql.Identifier("pg_temp", "_ledgerdr_stage")
# A history COPY that meets rows already stored (a re-delivered revision) lands here first (apply_rows).
_ROWS = sql.Identifier("pg_temp", "_ledgerdr_rows")
# Binary COPY types of the staging table: table_id, then COLUMNS (data staged as text, cast to jsonb).
_STAGE_TYPES = ["text", "text", "int4", "timestamptz", "text", "text", "text", "bytea", "bytea", "bytea", "bool",
                "bool", "int8"]
_PREFIX_BYTES = 40  # sanitized-name part of a table name: 40 + "_" + 12 hex + "_history" = 61 ≤ 63 bytes
_INDEX_PREFIX_BYTES = 30


class _NeedsExclusive(Exception):
    """A unit tried under shared table locks (`PostgresTarget._write_bulk`) that needs them exclusive."""


@dataclass(frozen=True)
class PgTable:
    """A ledger table as the catalog records it."""

    table_id: str
    table_name: str
    current_table: str
    history_table: str
    indexes: tuple[str, ...]
    dropped: bool
    status_seq: int


def pg_table_names(table_id: str, table_name: str) -> tuple[str, str]:
    """(current, history) PostgreSQL names for a ledger table: unique per tableId, at most 63 bytes,
    made only of [a-z0-9_] whatever the journal's name holds."""
    base = re.sub(r"[^a-z0-9_]+", "_", table_name.lower()).strip("_")[:_PREFIX_BYTES] or "table"
    current = f"{base}_{sha256(table_id.encode()).hexdigest()[:12]}"
    return current, f"{current}_history"


def pg_index_name(table_id: str, table_name: str, field: str) -> str:
    base = re.sub(r"[^a-z0-9_]+", "_", table_name.lower()).strip("_")[:_INDEX_PREFIX_BYTES] or "table"
    digest = sha256(b"%s\x00%s" % (table_id.encode(), field.encode())).hexdigest()[:16]
    return f"ix_{base}_{digest}"


def _lock_key(schema: str, domain: str, name: str) -> int:
    """A signed 64-bit advisory lock key, one per (schema, domain, name)."""
    return int.from_bytes(sha256(f"ledgerdr\x00{schema}\x00{domain}\x00{name}".encode()).digest()[:8], "big",
                          signed=True)


class PostgresTarget:
    """A `Target` in PostgreSQL. One instance (one connection) per worker; not thread-safe itself.

    Raises psycopg's errors for connection problems (the caller retries the unit); data PostgreSQL
    cannot store becomes RestoreError naming the unit.
    """

    kind = "postgres"
    keeps_journal = False  # a queryable replica: rows, not the journal's blocks
    splits_state = False
    writable_ledger = False
    has_position_record = False  # a standby resumes from the newest applied block (`info()["last_block"]`)
    applies_rows = True  # apply_rows: binary COPY of the C verifier's rows straight into history
    gives_state_rows = True  # iter_state_rows: its stored rows (the `ion` bytea), as the C state digest reads them

    def __init__(self, dsn: str, schema: str = "ledgerdr") -> None:
        self.schema = schema
        self._dsn = dsn
        self._conn = self._connect()
        self._lineage: tuple[str, str] | None = None
        # Tables this instance saw being bulk loaded (`_stale`): their units are tried under shared locks
        # (`_write_bulk`). Only a hint; the shared path checks it again under the locks.
        self._bulk: set[str] = set()
        try:
            self._ensure_catalog()
            self._conn.execute(sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (table_id text, id text, version integer, tx_time timestamptz,"
                " tx_time_ion text, tx_id text, data text, ion bytea, hash bytea, data_hash bytea, deleted boolean,"
                " type_lost boolean, block_seq bigint) ON COMMIT DELETE ROWS").format(_STAGE))
            self._conn.execute(sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (id text, version integer, tx_time timestamptz, tx_time_ion text,"
                " tx_id text, data jsonb, ion bytea, hash bytea, data_hash bytea, deleted boolean, type_lost boolean,"
                " block_seq bigint) ON COMMIT DELETE ROWS").format(_ROWS))
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------------------------------ helpers

    def _t(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def _connect(self) -> psycopg.Connection:
        """A connection to the target: this instance's own, or one more for work done beside it (`in_parallel`)."""
        conn = psycopg.connect(self._dsn, autocommit=True)
        try:
            # txTime is also kept as Ion text; UTC here only makes the timestamptz column read naturally.
            conn.execute("SET TIME ZONE 'UTC'")
        except BaseException:
            conn.close()
            raise
        return conn

    def _lock(self, cur: psycopg.Cursor, keys: Sequence[int], *, shared: bool = False) -> None:
        """Transaction-level advisory locks, taken left to right in one statement (callers sort keys); `shared`:
        held by any number of transactions at once, never beside an exclusive one."""
        if keys:
            take = sql.SQL("pg_advisory_xact_lock_shared({})" if shared else "pg_advisory_xact_lock({})")
            locks = sql.SQL(", ").join(take.format(sql.Literal(k)) for k in keys)
            cur.execute(sql.SQL("SELECT ") + locks)

    def _ensure_catalog(self) -> None:
        """Create the schema and catalog tables once; the lock makes concurrent first starts safe."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            self._lock(cur, [_lock_key(self.schema, "catalog", "")])
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
                " strand_id text NOT NULL, ledger_name text NOT NULL, format_version integer NOT NULL DEFAULT 1,"
                " opened_at timestamptz NOT NULL DEFAULT now())").format(self._t("_lineage")))
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (unit_id text PRIMARY KEY, last_block_seq bigint,"
                " last_block_hash bytea, revisions bigint NOT NULL DEFAULT 0,"
                " applied_at timestamptz NOT NULL DEFAULT now())").format(self._t("_units")))
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (table_id text PRIMARY KEY, table_name text NOT NULL,"
                " current_table text NOT NULL UNIQUE, history_table text NOT NULL UNIQUE,"
                " indexes text[] NOT NULL DEFAULT '{{}}', dropped boolean NOT NULL DEFAULT false,"
                " status_seq bigint NOT NULL DEFAULT -1)").format(self._t("_tables")))
            cur.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (table_id text, document_id text, version integer, data_hash bytea,"
                " PRIMARY KEY (table_id, document_id, version))").format(self._t("_redactions")))
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (table_id text PRIMARY KEY)").format(self._t("_scrub")))
            # Tables whose current state is left to `finalize` while they are bulk loaded (apply_rows).
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (table_id text PRIMARY KEY)").format(self._t("_stale")))

    # ------------------------------------------------------------------------------------------ lineage

    def open_lineage(self, strand_id: str, ledger_name: str) -> None:
        """Record or check the source's strand and ledger name. Raises RestoreError on another lineage.
        Idempotent; concurrent first calls are safe (the singleton key serializes them)."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(sql.SQL("INSERT INTO {} (strand_id, ledger_name) VALUES (%s, %s) ON CONFLICT DO NOTHING")
                        .format(self._t("_lineage")), (strand_id, ledger_name))
            cur.execute(sql.SQL("SELECT strand_id, ledger_name FROM {}").format(self._t("_lineage")))
            held_strand, held_ledger = cur.fetchone()  # type: ignore[misc]
        if (held_strand, held_ledger) != (strand_id, ledger_name):
            raise RestoreError(
                f"PostgreSQL target (schema {self.schema!r}) holds ledger {held_ledger!r} strand {held_strand}, "
                f"not ledger {ledger_name!r} strand {strand_id}",
                hint="restore into another schema or database; a target never mixes lineages",
            )
        self._lineage = (strand_id, ledger_name)

    def _stored_lineage(self) -> bool:
        """Adopt the lineage another instance recorded (finalize's index unit opens no lineage itself)."""
        row = self._conn.execute(sql.SQL("SELECT strand_id, ledger_name FROM {}").format(self._t("_lineage"))).fetchone()
        if row is not None:
            self._lineage = (row[0], row[1])
        return row is not None

    def applied_units(self) -> set[str]:
        with self._conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT unit_id FROM {}").format(self._t("_units")))
            return {row[0] for row in cur}

    def holding(self) -> TargetHolding:
        """Always a restore target (a queryable replica, never writable through ledgerdr)."""
        strand = self._conn.execute(sql.SQL("SELECT strand_id FROM {}").format(self._t("_lineage"))).fetchone()
        last = self._conn.execute(sql.SQL("SELECT max(last_block_seq) FROM {}").format(self._t("_units"))).fetchone()
        return TargetHolding(f"PostgreSQL schema {self.schema!r}", strand[0] if strand else None,
                             last[0] if last else None, True, False)

    # ------------------------------------------------------------------------------------------ apply

    def apply_rows(self, unit_id: str, tables: Sequence[TableDDL], rows: Sequence[HistoryRow],
                   blocks: Sequence[JournalBlockRow], last_block: tuple[int, bytes] | None) -> bool:
        """See `Target.apply_rows`. One transaction; False (nothing changed) when `unit_id` was applied.

        Each table's rows go to its history table by one binary COPY (built in C before the transaction, so
        the locks stay short). A COPY that meets a row already stored (a re-delivered revision) is rolled back
        to its savepoint and goes through a temporary table and `INSERT … ON CONFLICT DO NOTHING` instead.
        A table created since the last `finalize` is being bulk loaded: its current state is built once, from
        history, by `finalize` (or the next read through this target), instead of merged unit by unit; a table
        that already holds a built current state (a standby, an incremental restore) is merged per unit."""
        self._check_lineage(unit_id)
        copies = history_copy(rows)  # CPU work before the transaction
        keys = sorted({d.table_id for d in tables} | copies.keys())
        if keys and self._bulk.issuperset(keys):
            try:
                return self._unit_transaction(unit_id, last_block, functools.partial(self._write_bulk, tables, copies))
            except (_NeedsExclusive, errors.DeadlockDetected):
                pass  # rolled back whole: the unit goes again, under exclusive locks

        def write(cur: psycopg.Cursor) -> int:
            self._lock(cur, [_lock_key(self.schema, "table", t) for t in keys])
            catalog = self._ensure_tables(cur, tables, {d.table_id: d.table_name for d in tables}, ())
            inserted = 0
            for table_id in sorted(copies):
                table = catalog[table_id]
                deferred = self._defers_current(cur, table)
                if deferred:
                    self._bulk.add(table_id)
                inserted += self._copy_history(cur, table, copies[table_id])
                if not deferred:
                    self._merge_current(cur, table, sorted({row[1] for row in rows if row[0] == table_id}))
                self._redact(cur, table)
            return inserted

        return self._unit_transaction(unit_id, last_block, write)

    def _write_bulk(self, tables: Sequence[TableDDL], copies: dict[str, bytes], cur: psycopg.Cursor) -> int:
        """`apply_rows` of a unit whose tables all exist and are being bulk loaded, under SHARED table locks, so
        that the units of several workers COPY into history at once (each COPY is one backend's work, one core).
        What the exclusive lock guarded stays guarded: a table is created, gets an index, has its current state
        built (`_build_current`) or merged, or has redactions remembered (`apply`) only under an exclusive lock,
        which waits for every shared holder; and a unit here writes only rows it adds: history rows (the primary
        key keeps a revision once; a transaction that meets another's uncommitted row waits for it), their
        redaction (`_redact` erases rows of its own: every committed row a remembered redaction names was erased
        when it was stored or remembered), and a table's status, which moves forward only and is written last so
        that its catalog row is held only until the commit. Raises `_NeedsExclusive` (the caller rolls back and
        applies the unit under exclusive locks) when a table is missing, no longer bulk loaded, or gets an index;
        a deadlock between two units re-delivering each other's rows is rolled back and retried the same way."""
        keys = sorted({d.table_id for d in tables} | copies.keys())
        self._lock(cur, [_lock_key(self.schema, "table", t) for t in keys], shared=True)
        catalog = self._catalog(cur, keys)
        cur.execute(sql.SQL("SELECT table_id FROM {} WHERE table_id = ANY(%s)").format(self._t("_stale")), (keys,))
        stale = {row[0] for row in cur.fetchall()}
        if not stale.issuperset(keys) or not catalog.keys() >= set(keys) \
                or any(set(d.indexes) - set(catalog[d.table_id].indexes) for d in tables):
            self._bulk.difference_update(keys)
            raise _NeedsExclusive()
        inserted = 0
        for table_id in sorted(copies):
            inserted += self._copy_history(cur, catalog[table_id], copies[table_id])
            self._redact(cur, catalog[table_id])
        # Highest block wins (`_record_ddl`), compared in the row itself: another unit may have moved it meanwhile.
        for d in sorted(tables, key=lambda d: (d.table_id, d.block_seq, d.dropped)):
            cur.execute(sql.SQL("UPDATE {} SET dropped = %s, status_seq = %s WHERE table_id = %s"
                                " AND (status_seq, dropped) < (%s, %s)").format(self._t("_tables")),
                        (d.dropped, d.block_seq, d.table_id, d.block_seq, d.dropped))
        return inserted

    def _check_lineage(self, unit_id: str) -> None:
        if self._lineage is None and not self._stored_lineage():
            raise RestoreError(f"unit {unit_id}: open_lineage must be called before apply")

    def _unit_transaction(self, unit_id: str, last_block: tuple[int, bytes] | None,
                          write: Callable[[psycopg.Cursor], int]) -> bool:
        """One unit in one transaction: claim its id (False, nothing changed, when it was applied), `write` it
        (returns the history rows added), record that count. Data PostgreSQL refuses becomes RestoreError."""
        applied = False
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                if not self._claim_unit(cur, unit_id, last_block):
                    raise psycopg.Rollback()
                inserted = write(cur)
                cur.execute(sql.SQL("UPDATE {} SET revisions = %s WHERE unit_id = %s").format(self._t("_units")),
                            (inserted, unit_id))
                applied = True
        except psycopg.DataError as exc:
            raise RestoreError(f"unit {unit_id}: PostgreSQL refused the data: {exc}") from exc
        return applied

    def _defers_current(self, cur: psycopg.Cursor, table: PgTable) -> bool:
        """Whether `table`'s current state waits for `finalize`: the table was created since the last one (a bulk
        load; `_create_table` marks it). A unit through `apply` merges it all the same (its first units, which
        create the tables, come that way), so only the rows path defers."""
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE table_id = %s)").format(self._t("_stale")),
                    (table.table_id,))
        return bool(cur.fetchone()[0])  # type: ignore[index]

    def _copy_history(self, cur: psycopg.Cursor, table: PgTable, data: bytes, *, staged: bool = False) -> int:
        """One table's binary COPY data into its history; returns the rows added. Straight in, unless it meets a
        stored row (or `staged`): then through `_ROWS`, each row inserted once."""
        history = self._t(table.history_table)
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        if not staged:
            try:
                with self._conn.transaction():  # a savepoint: a duplicate key undoes this COPY alone
                    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(history, columns)) as copy:
                        copy.write(data)
                    return max(cur.rowcount, 0)
            except errors.UniqueViolation:
                pass
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(_ROWS, columns)) as copy:
            copy.write(data)
        cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING")
                    .format(history, columns, columns, _ROWS))
        inserted = cur.rowcount
        cur.execute(sql.SQL("TRUNCATE {}").format(_ROWS))
        return inserted


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
        """See `Target.apply`. One transaction; False (nothing changed) when `unit_id` was applied. `blocks`
        are ignored: a queryable replica holds rows, not the journal (`keeps_journal` False)."""
        self._check_lineage(unit_id)
        staged = _stage_rows(revisions)  # CPU work before the transaction: locks stay short

        def write(cur: psycopg.Cursor) -> int:
            self._copy_stage(cur, staged)
            written = sorted({r.table_id for r in revisions})
            redacted = sorted({r.table_id for r in redactions})
            self._lock(cur, [_lock_key(self.schema, "table", t)
                             for t in sorted(set(written) | set(redacted) | {d.table_id for d in tables})])
            names = {r.table_id: r.table_name for r in revisions}
            names.update((d.table_id, d.table_name) for d in tables)
            catalog = self._ensure_tables(cur, tables, names, redacted)
            self._remember_redactions(cur, redactions)
            inserted = sum(self._merge(cur, catalog[t], sorted({r.document_id for r in revisions
                                                                if r.table_id == t})) for t in written)
            for table_id in sorted(set(written) | set(redacted)):
                if table_id in catalog:
                    self._redact(cur, catalog[table_id])
            return inserted

        return self._unit_transaction(unit_id, last_block, write)

    def _claim_unit(self, cur: psycopg.Cursor, unit_id: str, last_block: tuple[int, bytes] | None) -> bool:
        """Insert the unit's row; False if it exists. A concurrent duplicate waits here for the first."""
        seq, block_hash = last_block if last_block is not None else (None, None)
        cur.execute(sql.SQL("INSERT INTO {} (unit_id, last_block_seq, last_block_hash) VALUES (%s, %s, %s)"
                            " ON CONFLICT DO NOTHING RETURNING unit_id").format(self._t("_units")),
                    (unit_id, seq, block_hash))
        return cur.fetchone() is not None

    def _copy_stage(self, cur: psycopg.Cursor[Any], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = sql.SQL(", ").join(map(sql.Identifier, ("table_id", *COLUMNS)))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(_STAGE, columns)) as copy:
            copy.set_types(_STAGE_TYPES)
            for row in rows:
                copy.write_row(row)

    def _ensure_tables(self, cur: psycopg.Cursor, ddl: Sequence[TableDDL], names: dict[str, str],
                       redacted: Sequence[str]) -> dict[str, PgTable]:
        """Create missing tables (`names`: table id → name) and indexes, record DDL state; return the catalog
        rows of the unit's tables (those redactions name included, when they exist). Runs under the tables'
        advisory locks."""
        catalog = self._catalog(cur, sorted(names.keys() | set(redacted)))
        for table_id in sorted(names.keys() - catalog.keys()):
            catalog[table_id] = self._create_table(cur, table_id, names[table_id])
        for d in sorted(ddl, key=lambda d: (d.table_id, d.block_seq, d.dropped)):
            catalog[d.table_id] = self._record_ddl(cur, catalog[d.table_id], d)
        return catalog

    def _catalog(self, cur: psycopg.Cursor, table_ids: Sequence[str] | None = None) -> dict[str, PgTable]:
        query = sql.SQL("SELECT table_id, table_name, current_table, history_table, indexes, dropped, status_seq"
                        " FROM {}").format(self._t("_tables"))
        if table_ids is None:
            cur.execute(query + sql.SQL(" ORDER BY table_id"))
        else:
            cur.execute(query + sql.SQL(" WHERE table_id = ANY(%s)"), (list(table_ids),))
        return {row[0]: PgTable(row[0], row[1], row[2], row[3], tuple(row[4]), row[5], row[6])
                for row in cur.fetchall()}

    def _create_table(self, cur: psycopg.Cursor, table_id: str, table_name: str) -> PgTable:
        current, history = pg_table_names(table_id, table_name)
        columns = sql.SQL(
            "id text NOT NULL, version integer NOT NULL, tx_time timestamptz NOT NULL, tx_time_ion text NOT NULL,"
            " tx_id text NOT NULL, data jsonb, ion bytea, hash bytea NOT NULL, data_hash bytea,"
            " deleted boolean NOT NULL, type_lost boolean NOT NULL, block_seq bigint NOT NULL")
        for name, key in ((history, "id, version"), (current, "id")):
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))")
                        .format(self._t(name), columns, sql.SQL(key)))
            cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._t(name), sql.Literal(table_name)))
        cur.execute(sql.SQL("INSERT INTO {} (table_id, table_name, current_table, history_table)"
                            " VALUES (%s, %s, %s, %s)").format(self._t("_tables")),
                    (table_id, table_name, current, history))
        # A new table is bulk loaded until the next `finalize` builds its current state (`_defers_current`).
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s) ON CONFLICT DO NOTHING").format(self._t("_stale")),
                    (table_id,))
        return PgTable(table_id, table_name, current, history, (), False, -1)

    def _record_ddl(self, cur: psycopg.Cursor, table: PgTable, ddl: TableDDL) -> PgTable:
        new_indexes = [f for f in dict.fromkeys(ddl.indexes) if f not in table.indexes]
        for field in new_indexes:
            cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ((data ->> {}))").format(
                sql.Identifier(pg_index_name(table.table_id, table.table_name, field)),
                self._t(table.current_table), sql.Literal(field)))
        # Highest block wins (QLDB has UNDROP TABLE); at the same block, dropped wins: order-independent.
        newer_status = (ddl.block_seq, ddl.dropped) > (table.status_seq, table.dropped)
        dropped, status_seq = (ddl.dropped, ddl.block_seq) if newer_status else (table.dropped, table.status_seq)
        if not new_indexes and not newer_status:
            return table
        indexes = (*table.indexes, *new_indexes)
        cur.execute(sql.SQL("UPDATE {} SET indexes = %s, dropped = %s, status_seq = %s WHERE table_id = %s")
                    .format(self._t("_tables")), (list(indexes), dropped, status_seq, table.table_id))
        return PgTable(table.table_id, table.table_name, table.current_table, table.history_table, indexes,
                       dropped, status_seq)

    def _remember_redactions(self, cur: psycopg.Cursor, redactions: Sequence[Redaction]) -> None:
        if redactions:
            cur.executemany(sql.SQL(
                "INSERT INTO {0} AS r (table_id, document_id, version, data_hash) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (table_id, document_id, version)"
                " DO UPDATE SET data_hash = coalesce(r.data_hash, excluded.data_hash)").format(self._t("_redactions")),
                sorted((r.table_id, r.document_id, r.version, r.data_hash) for r in redactions))

    def _merge(self, cur: psycopg.Cursor, table: PgTable, ids: Sequence[str]) -> int:
        """Staged rows of one table (documents `ids`) → history (once per key), then current
        (`_merge_current`). Returns the number of history rows added."""
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        selected = sql.SQL(", ").join(sql.SQL("data::jsonb") if c == "data" else sql.Identifier(c) for c in COLUMNS)
        cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} WHERE table_id = %s ON CONFLICT DO NOTHING")
                    .format(self._t(table.history_table), columns, selected, _STAGE), (table.table_id,))
        inserted = cur.rowcount
        self._merge_current(cur, table, ids)
        return inserted

    def _merge_current(self, cur: psycopg.Cursor, table: PgTable, ids: Sequence[str]) -> None:
        """Documents `ids` of one table: current = their newest version, read back from history so that an
        older revision arriving later changes nothing (a newest delete removes the row)."""
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        history, current = self._t(table.history_table), self._t(table.current_table)
        updates = sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in COLUMNS[1:])
        newest = sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(c)) for c in COLUMNS)
        cur.execute(sql.SQL(
            "WITH touched AS (SELECT unnest(%s::text[]) AS id),"
            " newest AS (SELECT n.* FROM touched t CROSS JOIN LATERAL"
            "   (SELECT * FROM {history} h WHERE h.id = t.id ORDER BY h.version DESC LIMIT 1) n),"
            " removed AS (DELETE FROM {current} c USING newest n"
            "   WHERE c.id = n.id AND n.deleted AND c.version < n.version)"
            " INSERT INTO {current} AS c ({columns}) SELECT {newest} FROM newest n WHERE NOT n.deleted"
            " ON CONFLICT (id) DO UPDATE SET {updates} WHERE c.version < excluded.version"
        ).format(history=history, current=current, columns=columns, newest=newest, updates=updates), (list(ids),))

    def _redact(self, cur: psycopg.Cursor, table: PgTable) -> None:
        """Erase the data of every stored revision of `table` that a remembered redaction names and that still
        holds data: one this unit stored (redacted earlier in the journal, remembered before), or one stored
        earlier that this unit's redactions name (`_remember_redactions` ran first)."""
        cur.execute(sql.SQL(
            "SELECT h.id, h.version, h.ion, r.data_hash FROM {redactions} r"
            " JOIN {history} h ON h.id = r.document_id AND h.version = r.version"
            " WHERE r.table_id = %s AND h.ion IS NOT NULL"
        ).format(redactions=self._t("_redactions"), history=self._t(table.history_table)), (table.table_id,))
        erased = [(data_hash or ion_hash(simpleion.loads(ion)), doc_id, version)
                  for doc_id, version, ion, data_hash in cur.fetchall()]
        if not erased:
            return
        for name in (table.history_table, table.current_table):
            cur.executemany(sql.SQL("UPDATE {} SET data = NULL, ion = NULL, data_hash = %s WHERE id = %s"
                                    " AND version = %s").format(self._t(name)), erased)
        # An UPDATE leaves the old row version (data, TOAST, index entries) in the table's files until the
        # table is rewritten: `finalize` rewrites every table named here.
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s) ON CONFLICT DO NOTHING").format(self._t("_scrub")),
                    (table.table_id,))

    def finalize(self) -> None:
        """Build the current state of every table left to it (`_build_current`), then rewrite (VACUUM FULL)
        every ledger table from which a redaction erased data since the last call, so the erased bytes leave
        its heap, TOAST and index files; plain VACUUM only marks the space free and leaves the bytes in place.
        PostgreSQL's own WAL keeps them until it recycles the segment (see docs/architecture.md). Waits for
        concurrent readers; never inside a transaction."""
        self._build_current()
        catalog = {t.table_id: t for t in self.tables()}
        pending = [row[0] for row in self._conn.execute(sql.SQL("SELECT table_id FROM {}").format(self._t("_scrub")))]
        for table_id in pending:
            table = catalog.get(table_id)
            if table is not None:
                for name in (table.history_table, table.current_table):
                    self._conn.execute(sql.SQL("VACUUM FULL {}").format(self._t(name)))
            self._conn.execute(sql.SQL("DELETE FROM {} WHERE table_id = %s").format(self._t("_scrub")), (table_id,))

    def finalize_beside_reads(self, start_reads: Callable[[], Callable[[], _R]]) -> _R:
        """`finalize`, then the reads: they read what finalize builds (the current state), so nothing of it runs
        beside them."""
        self.finalize()
        return start_reads()()

    def _build_current(self) -> None:
        """The current state of each table bulk loaded since the last call (`_defers_current`), built at once
        from its history: each document's newest revision, unless that is a delete. Each table in its own
        transaction under its lock, so a unit applied meanwhile waits and then merges into the built state; the
        tables side by side, one connection each (`in_parallel`): a build is PostgreSQL's work alone (reading
        history, writing the rows, their WAL and its flush), and one backend uses one core."""
        stale = [row[0] for row in self._conn.execute(sql.SQL("SELECT table_id FROM {} ORDER BY table_id")
                                                      .format(self._t("_stale")))]
        if not stale:
            return
        catalog = {t.table_id: t for t in self.tables()}
        in_parallel(self._connect, [functools.partial(self._build_table, catalog[t]) for t in stale])

    def _build_table(self, table: PgTable, conn: psycopg.Connection) -> None:
        """`_build_current` of one table, on `conn`."""
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        history, current = self._t(table.history_table), self._t(table.current_table)
        with conn.transaction(), conn.cursor() as cur:
            self._lock(cur, [_lock_key(self.schema, "table", table.table_id)])
            cur.execute(sql.SQL("DELETE FROM {} WHERE table_id = %s RETURNING 1").format(self._t("_stale")),
                        (table.table_id,))
            if cur.fetchone() is None:
                return  # another instance built it meanwhile
            cur.execute(sql.SQL("TRUNCATE {}").format(current))
            # Each id's newest version in the order of the primary key (id, version), read backwards: no
            # sort of whole rows (measured: a third of the server time of a DISTINCT ON that sorts them).
            cur.execute(sql.SQL(
                "INSERT INTO {current} ({columns}) SELECT {columns} FROM (SELECT DISTINCT ON (id) {columns}"
                " FROM {history} ORDER BY id DESC, version DESC) n WHERE NOT n.deleted"
            ).format(current=current, history=history, columns=columns))
        # Statistics of the keys the digest's join of history and current is planned on (all columns: the
        # documents' jsonb and bytea made ANALYZE cost more than building the table), from a sample of 3,000 rows
        # instead of the default 30,000: the same plan (its row counts are what the join's plan reads), at a
        # sixth of the CPU (measured on 68,000-row tables: 0.02 against 0.12 s each).
        with conn.transaction():
            conn.execute("SET LOCAL default_statistics_target = 10")
            conn.execute(sql.SQL("ANALYZE {} (id, version), {} (id, version)").format(history, current))

    # ------------------------------------------------------------------------------------------ reading

    def iter_state(self, *, decode: bool = True) -> Iterator[StoredRevision]:
        """Every history row and every current row (flagged `current`), table by table in tableId order,
        from one REPEATABLE READ snapshot. A current row identical to its history row (compared column by
        column in PostgreSQL) follows that row and shares its decoded data, so the stored Ion is decoded
        once per revision; any other current row comes after the table's history, decoded on its own.
        Rows carry the stored Ion (`ion`); `decode=False` leaves `data` as `NOT_DECODED` (the digest
        hashes the bytes). Do not call `apply` on this instance meanwhile. A current state left to `finalize`
        is built first, so what is read is the state the applied units define."""
        self._build_current()
        with self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            with self._conn.cursor() as cur:
                catalog = self._catalog(cur)
            for table in catalog.values():
                yield from stored_revisions(self._conn, table.table_id, table.table_name, self._t(table.history_table),
                                            self._t(table.current_table), decode)

    def iter_state_part(self, index: int, count: int, *, decode: bool = True) -> Iterator[StoredRevision]:
        """`iter_state` filtered by the CRC-32 of the document id. Every part reads every row (hence
        `splits_state` False: finalize reads this target in one process)."""
        return (row for row in self.iter_state(decode=decode) if crc32(row.document_id.encode()) % count == index)

    def iter_state_rows(self, index: int = 0, count: int = 1) -> Iterator[StateRows]:
        """Every table's history rows and current rows, as stored (the `ion` bytea, undecoded), in batches
        (`base.StateRows`), from one REPEATABLE READ snapshot. A row whose columns a `StateRow` rebuilds exactly
        (txTime stored at millisecond precision, `deleted` as its data columns imply it: every row a restore
        writes) goes to the C digest; any other row comes in a batch of its own that the digest decides in Python
        from the row as `iter_state` gives it. A history row carries `in_current`: its current row is identical,
        compared in PostgreSQL (`postgres_state`), and only the current rows without such a history row are read,
        so the others' bytes never cross the connection. With `count` > 1, the documents in part `index` of
        `count` by a hash of the id (each part scans every row, hence `splits_state` False).

        The tables are read side by side, each on a connection of its own that imports this one's snapshot
        (`streamed`), so one table's join runs in PostgreSQL while the rows of another are hashed here; the
        batches of different tables come interleaved (each table's own in its query's order)."""
        self._build_current()

        def part(alias: str) -> sql.Composable:
            return sql.SQL("") if count <= 1 else sql.SQL(
                " AND mod(hashtext({}.id)::bigint + 2147483648, {}) = {}").format(
                sql.Identifier(alias), sql.Literal(count), sql.Literal(index))

        def read(table: PgTable, snapshot: str) -> Callable[[psycopg.Connection], Generator[StateRows]]:
            def rows(conn: psycopg.Connection) -> Generator[StateRows]:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                    for setting in STATE_SETTINGS:
                        conn.execute(setting)
                    yield from state_rows(conn, table.table_id, table.table_name,
                                          {"history": self._t(table.history_table), "part_h": part("h"),
                                           "current": self._t(table.current_table), "part_c": part("c")})
            return rows

        with self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Open until every reader has imported it (this transaction ends after the last batch).
            snapshot = self._conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            with self._conn.cursor() as cur:
                catalog = self._catalog(cur)
            yield from streamed(self._connect, [read(table, snapshot) for table in catalog.values()])

    def table_ddls(self) -> list[TableDDL]:
        return [TableDDL(t.table_id, t.table_name, t.indexes, t.dropped, t.status_seq) for t in self.tables()]

    def tables(self) -> list[PgTable]:
        """The catalog of ledger tables, in tableId order (for reports and SQL users)."""
        with self._conn.cursor() as cur:
            return list(self._catalog(cur).values())

    def info(self) -> TargetInfo:
        self._build_current()  # `documents` counts the current state the applied units define
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(sql.SQL("SELECT strand_id, ledger_name FROM {}").format(self._t("_lineage")))
            strand, ledger = cur.fetchone() or (None, None)
            cur.execute(sql.SQL("SELECT count(*), coalesce(sum(revisions), 0) FROM {}").format(self._t("_units")))
            units, revisions = cur.fetchone()  # type: ignore[misc]
            cur.execute(sql.SQL("SELECT last_block_seq, last_block_hash FROM {} WHERE last_block_seq IS NOT NULL"
                                " ORDER BY last_block_seq DESC LIMIT 1").format(self._t("_units")))
            top = cur.fetchone()
            catalog = self._catalog(cur)
            documents = 0
            for table in catalog.values():
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(self._t(table.current_table)))
                documents += cur.fetchone()[0]  # type: ignore[index]
        last_block = None if top is None else LastBlock(sequence_no=top[0], hash=_b64(bytes(top[1])))
        return TargetInfo(kind=self.kind, strand_id=strand, ledger_name=ledger, units=units,
                          revisions=int(revisions), documents=documents, tables=len(catalog),
                          last_block=last_block)

    def promote(self, lineage: str) -> None:
        raise RestoreError(f"a {self.kind} target is a queryable replica: it cannot be opened for writes")

    def read_position_record(self) -> bytes | None:
        return None

    def write_position_record(self, record: bytes) -> None:
        raise RestoreError(f"a {self.kind} target keeps no standby position record")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PostgresTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- rows


def _stage_rows(revisions: Sequence[RestoredRevision]) -> list[tuple[Any, ...]]:
    """Staging rows: table_id, then COLUMNS, in the binary COPY types of `_STAGE_TYPES`.

    The revisions of one block share its txTime, so its two forms are computed once per distinct value
    (the Ion text form alone costs ~10 µs)."""
    times: dict[tuple[Any, ...], tuple[datetime, str]] = {}
    rows = []
    dumps = simpleion.dumps
    for revision in revisions:
        tx_time = revision.metadata["txTime"]
        # datetimes at one instant compare equal whatever their precision or offset: key on all of it
        key = (tx_time, tx_time.tzinfo, getattr(tx_time, "precision", None),
               getattr(tx_time, "fractional_precision", None), getattr(tx_time, "fractional_seconds", None))
        block_time = times.get(key)
        if block_time is None:
            block_time = times[key] = (_aware(tx_time), timestamp_text(tx_time))
        data = revision.data
        rows.append((
            revision.table_id, revision.document_id, revision.version, block_time[0], block_time[1],
            str(revision.metadata["txId"]), None if data is None else jsonb_text(data),
            None if data is None else revision.ion or dumps(data, binary=True), bytes(revision.hash),
            None if revision.data_hash is None else bytes(revision.data_hash), revision.deleted, revision.type_lost,
            revision.block_seq,
        ))
    return rows


def _aware(moment: datetime) -> datetime:
    """A plain aware datetime for timestamptz; an Ion timestamp with unknown offset (-00:00) is UTC."""
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                    moment.microsecond, tzinfo=moment.tzinfo or UTC)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
