"""SQLite storage of the embedded ledger: one WAL-mode file per ledger, low-level access only.

The file holds everything a ledger is: its catalog (tables, indexes), the current committed revision
of every document, the full revision history, equality-index entries, the journal blocks exactly as
the journal writer encoded them (Ion binary), the Merkle nodes over block hashes, and the digest
accumulator. Statement semantics, OCC and hashing live in `engine.py`; this module only reads and
writes rows, and never commits on its own except in `create`: the engine owns every transaction
(`write_transaction`), so a crash can never leave half a ledger transaction behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from .. import native
from ..errors import LedgerError, OccConflict
from ..journal.hashing import dot
from ..journal.proofs import DigestAccumulator

# Of a new ledger file. 2: `history` is a rowid table with a unique index on its key, 1: `history` is keyed by
# (table_id, doc_id, version) WITHOUT ROWID; the rows and every statement are the same, and both are read and
# written (docs/format.md, "Embedded ledger file").
FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)
_SCRUB_WAIT_MS = 2000
_SECURE_DELETE_META = "secure_delete"  # 1: every write since the file was created ran with secure_delete on
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE tables (
    table_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    change_counter INTEGER NOT NULL DEFAULT 0, created_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tables_by_name ON tables (name, status);
CREATE TABLE indexes (
    index_id TEXT NOT NULL UNIQUE, table_id TEXT NOT NULL, field TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE documents (
    table_id TEXT NOT NULL, doc_id TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL,
    hash BLOB NOT NULL, tx_time_ms INTEGER NOT NULL, tx_id TEXT NOT NULL, block_seq INTEGER NOT NULL,
    PRIMARY KEY (table_id, doc_id)
) WITHOUT ROWID;
CREATE TABLE index_entries (
    index_id TEXT NOT NULL, key BLOB NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (index_id, key, doc_id)
) WITHOUT ROWID;
CREATE TABLE blocks (
    seq INTEGER PRIMARY KEY, ion BLOB NOT NULL, block_hash BLOB NOT NULL, ts_ms INTEGER NOT NULL,
    revisions INTEGER NOT NULL
);
CREATE TABLE merkle_nodes (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (height, idx)
) WITHOUT ROWID;
"""
_HISTORY_COLUMNS_SQL = """
    table_id TEXT NOT NULL, doc_id TEXT NOT NULL, version INTEGER NOT NULL,
    data BLOB, data_hash BLOB, hash BLOB NOT NULL, tx_time_ms INTEGER NOT NULL, tx_id TEXT NOT NULL,
    block_seq INTEGER NOT NULL,"""
# The history table by file format. 2: rows are appended in rowid order and only the small key index
# (key and rowid, ~60 bytes an entry) takes the random inserts, where a WITHOUT ROWID table writes whole rows
# into leaves all over its B-tree: a restore's apply costs ~30% less CPU (BENCHMARKS.md, "Embedded ledger file
# format 2"). The unique index keeps each key once, so `INSERT OR IGNORE` still skips a re-delivered row.
_HISTORY_SCHEMA = {
    1: f"CREATE TABLE history ({_HISTORY_COLUMNS_SQL} PRIMARY KEY (table_id, doc_id, version)\n) WITHOUT ROWID",
    2: f"CREATE TABLE history ({_HISTORY_COLUMNS_SQL} UNIQUE (table_id, doc_id, version)\n)",
}
# Format 2 with its key left for later (`Storage.create(bulk_load=True)`, a restore target's file): history
# without the unique key while a restore bulk loads it, the key then built once from the loaded rows by a sort
# (`ensure_history_key`), instead of ~1,000,000 inserts at random places of a growing index: at 1,000,000 revisions
# the apply costs ~40% less CPU and the build 2–3 CPU s once (BENCHMARKS.md, "history's key built once").
_DEFERRED_HISTORY_SCHEMA = f"CREATE TABLE history ({_HISTORY_COLUMNS_SQL.rstrip(',')}\n)"
_HISTORY_KEY_INDEX = "CREATE UNIQUE INDEX history_key ON history (table_id, doc_id, version)"
_HISTORY_KEY_DEFERRED = "history_key_deferred"  # meta: set while history has no unique key yet
# meta: set while a restore bulk loads the file, which is then in SQLite's rollback-journal mode (DELETE), not
# WAL: a unit's pages (nearly all of them new: appended rows and blocks) are written once into the file, where
# WAL wrote them into the log and a checkpoint copied them again. Measured at 1,000,000 revisions: ~10% less
# CPU and wall (median of 7 interleaved pairs; BENCHMARKS.md, "Restore: a new target bulk loaded"). Each commit
# still syncs its journal and the file (synchronous=NORMAL), so a crash loses whole units only, which resume
# applies again.
_BULK_JOURNAL = "bulk_journal"
# The rows a unique key would have ignored: all but the first inserted (lowest rowid) of each key.
_LATER_DUPLICATES = ("DELETE FROM history WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER "
                     "(PARTITION BY table_id, doc_id, version ORDER BY rowid) AS n FROM history) WHERE n > 1)")


