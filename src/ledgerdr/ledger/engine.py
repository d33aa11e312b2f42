"""The embedded ledger: QLDB's model on one SQLite file, with optimistic concurrency and a verifiable journal.

A `Transaction` reads without any lock (each read goes to the last committed state), records what it
read (document versions, index probes, per-table change counters for scans, table-name resolutions,
the catalog version for DDL) and buffers its writes. `commit` takes SQLite's write lock
(`BEGIN IMMEDIATE`), re-checks every read (a change means `OccConflict`, QLDB's
OccConflictException), writes one journal block with `JournalWriter` continuing from the newest
stored block (read under the lock, so several processes can share one file), applies the writes,
extends the digest accumulator and Merkle nodes, and commits: all in one SQLite transaction, so a
crash never leaves part of a ledger transaction behind.

Every committed transaction that ran at least one statement becomes a block, read-only ones included,
as in QLDB. Digests and proofs follow CONTRACTS §4: the digest is `merkle_root` over every block hash.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from ..errors import LedgerError, OccConflict, QuotaExceeded
from ..journal.hashing import ion_hash, merkle_root
from ..journal.model import BlockAddress
from ..journal.proofs import tree_proof
from ..journal.writer import DocumentWrite, JournalWriter, Redaction, ms_timestamp
from . import expr as ev
from . import statements
from .partiql import Select, Statement, parse
from .statements import DdlOp, Write, new_id
from .storage import (
    BlockRow,
    DocRow,
    Durability,
    IndexRow,
    Storage,
    TableRow,
    accumulator_from,
    from_ms,
    index_key,
    to_ms,
    unpack_stack,
)

MAX_DOCUMENTS_PER_TRANSACTION = 40
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_DOCUMENT_BYTES = 128 * 1024
MAX_STATEMENT_CHARS = 100_000
MAX_TRANSACTION_SECONDS = 30.0
MAX_REDACTIONS_PER_TRANSACTION = 1


@lru_cache(maxsize=2048)
def _parse(sql: str) -> Statement:
    return parse(sql)  # parse is pure; drivers repeat the same parameterised texts


@dataclass(frozen=True, slots=True)
class TableInfo:
    table_id: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class Doc:
    """A document as a statement sees it (user view); `pending` when this transaction wrote it."""

    doc_id: str
    version: int
    data: Any
    pending: bool = False


@dataclass(slots=True)
class _Pending:
    table: TableInfo
    doc_id: str
    version: int
    data: Any | None
    raw: bytes | None
    base_data: Any | None  # the committed data this write replaces (for index maintenance)
    statements: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _ChainState:
    data_version: int  # SQLite's PRAGMA data_version when this state was read
    head: tuple[int, bytes, int] | None  # newest block: (seq, blockHash, ts_ms)
    stack: list[tuple[int, bytes]]  # the digest accumulator's open subtrees
    indexes: dict[str, list[IndexRow]]  # table id -> its indexes, filled lazily


@dataclass(frozen=True)
class CommitResult:
    transaction_id: str
    block_address: BlockAddress
    block_hash: bytes
    timestamp_ms: int


def _doc_id_text(value: Any) -> str | None:
    text = getattr(value, "text", value)
    return str(text) if isinstance(text, str) else None


def _field_value(data: Any, name: str) -> Any:
    return data.get(name) if data is not None and hasattr(data, "get") else None


class Transaction:
    """One ledger transaction. Not thread-safe. Use `execute`, then `commit` or `abort`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.id = new_id()
        self._storage = ledger._storage
        self._started = time.monotonic()
        self._state = "open"
        self._statements: list[str] = []
        self._current = 0
        self._bytes = 0
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._ddl: list[DdlOp] = []
        self._redactions: list[tuple[Redaction, bytes]] = []
        # the read set
        self._name_reads: dict[str, str | None] = {}
        self._doc_reads: dict[tuple[str, str], int | None] = {}
        self._scan_reads: dict[str, int] = {}
        self._index_reads: dict[tuple[str, bytes], tuple[str, ...]] = {}
        self._catalog_version: int | None = None

    # ------------------------------------------------------------------------------------ public
    def execute(self, sql: str, *params: Any) -> list[Any]:
        """Run one statement; returns its result values (Ion values). Raises LedgerError for a bad
        statement, QuotaExceeded for a quota; the transaction stays usable after either."""
        self._check_usable()
        if len(sql) > MAX_STATEMENT_CHARS:
            raise QuotaExceeded(f"statement of {len(sql):,} characters exceeds the {MAX_STATEMENT_CHARS:,} limit")
        stmt = _parse(sql)
        if self.ledger.read_only and not isinstance(stmt, Select):
            raise LedgerError(f"ledger {self.ledger.name!r} is read-only: only SELECT is allowed")
        self._current = len(self._statements)
        results = statements.execute(self, stmt, params)
        self._statements.append(sql)
        self._bytes += len(sql)
        return results

    def commit(self) -> CommitResult | None:
        """Validate the read set and write the block. Returns None for a transaction that ran no
        statement (or on a read-only ledger, which writes no blocks). Raises OccConflict when another
        transaction changed what this one read; the transaction is then closed and must be retried."""
        self._check_usable()
        if not self._statements or self.ledger.read_only:
            self._state = "committed"
            return None
        try:
            with self._storage.write_transaction():
                self._validate()
                result, chain = self.ledger._append(self)
        except BaseException:
            self._state = "aborted"
            self.ledger._chain = None  # a failed commit may have left the cache ahead of the file
            raise
        self.ledger._chain = chain
        self._state = "committed"
        return result

    def abort(self) -> None:
        """Discard everything; idempotent."""
        if self._state == "open":
            self._state = "aborted"

    @property
    def is_open(self) -> bool:
        return self._state == "open"

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
            raise QuotaExceeded(f"transaction {self.id} ran {elapsed:.1f} s; the limit is "
                                f"{MAX_TRANSACTION_SECONDS:.0f} s", hint="split the work into smaller transactions")

    # -------------------------------------------------------------------- catalog (for statements)
    def resolve(self, name: str) -> TableInfo:
        """The active table named `name` (this transaction's DDL included); LedgerError if none."""
        if self._ddl:
            table = next((t for t in self.catalog_tables() if t.name == name and t.status == "ACTIVE"), None)
        else:
            row = self._storage.active_table(name)
            self._name_reads.setdefault(name, row.table_id if row else None)
            table = TableInfo(row.table_id, row.name, row.status) if row else None
        if table is None:
            raise LedgerError(f"no active table named '{name}'", hint="see information_schema.user_tables")
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
        if self._catalog_version is None:
            self._catalog_version = self.ledger._catalog_version()
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
            elif op.kind == "CREATE_INDEX":
                indexes.setdefault(op.table_id, []).append(op.index)
            else:
                indexes[op.table_id] = [i for i in indexes.get(op.table_id, []) if i.index_id != op.index.index_id]
        return tables, indexes

    def user_tables(self) -> list[dict[str, Any]]:
        """information_schema.user_tables rows, in QLDB's shape."""
        tables, indexes = self._catalog()
        return [
            {"name": t.name, "tableId": t.table_id, "status": t.status,
             "indexes": [{"expr": f"[{i.field}]", "indexId": i.index_id, "status": i.status}
                         for i in indexes.get(t.table_id, [])]}
            for t in tables.values()
        ]

    # -------------------------------------------------------------------------- reads (for statements)
    def get_doc(self, table: TableInfo, doc_id: str) -> Doc | None:
        """The user-view document `doc_id` of `table` (this transaction's writes included)."""
        pending = self._pending.get((table.table_id, doc_id))
        if pending is not None:
            return None if pending.data is None else Doc(doc_id, pending.version, pending.data, True)
        row = self._storage.document(table.table_id, doc_id)
        self._doc_reads.setdefault((table.table_id, doc_id), None if row is None else row.version)
        return None if row is None else Doc(doc_id, row.version, simpleion.loads(row.data))

    def candidates(self, table: TableInfo, where: Any, alias: str, by_id_alias: str | None,
                   params: Sequence[Any]) -> Iterator[Doc]:
        """Documents that may satisfy `where`: one by id, those an index finds, or the whole table.
        The caller applies `where` to each; every read is recorded for commit-time validation."""
        id_expr = ev.id_lookup(where, by_id_alias)
        if id_expr is not None:
            doc_id = _doc_id_text(ev.evaluate(id_expr, {}, params))
            doc = None if doc_id is None else self.get_doc(table, doc_id)
            return iter(() if doc is None else (doc,))
        return self._merge_pending(table, self._committed_candidates(table, where, alias, by_id_alias, params))

    def _committed_candidates(self, table: TableInfo, where: Any, alias: str, by_id_alias: str | None,
                              params: Sequence[Any]) -> Iterator[tuple[str, int, bytes]]:
        lookups = ev.equality_lookups(where, alias, by_id_alias) if where is not None else {}
        index = self._usable_index(table, lookups)
        if index is None:
            counter = self._storage.change_counter(table.table_id)
            if counter is None:
                return iter(())  # created by this transaction: nothing committed yet
            self._scan_reads.setdefault(table.table_id, counter)
            return ((r.doc_id, r.version, r.data) for r in self._storage.documents(table.table_id))
        key = index_key(ev.evaluate(lookups[index.field], {}, params))
        doc_ids = () if key is None else tuple(self._storage.index_lookup(index.index_id, key))
        if key is not None:
            self._index_reads.setdefault((index.index_id, key), doc_ids)
        return self._fetch(table, doc_ids)

    def _usable_index(self, table: TableInfo, lookups: dict[str, Any]) -> IndexRow | None:
        if not lookups:
            return None
        dropped = {op.index.index_id for op in self._ddl if op.kind == "DROP_INDEX"}
        for index in self._storage.indexes(table.table_id):  # only built (committed) indexes
            if index.field in lookups and index.index_id not in dropped:
                return index
        return None

    def _fetch(self, table: TableInfo, doc_ids: Sequence[str]) -> Iterator[tuple[str, int, bytes]]:
        for doc_id in doc_ids:
            row = self._storage.document(table.table_id, doc_id)
            self._doc_reads.setdefault((table.table_id, doc_id), None if row is None else row.version)
            if row is not None:
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
        counter = self._storage.change_counter(table.table_id)
        if counter is None:
            return
        self._scan_reads.setdefault(table.table_id, counter)
        for row in self._storage.documents(table.table_id):
            yield row.doc_id, self.ledger._revision_struct(row)

    def history_revisions(self, table: TableInfo, start: Any, end: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """(doc id, revision struct) for every committed revision, deletes included, optionally only
        those active at some time in [start, end] (a revision is active until the next one)."""
        counter = self._storage.change_counter(table.table_id)
        if counter is None:
            return
        self._scan_reads.setdefault(table.table_id, counter)
        lo = None if ev.is_null(start) else to_ms(_aware(start))
        hi = None if ev.is_null(end) else to_ms(_aware(end))
        rows = self._storage.history(table.table_id)
        row = next(rows, None)
        while row is not None:
            following = next(rows, None)
            active_until = following.tx_time_ms if following and following.doc_id == row.doc_id else None
            if (hi is None or row.tx_time_ms <= hi) and (lo is None or active_until is None or active_until > lo):
                yield row.doc_id, self.ledger._revision_struct(row)
            row = following

    # ------------------------------------------------------------------------ writes (for statements)
    def stage_writes(self, writes: Sequence[Write]) -> None:
        """Add a statement's document changes; all or nothing. Raises QuotaExceeded."""
        staged = dict(self._pending)
        for write in writes:
            key = (write.table.table_id, write.doc_id)
            self._stage_one(staged, key, write)
        if len(staged) > MAX_DOCUMENTS_PER_TRANSACTION:
            raise QuotaExceeded(f"a transaction may write at most {MAX_DOCUMENTS_PER_TRANSACTION} documents; this "
                                f"statement would bring it to {len(staged)}", hint="split the work into batches of 40")
        total = self._bytes + sum(len(p.raw or b"") for p in staged.values())
        if total > MAX_TRANSACTION_BYTES:
            raise QuotaExceeded(f"a transaction may be at most {MAX_TRANSACTION_BYTES // 1024 // 1024} MB "
                                f"({MAX_TRANSACTION_BYTES:,} bytes); this statement would bring it to {total:,}")
        self._pending = staged

    def _stage_one(self, staged: dict[tuple[str, str], _Pending], key: tuple[str, str], write: Write) -> None:
        raw = None
        if write.data is not None:
            raw = simpleion.dumps(write.data, binary=True)
            if len(raw) > MAX_DOCUMENT_BYTES:
                raise QuotaExceeded(f"document {write.doc_id} is {len(raw):,} bytes in Ion binary; the limit is "
                                    f"{MAX_DOCUMENT_BYTES // 1024} KB ({MAX_DOCUMENT_BYTES:,} bytes)")
        previous = staged.get(key)
        if previous is not None:
            if previous.version == 0 and previous.base_data is None and write.data is None:
                del staged[key]  # inserted and deleted by this transaction: it never existed
                return
            staged[key] = _Pending(write.table, write.doc_id, previous.version, write.data, raw,
                                   previous.base_data, previous.statements | {self._current})
            return
        base = write.base
        version = 0 if base is None else base.version + 1
        staged[key] = _Pending(write.table, write.doc_id, version, write.data, raw,
                               None if base is None else base.data, {self._current})

    def stage_ddl(self, op: DdlOp) -> None:
        if self._catalog_version is None:
            self._catalog_version = self.ledger._catalog_version()
        self._ddl.append(op)

    def stage_redaction(self, strand_id: str, sequence_no: int, table_id: str, doc_id: str) -> dict[str, Any]:
        """Queue `EXEC redact_revision`; returns QLDB's request struct. Raises LedgerError when the
        revision does not exist, has no data (a delete, or already redacted) or is the latest live one."""
        if strand_id != self.ledger.strand_id:
            raise LedgerError(f"block address names strand {strand_id}; this ledger's strand is {self.ledger.strand_id}")
        if len(self._redactions) >= MAX_REDACTIONS_PER_TRANSACTION:
            raise QuotaExceeded(f"a transaction may redact at most {MAX_REDACTIONS_PER_TRANSACTION} revision")
        row = self._storage.history_in_block(table_id, doc_id, sequence_no)
        where = f"document {doc_id} of table {table_id} in block {sequence_no}"
        if row is None:
            raise LedgerError(f"no revision of {where}")
        if row.data is None:
            raise LedgerError(f"the revision of {where} has no data to redact "
                              + ("(already redacted)" if row.data_hash else "(it is a delete)"))
        current = self._storage.document_version(table_id, doc_id)
        self._doc_reads.setdefault((table_id, doc_id), current)
        if current == row.version:
            raise LedgerError(f"cannot redact the latest live revision (version {row.version}) of {where}",
                              hint="update or delete the document first")
        address = BlockAddress(strand_id, sequence_no)
        self._redactions.append((Redaction(address, table_id, doc_id, row.version),
                                 ion_hash(simpleion.loads(row.data))))
        return {"blockAddress": address.to_ion(), "tableId": table_id, "documentId": doc_id, "version": row.version}

    # ------------------------------------------------------------------------------- commit checks
    def _validate(self) -> None:
        storage = self._storage
        for name, table_id in self._name_reads.items():
            row = storage.active_table(name)
            if (row.table_id if row else None) != table_id:
                raise OccConflict(f"table '{name}' was created, dropped or renamed by a concurrent transaction")
        for (table_id, doc_id), version in self._doc_reads.items():
            if storage.document_version(table_id, doc_id) != version:
                raise OccConflict(f"document {doc_id} (table {table_id}) changed after this transaction read it")
        for table_id, counter in self._scan_reads.items():
            if storage.change_counter(table_id) != counter:
                raise OccConflict(f"table {table_id} changed after this transaction scanned it")
        for (index_id, key), doc_ids in self._index_reads.items():
            if tuple(storage.index_lookup(index_id, key)) != doc_ids:
                raise OccConflict(f"index {index_id} changed after this transaction read it")
        if self._catalog_version is not None and self.ledger._catalog_version() != self._catalog_version:
            raise OccConflict("the catalog (tables, indexes) changed after this transaction read it")


def _aware(value: Any) -> Any:
    if not hasattr(value, "tzinfo"):
        raise LedgerError(f"history() bounds must be timestamps, got {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Ledger:
    """One embedded ledger file. Not thread-safe; several `Ledger` objects (threads, processes) may
    share one file, and their commits serialise on SQLite's write lock."""

    def __init__(self, path: Path, storage: Storage, *, read_only: bool) -> None:
        self.path = path
        self._storage = storage
        meta = storage.all_meta()
        self.name: str = meta["ledger_name"]
        self.strand_id: str = meta["strand_id"]
        self.lineage: str = meta["lineage"]
        self.read_only = read_only or bool(meta.get("read_only"))
        self._chain: _ChainState | None = None

    @classmethod
    def create(cls, path: Path | str, name: str | None = None, *,
               durability: Durability | str = Durability.FULL) -> Ledger:
        """Create a ledger file. Raises LedgerError if `path` exists. The name defaults to the file stem."""
        path = Path(path)
        meta = {"ledger_name": name or path.stem, "strand_id": new_id(), "lineage": new_id(), "read_only": 0,
                "catalog_version": 0, "digest_stack": b"", "created_ms": to_ms(ms_timestamp())}
        return cls(path, Storage.create(path, durability=durability, meta=meta), read_only=False)

    @classmethod
    def open(cls, path: Path | str, read_only: bool = False, *,
             durability: Durability | str = Durability.FULL) -> Ledger:
        """Open a ledger file. `read_only` refuses every statement but SELECT and writes no blocks."""
        path = Path(path)
        return cls(path, Storage.open(path, durability=durability), read_only=read_only)

    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # --------------------------------------------------------------------------------- statements
    def begin(self) -> Transaction:
        return Transaction(self)

    def execute(self, sql: str, *params: Any) -> list[Any]:
        """Run one statement in its own transaction (committed, or aborted on error)."""
        txn = self.begin()
        try:
            results = txn.execute(sql, *params)
            txn.commit()
        finally:
            txn.abort()
        return results

    def list_tables(self) -> list[str]:
        """Names of the active tables."""
        return [t.name for t in self._storage.tables() if t.status == "ACTIVE"]

    def tables(self) -> list[TableRow]:
        return self._storage.tables()

    def set_read_only(self, read_only: bool) -> None:
        """Persist the read-only flag (a standby refuses writes until promoted)."""
        with self._storage.write_transaction():
            self._storage.set_meta("read_only", int(read_only))
        self.read_only = read_only

    def _catalog_version(self) -> int:
        return int(self._storage.get_meta("catalog_version") or 0)

    # ----------------------------------------------------------------------------------- commit
    def _chain_state(self) -> _ChainState:
        """The newest block and accumulator, read under the write lock. Reused from our last commit
        while SQLite's data_version shows that no other connection has committed since."""
        version = self._storage.data_version()
        cached = self._chain
        if cached is not None and cached.data_version == version:
            return cached
        return _ChainState(version, self._storage.last_block_head(),
                           unpack_stack(self._storage.get_meta("digest_stack")), {})

    def _append(self, txn: Transaction) -> tuple[CommitResult, _ChainState]:
        """Write txn's block and apply its changes. Runs inside the write transaction; returns the chain
        state to cache once the SQLite commit has succeeded."""
        storage = self._storage
        state = self._chain_state()
        head = state.head
        seq = 0 if head is None else head[0] + 1
        writer = JournalWriter(self.strand_id, next_sequence_no=seq,
                               previous_block_hash=b"" if head is None else head[1],
                               last_timestamp=None if head is None else from_ms(head[2]))
        self._apply_ddl(txn._ddl, seq)
        pending = list(txn._pending.values())
        writes = [DocumentWrite(p.table.name, p.table.table_id, p.doc_id, p.version, p.data,
                                tuple(sorted(p.statements))) for p in pending]
        block = writer.commit(txn._statements, writes, transaction_id=txn.id,
                              system_revisions=[op.system_hash for op in txn._ddl],
                              redactions=[r for r, _ in txn._redactions])
        ts_ms = to_ms(block.timestamp)
        storage.append_block(BlockRow(seq, block.ion, block.block_hash, ts_ms, len(writes)))
        indexes = {} if txn._ddl else state.indexes
        self._apply_writes(pending, block.revision_hashes, txn.id, ts_ms, seq, indexes)
        for redaction, data_hash in txn._redactions:
            self._apply_redaction(redaction, data_hash)
        stack = storage.extend_digest(state.stack, seq, block.block_hash)
        if txn._ddl:
            storage.set_meta("catalog_version", self._catalog_version() + 1)
        new_state = _ChainState(state.data_version, (seq, block.block_hash, ts_ms), stack, indexes)
        return CommitResult(txn.id, block.address, block.block_hash, ts_ms), new_state

    def _apply_ddl(self, ops: Sequence[DdlOp], seq: int) -> None:
        storage = self._storage
        for op in ops:
            if op.kind == "CREATE_TABLE":
                storage.insert_table(op.table_id, op.table_name, seq)
            elif op.kind in ("DROP_TABLE", "UNDROP_TABLE"):
                storage.set_table_status(op.table_id, "INACTIVE" if op.kind == "DROP_TABLE" else "ACTIVE")
            elif op.kind == "CREATE_INDEX":
                storage.insert_index(op.index)
                storage.add_index_entries(
                    (op.index.index_id, key, row.doc_id) for row in storage.documents(op.table_id)
                    if (key := index_key(_field_value(simpleion.loads(row.data), op.index.field))) is not None)
            else:
                storage.delete_index(op.index.index_id)

    def _apply_writes(self, pending: Sequence[_Pending], hashes: Sequence[bytes], tx_id: str, ts_ms: int,
                      seq: int, indexes: dict[str, list[IndexRow]]) -> None:
        storage = self._storage
        rows = [DocRow(p.table.table_id, p.doc_id, p.version, p.raw, revision_hash, ts_ms, tx_id, seq)
                for p, revision_hash in zip(pending, hashes, strict=False)]
        storage.insert_history(rows)
        storage.put_documents(row for row in rows if row.data is not None)
        storage.delete_documents((row.table_id, row.doc_id) for row in rows if row.data is None)
        removed: list[tuple[str, bytes, str]] = []
        added: list[tuple[str, bytes, str]] = []
        for p in pending:
            table_id = p.table.table_id
            if table_id not in indexes:
                indexes[table_id] = storage.indexes(table_id)
            _index_changes(indexes[table_id], p, removed, added)
        if removed:
            storage.remove_index_entries(removed)
        if added:
            storage.add_index_entries(added)
        if pending:
            storage.bump_change_counters({p.table.table_id for p in pending})

    def _apply_redaction(self, redaction: Redaction, data_hash: bytes) -> None:
        """Replace the revision's data by its dataHash in history and in the stored block bytes. The
        revision hash is dot(H(metadata), H(data)) either way, so the block hash does not change."""
        storage = self._storage
        seq = redaction.block_address.sequence_no
        row = storage.history_in_block(redaction.table_id, redaction.document_id, seq)
        if row is None or row.data is None:
            raise OccConflict(f"revision of {redaction.document_id} in block {seq} was redacted concurrently")
        storage.redact_history(redaction.table_id, redaction.document_id, redaction.version, data_hash)
        stored = storage.block(seq)
        block = simpleion.loads(stored.ion)
        revisions = block["revisions"]
        for i, revision in enumerate(revisions):
            metadata = revision.get("metadata")
            if metadata is not None and metadata["id"] == redaction.document_id \
                    and metadata["version"] == redaction.version:
                revisions[i] = _redacted(revision, data_hash)
        storage.replace_block_bytes(seq, simpleion.dumps(block, binary=True))

    # ------------------------------------------------------------------------------ journal access
    def _revision_struct(self, row: DocRow) -> dict[str, Any]:
        revision: dict[str, Any] = {"blockAddress": {"strandId": self.strand_id, "sequenceNo": row.block_seq},
                                    "hash": row.hash}
        if row.data is not None:
            revision["data"] = simpleion.loads(row.data)
        elif row.data_hash is not None:
            revision["dataHash"] = row.data_hash
        revision["metadata"] = {"id": row.doc_id, "version": row.version,
                                "txTime": ms_timestamp(from_ms(row.tx_time_ms)), "txId": row.tx_id}
        return revision

    @property
    def block_count(self) -> int:
        return self._storage.block_count()

    def last_block(self) -> BlockRow | None:
        head = self._storage.last_block_head()
        return None if head is None else self._storage.block(head[0])

    def first_block_time(self) -> datetime | None:
        """The UTC time of block 0, or None on a ledger with no block yet."""
        row = self._storage.block(0)
        return None if row is None else from_ms(row.ts_ms)

    def iter_blocks(self, start_seq: int = 0, end_seq: int | None = None) -> Iterator[BlockRow]:
        """Stored blocks start_seq..end_seq inclusive (to the tip if None), as their Ion binary bytes."""
        return self._storage.iter_blocks(start_seq, end_seq)

    def block_range_for_time(self, start_ms: int, end_ms: int) -> tuple[int, int] | None:
        return self._storage.seq_range_for_time(start_ms, end_ms)

    def get_digest(self) -> dict[str, Any]:
        """{"digest": 32 bytes, "digestTipAddress": {strandId, sequenceNo}} from the persisted accumulator
        (O(log n)). Raises LedgerError on a ledger with no block yet."""
        with self._storage.read_snapshot():
            count = self._storage.block_count()
            stack = unpack_stack(self._storage.get_meta("digest_stack"))
        if count == 0:
            raise LedgerError(f"ledger {self.name!r} has no blocks yet, so it has no digest")
        return {"digest": accumulator_from(stack, count).digest(),
                "digestTipAddress": {"strandId": self.strand_id, "sequenceNo": count - 1}}

    def get_block(self, seq: int, tip: Any = None) -> tuple[Any, list[bytes]]:
        """(block value, proof): folding `dot` over the proof from the block hash gives the digest at
        `tip` (a sequence number or an address; None: the current tip). Raises LedgerError."""
        with self._storage.read_snapshot():
            tip_seq = self._tip(seq, tip)
            row = self._storage.block(seq)
            return simpleion.loads(row.ion), self._storage.tree_proof(seq, tip_seq + 1)

    def get_revision(self, seq: int, document_id: str, tip: Any = None) -> tuple[Any, list[bytes]]:
        """(revision, proof) for `document_id` in block `seq`: the proof climbs the revisions Merkle
        tree, the entries Merkle tree, the link to previousBlockHash, then the tree over block hashes."""
        with self._storage.read_snapshot():
            tip_seq = self._tip(seq, tip)
            block = simpleion.loads(self._storage.block(seq).ion)
            revisions = block.get("revisions") or []
            index = next((i for i, r in enumerate(revisions)
                          if r.get("metadata") is not None and r["metadata"]["id"] == document_id), None)
            if index is None:
                raise LedgerError(f"block {seq} holds no revision of document {document_id}")
            hashes = [bytes(r["hash"]) for r in revisions]
            entries = [bytes(h) for h in block["entriesHashList"]]
            proof = tree_proof(hashes, index) + tree_proof(entries, entries.index(merkle_root(hashes)))
            previous = bytes(block.get("previousBlockHash") or b"")
            if previous:
                proof.append(previous)
            return revisions[index], proof + self._storage.tree_proof(seq, tip_seq + 1)

    def _tip(self, seq: int, tip: Any) -> int:
        count = self._storage.block_count()
        if tip is None:
            tip_seq = count - 1
        elif isinstance(tip, BlockAddress):
            tip_seq = tip.sequence_no
        elif hasattr(tip, "get"):
            tip_seq = int(tip["sequenceNo"])
        else:
            tip_seq = int(tip)
        if not 0 <= seq <= tip_seq < count:
            raise LedgerError(f"block {seq} with tip {tip_seq} is outside the journal (blocks 0..{count - 1})")
        return tip_seq


def _index_changes(indexes: Sequence[IndexRow], p: _Pending, removed: list, added: list) -> None:
    """The index entries a write removes (its base's keys) and adds (its new keys)."""
    for index in indexes:
        old = index_key(_field_value(p.base_data, index.field))
        new = index_key(_field_value(p.data, index.field))
        if old != new:
            if old is not None:
                removed.append((index.index_id, old, p.doc_id))
            if new is not None:
                added.append((index.index_id, new, p.doc_id))


def _redacted(revision: Any, data_hash: bytes) -> dict[str, Any]:
    """The revision with `data` replaced by `dataHash`, other fields (and their order) unchanged."""
    return {("dataHash" if name == "data" else name): (data_hash if name == "data" else value)
            for name, value in revision.items()}
