"""Reading a PostgreSQL target's stored state back: the rows of `PostgresTarget.iter_state` (decoded revisions,
the reference) and of `iter_state_rows` (stored bytes in batches for the C state digest, `targets.digest`).

The SQL here decides which rows the digest reads at all: a current row identical to its history row (every column
the leaf depends on) is that history row's `in_current` flag, and its bytes never cross the connection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel
from psycopg import sql

from ..journal.codecs import parse_timestamp
from .base import NOT_DECODED, StateRow, StateRows, StoredRevision

# What iter_state reads back, in this order (the digest's inputs; `data` is derived from `ion`).
_STORED = ("id", "version", "tx_time_ion", "tx_id", "ion", "hash", "data_hash", "deleted", "type_lost", "block_seq")
# A block's revisions share one txTime: parse each text once while reading a table back.
_parse_tx_time = lru_cache(maxsize=4096)(parse_timestamp)


def state_rows(conn: psycopg.Connection, table_id: str, table_name: str,
               names: dict[str, sql.Composable]) -> Iterator[StateRows]:
    """Both sides of one table for `PostgresTarget.iter_state_rows` (`names`: {history}, {current}, {part_h},
    {part_c}): the rows a `StateRow` rebuilds exactly, history and current joined in one query (`_STATE_JOINED`),
    then the others, side by side (`_state_others`)."""
    type_lost: dict[bool, frozenset[tuple[str, int]]] = {False: _type_lost(conn, names, False)}

    def lost(current: bool) -> frozenset[tuple[str, int]]:  # the current side's, read once a current row comes
        if current not in type_lost:
            type_lost[current] = _type_lost(conn, names, current)
        return type_lost[current]

    # binary results: bytea arrives as its bytes (text format would send and decode it as hex)
    with conn.cursor(name="ledgerdr_state_rows", binary=True) as cur:
        cur.execute(_STATE_JOINED.format(**names))
        while rows := cur.fetchmany(_STATE_BATCH):
            history = [row[:8] for row in rows if row[0] is not None]
            current = [row[8:] for row in rows if row[8] is not None]
            if history:
                yield StateRows(table_id, table_name, False, history, lost(False))
            if current:
                yield StateRows(table_id, table_name, True, current, lost(True))
    for side in (False, True):
        with conn.cursor(name="ledgerdr_state_rows", binary=True) as cur:
            cur.execute(_state_others(side).format(**names))
            while rows := cur.fetchmany(_STATE_BATCH):
                yield _StoredStateRows(table_id, table_name, side, [_state_row(row) for row in rows],
                                       lost(side), in_python=True,
                                       stored=tuple(_stored_row(table_id, table_name, side, row) for row in rows))


def _type_lost(conn: psycopg.Connection, names: dict[str, sql.Composable], current: bool) -> frozenset[tuple[str, int]]:
    """(document id, version) of one side's rows flagged type-lost (`StateRows.type_lost`)."""
    alias = "c" if current else "h"
    with conn.cursor(binary=True) as cur:
        cur.execute(sql.SQL("SELECT id, version FROM {} {} WHERE type_lost{}").format(
            names["current" if current else "history"], sql.Identifier(alias), names[f"part_{alias}"]))
        return frozenset((doc_id, version) for doc_id, version in cur)


