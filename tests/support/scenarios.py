"""Journals written by `JournalWriter` (QLDB's hashing rules) from a seeded random scenario of tables,
inserts, updates, deletes, drops and redactions, with the bookkeeping of what a restore must end with."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ledgerdr.journal.codecs import ExportFormat, encode_block, read_blocks
from ledgerdr.journal.model import Block
from ledgerdr.journal.writer import DocumentWrite, JournalWriter, WrittenBlock
from ledgerdr.journal.writer import Redaction as JournalRedaction
from ledgerdr.targets.base import (
    Redaction,
    RestoredRevision,
    TableDDL,
    redactions_of_block,
    revisions_of_block,
)
from ledgerdr.targets.ddl import DdlState, events_of_block
from support.qldb_export_factory import vehicle_document

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Unit:
    """What a restore worker hands to `Target.apply`."""

    unit_id: str
    tables: tuple[TableDDL, ...]
    revisions: tuple[RestoredRevision, ...]
    redactions: tuple[Redaction, ...]
    last_block: tuple[int, bytes]

    def apply_to(self, target) -> bool:
        return target.apply(self.unit_id, self.tables, self.revisions, self.redactions, self.last_block)


@dataclass
class JournalScenario:
    """A journal built transaction by transaction, with the bookkeeping a test needs to check a restore."""

    seed: int = 0
    rng: random.Random = field(init=False)
    writer: JournalWriter = field(init=False)
    blocks: list[WrittenBlock] = field(default_factory=list)
    ddl: dict[int, list[TableDDL]] = field(default_factory=dict)  # by block sequence number
    tables: dict[str, str] = field(default_factory=dict)  # active name → tableId
    latest: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # doc → (name, tableId, version)
    deleted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.writer = JournalWriter(self.new_id())

    @property
    def strand_id(self) -> str:
        return self.writer.strand_id

    def new_id(self) -> str:
        return "".join(self.rng.choice(_BASE62) for _ in range(22))

    def commit(self, statements: list[str], writes=(), ddl=(), redactions=()) -> WrittenBlock:
        seq = self.writer.next_sequence_no
        block = self.writer.commit(statements, list(writes), timestamp=START + timedelta(milliseconds=700 * seq),
                                   transaction_id=self.new_id(), redactions=list(redactions))
        self.blocks.append(block)
        if ddl:
            self.ddl[seq] = [replace(d, block_seq=seq) for d in ddl]
        for w in writes:
            self.latest[w.document_id] = (w.table_name, w.table_id, w.version)
            if w.data is None:
                self.deleted.add(w.document_id)
        return block

    def create_table(self, name: str, indexes: tuple[str, ...] = ()) -> str:
        table_id = self.tables[name] = self.new_id()
        statements = [f"CREATE TABLE {name}"] + [f"CREATE INDEX ON {name} ({f})" for f in indexes]
        self.commit(statements, ddl=[TableDDL(table_id, name, indexes)])
        return table_id

    def drop_table(self, name: str) -> None:
        table_id = self.tables.pop(name)
        self.commit([f"DROP TABLE {name}"], ddl=[TableDDL(table_id, name, (), dropped=True)])

    def live_docs(self, name: str | None = None) -> list[str]:
        return sorted(d for d, (n, t, _) in self.latest.items()
                      if d not in self.deleted and n in self.tables and self.tables[n] == t
                      and (name is None or n == name))

    def write(self, name: str, document_id: str | None = None, data=None, *, delete: bool = False) -> DocumentWrite:
        if document_id is None:
            document_id, version = self.new_id(), 0
        else:
            version = self.latest[document_id][2] + 1
        body = None if delete else (data if data is not None else vehicle_document(self.rng, len(self.blocks)))
        return DocumentWrite(name, self.tables[name], document_id, version, body)

    def random_transactions(self, count: int) -> None:
        for _ in range(count):
            writes, used = [], set()
            for _ in range(self.rng.choice([1, 1, 2, 5])):
                name = self.rng.choice(sorted(self.tables))
                live = [d for d in self.live_docs(name) if d not in used]
                roll = self.rng.random()
                if roll < 0.5 or not live:
                    w = self.write(name)
                else:
                    w = self.write(name, self.rng.choice(live), delete=roll > 0.85)
                used.add(w.document_id)
                writes.append(w)
            self.commit([f"INSERT INTO {writes[0].table_name} ?"], writes)

    def redact_some(self, count: int) -> list[tuple[str, str, int]]:
        """Redact `count` superseded data revisions (QLDB refuses to redact a live one)."""
        candidates = [(b.address, r) for b in self.blocks for r in revisions_of_block(Block(b.value))
                      if r.data is not None and r.version < self.latest[r.document_id][2]]
        chosen = self.rng.sample(candidates, min(count, len(candidates)))
        self.commit(["EXEC redact_revision ?, ?, ?"],
                    redactions=[JournalRedaction(a, r.table_id, r.document_id, r.version) for a, r in chosen])
        return [r.key for _, r in chosen]

    # ---- what a restore consumes

    def revisions(self, fmt: ExportFormat = ExportFormat.ION_BINARY) -> list[RestoredRevision]:
        return [r for block in self.read_blocks(fmt) for r in revisions_of_block(block, json_export=not fmt.is_ion)]

    def redactions(self) -> list[Redaction]:
        return [r for b in self.blocks for r in redactions_of_block(Block(b.value))]

    def dropped(self) -> dict[str, bool]:
        """tableId → dropped, as the one interpreter of the journal's DDL reads these blocks."""
        return DdlState().apply_all(e for b in self.blocks for e in events_of_block(Block(b.value))).dropped()

    def read_blocks(self, fmt: ExportFormat) -> list[Block]:
        return [blk for b in self.blocks for blk in read_blocks(encode_block(b.value, fmt), fmt)]

    def units(self, size: int, fmt: ExportFormat = ExportFormat.ION_BINARY) -> list[Unit]:
        blocks = self.read_blocks(fmt)
        out = []
        for i in range(0, len(blocks), size):
            chunk = blocks[i : i + size]
            out.append(Unit(
                unit_id=f"{self.strand_id}/{chunk[0].sequence_no}-{chunk[-1].sequence_no}",
                tables=tuple(d for b in chunk for d in self.ddl.get(b.sequence_no, ())),
                revisions=tuple(r for b in chunk for r in revisions_of_block(b, json_export=not fmt.is_ion)),
                redactions=tuple(r for b in chunk for r in redactions_of_block(b)),
                last_block=(chunk[-1].sequence_no, chunk[-1].block_hash),
            ))
        return out

    def expected_current(self) -> dict[tuple[str, str], int]:
        """(tableId, documentId) → version of every live document, from the bookkeeping, not the digest."""
        return {(t, d): v for d, (_, t, v) in self.latest.items() if d not in self.deleted}