class Durability(StrEnum):
    """`full`: every commit is fsynced before it returns (survives power loss). `normal`: WAL commits
    are fsynced at checkpoints only, so a power cut may lose the last commits (never corrupt the file)."""

    FULL = "full"
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class TableRow:
    table_id: str
    name: str
    status: str  # ACTIVE | INACTIVE
    change_counter: int


@dataclass(frozen=True, slots=True)
class IndexRow:
    index_id: str
    table_id: str
    field: str
    status: str


@dataclass(frozen=True, slots=True)
class DocRow:
    """A revision row: the current one (`documents`) or any (`history`, where data may be None)."""

    table_id: str
    doc_id: str
    version: int
    data: bytes | None
    hash: bytes
    tx_time_ms: int
    tx_id: str
    block_seq: int
    data_hash: bytes | None = None  # set on redacted history rows


@dataclass(slots=True)
class ReadSet:
    """What a transaction read, for optimistic concurrency control: each entry is re-read under the
    write lock at commit (`Storage.validate`) and must be unchanged."""

    names: dict[str, str | None] = field(default_factory=dict)  # table name -> active table id
    documents: dict[tuple[str, str], int | None] = field(default_factory=dict)  # -> version (None: absent)
    scans: dict[str, int] = field(default_factory=dict)  # table id -> change counter
    index_probes: dict[tuple[str, bytes], tuple[str, ...]] = field(default_factory=dict)  # -> doc ids
    catalog_version: int | None = None  # set once the transaction reads or changes the catalog


@dataclass(frozen=True, slots=True)
class BlockRow:
    seq: int
    ion: bytes
    block_hash: bytes
    ts_ms: int
    revisions: int


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact; no float rounding)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


# ---------------------------------------------------------------------------------- connection