def stored_revisions(conn: psycopg.Connection, table_id: str, table_name: str, history: sql.Composable,
                     current: sql.Composable, decode: bool = True) -> Iterator[StoredRevision]:
    """One table's rows for `PostgresTarget.iter_state`: each history row, and its identical current row
    right after it sharing its decoded data; then the current rows that differ or have no history row."""
    same = sql.SQL("({}) IS NOT DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in _STORED),
        sql.SQL(", ").join(sql.SQL("h.{}").format(sql.Identifier(c)) for c in _STORED))
    h_columns = sql.SQL(", ").join(sql.SQL("h.{}").format(sql.Identifier(c)) for c in _STORED)
    c_columns = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in _STORED)
    queries = (
        (sql.SQL("SELECT {h}, c.id IS NOT NULL AND {same} FROM {history} h"
                 " LEFT JOIN {current} c ON c.id = h.id AND c.version = h.version")
         .format(h=h_columns, same=same, history=history, current=current), False),
        (sql.SQL("SELECT {c}, false FROM {current} c LEFT JOIN {history} h ON h.id = c.id AND h.version = c.version"
                 " WHERE h.id IS NULL OR NOT {same}").format(c=c_columns, same=same, history=history,
                                                             current=current), True),
    )
    loads, model = simpleion.loads, IonPyValueModel.MAY_BE_BARE  # bare Python values: ~3× faster, same hash
    table_id, table_name = table_id, table_name
    for query, current_only in queries:
        # binary results: bytea arrives as its bytes (text format would send and decode it as hex)
        with conn.cursor(name="ledgerdr_state", binary=True) as cur:
            cur.itersize = 5000
            cur.execute(query)
            for doc_id, version, tx_time, tx_id, ion, hash_, data_hash, deleted, type_lost, block_seq, same_current \
                    in cur:
                metadata = {"id": doc_id, "version": version, "txTime": _parse_tx_time(tx_time), "txId": tx_id}
                data = None if ion is None else loads(ion, value_model=model) if decode else NOT_DECODED
                for is_current in (current_only, True) if same_current else (current_only,):
                    # (a second constructor call, not dataclasses.replace: ~10× cheaper per row)
                    yield StoredRevision(table_id, table_name, doc_id, version, data, metadata, hash_, data_hash,
                                         type_lost, deleted, block_seq, is_current, ion)


def _tx_ms(alias: str) -> str:
    """txTime in epoch milliseconds from the timestamptz of row `alias`, computed from whole seconds and
    microseconds (both exact; `extract(epoch …) * 1000` goes through a double before PostgreSQL 14)."""
    return (f"(extract(epoch FROM date_trunc('second', {alias}.tx_time))::bigint * 1000"
            f" + floor(extract(microseconds FROM {alias}.tx_time))::bigint % 1000000 / 1000)")


def _exact(alias: str) -> str:
    """Whether a `StateRow` rebuilds row `alias` exactly: its Ion txTime is the millisecond UTC text of its
    timestamptz (what `base.stored_metadata` rebuilds from the milliseconds) and `deleted` is what its data
    columns imply (the rule `StateRows.revision` and the C reader apply): the C digest's rows, the others apart."""
    return (f"{alias}.tx_time_ion = to_char({alias}.tx_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
            f" AND {alias}.deleted = ({alias}.ion IS NULL AND {alias}.data_hash IS NULL)")


# A history row (h) and a current row (c) that give one leaf: the same document id and version, and every other
# column the digest reads equal (bytea byte for byte, NULL equal to NULL), block_seq and the timestamptz too.
_SAME = (*_STORED, "tx_time")
# How the digest reads, measured on 200,000 revisions: the exact rows (nearly all) of a table's history and current
# state in one hash full join on (id, version), each table scanned once, the current one hashed (in memory: 64 MB
# holds ~200,000 current rows; more are hashed in batches). The server's CPU is then what it was when both sides
# were read apart and every current row crossed the connection; a nested loop probing one table per row of the other
# cost ~20% more, a merge join over sorts spilled both tables to temporary files (the planner, misled by a far too
# low estimate of the exact rows, picks one of those). The few other rows look their counterpart up (OFFSET 0 keeps
# that a per-row subplan, never a join that reads the whole other table). JIT compiling these scans (chosen for the
# subplans' estimated cost) cost ~0.3 s a table and saved nothing.
STATE_SETTINGS = ("SET LOCAL enable_mergejoin = off", "SET LOCAL enable_nestloop = off", "SET LOCAL work_mem = '64MB'",
                   "SET LOCAL jit = off")