def standard_scenario(seed: int = 1, transactions: int = 60) -> JournalScenario:
    """Two tables, Vehicle dropped and created again (same name, new tableId), updates, deletes and
    redactions of superseded revisions."""
    s = JournalScenario(seed)
    s.create_table("Vehicle", ("VIN",))
    s.create_table("Person")
    s.random_transactions(transactions // 2)
    s.drop_table("Vehicle")
    s.create_table("Vehicle", ("VIN", "Price"))
    s.random_transactions(transactions - transactions // 2)
    s.redact_some(3)
    return s


# Table and field names that break naive SQL quoting, overflow identifiers, or collide once sanitized.
HOSTILE_NAMES = [
    '"; DROP TABLE x; --',
    "Robert'); DROP TABLE students;--",
    "V" * 300,
    "Fahrzeug_Ü_車両 🚗",
    "a-b", "a b", "A.B",  # the same after sanitizing
    "ledgerdr_tables",
]
HOSTILE_FIELDS = ['x"); DROP TABLE x; --', "Prix €", "it's"]


def hostile_scenario() -> JournalScenario:
    s = JournalScenario(31)
    for name in HOSTILE_NAMES:
        s.create_table(name, tuple(HOSTILE_FIELDS))
    s.drop_table("a-b")
    s.create_table("a-b", ("VIN",))  # the same name, another tableId
    writes = [s.write(name, data={**{f: f"v{i}" for f in HOSTILE_FIELDS}, "VIN": f"VIN{i}"})
              for i, name in enumerate(sorted(s.tables))]
    s.commit(["INSERT INTO hostile ?"], writes)
    return s


# A document with every Ion type and the corners a target's storage could lose (precision, annotations,
# repeated field names, typed nulls, a NUL inside a string).
ROUND_TRIP = r"""{
  price: 1.20, zero: -0.000, exp: 12.3d-40, big: 123456789012345678901234567890,
  year: 2024T, minute: 2024-03-01T09:00+05:30, nanos: 2024-03-01T09:00:00.123456789-00:00,
  millis: 2024-03-01T09:00:00.100-08:00, blob: {{aGVsbG8gd29ybGQ=}}, clob: {{"plain text"}},
  sym: 'a symbol', nul: "before\x00after", floats: [1e0, -0e0, nan, +inf],
  nulls: [null, null.int, null.timestamp, null.struct], sexp: (a b 1),
  nested: outer::{ inner: inner::[1, { deep: deeper::"x" }], 'quoted "field"': true },
  dup: 1, dup: 2
}"""