def connect(path: Path | str, *, durability: Durability | str = Durability.FULL) -> sqlite3.Connection:
    """Open a ledger file with autocommit (transactions are explicit), in WAL mode unless a restore is bulk
    loading it (`Storage.create(bulk_load=True)`): then in SQLite's rollback-journal mode until that restore's
    finalize (`Storage.leave_bulk_journal`)."""
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    if not _bulk_loading(conn):
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={Durability(durability).name}")
    conn.execute("PRAGMA foreign_keys=OFF")
    # Deleted and overwritten content (a redacted revision's data, an old document version) is zeroed in
    # the page instead of lingering in free space until the page is reused (issue 16 item 13).
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def _bulk_loading(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT 1 FROM meta WHERE key = ?", (_BULK_JOURNAL,)).fetchone() is not None
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a file being created
            return False
        raise


class Storage:
    """Row-level access to one ledger file. Not thread-safe: one per connection user."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._in_write = False
        self._history_keyed = False  # known to have history's unique key (see ensure_history_key)
        self._in_wal = False  # known to be in WAL mode (see leave_bulk_journal)

    # -- lifecycle
    @classmethod
    def create(cls, path: Path | str, *, durability: Durability | str, meta: dict[str, Any],
               format_version: int = FORMAT_VERSION, bulk_load: bool = False) -> Storage:
        """Create a new ledger file, of `format_version` (one of FORMAT_VERSIONS; an older one only to test that
        files written before are still served). Raises LedgerError if `path` already exists.
        `bulk_load` (format 2), for a restore target: history is created without its unique key
        (`ensure_history_key` builds it, and must run before anything relies on it; see _DEFERRED_HISTORY_SCHEMA),
        and the file is in rollback-journal mode (see _BULK_JOURNAL) until `leave_bulk_journal`."""
        if format_version not in FORMAT_VERSIONS:
            raise LedgerError(f"no ledger format version {format_version!r}; this ledgerdr writes {FORMAT_VERSIONS}")
        if bulk_load and format_version < 2:
            raise LedgerError("a ledger of format 1 keeps history by its key: it cannot be bulk loaded without it")
        path = Path(path)
        if path.exists():
            raise LedgerError(
                f"ledger file {path} already exists", hint="open it instead, or pick another path"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = cls(connect(path, durability=durability))
        history = _DEFERRED_HISTORY_SCHEMA if bulk_load else _HISTORY_SCHEMA[format_version]
        bulk = {_HISTORY_KEY_DEFERRED: 1, _BULK_JOURNAL: 1} if bulk_load else {}
        with storage.write_transaction():
            for statement in [*_SCHEMA.split(";"), history]:
                if statement.strip():
                    storage.conn.execute(statement)
            for key, value in {**meta, **bulk, "format_version": format_version, _SECURE_DELETE_META: 1}.items():
                storage.set_meta(key, value)
        if bulk_load:
            storage.conn.execute("PRAGMA journal_mode=DELETE")
        return storage

    @classmethod
    def open(cls, path: Path | str, *, durability: Durability | str) -> Storage:
        """Open an existing ledger file; raises LedgerError if it is missing or of an unknown format."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"no ledger at {path}", hint="create it with `ledgerdr ledger create`")
        try:
            storage = cls(connect(path, durability=durability))
            version = storage.get_meta("format_version")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path} is not a ledgerdr ledger: {exc}") from None
        if version not in FORMAT_VERSIONS:
            storage.close()
            raise LedgerError(
                f"{path} has ledger format version {version!r}; this ledgerdr reads {FORMAT_VERSIONS}"
            )
        return storage

    def close(self) -> None:
        self.conn.close()

    def scrub(self) -> bool:
        """Leave no erased bytes behind after a commit that erased data (a redaction): the WAL, which
        still holds the pages as they were before, is checkpointed into the file and truncated to zero
        bytes. A file written before `secure_delete` was on may hold old rows in its free space: it is
        rebuilt once (VACUUM). Call outside a transaction. False when a reader still holds an older
        snapshot, so the WAL could not be truncated yet (the last connection to close removes it)."""
        if self.get_meta(_SECURE_DELETE_META) != 1:
            self.conn.execute("VACUUM")
            with self.write_transaction():
                self.set_meta(_SECURE_DELETE_META, 1)
        # A reader may hold an old snapshot for long (an export): wait for it briefly, not the 60 s a commit
        # waits for the write lock; the caller tries again later.
        timeout = self.conn.execute("PRAGMA busy_timeout").fetchone()[0]
        self.conn.execute(f"PRAGMA busy_timeout={_SCRUB_WAIT_MS}")
        try:
            busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout)}")
        return not busy

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception. Takes the file's write lock, so
        other processes' commits wait (busy timeout) rather than interleave."""
        self.conn.execute("BEGIN IMMEDIATE")
        self._in_write = True
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._in_write = False

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Run several reads against one committed state (a WAL read transaction). Inside a write
        transaction the reads already see one state, so nothing is started."""
        if self._in_write:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def ensure_history_key(self) -> bool:
        """Give history its unique key if its creation deferred it (`create(bulk_load=True)`): built in
        one statement from the rows loaded, after removing the rows the key would have ignored (a revision
        delivered twice: the first one inserted stays, as `INSERT OR IGNORE` keeps it). In its own write
        transaction, or the caller's. True when it built the key now; False when the file has it already."""
        if self._history_keyed:
            return False
        if self._in_write:
            return self._build_history_key()
        with self.write_transaction():
            return self._build_history_key()

    def leave_bulk_journal(self) -> None:
        """End a restore's bulk load (`create(bulk_load=True)`): the file goes to WAL mode, as every ledger in use
        is. Call outside a transaction, on a file no other connection is in a transaction on (it waits for one
        that is, up to the busy timeout). Nothing to do for a file in WAL mode."""
        if self._in_wal:
            return
        if self.get_meta(_BULK_JOURNAL) is not None:
            with self.write_transaction():
                self.delete_meta(_BULK_JOURNAL)
        mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise LedgerError(f"the ledger file could not be switched to WAL mode (it stays {mode!r}): another "
                              "connection holds it", hint="nothing is lost; run the same command again")
        self._in_wal = True

    def _build_history_key(self) -> bool:
        if self.get_meta(_HISTORY_KEY_DEFERRED) is None:  # another connection may have built it meanwhile
            self._history_keyed = True
            return False
        try:
            self.conn.execute(_HISTORY_KEY_INDEX)
        except sqlite3.IntegrityError:
            self.conn.execute(_LATER_DUPLICATES)
            self.conn.execute(_HISTORY_KEY_INDEX)
        self.delete_meta(_HISTORY_KEY_DEFERRED)
        self._history_keyed = True
        return True

    # -- meta
    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's PRAGMA data_version)."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def all_meta(self) -> dict[str, Any]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def catalog_version(self) -> int:
        """Incremented by every commit that changes tables or indexes."""
        return int(self.get_meta("catalog_version") or 0)

    def validate(self, reads: ReadSet) -> None:
        """Raise OccConflict, naming what changed, unless every read is as the transaction saw it.
        Call inside the write transaction, so nothing can change between the check and the commit."""
        for name, table_id in reads.names.items():
            row = self.active_table(name)
            if (row.table_id if row else None) != table_id:
                raise OccConflict(
                    f"table '{name}' was created, dropped or renamed by a concurrent transaction"
                )
        for (table_id, doc_id), version in reads.documents.items():
            if self.document_version(table_id, doc_id) != version:
                raise OccConflict(
                    f"document {doc_id} (table {table_id}) changed after this transaction read it"
                )
        for table_id, counter in reads.scans.items():
            if self.change_counter(table_id) != counter:
                raise OccConflict(f"table {table_id} changed after this transaction scanned it")
        for (index_id, key), doc_ids in reads.index_probes.items():
            if tuple(self.index_lookup(index_id, key)) != doc_ids:
                raise OccConflict(f"index {index_id} changed after this transaction read it")
        if reads.catalog_version is not None and self.catalog_version() != reads.catalog_version:
            raise OccConflict("the catalog (tables, indexes) changed after this transaction read it")

    # -- catalog
    def tables(self) -> list[TableRow]:
        rows = self.conn.execute(
            "SELECT table_id, name, status, change_counter FROM tables ORDER BY created_seq, table_id"
        )
        return [TableRow(*r) for r in rows]

    def active_table(self, name: str) -> TableRow | None:
        row = self.conn.execute(
            "SELECT table_id, name, status, change_counter FROM tables WHERE name = ? AND status = 'ACTIVE'",
            (name,),
        ).fetchone()
        return None if row is None else TableRow(*row)

    def table(self, table_id: str) -> TableRow | None:
        row = self.conn.execute(
            "SELECT table_id, name, status, change_counter FROM tables WHERE table_id = ?", (table_id,)
        ).fetchone()
        return None if row is None else TableRow(*row)

    def change_counter(self, table_id: str) -> int | None:
        row = self.conn.execute(
            "SELECT change_counter FROM tables WHERE table_id = ?", (table_id,)
        ).fetchone()
        return None if row is None else row[0]

    def insert_table(self, table_id: str, name: str, created_seq: int) -> None:
        self.conn.execute(
            "INSERT INTO tables (table_id, name, status, created_seq) VALUES (?, ?, 'ACTIVE', ?)",
            (table_id, name, created_seq),
        )

    def set_table_status(self, table_id: str, status: str) -> None:
        self.conn.execute(
            "UPDATE tables SET status = ?, change_counter = change_counter + 1 WHERE table_id = ?",
            (status, table_id),
        )

    def bump_change_counters(self, table_ids: Iterable[str]) -> None:
        self.conn.executemany(
            "UPDATE tables SET change_counter = change_counter + 1 WHERE table_id = ?",
            [(t,) for t in table_ids],
        )

    def indexes(self, table_id: str | None = None) -> list[IndexRow]:
        if table_id is None:
            rows = self.conn.execute("SELECT index_id, table_id, field, status FROM indexes ORDER BY rowid")
        else:
            rows = self.conn.execute(
                "SELECT index_id, table_id, field, status FROM indexes WHERE table_id = ? ORDER BY rowid",
                (table_id,),
            )
        return [IndexRow(*r) for r in rows]

    def insert_index(self, index: IndexRow) -> None:
        self.conn.execute(
            "INSERT INTO indexes (index_id, table_id, field, status) VALUES (?, ?, ?, ?)",
            (index.index_id, index.table_id, index.field, index.status),
        )

    def delete_index(self, index_id: str) -> None:
        self.conn.execute("DELETE FROM indexes WHERE index_id = ?", (index_id,))
        self.conn.execute("DELETE FROM index_entries WHERE index_id = ?", (index_id,))

    # -- documents
    _DOC_COLUMNS = "table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq"

    def document(self, table_id: str, doc_id: str) -> DocRow | None:
        row = self.conn.execute(
            f"SELECT {self._DOC_COLUMNS} FROM documents WHERE table_id = ? AND doc_id = ?", (table_id, doc_id)
        ).fetchone()
        return None if row is None else DocRow(*row)

    def document_version(self, table_id: str, doc_id: str) -> int | None:
        row = self.conn.execute(
            "SELECT version FROM documents WHERE table_id = ? AND doc_id = ?", (table_id, doc_id)
        ).fetchone()
        return None if row is None else row[0]

    def documents(self, table_id: str) -> Iterator[DocRow]:
        rows = self.conn.execute(
            f"SELECT {self._DOC_COLUMNS} FROM documents WHERE table_id = ? ORDER BY doc_id", (table_id,)
        )
        return (DocRow(*r) for r in rows)

    def put_documents(self, rows: Iterable[DocRow]) -> None:
        """Insert or replace current revisions (one executemany: a 40-document commit is one call)."""
        self.conn.executemany(
            f"INSERT OR REPLACE INTO documents ({self._DOC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.table_id, r.doc_id, r.version, r.data, r.hash, r.tx_time_ms, r.tx_id, r.block_seq)
                for r in rows
            ],
        )

    def delete_documents(self, keys: Iterable[tuple[str, str]]) -> None:
        """Remove current revisions by (table id, doc id)."""
        self.conn.executemany("DELETE FROM documents WHERE table_id = ? AND doc_id = ?", keys)

    # -- history
    _HISTORY_COLUMNS = "table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq, data_hash"

    def insert_history(self, rows: Iterable[DocRow]) -> None:
        """Append revisions (in a write transaction); the key must be new: a duplicate raises IntegrityError."""
        self.ensure_history_key()  # the key is what refuses a duplicate (nothing to do once it is known to be there)
        self.conn.executemany(
            f"INSERT INTO history ({self._HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.table_id,
                    r.doc_id,
                    r.version,
                    r.data,
                    r.hash,
                    r.tx_time_ms,
                    r.tx_id,
                    r.block_seq,
                    r.data_hash,
                )
                for r in rows
            ],
        )

    def history(self, table_id: str) -> Iterator[DocRow]:
        rows = self.conn.execute(
            f"SELECT {self._HISTORY_COLUMNS} FROM history WHERE table_id = ? ORDER BY doc_id, version",
            (table_id,),
        )
        return (DocRow(*r) for r in rows)

    def history_in_block(self, table_id: str, doc_id: str, block_seq: int) -> DocRow | None:
        row = self.conn.execute(
            f"SELECT {self._HISTORY_COLUMNS} FROM history "
            "WHERE table_id = ? AND doc_id = ? AND block_seq = ?",
            (table_id, doc_id, block_seq),
        ).fetchone()
        return None if row is None else DocRow(*row)

    def redact_history(self, table_id: str, doc_id: str, version: int, data_hash: bytes) -> None:
        self.conn.execute(
            "UPDATE history SET data = NULL, data_hash = ? WHERE table_id = ? AND doc_id = ? AND version = ?",
            (data_hash, table_id, doc_id, version),
        )

    # -- index entries
    def index_lookup(self, index_id: str, key: bytes) -> list[str]:
        rows = self.conn.execute(
            "SELECT doc_id FROM index_entries WHERE index_id = ? AND key = ? ORDER BY doc_id", (index_id, key)
        )
        return [r[0] for r in rows]

    def add_index_entries(self, entries: Iterable[tuple[str, bytes, str]]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO index_entries (index_id, key, doc_id) VALUES (?, ?, ?)", entries
        )

    def remove_index_entries(self, entries: Iterable[tuple[str, bytes, str]]) -> None:
        self.conn.executemany(
            "DELETE FROM index_entries WHERE index_id = ? AND key = ? AND doc_id = ?", entries
        )

    # -- blocks
    def append_block(self, row: BlockRow) -> None:
        self.conn.execute(
            "INSERT INTO blocks (seq, ion, block_hash, ts_ms, revisions) VALUES (?, ?, ?, ?, ?)",
            (row.seq, row.ion, row.block_hash, row.ts_ms, row.revisions),
        )

    def replace_block_bytes(self, seq: int, ion: bytes) -> None:
        self.conn.execute("UPDATE blocks SET ion = ? WHERE seq = ?", (ion, seq))

    def block(self, seq: int) -> BlockRow | None:
        row = self.conn.execute(
            "SELECT seq, ion, block_hash, ts_ms, revisions FROM blocks WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else BlockRow(*row)

    def last_block_head(self) -> tuple[int, bytes, int] | None:
        """(seq, block_hash, ts_ms) of the newest block, without its bytes."""
        return self.conn.execute(
            "SELECT seq, block_hash, ts_ms FROM blocks ORDER BY seq DESC LIMIT 1"
        ).fetchone()

    def block_count(self) -> int:
        head = self.last_block_head()
        return 0 if head is None else head[0] + 1

    def block_hash(self, seq: int) -> bytes:
        row = self.conn.execute("SELECT block_hash FROM blocks WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise LedgerError(f"no block {seq}")
        return row[0]

    def iter_blocks(self, start: int, end: int | None, *, batch: int = 512) -> Iterator[BlockRow]:
        """Blocks start..end inclusive (end None: to the tip), fetched `batch` at a time so memory stays
        bounded and no read transaction is held open across the caller's work."""
        seq = start
        while end is None or seq <= end:
            limit = batch if end is None else min(batch, end - seq + 1)
            rows = self.conn.execute(
                "SELECT seq, ion, block_hash, ts_ms, revisions FROM blocks "
                "WHERE seq >= ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield BlockRow(*row)
            seq = rows[-1][0] + 1

    def seq_range_for_time(self, start_ms: int, end_ms: int) -> tuple[int, int] | None:
        """First and last seq of blocks with start_ms <= ts_ms < end_ms, or None.

        Block times never decrease along the chain (the journal writer enforces it), so two binary
        searches over seq find the range; this spares a time index, which would cost every commit one
        more page write."""
        with self.read_snapshot():
            count = self.block_count()
            first = self._first_seq_at_or_after(start_ms, count)
            end = self._first_seq_at_or_after(end_ms, count)
        if first >= end:
            return None
        return first, end - 1

    def _first_seq_at_or_after(self, ms: int, count: int) -> int:
        low, high = 0, count
        while low < high:
            middle = (low + high) // 2
            row = self.conn.execute("SELECT ts_ms FROM blocks WHERE seq = ?", (middle,)).fetchone()
            if row is None:
                raise LedgerError(f"the journal has no block {middle} (a restore still in progress?)")
            if row[0] < ms:
                low = middle + 1
            else:
                high = middle
        return low

    # -- merkle nodes (perfect subtrees over block hashes, height >= 1; height 0 is the blocks table)
    def put_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        self.conn.executemany("INSERT INTO merkle_nodes (height, idx, hash) VALUES (?, ?, ?)", nodes)

    def extend_digest(
        self, stack: list[tuple[int, bytes]], seq: int, block_hash: bytes
    ) -> list[tuple[int, bytes]]:
        """Add block `seq` to the persisted digest accumulator (whose open subtrees are `stack`) and
        store the perfect subtrees it completes; returns the new stack. Part of the caller's commit."""
        return self.extend_digest_blocks(stack, seq, (block_hash,))

    def extend_digest_blocks(
        self, stack: list[tuple[int, bytes]], first_seq: int, block_hashes: Iterable[bytes]
    ) -> list[tuple[int, bytes]]:
        """`extend_digest` for the consecutive blocks `first_seq`, `first_seq + 1`, … whose hashes these are:
        their subtrees stored in one statement and the stack once (a restore folds its blocks at the end)."""
        return self.store_digest_fold(fold_digest_blocks(stack, first_seq, block_hashes))

    def store_digest_fold(self, fold: DigestFold) -> list[tuple[int, bytes]]:
        """Store what `fold_digest_blocks` computed: its subtrees in one statement, and the stack; returns the
        stack. Part of the caller's commit."""
        if fold.nodes:
            self.put_nodes(fold.nodes)
        self.set_meta("digest_stack", pack_stack(fold.stack))
        return fold.stack

    def tree_proof(self, index: int, leaves: int) -> list[bytes]:
        """Siblings of leaf `index` in merkle_root over block hashes 0..leaves-1, from stored nodes:
        O(log² n) reads instead of re-hashing the journal (equals journal.proofs.tree_proof)."""
        proof, height = [], 0
        while (leaves + (1 << height) - 1) >> height > 1:
            low = ((index >> height) ^ 1) << height
            if low < leaves:
                proof.append(self._range_root(low, min(low + (1 << height), leaves), height))
            height += 1
        return proof

    def _range_root(self, low: int, high: int, height: int) -> bytes:
        """merkle_root of block hashes low..high-1, where low is aligned to 2**height and the range
        holds at most 2**height leaves: a stored perfect node, or its left half dot the rest."""
        if high - low == 1 << height:
            return self.node(height, low >> height)
        half = 1 << (height - 1)
        if high - low <= half:
            return self._range_root(low, high, height - 1)
        return dot(self.node(height - 1, low >> (height - 1)), self._range_root(low + half, high, height - 1))

    def node(self, height: int, idx: int) -> bytes:
        if height == 0:
            return self.block_hash(idx)
        row = self.conn.execute(
            "SELECT hash FROM merkle_nodes WHERE height = ? AND idx = ?", (height, idx)
        ).fetchone()
        if row is None:
            raise LedgerError(f"Merkle node ({height}, {idx}) is missing: the ledger file is damaged")
        return row[0]


# A restore folds every block here: hashing.dot's C twin (`_ionhash.dot`) where built; the Python function stays the
# reference (tests/test_ionhash_native.py)
_fold: Callable[[bytes, bytes], bytes] = native.ionhash.dot if native.ionhash is not None else dot


@dataclass(frozen=True)
class DigestFold:
    """The digest accumulator extended over consecutive blocks, not yet stored (`Storage.store_digest_fold`):
    the stack it started from (`before`), the subtrees the blocks complete, and the stack after them."""

    before: list[tuple[int, bytes]]
    nodes: list[tuple[int, int, bytes]]
    stack: list[tuple[int, bytes]]


def fold_digest_blocks(stack: list[tuple[int, bytes]], first_seq: int, block_hashes: Iterable[bytes]) -> DigestFold:
    """The accumulator whose open subtrees are `stack` extended by blocks `first_seq`, `first_seq + 1`, … whose
    hashes these are (DigestAccumulator.add, keeping the subtrees it completes); reads and writes nothing."""
    before = list(stack)
    stack = accumulator_from(stack, first_seq)._stack  # (checks that it covers first_seq blocks)
    nodes: list[tuple[int, int, bytes]] = []
    for seq, block_hash in enumerate(block_hashes, first_seq):
        node, height = block_hash, 0
        while stack and stack[-1][0] == height:
            node, height = _fold(stack.pop()[1], node), height + 1
            nodes.append((height, ((seq + 1) >> height) - 1, node))
        stack.append((height, node))
    return DigestFold(before, nodes, stack)


def accumulator_from(stack: list[tuple[int, bytes]], count: int) -> DigestAccumulator:
    """A DigestAccumulator restored from its persisted open subtrees. Raises LedgerError when they do
    not cover exactly `count` blocks (a damaged file)."""
    covered = sum(1 << height for height, _ in stack)
    if covered != count:
        raise LedgerError(
            f"digest accumulator covers {covered} blocks but the journal has {count}: "
            "the ledger file is damaged"
        )
    accumulator = DigestAccumulator()
    accumulator._stack = list(stack)  # the accumulator's documented O(log n) state
    accumulator.count = count
    return accumulator


def pack_stack(stack: list[tuple[int, bytes]]) -> bytes:
    """The digest accumulator's open subtrees as bytes: (1-byte height, 32-byte hash) each."""
    return b"".join(bytes((height,)) + node for height, node in stack)


def unpack_stack(blob: bytes | None) -> list[tuple[int, bytes]]:
    if not blob:
        return []
    return [(blob[i], bytes(blob[i + 1 : i + 33])) for i in range(0, len(blob), 33)]