def _when_read(expression: str) -> str:
    """`expression` of the current row where it is read (it differs from its history row, or has none), else NULL."""
    return f"CASE WHEN s.same THEN NULL ELSE {expression} END"


# The exact rows of both sides ({history}, {current}, {part_h}, {part_c}), one row of the full join each: a history
# row (NULLs without one), its `in_current`, then the current row where it is read (`_when_read`; NULLs otherwise).
_STATE_JOINED = sql.SQL(
    f"SELECT h.id, h.version, h.ion, h.hash, {_tx_ms('h')}, h.tx_id, h.data_hash, s.same, "
    + ", ".join(_when_read(e) for e in ("c.id", "c.version", "c.ion", "c.hash", _tx_ms("c"), "c.tx_id", "c.data_hash"))
    + f" FROM (SELECT * FROM {{history}} h WHERE {_exact('h')}{{part_h}}) h"
    f" FULL JOIN (SELECT * FROM {{current}} c WHERE {_exact('c')}{{part_c}}) c ON c.id = h.id AND c.version = h.version"
    f" CROSS JOIN LATERAL (SELECT ({', '.join(f'c.{c}' for c in _SAME)})"
    f" IS NOT DISTINCT FROM ({', '.join(f'h.{c}' for c in _SAME)}) AS same) s")


def _state_others(current: bool) -> sql.SQL:
    """One side's rows that are not exact, with all their stored columns ({history}, {current}, {part_h}, {part_c}):
    a history row ends with its `in_current`; a current row is read only when no history row is identical."""
    alias = "c" if current else "h"
    columns = ", ".join(f"{alias}.{c}" for c in _STORED) + f", {_tx_ms(alias)}"
    identical = (f"c.id = h.id AND c.version = h.version AND ({', '.join(f'c.{c}' for c in _SAME)})"
                 f" IS NOT DISTINCT FROM ({', '.join(f'h.{c}' for c in _SAME)}) OFFSET 0")
    if current:
        return sql.SQL(f"SELECT {columns} FROM {{current}} c WHERE NOT ({_exact('c')}){{part_c}}"
                       f" AND NOT EXISTS (SELECT 1 FROM {{history}} h WHERE {identical})")
    return sql.SQL(f"SELECT {columns}, EXISTS (SELECT 1 FROM {{current}} c WHERE {identical})"
                   f" FROM {{history}} h WHERE NOT ({_exact('h')}){{part_h}}")


_STATE_BATCH = 8192  # rows per StateRows: big enough to amortise the call into C, small enough to stay cached


@dataclass(frozen=True)
class _StoredStateRows(StateRows):
    """Rows the digest decides in Python (`in_python`): `revision` gives each as `iter_state(decode=False)` does."""

    stored: tuple[StoredRevision, ...] = ()

    def revision(self, index: int) -> StoredRevision:
        return self.stored[index]


def _state_row(row: tuple[Any, ...]) -> StateRow:
    """A row of `_state_others` as a `StateRow`, with its `in_current` where it has one (the digest reads
    `_stored_row` of it, and `StateRows.in_current`)."""
    doc_id, version, _, tx_id, ion, hash_, data_hash, _, _, _, tx_ms = row[:11]
    if len(row) > 11:
        return doc_id, version, ion, hash_, tx_ms, tx_id, data_hash, row[11]
    return doc_id, version, ion, hash_, tx_ms, tx_id, data_hash


def _stored_row(table_id: str, table_name: str, current: bool, row: tuple[Any, ...]) -> StoredRevision:
    """A row of `_state_others` as `stored_revisions(decode=False)` gives it."""
    doc_id, version, tx_time, tx_id, ion, hash_, data_hash, deleted, type_lost, block_seq = row[:10]
    metadata = {"id": doc_id, "version": version, "txTime": _parse_tx_time(tx_time), "txId": tx_id}
    return StoredRevision(table_id, table_name, doc_id, version, None if ion is None else NOT_DECODED,
                          metadata, hash_, data_hash, type_lost, deleted, block_seq, current, ion)
