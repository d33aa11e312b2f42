"""Transactions of the embedded ledger.

A `Transaction` reads without any lock (each read sees the last committed state) and records what it
read: document versions, index probes, per-table change counters for scans, table-name resolutions,
and the catalog version once it touches the catalog. It buffers its writes, so its own statements
see them. `commit` hands its frozen `StagedTransaction` to the ledger (engine.py, through
`LedgerView`), which re-checks the read set under SQLite's write lock (`OccConflict` on any change) and
writes the block. QLDB's transaction quotas are enforced here; the statements themselves are run by
runners.py through the `StatementContext` this class implements.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC
from functools import lru_cache
from hashlib import sha256
from typing import Any

from amazon.ion import simpleion

from ..errors import LedgerError, QuotaExceeded
from ..journal.hashing import ion_hash
from ..journal.ids import time_ordered_id
from ..journal.ionwrite import SymbolTable, Unencodable, encode_hashed
from ..journal.model import BlockAddress
from ..journal.writer import EncodedData, Redaction
from . import expr as ev
from .context import Doc, UnknownTable, Write
from .functions import CURRENT_TRANSACTION_ID
from .index_keys import index_key
from .lookups import equality_lookups, id_lookup
from .partiql import parse
from .queries import run_select
from .runners import execute
from .staged import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS_PER_TRANSACTION,
    MAX_REDACTIONS_PER_TRANSACTION,
    MAX_STATEMENT_CHARS,
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_SECONDS,
    CommitResult,
    DdlOp,
    LedgerView,
    PendingWrite,
    StagedTransaction,
    TableInfo,
    read_only_refusal,
)
from .storage import IndexRow, ReadSet, to_ms
from .syntax import Select, Statement


def _doc_id_text(value: Any) -> str | None:
    text = getattr(value, "text", value)
    return str(text) if isinstance(text, str) else None


@lru_cache(maxsize=2048)
def _parse(sql: str) -> Statement:
    return parse(sql)  # parse is pure; drivers repeat the same parameterised texts


class Transaction:
    """One ledger transaction. Not thread-safe. Use `execute`, then `commit` or `abort`."""

    def __init__(self, ledger: LedgerView) -> None:
        self.ledger = ledger
        self.id = time_ordered_id()
        self._storage = ledger.storage
        self._started = time.monotonic()
        self._state = "open"
        self._statements: list[str] = []
        self._current = 0
        self._bytes = 0
        self._pending: dict[tuple[str, str], PendingWrite] = {}
        self._ddl: list[DdlOp] = []
        self._redactions: list[tuple[Redaction, bytes]] = []
        self._reads = ReadSet()
        # Documents are encoded against one table per transaction, so the block splices their bytes.
        self._symbols = SymbolTable()

    # ------------------------------------------------------------------------------------ public
    def execute(self, sql: str, *params: Any) -> list[Any]:
        """Run one statement; returns its result values (Ion values). Raises LedgerError for a bad
        statement, QuotaExceeded for a quota; the transaction stays usable after either."""
        self._check_usable()
        if len(sql) > MAX_STATEMENT_CHARS:
            raise QuotaExceeded(
                f"statement of {len(sql):,} characters exceeds the {MAX_STATEMENT_CHARS:,} limit"
            )
        stmt = _parse(sql)
        if self.ledger.read_only and not isinstance(stmt, Select):
            raise read_only_refusal(self.ledger.name)
        self._current = len(self._statements)
        token = CURRENT_TRANSACTION_ID.set(self.id)  # for TXID()
        subqueries = ev.SUBQUERIES.set(self._subquery_runner())
        try:
            results = execute(self, stmt, params)
        finally:
            ev.SUBQUERIES.reset(subqueries)
            CURRENT_TRANSACTION_ID.reset(token)
        self._statements.append(sql)
        self._bytes += len(sql)
        return results

    def _subquery_runner(self) -> Callable[[Select, Sequence[Any], dict], list[Any]]:
        """Runs the statement's subqueries in this transaction: an uncorrelated one once per statement (its
        result is the same for every outer row), a correlated one per outer row, with the outer bindings."""
        results: dict[int, list[Any]] = {}

        def run(select: Select, params: Sequence[Any], outer: dict) -> list[Any]:
            if outer:
                return run_select(self, select, params, outer)
            if id(select) not in results:
                results[id(select)] = run_select(self, select, params)
            return results[id(select)]

        return run

    def commit(self) -> CommitResult | None:
        """Validate the read set and write the block. Returns None for a transaction that ran no
        statement (or on a read-only ledger, which writes no blocks). Raises OccConflict when another
        transaction changed what this one read; the transaction is then closed and must be retried."""
        self._check_usable()
        if not self._statements or self.ledger.read_only:
            self._state = "committed"
            return None
        try:
            result = self.ledger.commit_staged(self.staged())
        except BaseException:
            self._state = "aborted"
            raise
        self._state = "committed"
        return result

    def abort(self) -> None:
        """Discard everything; idempotent."""
        if self._state == "open":
            self._state = "aborted"

    def staged(self) -> StagedTransaction:
        """This transaction's writes, frozen for the commit (the engine reads nothing else of it)."""
        return StagedTransaction(self.id, tuple(self._statements), tuple(self._pending.values()), tuple(self._ddl),
                                 tuple(self._redactions), self._reads)

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def writes_block(self) -> bool:
        """Whether committing makes a block: it ran a statement, on a writable ledger."""
        return bool(self._statements) and not self.ledger.read_only

    def settle(self, committed: bool) -> None:
        """Record the outcome of a commit that `Ledger.commit_group` made for this transaction."""
        self._state = "committed" if committed else "aborted"

    @property
    def started(self) -> float:
        """When the transaction began (time.monotonic()), for the 30 s limit a server enforces."""
        return self._started

    @property
    def pending_writes(self) -> int:
        """How many documents the transaction has written so far (a server reports them as write IOs)."""
        return len(self._pending)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None and self.is_open:
            self.commit()
        else:
            self.abort()

    def _check_usable(self) -> None:
        if self._state != "open":
            raise LedgerError(f"transaction {self.id} is already {self._state}")
        elapsed = time.monotonic() - self._started
        if elapsed > MAX_TRANSACTION_SECONDS:
            self._state = "aborted"
            raise QuotaExceeded(
                f"transaction {self.id} ran {elapsed:.1f} s; the limit is {MAX_TRANSACTION_SECONDS:.0f} s",
                hint="split the work into smaller transactions",
            )

    # -------------------------------------------------------------------- catalog (for statements)
    def resolve(self, name: str) -> TableInfo:
        """The active table named `name` (this transaction's DDL included); LedgerError if none."""
        if self._ddl:
            table = next((t for t in self.catalog_tables() if t.name == name and t.status == "ACTIVE"), None)
        else:
            row = self._storage.active_table(name)
            self._reads.names.setdefault(name, row.table_id if row else None)
            table = TableInfo(row.table_id, row.name, row.status) if row else None
        if table is None:
            raise UnknownTable(name)
        return table

    def resolve_any(self, name: str, *, by_table_id: bool) -> TableInfo:
        """For history(): a table by id (dropped ones too) or an active table by name."""
        if not by_table_id:
            return self.resolve(name)
        table = next((t for t in self.catalog_tables() if t.table_id == name), None)
        if table is None:
            raise LedgerError(f"no table with id '{name}'")
        return table

    def catalog_tables(self) -> list[TableInfo]:
        return list(self._catalog()[0].values())

    def catalog_indexes(self, table_id: str) -> list[IndexRow]:
        return self._catalog()[1].get(table_id, [])

    def _catalog(self) -> tuple[dict[str, TableInfo], dict[str, list[IndexRow]]]:
        """The committed catalog with this transaction's DDL applied; records the catalog version."""
        if self._reads.catalog_version is None:
            self._reads.catalog_version = self._storage.catalog_version()
        tables = {t.table_id: TableInfo(t.table_id, t.name, t.status) for t in self._storage.tables()}
        indexes: dict[str, list[IndexRow]] = {}
        for index in self._storage.indexes():
            indexes.setdefault(index.table_id, []).append(index)
        for op in self._ddl:
            if op.kind == "CREATE_TABLE":
                tables[op.table_id] = TableInfo(op.table_id, op.table_name, "ACTIVE")
            elif op.kind in ("DROP_TABLE", "UNDROP_TABLE"):
                status = "INACTIVE" if op.kind == "DROP_TABLE" else "ACTIVE"
                tables[op.table_id] = TableInfo(op.table_id, op.table_name, status)
            elif (changed := op.index) is None:
                raise ValueError(f"{op.kind} of table {op.table_id} names no index")
            elif op.kind == "CREATE_INDEX":
                indexes.setdefault(op.table_id, []).append(changed)
            else:
                kept = indexes.get(op.table_id, [])
                indexes[op.table_id] = [i for i in kept if i.index_id != changed.index_id]
        return tables, indexes

    def user_tables(self) -> list[dict[str, Any]]:
        """information_schema.user_tables rows, in QLDB's shape."""
        tables, indexes = self._catalog()
        return [
            {
                "name": t.name,
                "tableId": t.table_id,
                "status": t.status,
                "indexes": [
                    {"expr": f"[{i.field}]", "indexId": i.index_id, "status": i.status}
                    for i in indexes.get(t.table_id, [])
                ],
            }
            for t in tables.values()
        ]

    # -------------------------------------------------------------------------- reads (for statements)
    def get_doc(self, table: TableInfo, doc_id: str) -> Doc | None:
        """The user-view document `doc_id` of `table` (this transaction's writes included)."""
        pending = self._pending.get((table.table_id, doc_id))
        if pending is not None:
            return None if pending.data is None else Doc(doc_id, pending.version, pending.data, True)
        row = self._storage.document(table.table_id, doc_id)
        self._reads.documents.setdefault((table.table_id, doc_id), None if row is None else row.version)
        return None if row is None else Doc(doc_id, row.version, simpleion.loads(row.data))

    def candidates(
        self, table: TableInfo, where: Any, alias: str, by_id_alias: str | None, params: Sequence[Any]
    ) -> Iterator[Doc]:
        """Documents that may satisfy `where`: one by id, those an index finds, or the whole table.
        The caller applies `where` to each; every read is recorded for commit-time validation."""
        id_expr = id_lookup(where, by_id_alias)
        if id_expr is not None:
            doc_id = _doc_id_text(ev.evaluate(id_expr, {}, params))
            doc = None if doc_id is None else self.get_doc(table, doc_id)
            return iter(() if doc is None else (doc,))
        return self._merge_pending(
            table, self._committed_candidates(table, where, alias, by_id_alias, params)
        )

    def _committed_candidates(
        self, table: TableInfo, where: Any, alias: str, by_id_alias: str | None, params: Sequence[Any]
    ) -> Iterator[tuple[str, int, bytes]]:
        lookups = equality_lookups(where, alias, by_id_alias) if where is not None else {}
        index = self._usable_index(table, lookups)
        if index is None:
            if not self._record_scan(table):
                return iter(())  # created by this transaction: nothing committed yet
            rows = self._storage.documents(table.table_id)  # current rows always hold data: a delete removes them
            return ((r.doc_id, r.version, r.data) for r in rows if r.data is not None)
        key = index_key(ev.evaluate(lookups[index.field], {}, params))
        doc_ids = () if key is None else tuple(self._storage.index_lookup(index.index_id, key))
        if key is not None:
            self._reads.index_probes.setdefault((index.index_id, key), doc_ids)
        return self._fetch(table, doc_ids)

    def _usable_index(self, table: TableInfo, lookups: dict[str, Any]) -> IndexRow | None:
        if not lookups:
            return None
        dropped = {op.index.index_id for op in self._ddl if op.kind == "DROP_INDEX" and op.index is not None}
        for index in self._storage.indexes(table.table_id):  # only built (committed) indexes
            if index.field in lookups and index.index_id not in dropped:
                return index
        return None

    def _fetch(self, table: TableInfo, doc_ids: Sequence[str]) -> Iterator[tuple[str, int, bytes]]:
        for doc_id in doc_ids:
            row = self._storage.document(table.table_id, doc_id)
            self._reads.documents.setdefault((table.table_id, doc_id), None if row is None else row.version)
            if row is not None and row.data is not None:
                yield doc_id, row.version, row.data

    def _merge_pending(self, table: TableInfo, committed: Iterator[tuple[str, int, bytes]]) -> Iterator[Doc]:
        pending = {d: p for (t, d), p in self._pending.items() if t == table.table_id}
        for doc_id, version, raw in committed:
            mine = pending.pop(doc_id, None)
            if mine is None:
                yield Doc(doc_id, version, simpleion.loads(raw))
            elif mine.data is not None:
                yield Doc(doc_id, mine.version, mine.data, True)
        for doc_id, mine in pending.items():
            if mine.data is not None:
                yield Doc(doc_id, mine.version, mine.data, True)

    def committed_revisions(self, table: TableInfo) -> Iterator[tuple[str, dict[str, Any]]]:
        """(doc id, committed-view struct) for every live document, as of the last commit."""
        if self._record_scan(table):
            yield from self.ledger.committed_view(table.table_id)

    def history_revisions(
        self, table: TableInfo, start: Any, end: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(doc id, revision struct) for every committed revision, deletes included, optionally only
        those active at some time in [start, end]. Raises LedgerError, as QLDB does, for an end in the
        future or a start after the end."""
        lo = None if ev.is_null(start) else to_ms(_aware(start))
        hi = None if ev.is_null(end) else to_ms(_aware(end))
        if hi is not None and hi > time.time_ns() // 1_000_000:
            raise LedgerError(f"history() end time {end} is in the future")
        if lo is not None and hi is not None and lo > hi:
            raise LedgerError(f"history() start time {start} is after its end time {end}")
        return self._history(table, lo, hi)

    def _history(self, table: TableInfo, lo: int | None, hi: int | None) -> Iterator[tuple[str, dict[str, Any]]]:
        if self._record_scan(table):
            yield from self.ledger.history_view(table.table_id, lo, hi)

    def _record_scan(self, table: TableInfo) -> bool:
        """Record the table's change counter; False when it has nothing committed (created by this
        transaction)."""
        counter = self._storage.change_counter(table.table_id)
        if counter is None:
            return False
        self._reads.scans.setdefault(table.table_id, counter)
        return True

    # ------------------------------------------------------------------------ writes (for statements)
    def stage_writes(self, writes: Sequence[Write]) -> None:
        """Add a statement's document changes; all or nothing. Raises QuotaExceeded."""
        staged = dict(self._pending)
        for write in writes:
            key = (write.table.table_id, write.doc_id)
            self._stage_one(staged, key, write)
        if len(staged) > MAX_DOCUMENTS_PER_TRANSACTION:
            raise QuotaExceeded(
                f"a transaction may write at most {MAX_DOCUMENTS_PER_TRANSACTION} documents; this "
                f"statement would bring it to {len(staged)}",
                hint="split the work into batches of 40",
            )
        total = self._bytes + sum(len(p.raw or b"") for p in staged.values())
        if total > MAX_TRANSACTION_BYTES:
            raise QuotaExceeded(
                f"a transaction may be at most {MAX_TRANSACTION_BYTES // 1024 // 1024} MB "
                f"({MAX_TRANSACTION_BYTES:,} bytes); this statement would bring it to {total:,}"
            )
        self._pending = staged

    def _stage_one(
        self, staged: dict[tuple[str, str], PendingWrite], key: tuple[str, str], write: Write
    ) -> None:
        raw = encoded = None
        if write.data is not None:
            raw, encoded = self._encode(write.data)
            if len(raw) > MAX_DOCUMENT_BYTES:
                raise QuotaExceeded(
                    f"document {write.doc_id} is {len(raw):,} bytes in Ion binary; the limit is "
                    f"{MAX_DOCUMENT_BYTES // 1024} KB ({MAX_DOCUMENT_BYTES:,} bytes)"
                )
        previous = staged.get(key)
        if previous is not None:
            if previous.version == 0 and previous.base_data is None and write.data is None:
                del staged[key]  # inserted and deleted by this transaction: it never existed
                return
            staged[key] = PendingWrite(
                write.table,
                write.doc_id,
                previous.version,
                write.data,
                raw,
                previous.base_data,
                previous.statements | {self._current},
                encoded,
            )
            return
        base = write.base
        version = 0 if base is None else base.version + 1
        staged[key] = PendingWrite(
            write.table,
            write.doc_id,
            version,
            write.data,
            raw,
            None if base is None else base.data,
            {self._current},
            encoded,
        )

    def _encode(self, data: Any) -> tuple[bytes, EncodedData | None]:
        """(the document as stored: a self-contained Ion binary stream, its encoding for the block).

        The stored stream declares the transaction's symbols so far (a few of them may belong to
        documents staged before this one); the quota counts those bytes too. A value `ionwrite` does not
        write is stored by `simpleion.dumps`, and the journal writer encodes it the generic way."""
        try:
            ion, serialized = encode_hashed(data, self._symbols)
        except Unencodable:
            return simpleion.dumps(data, binary=True), None
        return self._symbols.standalone(ion), EncodedData(self._symbols, ion, sha256(serialized).digest())

    def stage_ddl(self, op: DdlOp) -> None:
        if self._reads.catalog_version is None:
            self._reads.catalog_version = self._storage.catalog_version()
        self._ddl.append(op)

    def stage_redaction(self, strand_id: str, sequence_no: int, table_id: str, doc_id: str) -> dict[str, Any]:
        """Queue `EXEC redact_revision`; returns QLDB's request struct. Raises LedgerError when the
        revision does not exist, has no data (a delete, or already redacted) or is the latest live one."""
        if strand_id != self.ledger.strand_id:
            raise LedgerError(
                f"block address names strand {strand_id}; this ledger's strand is {self.ledger.strand_id}"
            )
        if len(self._redactions) >= MAX_REDACTIONS_PER_TRANSACTION:
            raise QuotaExceeded(f"a transaction may redact at most {MAX_REDACTIONS_PER_TRANSACTION} revision")
        row = self._storage.history_in_block(table_id, doc_id, sequence_no)
        where = f"document {doc_id} of table {table_id} in block {sequence_no}"
        if row is None:
            raise LedgerError(f"no revision of {where}")
        if row.data is None:
            raise LedgerError(
                f"the revision of {where} has no data to redact "
                + ("(already redacted)" if row.data_hash else "(it is a delete)")
            )
        current = self._storage.document_version(table_id, doc_id)
        self._reads.documents.setdefault((table_id, doc_id), current)
        if current == row.version:
            raise LedgerError(
                f"cannot redact the latest live revision (version {row.version}) of {where}",
                hint="update or delete the document first",
            )
        address = BlockAddress(strand_id, sequence_no)
        self._redactions.append(
            (Redaction(address, table_id, doc_id, row.version), ion_hash(simpleion.loads(row.data)))
        )
        return {
            "blockAddress": address.to_ion(),
            "tableId": table_id,
            "documentId": doc_id,
            "version": row.version,
        }



def _aware(value: Any) -> Any:
    if not hasattr(value, "tzinfo"):
        raise LedgerError(f"history() bounds must be timestamps, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
