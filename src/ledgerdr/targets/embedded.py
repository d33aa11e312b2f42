"""The embedded ledger as a restore target: original document ids, versions, txTimes, full history,
tables, indexes — and the journal itself, so the restored ledger has the source's digest and, once
promoted, continues its chain.

Units arrive in any order from several processes; each is applied in one SQLite write transaction
(`BEGIN IMMEDIATE`), so the file's write lock serialises them and a killed worker leaves nothing
half-applied. The digest accumulator needs blocks in order, so it is rebuilt once by `finalize`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from ..errors import RestoreError
from ..journal.hashing import ion_hash
from ..journal.layout import new_id
from ..journal.model import Block
from ..journal.writer import ms_timestamp
from ..ledger.engine import Ledger
from ..ledger.storage import DocRow, IndexRow, Storage, from_ms, index_key, to_ms, unpack_stack
from .base import Redaction, RestoredRevision, StoredRevision, TableDDL, TargetInfo

_EXTRA_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS restore_units (unit_id TEXT PRIMARY KEY, last_seq INTEGER) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS restore_redactions (table_id TEXT, doc_id TEXT, version INTEGER, "
    "PRIMARY KEY (table_id, doc_id, version)) WITHOUT ROWID",
    # revisions read from JSON whose hash did not recompute: the digest uses the journal's hash for them
    "CREATE TABLE IF NOT EXISTS restore_type_lost (table_id TEXT, doc_id TEXT, version INTEGER, "
    "PRIMARY KEY (table_id, doc_id, version)) WITHOUT ROWID",
)


class EmbeddedTarget:
    kind = "embedded"
    keeps_journal = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            Ledger.create(self.path).close()
        self.ledger = Ledger.open(self.path)
        self.storage: Storage = self.ledger._storage
        with self.storage.write_transaction():
            for statement in _EXTRA_SCHEMA:
                self.storage.conn.execute(statement)

    # ------------------------------------------------------------------------------------ lineage
    def open_lineage(self, strand_id: str, ledger_name: str) -> None:
        storage = self.storage
        with storage.write_transaction():
            bound = storage.get_meta("restored_strand")
            if bound is None:
                if storage.block_count() and storage.get_meta("strand_id") != strand_id:
                    raise RestoreError(f"target {self.path} holds ledger strand {storage.get_meta('strand_id')}, "
                                       f"not {strand_id}: refusing to mix lineages")
                storage.set_meta("restored_strand", strand_id)
                storage.set_meta("strand_id", strand_id)
                storage.set_meta("read_only", 1)  # a restore target is read-only until promoted
                if ledger_name:
                    storage.set_meta("ledger_name", ledger_name)
            elif bound != strand_id:
                raise RestoreError(f"target {self.path} was restored from strand {bound}; this source is strand "
                                   f"{strand_id}: refusing another lineage")
        self.ledger.strand_id = strand_id

    def applied_units(self) -> set[str]:
        return {r[0] for r in self.storage.conn.execute("SELECT unit_id FROM restore_units")}

    # ------------------------------------------------------------------------------------ apply
    def apply(self, unit_id: str, tables: Sequence[TableDDL], revisions: Sequence[RestoredRevision],
              redactions: Sequence[Redaction], last_block: tuple[int, bytes] | None,
              *, blocks: Sequence[Block] = ()) -> bool:
        storage = self.storage
        if storage.get_meta("restored_strand") is None and (revisions or blocks):
            raise RestoreError(f"target {self.path}: open_lineage must be called before apply")
        with storage.write_transaction():
            if storage.conn.execute("SELECT 1 FROM restore_units WHERE unit_id = ?", (unit_id,)).fetchone():
                return False
            for table in tables:
                self._table(table)
            for block in blocks:
                self._block(block)
            for revision in revisions:
                self._revision(revision)
            for redaction in redactions:
                self._redaction(redaction)
            storage.conn.execute("INSERT INTO restore_units (unit_id, last_seq) VALUES (?, ?)",
                                 (unit_id, last_block[0] if last_block else None))
        return True

    def _table(self, table: TableDDL) -> None:
        storage = self.storage
        if storage.table(table.table_id) is None:
            storage.insert_table(table.table_id, table.table_name, max(table.block_seq, 0))
        if table.dropped:
            storage.set_table_status(table.table_id, "INACTIVE")
        have = {index.field for index in storage.indexes(table.table_id)}
        for field in table.indexes:
            if field in have:
                continue
            index = IndexRow(new_id(), table.table_id, field, "ONLINE")
            storage.insert_index(index)
            storage.add_index_entries(
                (index.index_id, key, row.doc_id) for row in storage.documents(table.table_id)
                if (key := index_key(_field(simpleion.loads(row.data), field))) is not None)

    def _block(self, block: Block) -> None:
        ion = block.raw or simpleion.dumps(block.value, binary=True)
        revisions = sum(1 for r in block.revisions if "metadata" in r)
        self.storage.conn.execute(
            "INSERT OR IGNORE INTO blocks (seq, ion, block_hash, ts_ms, revisions) VALUES (?, ?, ?, ?, ?)",
            (block.sequence_no, ion, block.block_hash, to_ms(block.timestamp), revisions))

    def _revision(self, revision: RestoredRevision) -> None:
        storage, conn = self.storage, self.storage.conn
        key = revision.key
        if conn.execute("SELECT 1 FROM history WHERE table_id = ? AND doc_id = ? AND version = ?", key).fetchone():
            return  # re-delivered: history rows are inserted once
        if storage.table(revision.table_id) is None:
            storage.insert_table(revision.table_id, revision.table_name, revision.block_seq)
        data = None if revision.data is None else simpleion.dumps(revision.data, binary=True)
        data_hash = revision.data_hash
        if data is not None and conn.execute("SELECT 1 FROM restore_redactions WHERE table_id = ? AND doc_id = ? "
                                             "AND version = ?", key).fetchone():
            data, data_hash = None, ion_hash(revision.data)  # erased later in the journal: never bring it back
        metadata = revision.metadata
        row = DocRow(revision.table_id, revision.document_id, revision.version, data, revision.hash,
                     to_ms(metadata["txTime"]), str(metadata["txId"]), revision.block_seq, data_hash)
        storage.insert_history([row])
        if revision.type_lost:
            conn.execute("INSERT OR IGNORE INTO restore_type_lost VALUES (?, ?, ?)", key)
        newest = conn.execute("SELECT max(version) FROM history WHERE table_id = ? AND doc_id = ?",
                              key[:2]).fetchone()[0]
        if revision.version == newest:
            self._set_current(row, revision)

    def _set_current(self, row: DocRow, revision: RestoredRevision) -> None:
        storage = self.storage
        old = storage.document(row.table_id, row.doc_id)
        indexes = storage.indexes(row.table_id)
        old_data = simpleion.loads(old.data) if old is not None and indexes else None
        if row.data is None:
            storage.delete_documents([(row.table_id, row.doc_id)])
        else:
            storage.put_documents([row])
        for index in indexes:
            before = index_key(_field(old_data, index.field)) if old_data is not None else None
            after = index_key(_field(revision.data, index.field)) if row.data is not None else None
            if before is not None:
                storage.remove_index_entries([(index.index_id, before, row.doc_id)])
            if after is not None:
                storage.add_index_entries([(index.index_id, after, row.doc_id)])

    def _redaction(self, redaction: Redaction) -> None:
        storage = self.storage
        storage.conn.execute("INSERT OR IGNORE INTO restore_redactions VALUES (?, ?, ?)", redaction.key)
        row = storage.conn.execute("SELECT data FROM history WHERE table_id = ? AND doc_id = ? AND version = ?",
                                   redaction.key).fetchone()
        if row is not None and row[0] is not None:
            storage.redact_history(*redaction.key, redaction.data_hash or ion_hash(simpleion.loads(row[0])))

    # ------------------------------------------------------------------------------------ after the last unit
    def finalize(self) -> None:
        """Extend the digest accumulator over the blocks now contiguous (units store blocks in any order).

        Incremental: it continues from the blocks already folded, so a standby pays per new block."""
        storage = self.storage
        with storage.write_transaction():
            stack = unpack_stack(storage.get_meta("digest_stack"))
            folded = sum(1 << height for height, _ in stack)
            for block in storage.iter_blocks(folded, None):
                if block.seq != folded:
                    break  # a hole: later blocks are folded once it is filled
                stack = storage.extend_digest(stack, block.seq, block.block_hash)
                folded += 1

    def promote(self, lineage: str) -> None:
        """Open the restored ledger for writes under a new lineage; its journal continues the chain."""
        self.finalize()
        with self.storage.write_transaction():
            self.storage.set_meta("lineage", lineage)
            self.storage.set_meta("read_only", 0)
            self.storage.set_meta("promoted_from_strand", self.storage.get_meta("restored_strand"))

    # ------------------------------------------------------------------------------------ reading back
    def table_names(self) -> dict[str, str]:
        return {t.table_id: t.name for t in self.storage.tables()}

    def iter_state(self) -> Iterator[StoredRevision]:
        names = self.table_names()
        with self.storage.read_snapshot():
            lost = {tuple(r) for r in self.storage.conn.execute("SELECT * FROM restore_type_lost")}
            for table_id, name in names.items():
                for row in self.storage.history(table_id):
                    yield _stored(row, name, current=False, lost=lost)
            for table_id, name in names.items():
                for row in self.storage.documents(table_id):
                    yield _stored(row, name, current=True, lost=lost)

    def info(self) -> TargetInfo:
        conn = self.storage.conn
        head = self.storage.last_block_head()
        return TargetInfo(
            kind=self.kind, strand_id=self.storage.get_meta("restored_strand"),
            ledger_name=self.storage.get_meta("ledger_name"),
            units=conn.execute("SELECT count(*) FROM restore_units").fetchone()[0],
            revisions=conn.execute("SELECT count(*) FROM history").fetchone()[0],
            documents=conn.execute("SELECT count(*) FROM documents").fetchone()[0],
            tables=conn.execute("SELECT count(*) FROM tables").fetchone()[0],
            last_block=None if head is None else {"sequence_no": head[0], "hash": _b64(head[1])})

    def close(self) -> None:
        self.ledger.close()


def _stored(row: DocRow, table_name: str, *, current: bool, lost: set) -> StoredRevision:
    metadata = {"id": row.doc_id, "version": row.version, "txTime": ms_timestamp(from_ms(row.tx_time_ms)),
                "txId": row.tx_id}
    data = None if row.data is None else simpleion.loads(row.data)
    return StoredRevision(row.table_id, table_name, row.doc_id, row.version, data, metadata, row.hash,
                          row.data_hash, (row.table_id, row.doc_id, row.version) in lost, row.data is None and row.data_hash is None, row.block_seq, current)


def _field(data: Any, name: str) -> Any:
    try:
        return data[name]
    except (KeyError, TypeError, IndexError):
        return None


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()
