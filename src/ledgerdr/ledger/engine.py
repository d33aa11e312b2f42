"""The embedded ledger: QLDB's model on one SQLite file, with optimistic concurrency and a verifiable journal.

Transactions (transaction.py) read without any lock, record what they read and buffer their writes.
Their `commit` takes SQLite's write lock (`BEGIN IMMEDIATE`), re-checks every read (a change means
`OccConflict`, QLDB's OccConflictException), and has the `Ledger` write one journal block with
`JournalWriter`, continuing from the newest stored block (read under the lock, so several processes
can share one file), apply the writes, extend the digest accumulator and Merkle nodes, and commit:
all in one SQLite transaction, so a crash never leaves part of a ledger transaction behind.

Every committed transaction that ran at least one statement becomes a block, read-only ones included,
as in QLDB. Digests and proofs follow CONTRACTS §4: the digest is `merkle_root` over every block hash.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from ..errors import LedgerError, OccConflict
from ..journal.hashing import merkle_root
from ..journal.ids import time_ordered_id
from ..journal.model import BlockAddress
from ..journal.proofs import tree_proof
from ..journal.redact import redact_block_ion
from ..journal.writer import DocumentWrite, JournalWriter, Redaction, ms_timestamp
from .context import field_value
from .index_keys import index_key
from .staged import CommitResult, DdlOp, PendingWrite, StagedTransaction, read_only_refusal
from .storage import (
    FORMAT_VERSION,
    BlockRow,
    DocRow,
    Durability,
    IndexRow,
    Storage,
    TableRow,
    accumulator_from,
    from_ms,
    to_ms,
    unpack_stack,
)
from .transaction import Transaction


@dataclass(frozen=True, slots=True)
class _ChainState:
    data_version: int  # SQLite's PRAGMA data_version when this state was read
    total_changes: int  # this connection's change count once the state was committed
    head: tuple[int, bytes, int] | None  # newest block: (seq, blockHash, ts_ms)
    stack: list[tuple[int, bytes]]  # the digest accumulator's open subtrees
    indexes: dict[str, list[IndexRow]]  # table id -> its indexes, filled lazily


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
        self._opened_read_only = read_only
        self.read_only = read_only or bool(meta.get("read_only"))
        self._chain: _ChainState | None = None
        self._scrub_pending = False  # a redaction's WAL truncation waits for a reader (Storage.scrub)

    def refresh_read_only(self) -> bool:
        """Re-read the persisted read-only flag: a standby that another process promotes opens for writes
        here too, without reopening the file. Returns the flag."""
        self.read_only = self._opened_read_only or bool(self._storage.get_meta("read_only"))
        return self.read_only

    @classmethod
    def create(
        cls, path: Path | str, name: str | None = None, *, durability: Durability | str = Durability.FULL,
        format_version: int = FORMAT_VERSION, bulk_load: bool = False,
    ) -> Ledger:
        """Create a ledger file. Raises LedgerError if `path` exists. The name defaults to the file stem.
        `format_version`: of the file (storage.FORMAT_VERSIONS); an older one only to test files written before.
        `bulk_load`: for a restore target only (`Storage.create`)."""
        path = Path(path)
        meta = {
            "ledger_name": name or path.stem,
            "strand_id": time_ordered_id(),
            "lineage": time_ordered_id(),
            "read_only": 0,
            "catalog_version": 0,
            "digest_stack": b"",
            "created_ms": to_ms(ms_timestamp()),
        }
        storage = Storage.create(path, durability=durability, meta=meta, format_version=format_version,
                                 bulk_load=bulk_load)
        return cls(path, storage, read_only=False)

    @classmethod
    def open(
        cls, path: Path | str, read_only: bool = False, *, durability: Durability | str = Durability.FULL
    ) -> Ledger:
        """Open a ledger file. `read_only` refuses every statement but SELECT and writes no blocks."""
        path = Path(path)
        return cls(path, Storage.open(path, durability=durability), read_only=read_only)

    def close(self) -> None:
        if self._scrub_pending:
            self._storage.scrub()
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

    # ----------------------------------------------------------------------------------- commit
    @property
    def storage(self) -> Storage:
        """The ledger's SQLite storage (what a transaction reads through; `LedgerView`)."""
        return self._storage

    def commit_staged(self, txn: StagedTransaction) -> CommitResult:
        """Validate txn's read set and write its block, in one SQLite write transaction."""
        storage = self._storage
        try:
            with storage.write_transaction():
                storage.validate(txn.reads)
                result, chain = self._append(txn)
        except BaseException:
            self._chain = None  # the rolled-back commit may have left the cache ahead of the file
            raise
        self._scrub_after_commit(bool(txn.redactions))
        # Built directly: dataclasses.replace costs ~10 µs, a visible share of a one-document commit.
        self._chain = _ChainState(
            chain.data_version, storage.conn.total_changes, chain.head, chain.stack, chain.indexes
        )
        return result

    def commit_group(self, txns: Sequence[Transaction]) -> list[CommitResult | None | LedgerError]:
        """Commit several open transactions — begun on any `Ledger` of this file — in ONE SQLite write
        transaction, so that they share one fsync (group commit). Each is validated and appended in
        list order inside its own savepoint: one that fails (OccConflict, a quota) is rolled back alone
        and its error takes its place in the result; the others commit, each as its own block, exactly
        as if committed one after the other. A transaction that makes no block gets None. Errors other
        than LedgerError (I/O, a full disk) roll the whole group back and propagate. A group of one (a
        lone session's commit) needs no savepoint: two statements fewer per commit."""
        if len(txns) == 1 and txns[0].writes_block:
            return [self._commit_alone(txns[0])]
        storage = self._storage
        results: list[CommitResult | None | LedgerError] = []
        redacted = False
        try:
            with storage.write_transaction():
                for txn in txns:
                    if not txn.writes_block:
                        results.append(None)
                        continue
                    staged = txn.staged()
                    member = self._commit_one_of_group(staged)
                    redacted = redacted or (bool(staged.redactions) and not isinstance(member, LedgerError))
                    results.append(member)
        except BaseException:
            self._chain = None
            for txn, result in zip(txns, results, strict=False):
                if not isinstance(result, LedgerError):
                    txn.settle(False)
            raise
        for txn, result in zip(txns, results, strict=True):
            txn.settle(not isinstance(result, LedgerError))
        self._scrub_after_commit(redacted)
        return results

    def _commit_alone(self, txn: Transaction) -> CommitResult | LedgerError:
        """`commit_group` of one transaction: no savepoint (its failure rolls back the whole SQLite
        transaction, which holds nothing else)."""
        storage = self._storage
        staged = txn.staged()
        try:
            with storage.write_transaction():
                storage.validate(staged.reads)
                result, chain = self._append(staged)
        except LedgerError as exc:
            self._chain = None  # the rolled-back commit may have left the cache ahead of the file
            txn.settle(False)
            return exc
        except BaseException:
            self._chain = None
            txn.settle(False)
            raise
        self._scrub_after_commit(bool(staged.redactions))
        self._chain = _ChainState(
            chain.data_version, storage.conn.total_changes, chain.head, chain.stack, chain.indexes
        )
        txn.settle(True)
        return result

    def _scrub_after_commit(self, redacted: bool) -> None:
        """After a commit: a redaction's erased bytes must not outlive it in the WAL (`Storage.scrub`); while
        a reader holds an older snapshot the truncation waits, and is tried again after the next commit."""
        if redacted or self._scrub_pending:
            self._scrub_pending = not self._storage.scrub()

    def _commit_one_of_group(self, txn: StagedTransaction) -> CommitResult | LedgerError:
        storage = self._storage
        storage.conn.execute("SAVEPOINT group_member")
        try:
            storage.validate(txn.reads)
            result, chain = self._append(txn)
        except LedgerError as exc:
            storage.conn.execute("ROLLBACK TO group_member")
            storage.conn.execute("RELEASE group_member")
            return exc
        storage.conn.execute("RELEASE group_member")
        # The next member continues from this block without re-reading it (our own uncommitted writes).
        self._chain = _ChainState(
            chain.data_version, storage.conn.total_changes, chain.head, chain.stack, chain.indexes
        )
        return result

    def _chain_state(self) -> _ChainState:
        """The newest block, the accumulator and the index lists, read under the write lock. Reused
        from our last commit while nothing else has written: SQLite's data_version moves when another
        connection commits, total_changes when code sharing this connection (a restore) writes.

        Whenever it is re-read, so is the persisted read-only flag, under the same lock: a ledger that
        another process has made read-only since this one was opened (a restore began into its file)
        refuses the commit here, whatever the flag said when the transaction began. Nothing else can
        set the flag, so a cached state means it is unchanged."""
        version = self._storage.data_version()
        cached = self._chain
        if (
            cached is not None
            and cached.data_version == version
            and cached.total_changes == self._storage.conn.total_changes
        ):
            return cached
        if self._storage.get_meta("read_only"):
            self.read_only = True
            raise read_only_refusal(self.name)
        return _ChainState(
            version,
            self._storage.conn.total_changes,
            self._storage.last_block_head(),
            unpack_stack(self._storage.get_meta("digest_stack")),
            {},
        )

    def _append(self, txn: StagedTransaction) -> tuple[CommitResult, _ChainState]:
        """Write txn's block and apply its changes. Runs inside the write transaction; returns the chain
        state to cache once the SQLite commit has succeeded."""
        storage = self._storage
        state = self._chain_state()
        head = state.head
        seq = 0 if head is None else head[0] + 1
        writer = JournalWriter(
            self.strand_id,
            next_sequence_no=seq,
            previous_block_hash=b"" if head is None else head[1],
            last_timestamp=None if head is None else from_ms(head[2]),
        )
        self._apply_ddl(txn.ddl, seq)
        pending = txn.pending
        writes = [
            DocumentWrite(
                p.table.name,
                p.table.table_id,
                p.doc_id,
                p.version,
                p.data,
                tuple(sorted(p.statements)),
                p.encoded,
            )
            for p in pending
        ]
        block = writer.commit(
            list(txn.statements),
            writes,
            transaction_id=txn.transaction_id,
            system_revisions=[op.system_hash for op in txn.ddl],
            redactions=[r for r, _ in txn.redactions],
        )
        ts_ms = to_ms(block.timestamp)
        storage.append_block(BlockRow(seq, block.ion, block.block_hash, ts_ms, len(writes)))
        indexes = {} if txn.ddl else state.indexes
        self._apply_writes(pending, block.revision_hashes, txn.transaction_id, ts_ms, seq, indexes)
        for redaction, data_hash in txn.redactions:
            self._apply_redaction(redaction, data_hash)
        stack = storage.extend_digest(state.stack, seq, block.block_hash)
        if txn.ddl:
            storage.set_meta("catalog_version", storage.catalog_version() + 1)
        new_state = _ChainState(state.data_version, 0, (seq, block.block_hash, ts_ms), stack, indexes)
        return CommitResult(txn.transaction_id, block.address, block.block_hash, ts_ms), new_state

    def _apply_ddl(self, ops: Sequence[DdlOp], seq: int) -> None:
        storage = self._storage
        for op in ops:
            if op.kind == "CREATE_TABLE":
                storage.insert_table(op.table_id, op.table_name, seq)
            elif op.kind in ("DROP_TABLE", "UNDROP_TABLE"):
                storage.set_table_status(op.table_id, "INACTIVE" if op.kind == "DROP_TABLE" else "ACTIVE")
            elif (index := op.index) is None:
                raise ValueError(f"{op.kind} of table {op.table_id} names no index")
            elif op.kind == "CREATE_INDEX":
                storage.insert_index(index)
                storage.add_index_entries(
                    (index.index_id, key, row.doc_id)
                    for row in storage.documents(op.table_id)
                    if (key := index_key(field_value(simpleion.loads(row.data), index.field))) is not None
                )
            else:
                storage.delete_index(index.index_id)

    def _apply_writes(
        self,
        pending: Sequence[PendingWrite],
        hashes: Sequence[bytes],
        tx_id: str,
        ts_ms: int,
        seq: int,
        indexes: dict[str, list[IndexRow]],
    ) -> None:
        storage = self._storage
        rows = [
            DocRow(p.table.table_id, p.doc_id, p.version, p.raw, revision_hash, ts_ms, tx_id, seq)
            for p, revision_hash in zip(pending, hashes, strict=False)
        ]
        if not rows:
            return  # DDL-only, redaction-only or read-only: no document changed
        storage.insert_history(rows)
        live = [row for row in rows if row.data is not None]
        if live:
            storage.put_documents(live)
        if len(live) < len(rows):
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
        block = storage.block(seq)
        assert block is not None  # the history row above is in it
        redacted = redact_block_ion(block.ion, {(redaction.document_id, redaction.version): data_hash})
        if redacted is not None:
            storage.replace_block_bytes(seq, redacted)

    # ------------------------------------------------------------------------------ journal access
    def _revision_struct(self, row: DocRow) -> dict[str, Any]:
        revision: dict[str, Any] = {
            "blockAddress": {"strandId": self.strand_id, "sequenceNo": row.block_seq},
            "hash": row.hash,
        }
        if row.data is not None:
            revision["data"] = simpleion.loads(row.data)
        elif row.data_hash is not None:
            revision["dataHash"] = row.data_hash
        revision["metadata"] = {
            "id": row.doc_id,
            "version": row.version,
            "txTime": ms_timestamp(from_ms(row.tx_time_ms)),
            "txId": row.tx_id,
        }
        return revision

    def committed_view(self, table_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(doc id, `_ql_committed_` struct) for every live document of the table."""
        for row in self._storage.documents(table_id):
            yield row.doc_id, self._revision_struct(row)

    def history_view(
        self, table_id: str, lo_ms: int | None, hi_ms: int | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(doc id, `history()` struct) for every revision of the table, deletes included; with bounds,
        only those active at some time in [lo_ms, hi_ms] (a revision is active until the next one)."""
        rows = self._storage.history(table_id)
        row = next(rows, None)
        while row is not None:
            following = next(rows, None)
            active_until = following.tx_time_ms if following and following.doc_id == row.doc_id else None
            starts_in_time = hi_ms is None or row.tx_time_ms <= hi_ms
            if starts_in_time and (lo_ms is None or active_until is None or active_until > lo_ms):
                yield row.doc_id, self._revision_struct(row)
            row = following

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
        return {
            "digest": accumulator_from(stack, count).digest(),
            "digestTipAddress": {"strandId": self.strand_id, "sequenceNo": count - 1},
        }

    def get_block(self, seq: int, tip: Any = None) -> tuple[Any, list[bytes]]:
        """(block value, proof): folding `dot` over the proof from the block hash gives the digest at
        `tip` (a sequence number or an address; None: the current tip). Raises LedgerError."""
        with self._storage.read_snapshot():
            tip_seq = self._tip(seq, tip)
            row = self._storage.block(seq)
            assert row is not None  # _tip refused a block past the tip
            return simpleion.loads(row.ion), self._storage.tree_proof(seq, tip_seq + 1)

    def get_revision(self, seq: int, document_id: str, tip: Any = None) -> tuple[Any, list[bytes]]:
        """(revision, proof) for `document_id` in block `seq`: the proof climbs the revisions Merkle
        tree, the entries Merkle tree, the link to previousBlockHash, then the tree over block hashes."""
        with self._storage.read_snapshot():
            tip_seq = self._tip(seq, tip)
            row = self._storage.block(seq)
            assert row is not None  # _tip refused a block past the tip
            block = simpleion.loads(row.ion)
            revisions = block.get("revisions") or []
            index = next(
                (
                    i
                    for i, r in enumerate(revisions)
                    if r.get("metadata") is not None and r["metadata"]["id"] == document_id
                ),
                None,
            )
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
            raise LedgerError(
                f"block {seq} with tip {tip_seq} is outside the journal (blocks 0..{count - 1})"
            )
        return tip_seq


def _index_changes(indexes: Sequence[IndexRow], p: PendingWrite, removed: list, added: list) -> None:
    """The index entries a write removes (its base's keys) and adds (its new keys)."""
    for index in indexes:
        old = index_key(field_value(p.base_data, index.field))
        new = index_key(field_value(p.data, index.field))
        if old != new:
            if old is not None:
                removed.append((index.index_id, old, p.doc_id))
            if new is not None:
                added.append((index.index_id, new, p.doc_id))

