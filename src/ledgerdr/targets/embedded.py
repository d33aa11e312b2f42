"""The embedded ledger as a restore target: original document ids, versions, txTimes, full history,
tables, indexes — and the journal itself, so the restored ledger has the source's digest and, once
promoted, continues its chain.

Units arrive in any order from several processes; each is applied in one SQLite write transaction
(`BEGIN IMMEDIATE`), so the file's write lock serialises them and a killed worker leaves nothing
half-applied. The digest accumulator needs blocks in order, so it is rebuilt once by `finalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from amazon.ion import simpleion

from .. import native
from ..errors import CheckpointHeldBack, RestoreError
from ..journal.hashing import ion_hash
from ..journal.ids import new_id
from ..journal.ionread import binary_ion_hash, binary_top_field
from ..journal.ionwrite import SymbolTable, Unencodable, encode_ion
from ..journal.model import Block
from ..journal.redact import redact_block_ion
from ..ledger.engine import Ledger
from ..ledger.index_keys import index_key, text_index_key
from ..ledger.storage import (
    DigestFold,
    DocRow,
    IndexRow,
    Storage,
    connect,
    fold_digest_blocks,
    to_ms,
    unpack_stack,
)
from .base import (
    HistoryRow,
    JournalBlockRow,
    Redaction,
    RestoredRevision,
    StateRows,
    StoredRevision,
    TableDDL,
    TargetHolding,
    TargetInfo,
)
from .embedded_state import loads, state_revisions, state_rows

_EXTRA_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS restore_units (unit_id TEXT PRIMARY KEY, last_seq INTEGER) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS restore_redactions (table_id TEXT, doc_id TEXT, version INTEGER, "
    "PRIMARY KEY (table_id, doc_id, version)) WITHOUT ROWID",
    # revisions read from JSON whose hash did not recompute: the digest uses the journal's hash for them
    "CREATE TABLE IF NOT EXISTS restore_type_lost (table_id TEXT, doc_id TEXT, version INTEGER, "
    "PRIMARY KEY (table_id, doc_id, version)) WITHOUT ROWID",
    # the block of each table's status as last applied: the highest wins (TableDDL), whatever the order
    "CREATE TABLE IF NOT EXISTS restore_table_status (table_id TEXT PRIMARY KEY, status_seq INTEGER NOT NULL) "
    "WITHOUT ROWID",
    # tables created since the last finalize, bulk loaded: their current rows and index entries are built once
    # from history (`_build_current`) by finalize or the first read of the state, not merged unit by unit
    "CREATE TABLE IF NOT EXISTS restore_stale (table_id TEXT PRIMARY KEY) WITHOUT ROWID",
    # tables whose current rows are built but whose index entries are not yet (`_build_index_entries`): the
    # state digest reads current rows only, so a read of the state builds those alone (`iter_state_rows`)
    "CREATE TABLE IF NOT EXISTS restore_stale_index (table_id TEXT PRIMARY KEY) WITHOUT ROWID",
)

_TABLES = tuple(statement.split()[5] for statement in _EXTRA_SCHEMA)  # CREATE TABLE IF NOT EXISTS <name> (…

POSITION_META = "standby_position"  # the meta table's key of the standby position record
_R = TypeVar("_R")  # what the state reads of `finalize_beside_reads` give


class EmbeddedTarget:
    kind = "embedded"
    writable_ledger = True
    keeps_journal = True
    splits_state = True
    has_position_record = True
    applies_rows = True  # apply_rows: units the C verifier turned into rows (restore.rows)
    gives_state_rows = True  # iter_state_rows: its stored rows, as the C state digest reads them

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # bulk loaded until its first finalize (`_build_current`): history's unique key is built once the units
            # are in, not row by row (what needs it before then, a redaction or a unit merged into current rows,
            # builds it first), and the units commit in rollback-journal mode (storage._BULK_JOURNAL)
            Ledger.create(self.path, bulk_load=True).close()
        self.ledger = Ledger.open(self.path)
        self.storage: Storage = self.ledger._storage
        # A restore writes history's key in document-id order, not insertion order: a page cache that holds the
        # B-trees' working set saves re-reading pages (measured ~20% of apply at 2 MiB, SQLite's default).
        # Per connection, in memory only: durability is unchanged.
        self.storage.conn.execute("PRAGMA cache_size=-65536")
        # A restore's commits need not each reach the disk: a crash loses whole units, which resume re-applies,
        # and finalize checkpoints the WAL and syncs the file before the restore's verdict.
        self._synchronous = self.storage.conn.execute("PRAGMA synchronous").fetchone()[0]  # the ledger's own
        self.storage.conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints every 64 MiB of log rather than SQLite's 4 MiB: history's key (the table itself in a format-1
        # file, its unique index in a format-2 one) is in document-id order, so each unit rewrites leaf pages all
        # over it, and a page that unit after unit changes is copied into the file once per checkpoint rather than
        # once per unit (measured on format 1, workers=2, 1,000,000 revisions: ~11% less CPU). Not larger: at
        # 256 MiB a worker stalls in each checkpoint and its sync, and the restore took longer. Per connection;
        # finalize checkpoints the rest.
        self.storage.conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        # A ledger with its own data (a live ledger) is not written to by opening it: a restore reads
        # `holding()` first and refuses it unchanged; `open_lineage` adds these tables when it proceeds.
        # Only when a table is missing: the write lock is not taken just to open it (a reader, e.g. finalize's
        # digest processes, need not wait for a writer).
        if (self.storage.get_meta("restored_strand") is not None or not self.storage.block_count()) \
                and not self._has_full_restore_schema():
            with self.storage.write_transaction():
                self._restore_schema()

    def _restore_schema(self) -> None:
        for statement in _EXTRA_SCHEMA:
            self.storage.conn.execute(statement)

    def _has_full_restore_schema(self) -> bool:
        """Whether every table of _EXTRA_SCHEMA exists (a target restored by an older version may lack some)."""
        found = self.storage.conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({', '.join('?' * len(_TABLES))})",
            _TABLES).fetchone()[0]
        return bool(found == len(_TABLES))

    def _has_restore_schema(self) -> bool:
        return self.storage.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'restore_units'").fetchone() is not None

    # ------------------------------------------------------------------------------------ lineage
    def open_lineage(self, strand_id: str, ledger_name: str) -> None:
        storage = self.storage
        with storage.write_transaction():
            self._restore_schema()
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
        if not self._has_restore_schema():
            return set()  # a ledger no restore has touched
        return {r[0] for r in self.storage.conn.execute("SELECT unit_id FROM restore_units")}

    def holding(self) -> TargetHolding:
        storage = self.storage
        restored = storage.get_meta("restored_strand")
        last = storage.block_count() - 1
        if self._has_restore_schema():  # a snapshot restore holds blocks as state, recorded per unit
            unit_last = storage.conn.execute("SELECT max(last_seq) FROM restore_units").fetchone()[0]
            last = max(last, unit_last if unit_last is not None else -1)
        strand = restored or (storage.get_meta("strand_id") if last >= 0 else None)
        return TargetHolding(f"embedded ledger {self.path}", strand, last if last >= 0 else None,
                             restored is not None, not storage.get_meta("read_only"), str(self.path.resolve()))

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
            if revisions or redactions:
                storage.ensure_history_key()  # both look history rows up by their key
            erased = self._blocks(blocks)
            self._revisions(revisions)
            for redaction in redactions:
                self._redaction(redaction)
            storage.conn.execute("INSERT INTO restore_units (unit_id, last_seq) VALUES (?, ?)",
                                 (unit_id, last_block[0] if last_block else None))
        if redactions or erased:
            storage.scrub()  # no erased bytes left in the WAL (a busy reader: finalize scrubs again)
        return True

    def apply_rows(self, unit_id: str, tables: Sequence[TableDDL], rows: Sequence[HistoryRow],
                   blocks: Sequence[JournalBlockRow], last_block: tuple[int, bytes] | None) -> bool:
        """`apply` for a unit the C verifier turned into rows (`restore.rows`: history rows in the history
        table's column order, block rows): history and blocks by `INSERT OR IGNORE` (a re-delivered revision is
        skipped by its key, no lookup). A table created since the last `finalize` (a restore's, a standby's new
        table) is being bulk loaded: its current state is built once from history (`_build_current`); in any
        other table each document's newest version here is upserted or deleted, unit by unit."""
        storage, conn = self.storage, self.storage.conn
        if storage.get_meta("restored_strand") is None and (rows or blocks):
            raise RestoreError(f"target {self.path}: open_lineage must be called before apply")
        with storage.write_transaction():
            if conn.execute("SELECT 1 FROM restore_units WHERE unit_id = ?", (unit_id,)).fetchone():
                return False
            for table in tables:
                self._table(table)
            redacted = {tuple(r) for r in conn.execute("SELECT table_id, doc_id, version FROM restore_redactions")}
            erased = False
            if redacted:  # erased later in the journal (its unit applied first): never bring it back
                hit = [row for row in rows if row[:3] in redacted and row[3] is not None]
                rows = [_redacted_row(row) if row in hit else row for row in rows]
                blocks, erased = _redacted_blocks(blocks, {(row[1], row[2]): None for row in hit}), bool(hit)
            conn.executemany("INSERT OR IGNORE INTO blocks (seq, ion, block_hash, ts_ms, revisions) "
                             "VALUES (?, ?, ?, ?, ?)", blocks)
            conn.executemany(f"INSERT OR IGNORE INTO history ({_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             rows)
            stale = self._stale()
            merged = [row for row in rows if row[0] not in stale] if stale else rows
            if merged:
                storage.ensure_history_key()  # a merge into current rows looks up each document's newest version
            self._current_rows(merged)
            conn.execute("INSERT INTO restore_units (unit_id, last_seq) VALUES (?, ?)",
                         (unit_id, last_block[0] if last_block else None))
        if erased:
            storage.scrub()  # no erased bytes left in the WAL (a busy reader: finalize scrubs again)
        return True

    def _current_rows(self, rows: Sequence[HistoryRow]) -> None:
        """Each document's newest row of the unit becomes its current one when no newer version is in history
        (a delete or redacted row removes it), in SQL; tables with indexes move their entries in Python."""
        storage, conn = self.storage, self.storage.conn
        newest: dict[tuple[str, str], HistoryRow] = {}
        for row in rows:
            known = newest.get(row[:2])
            if known is None or row[2] > known[2]:
                newest[row[:2]] = row
        indexed = {t.table_id for t in storage.tables() if storage.indexes(t.table_id)}
        puts, deletes, slow = [], [], []
        for row in newest.values():
            if row[0] in indexed:
                slow.append(row)
            elif row[3] is None:
                deletes.append((row[0], row[1], row[2], row[0], row[1]))
            else:
                puts.append((*row[:8], row[0], row[1]))
        conn.executemany(f"INSERT INTO documents ({_CURRENT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE "
                         f"{_NEWEST} ON CONFLICT (table_id, doc_id) DO UPDATE SET version = excluded.version, "
                         "data = excluded.data, hash = excluded.hash, tx_time_ms = excluded.tx_time_ms, "
                         "tx_id = excluded.tx_id, block_seq = excluded.block_seq", puts)
        conn.executemany(f"DELETE FROM documents WHERE table_id = ? AND doc_id = ? AND ? = {_NEWEST_VERSION}",
                         deletes)
        if slow:
            current = [row for row in slow if row[2] == conn.execute(
                "SELECT max(version) FROM history WHERE table_id = ? AND doc_id = ?", row[:2]).fetchone()[0]]
            self._set_current([DocRow(*row) for row in current])

    def _table(self, table: TableDDL) -> None:
        storage = self.storage
        held = storage.table(table.table_id)
        if held is None:
            storage.insert_table(table.table_id, table.table_name, max(table.block_seq, 0))
            storage.conn.execute("INSERT OR IGNORE INTO restore_stale VALUES (?)", (table.table_id,))
        held_seq = self._status_seqs().get(table.table_id, -1)
        held_dropped = held is not None and held.status == "INACTIVE"
        # Highest block wins (QLDB has UNDROP TABLE); at the same block, dropped wins: order-independent.
        if (table.block_seq, table.dropped) > (held_seq, held_dropped):
            storage.set_table_status(table.table_id, "INACTIVE" if table.dropped else "ACTIVE")
            storage.conn.execute("INSERT OR REPLACE INTO restore_table_status VALUES (?, ?)",
                                 (table.table_id, table.block_seq))
        have = {index.field for index in storage.indexes(table.table_id)}
        stale = table.table_id in self._stale() or table.table_id in self._stale_index()
        for field in table.indexes:
            if field in have:
                continue
            index = IndexRow(new_id(), table.table_id, field, "ONLINE")
            storage.insert_index(index)
            if not stale:  # a stale table's entries are built from its current rows (`_build_index_entries`)
                self._index_entries(table.table_id, [index])

    def _index_entries(self, table_id: str, indexes: Sequence[IndexRow]) -> None:
        """Every entry of `indexes` (of table `table_id`), from its current rows, a batch at a time
        (`_index_entries_of`): the rows are read once for all of them, and not at all for none."""
        if not indexes:
            return
        documents = self.storage.conn.execute("SELECT doc_id, data FROM documents WHERE table_id = ?", (table_id,))
        while batch := documents.fetchmany(_INDEX_BATCH):
            for index in indexes:
                self.storage.add_index_entries(_index_entries_of(batch, index))

    def _stale(self) -> set[str]:
        """The tables whose current state waits for `_build_current` (see _EXTRA_SCHEMA)."""
        return {row[0] for row in self.storage.conn.execute("SELECT table_id FROM restore_stale")}

    def _stale_index(self) -> set[str]:
        """The tables whose index entries wait for `_build_index_entries` (see _EXTRA_SCHEMA)."""
        return {row[0] for row in self.storage.conn.execute("SELECT table_id FROM restore_stale_index")}

    def _build_current(self) -> None:
        """The current rows of every stale table, built from its history in one statement each: a document's
        newest revision, unless that one holds no data (a delete, or redacted), as `_current_rows` decides it per
        unit. Its index entries are left to `_build_index_entries` (the table is marked so in the same
        transaction), which a state digest need not wait for. In one write transaction with the unmarking, so a
        unit applied meanwhile (another process) waits and then merges into the built state (its index entries
        moved per unit are rebuilt with the rest). Nothing to do: no lock taken (once history has its key and the
        file is in WAL mode).

        A bulk load (`storage._BULK_JOURNAL`) ends here, once the key and the current rows are built: they too are
        written once into the file by the rollback journal, where in WAL a checkpoint copied them again before the
        state reads could start (~2.7 s at 1,000,000 revisions). From then on, readers beside a writer."""
        self.storage.ensure_history_key()  # what follows reads history by its key
        if self._has_restore_schema() and self._stale():
            conn = self.storage.conn
            with self.storage.write_transaction():
                for table_id in sorted(self._stale()):
                    conn.execute("DELETE FROM documents WHERE table_id = ?", (table_id,))
                    conn.execute(f"INSERT INTO documents ({_CURRENT_COLUMNS}) SELECT {_CURRENT_COLUMNS} "
                                 f"{_NEWEST_ROWS}", (table_id,))
                    conn.execute("INSERT OR IGNORE INTO restore_stale_index VALUES (?)", (table_id,))
                    conn.execute("DELETE FROM restore_stale WHERE table_id = ?", (table_id,))
        self.storage.leave_bulk_journal()

    def _build_index_entries(self) -> None:
        """Every index entry of the tables `_build_current` built, from their current rows; in one write
        transaction with the unmarking, as `_build_current`. Nothing to do: no lock taken."""
        if not self._has_restore_schema() or not self._stale_index():
            return
        conn = self.storage.conn
        with self.storage.write_transaction():
            for table_id in sorted(self._stale_index()):
                indexes = self.storage.indexes(table_id)
                for index in indexes:
                    conn.execute("DELETE FROM index_entries WHERE index_id = ?", (index.index_id,))
                self._index_entries(table_id, indexes)
                conn.execute("DELETE FROM restore_stale_index WHERE table_id = ?", (table_id,))

    def _blocks(self, blocks: Sequence[Block]) -> bool:
        """The blocks' own bytes when the reader kept them (an Ion-binary export is a byte copy), else
        re-encoded; one statement for the unit. A revision that a redaction already applied here names is
        stored with `dataHash` in place of its data, as QLDB's journal holds it after the redaction.
        True when some data was erased so."""
        conn = self.storage.conn
        known = {} if not blocks else {
            (doc_id, version): None for doc_id, version in conn.execute("SELECT doc_id, version FROM restore_redactions")}
        rows, erased = [], False
        for block in blocks:
            ion = block.raw or simpleion.dumps(block.value, binary=True)
            if known and any((str(r["metadata"]["id"]), int(r["metadata"]["version"])) in known
                             for r in block.revisions if "metadata" in r and "data" in r):
                ion, erased = redact_block_ion(ion, known) or ion, True
            rows.append((block.sequence_no, ion, block.block_hash, to_ms(block.timestamp),
                         sum(1 for r in block.revisions if "metadata" in r)))
        conn.executemany(
            "INSERT OR IGNORE INTO blocks (seq, ion, block_hash, ts_ms, revisions) VALUES (?, ?, ?, ?, ?)", rows)
        return erased

    def _revisions(self, revisions: Sequence[RestoredRevision]) -> None:
        """History rows (each key once: a re-delivered revision is skipped), then per document the
        current row when this unit brought the newest version, written in batches."""
        storage, conn = self.storage, self.storage.conn
        known_tables = {t.table_id for t in storage.tables()}
        redacted = {tuple(r) for r in conn.execute("SELECT table_id, doc_id, version FROM restore_redactions")}
        fresh: dict[tuple[str, str, int], tuple[RestoredRevision, DocRow]] = {}
        for revision in revisions:
            key = revision.key
            if key in fresh or conn.execute("SELECT 1 FROM history WHERE table_id = ? AND doc_id = ? AND version = ?",
                                            key).fetchone():
                continue  # re-delivered: history rows are inserted once
            if revision.table_id not in known_tables:
                storage.insert_table(revision.table_id, revision.table_name, revision.block_seq)
                known_tables.add(revision.table_id)
            # the bytes verification encoded in the pass that checked their hash, else encoded here
            data = None if revision.data is None else revision.ion or _dumps(revision.data)
            data_hash = revision.data_hash
            if data is not None and key in redacted:
                data, data_hash = None, ion_hash(revision.data)  # erased later in the journal: never bring it back
            metadata = revision.metadata
            fresh[key] = (revision, DocRow(revision.table_id, revision.document_id, revision.version, data,
                                           revision.hash, to_ms(metadata["txTime"]), str(metadata["txId"]),
                                           revision.block_seq, data_hash))
        if not fresh:
            return
        storage.insert_history(row for _, row in fresh.values())
        conn.executemany("INSERT OR IGNORE INTO restore_type_lost VALUES (?, ?, ?)",
                         [key for key, (revision, _) in fresh.items() if revision.type_lost])
        newest: dict[tuple[str, str], tuple[RestoredRevision, DocRow]] = {}
        for revision, row in fresh.values():
            known = newest.get((row.table_id, row.doc_id))
            if known is None or revision.version > known[0].version:
                newest[(row.table_id, row.doc_id)] = (revision, row)
        self._set_current([pair[1] for doc, pair in newest.items() if pair[0].version == conn.execute(
            "SELECT max(version) FROM history WHERE table_id = ? AND doc_id = ?", doc).fetchone()[0]])

    def _set_current(self, newest: list[DocRow]) -> None:
        """Make each row its document's current one (a delete or redacted row removes it) and move the
        document's index entries from its old current row to the new one. Index keys are read from the
        stored bytes (`_stored_index_key`), so no document is decoded for a plain string or int field."""
        storage = self.storage
        indexes: dict[str, list[IndexRow]] = {}
        puts, deletes, removed, added = [], [], [], []
        for row in newest:
            table_indexes = indexes.get(row.table_id)
            if table_indexes is None:
                table_indexes = indexes[row.table_id] = storage.indexes(row.table_id)
            if row.data is None:
                deletes.append((row.table_id, row.doc_id))
            else:
                puts.append(row)
            if not table_indexes:
                continue
            old = storage.document(row.table_id, row.doc_id)
            for index in table_indexes:
                before = _stored_index_key(old.data, index.field) if old is not None and old.data is not None else None
                after = _stored_index_key(row.data, index.field) if row.data is not None else None
                if before is not None:
                    removed.append((index.index_id, before, row.doc_id))
                if after is not None:
                    added.append((index.index_id, after, row.doc_id))
        storage.delete_documents(deletes)
        storage.put_documents(puts)
        storage.remove_index_entries(removed)
        storage.add_index_entries(added)

    def _redaction(self, redaction: Redaction) -> None:
        """Erase the revision's data from its history row and from its stored block, if they are here;
        remember the redaction for a revision (and its block) that arrives later."""
        storage = self.storage
        storage.conn.execute("INSERT OR IGNORE INTO restore_redactions VALUES (?, ?, ?)", redaction.key)
        row = storage.conn.execute("SELECT data, block_seq FROM history WHERE table_id = ? AND doc_id = ? "
                                   "AND version = ?", redaction.key).fetchone()
        if row is None:
            return
        data, seq = row
        if data is not None:
            storage.redact_history(*redaction.key, redaction.data_hash or ion_hash(simpleion.loads(data)))
        block = storage.block(seq)
        if block is not None:
            erased = redact_block_ion(block.ion, {(redaction.document_id, redaction.version): redaction.data_hash})
            if erased is not None:
                storage.replace_block_bytes(seq, erased)

    # ------------------------------------------------------------------------------------ after the last unit
    def finalize(self) -> None:
        """Extend the digest accumulator over the blocks now contiguous (units store blocks in any order), and
        make every committed unit durable.

        Incremental: it continues from the blocks already folded, so a standby pays per new block. The current
        state of the tables bulk loaded since the last call is built first (`_build_current`), then their index
        entries (`_build_index_entries`)."""
        self._build_current()
        self._build_index_entries()
        self._extend_digest()
        self._make_durable()

    def finalize_beside_reads(self, start_reads: Callable[[], Callable[[], _R]]) -> _R:
        """`finalize` while other processes read the state: the current rows first (what `iter_state_rows`
        reads), then `start_reads()`; the index entries and the digest accumulator, which no state read looks
        at, are built while they read (their commits leave the readers' snapshots alone); the checkpoint and a
        redaction's scrub once the readers have ended, since a reader of an older snapshot holds both back.

        The accumulator's blocks are read and folded on a connection of its own in a thread meanwhile, while
        this one builds the index entries (SQL statements, which leave the GIL free): only its nodes are written
        here. The fold starts once the current rows are built: until then a bulk-loaded file is in rollback-journal
        mode (`_build_current`), where a reader would hold the writer back."""
        self._build_current()
        with ThreadPoolExecutor(1) as apart:
            wait = start_reads()
            fold = apart.submit(self._digest_fold_apart)
            self._build_index_entries()
            self._extend_digest(fold.result())
        result = wait()
        self._make_durable()
        return result

    def _extend_digest(self, fold: DigestFold | None = None) -> None:
        """The digest accumulator folded over the blocks contiguous with those already folded: `fold` when it
        was computed from the stack stored now (`_digest_fold_apart`), else folded here."""
        storage = self.storage
        with storage.write_transaction():
            if fold is None or fold.before != unpack_stack(storage.get_meta("digest_stack")):
                fold = _digest_fold(storage)  # (another finalize folded meanwhile)
            if fold.nodes or fold.stack != fold.before:
                storage.store_digest_fold(fold)

    def _digest_fold_apart(self) -> DigestFold:
        """`_digest_fold` on a connection of its own, from one snapshot."""
        storage = Storage(connect(self.path))
        try:
            with storage.read_snapshot():
                return _digest_fold(storage)
        finally:
            storage.close()

    def _make_durable(self) -> None:
        """A redaction's erased bytes gone from the WAL, and every commit on disk."""
        storage = self.storage
        if self._has_restore_schema() and \
                storage.conn.execute("SELECT 1 FROM restore_redactions LIMIT 1").fetchone():
            storage.scrub()  # in case a reader kept a unit's scrub from truncating the WAL
        # Commits ran at synchronous=NORMAL: a checkpoint syncs the WAL and then the database file, so what
        # the restore's verdict speaks for is on disk.
        # A reader of an older snapshot (a standby's status, say) holds the checkpoint back: it waits (busy
        # timeout) and is tried again until it completes, never skipped.
        for _ in range(_CHECKPOINT_ATTEMPTS):
            if not storage.conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()[0]:
                return
        raise CheckpointHeldBack(f"target {self.path}: the write-ahead log could not be checkpointed: a reader has "
                                 f"held an older snapshot for {_CHECKPOINT_ATTEMPTS} busy timeouts",
                                 hint="nothing is lost; once that reader is done, run the same command again (a "
                                      "restore resumes and finalizes; a standby retries in its next round)")

    def promote(self, lineage: str) -> None:
        """Open the restored ledger for writes under a new lineage; its journal continues the chain."""
        self.finalize()
        self.storage.conn.execute(f"PRAGMA synchronous={int(self._synchronous)}")  # writes commit as the ledger's
        with self.storage.write_transaction():
            self.storage.set_meta("lineage", lineage)
            self.storage.set_meta("read_only", 0)
            self.storage.set_meta("promoted_from_strand", self.storage.get_meta("restored_strand"))

    def read_position_record(self) -> bytes | None:
        value = self.storage.get_meta(POSITION_META)
        return None if value is None else str(value).encode()

    def write_position_record(self, record: bytes) -> None:
        with self.storage.write_transaction():
            self.storage.set_meta(POSITION_META, record.decode())

    # ------------------------------------------------------------------------------------ reading back
    def table_names(self) -> dict[str, str]:
        return {t.table_id: t.name for t in self.storage.tables()}

    def _status_seqs(self) -> dict[str, int]:
        return dict(self.storage.conn.execute("SELECT table_id, status_seq FROM restore_table_status"))

    def table_ddls(self) -> list[TableDDL]:
        with self.storage.read_snapshot():
            seqs = self._status_seqs()
            indexes: dict[str, list[str]] = {}
            for index in self.storage.indexes():
                indexes.setdefault(index.table_id, []).append(index.field)
            return [TableDDL(t.table_id, t.name, tuple(sorted(indexes.get(t.table_id, ()))), t.status == "INACTIVE",
                             seqs.get(t.table_id, -1)) for t in sorted(self.storage.tables(), key=lambda t: t.table_id)]

    def iter_state(self, *, decode: bool = True) -> Iterator[StoredRevision]:
        """Table by table, each document's history rows and then its current row. A current row whose
        stored columns are byte-for-byte those of the document's newest history row shares that row's
        decoded data and metadata objects, so the digest hashes those bytes once (it recomputes per
        distinct object); any difference in the stored bytes decodes and hashes the current row apart.

        Every row carries its stored bytes (`ion`); `decode=False` leaves `data` as `NOT_DECODED`, for the
        digest, which hashes the bytes themselves (`targets.digest`)."""
        return self.iter_state_part(0, 1, decode=decode)

    def iter_state_part(self, index: int, count: int, *, decode: bool = True) -> Iterator[StoredRevision]:
        """`iter_state` restricted to the documents whose id falls in part `index` of `count` (by CRC-32),
        so that `count` processes can each decode and hash one part (`targets.digest.digest_of_parts`). A current
        state left to `finalize` is built first, so what is read is the state the applied units define."""
        self._build_current()
        return state_revisions(self.storage, self.table_names(), self._has_restore_schema(), index, count,
                               decode=decode)

    def iter_state_rows(self, index: int = 0, count: int = 1) -> Iterator[StateRows]:
        """Every table's history rows, then its current rows, as stored, in batches (`base.StateRows`); with
        `count` > 1 those of part `index` (`embedded_state.state_rows`)."""
        self._build_current()  # a current state left to `finalize` (see iter_state_part)
        return state_rows(self.storage, self.table_names(), self._has_restore_schema(), index, count)

    def info(self) -> TargetInfo:
        """Counts and the highest applied block. Read-only (a standby's status reads it mid-round): `documents`
        counts the current state the applied units define, a bulk-loaded table's from its history."""
        conn = self.storage.conn
        with self.storage.read_snapshot():
            head = self.storage.last_block_head()
            return TargetInfo(
                kind=self.kind, strand_id=self.storage.get_meta("restored_strand"),
                ledger_name=self.storage.get_meta("ledger_name"),
                units=len(self.applied_units()),
                revisions=conn.execute("SELECT count(*) FROM history").fetchone()[0],
                documents=self._documents(),
                tables=conn.execute("SELECT count(*) FROM tables").fetchone()[0],
                last_block=None if head is None else {"sequence_no": head[0], "hash": _b64(head[1])})

    def _documents(self) -> int:
        """The number of current documents, counting a stale table's as `_build_current` would build them."""
        conn = self.storage.conn
        stale = sorted(self._stale()) if self._has_restore_schema() else []
        held = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        for table_id in stale:
            held -= conn.execute("SELECT count(*) FROM documents WHERE table_id = ?", (table_id,)).fetchone()[0]
            held += conn.execute(f"SELECT count(*) {_NEWEST_ROWS}", (table_id,)).fetchone()[0]
        return int(held)

    def close(self) -> None:
        self.ledger.close()


_ROW_COLUMNS = "table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq, data_hash"
_CURRENT_COLUMNS = "table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq"
_NEWEST_VERSION = "(SELECT max(version) FROM history WHERE table_id = ? AND doc_id = ?)"
_NEWEST = f"?3 = {_NEWEST_VERSION}"
# A table's current rows in its history (parameter: its id): each document's newest revision when it holds data.
_NEWEST_ROWS = ("FROM history h WHERE table_id = ?1 AND data IS NOT NULL AND NOT EXISTS (SELECT 1 FROM history n "
                "WHERE n.table_id = ?1 AND n.doc_id = h.doc_id AND n.version > h.version)")
_CHECKPOINT_PAGES = 16384  # of 4 KiB: the log's size at which a commit checkpoints it
_CHECKPOINT_ATTEMPTS = 10  # each waits up to the connection's busy timeout (60 s) for readers of older snapshots
_INDEX_BATCH = 8192  # current rows keyed per call (`_index_entries_of`): memory stays flat for any table


def _digest_fold(storage: Storage) -> DigestFold:
    """The digest accumulator extended over the blocks contiguous with those it has folded, not yet stored."""
    stack = unpack_stack(storage.get_meta("digest_stack"))
    folded = sum(1 << height for height, _ in stack)
    # The contiguous run from `folded`: a hole ends it (later blocks are folded once it is filled). Hashes only:
    # the blocks' bytes are not read. (A window function numbering the rows to find the run took 4x as long.)
    hashes: list[bytes] = []
    for seq, block_hash in storage.conn.execute("SELECT seq, block_hash FROM blocks WHERE seq >= ? ORDER BY seq",
                                                (folded,)):
        if seq != folded + len(hashes):
            break
        hashes.append(block_hash)
    return fold_digest_blocks(stack, folded, hashes)


def _redacted_blocks(blocks: Sequence[JournalBlockRow], erase: dict[tuple[str, int], None]) -> list[JournalBlockRow]:
    """Block rows with the named revisions' data replaced by their dataHash (`redact_block_ion`)."""
    return [(seq, redact_block_ion(ion, erase) or ion, block_hash, ts_ms, revisions)
            for seq, ion, block_hash, ts_ms, revisions in blocks]


def _redacted_row(row: HistoryRow) -> HistoryRow:
    """A history row whose data a later redaction erased: no data, its hash kept as data_hash."""
    table_id, doc_id, version, ion, revision_hash, tx_ms, tx_id, seq, _ = row
    assert ion is not None  # only rows that still hold data are redacted here
    data_hash = binary_ion_hash(ion) or ion_hash(loads(ion))
    return (table_id, doc_id, version, None, revision_hash, tx_ms, tx_id, seq, data_hash)


def _dumps(data: Any) -> bytes:
    """A document as a self-contained Ion binary stream (`ionwrite`; simpleion for what it does not write)."""
    symbols = SymbolTable()
    try:
        return symbols.standalone(encode_ion(data, symbols))
    except Unencodable:
        encoded: bytes = simpleion.dumps(data, binary=True)
        return encoded


def _index_entries_of(rows: list[tuple[str, bytes | None]], index: IndexRow) -> list[tuple[str, bytes, str]]:
    """The entries (index id, key, document id) of `index` for current rows (document id, data): keyed in C
    (`_ionhash.stored_index_keys`, the fast paths of `_stored_index_key`), the rest by `_stored_index_key`."""
    done = native.ionhash.stored_index_keys(rows, index.field, index.index_id) if native.ionhash is not None else None
    entries: list[tuple[str, bytes, str]]
    entries, undecided = done if done is not None else ([], rows)
    entries.extend((index.index_id, key, doc_id) for doc_id, data in undecided
                   if data is not None and (key := _stored_index_key(data, index.field)) is not None)
    return entries


def _stored_index_key(data: bytes, name: str) -> bytes | None:
    """`index_key` of field `name` of a stored document, read from its bytes when the field is a plain
    string or int (`ionread.binary_top_field`), else from the decoded document."""
    found = binary_top_field(data, name)
    if found is not None:
        descriptor, raw = found
        if descriptor < 0:
            return None  # no such field
        code, length = descriptor >> 4, descriptor & 0x0F
        if length != 15:
            if code == 0x8:
                try:
                    raw.decode("utf-8")  # the check only: the key is made of the bytes themselves
                except UnicodeDecodeError:
                    pass
                else:
                    return text_index_key(raw)
            elif code == 0x2:
                return index_key(int.from_bytes(raw, "big"))
            elif code == 0x3 and raw:
                return index_key(-int.from_bytes(raw, "big"))
    return index_key(_field(loads(data), name))


def _field(data: Any, name: str) -> Any:
    try:
        return data[name]
    except (KeyError, TypeError, IndexError):
        return None


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()
