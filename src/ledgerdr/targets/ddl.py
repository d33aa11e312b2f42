"""The one interpreter of the journal's table definitions (CONTRACTS §8), used by restore, compact and standby.

QLDB's journal records DDL only as statement text in `transactionInfo.statements`; a table's id appears
when a revision is written to it (`transactionInfo.documents`) or in `UNDROP TABLE "id"`. Following
QLDB: `CREATE TABLE` makes a new table (a name reused after `DROP` is another table, with another id);
`DROP TABLE name` makes the active table of that name inactive, its history kept; `UNDROP TABLE "id"`
makes it active again; `CREATE INDEX ON name (field)` indexes the active table of that name.
`DROP INDEX` names an index id the journal never maps to a field, so it changes nothing here.

Names map to ids in block order, statement by statement, so the interpretation needs the whole journal
in order. A restore applies units in parallel: each unit only *extracts* its blocks' `DdlEvent`s
(`events_of_block`); finalize (or compact, or the standby after each window) feeds every event, in
order, to one `DdlState`. A snapshot's tables seed the state (`DdlEvent.seed`).

What a revision says: a document written by statement i of a block belongs to the table of that id and
name, which is therefore active at that statement (QLDB writes to active tables only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..journal.model import Block
from ..ledger.partiql import parse
from ..ledger.syntax import CreateIndex, CreateTable, DropTable, UndropTable
from .base import TableDDL

SEED, SEEN, CREATE_TABLE, DROP_TABLE, UNDROP_TABLE, CREATE_INDEX = (
    "seed", "seen", "create_table", "drop_table", "undrop_table", "create_index")
_DDL_VERBS = ("create", "drop", "undrop")


@dataclass(frozen=True, slots=True, order=True)
class DdlEvent:
    """One thing the journal says about tables, at statement `position` of block `seq`.

    `name` is the table name (for `undrop_table` and `seen` the table id is in `table_id`); `fields` are
    index fields (`create_index`: one; `seed`: the table's indexes); `dropped` only for `seed`."""

    seq: int
    position: int
    kind: str
    name: str = ""
    table_id: str = ""
    fields: tuple[str, ...] = ()
    dropped: bool = False

    def to_list(self) -> list[Any]:
        return [self.seq, self.position, self.kind, self.name, self.table_id, list(self.fields), self.dropped]

    @classmethod
    def from_list(cls, raw: list[Any]) -> DdlEvent:
        seq, position, kind, name, table_id, fields, dropped = raw
        return cls(int(seq), int(position), str(kind), str(name), str(table_id), tuple(map(str, fields)),
                   bool(dropped))

    @classmethod
    def seed(cls, table: TableDDL) -> DdlEvent:
        """A table as a snapshot recorded it: before every block the snapshot's later windows hold."""
        return cls(-1, 0, SEED, table.table_name, table.table_id, tuple(table.indexes), table.dropped)


def events_of_block(block: Block) -> list[DdlEvent]:
    """The block's DDL statements and its documents' tables, in statement order."""
    seq = block.sequence_no
    events = []
    for position, text in enumerate(block.statements()):
        event = _statement_event(seq, position, text)
        if event is not None:
            events.append(event)
    info: Mapping[str, Any] = block.transaction_info or {}
    seen: dict[str, DdlEvent] = {}
    for entry in (info.get("documents") or {}).values():
        table_id = str(entry["tableId"])
        position = min((int(i) for i in entry.get("statements") or ()), default=0)
        if table_id not in seen or position < seen[table_id].position:
            seen[table_id] = DdlEvent(seq, position, SEEN, str(entry["tableName"]), table_id)
    events.extend(seen.values())
    return sorted(events)


def is_ddl_text(text: str) -> bool:
    """Whether a statement may change a table definition (a cheap test on its first word, no parse)."""
    return text.lstrip().lower().startswith(_DDL_VERBS)


def _statement_event(seq: int, position: int, text: str) -> DdlEvent | None:
    if not is_ddl_text(text):
        return None  # DML: most statements, and no parse for them
    try:
        statement = parse(text)
    except Exception:  # noqa: BLE001 - the journal verified; a statement this parser does not read changes no table
        return None
    if isinstance(statement, CreateTable):
        return DdlEvent(seq, position, CREATE_TABLE, statement.name)
    if isinstance(statement, DropTable):
        return DdlEvent(seq, position, DROP_TABLE, statement.name)
    if isinstance(statement, UndropTable):
        return DdlEvent(seq, position, UNDROP_TABLE, table_id=statement.table_id)
    if isinstance(statement, CreateIndex):
        return DdlEvent(seq, position, CREATE_INDEX, statement.table, fields=(statement.path[0],))
    return None


def first_seen(events: Iterable[DdlEvent]) -> list[DdlEvent]:
    """`events` (in order) without the `seen` events after a table's first: a revision only ever finds
    its table active (a table dropped in between is seen again only after an `undrop_table`, which names
    it), so later ones change nothing. Keeps what a unit records small."""
    out, seen = [], set()
    for event in events:
        if event.kind == SEEN:
            if event.table_id in seen:
                continue
            seen.add(event.table_id)
        out.append(event)
    return out


@dataclass
class _Table:
    name: str | None  # None: known only from UNDROP so far
    dropped: bool
    seq: int  # block of the last status change
    indexes: set[str] = field(default_factory=set)


class DdlState:
    """Tables by id as the journal's DDL leaves them; feed events in block and statement order."""

    def __init__(self, seed: Iterable[TableDDL] = ()) -> None:
        self._tables: dict[str, _Table] = {}
        self._active: dict[str, str] = {}  # table name → id of the active table of that name
        self._pending: dict[str, set[str]] = {}  # indexes on a created table whose id is not known yet
        self.index_statements: set[tuple[int, str, str]] = set()  # (seq, table name, field), for manifests
        for table in seed:
            self.apply(DdlEvent.seed(table))

    def apply_all(self, events: Iterable[DdlEvent]) -> DdlState:
        for event in sorted(events):
            self.apply(event)
        return self

    def apply(self, event: DdlEvent) -> None:
        """One event; call in (seq, position) order. A statement that names no table known here (e.g. DROP
        of a table never written to: no revision ever gave its id) changes nothing."""
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, event)

    def _seed(self, event: DdlEvent) -> None:
        self._tables[event.table_id] = _Table(event.name, event.dropped, event.seq, set(event.fields))
        if not event.dropped:
            self._active[event.name] = event.table_id

    def _seen(self, event: DdlEvent) -> None:
        table = self._tables.get(event.table_id)
        if table is None:
            table = self._tables[event.table_id] = _Table(event.name, False, event.seq,
                                                          self._pending.pop(event.name, set()))
        elif table.name is None:
            table.name = event.name
        if table.dropped:  # only after an UNDROP this interpretation missed: the revision decides
            table.dropped, table.seq = False, event.seq
        self._active[event.name] = event.table_id

    def _create_table(self, event: DdlEvent) -> None:
        self._pending.pop(event.name, None)  # a new table: indexes of an earlier one of that name are not its

    def _drop_table(self, event: DdlEvent) -> None:
        self._pending.pop(event.name, None)
        table_id = self._active.pop(event.name, None)
        if table_id is not None:
            table = self._tables[table_id]
            table.dropped, table.seq = True, event.seq

    def _undrop_table(self, event: DdlEvent) -> None:
        table = self._tables.get(event.table_id)
        if table is None:
            self._tables[event.table_id] = _Table(None, False, event.seq)
            return
        table.dropped, table.seq = False, event.seq
        if table.name is not None:
            self._active[table.name] = event.table_id

    def _create_index(self, event: DdlEvent) -> None:
        field_name = event.fields[0]
        self.index_statements.add((event.seq, event.name, field_name))
        table_id = self._active.get(event.name)
        if table_id is None:
            self._pending.setdefault(event.name, set()).add(field_name)
        else:
            self._tables[table_id].indexes.add(field_name)

    def tables(self) -> tuple[TableDDL, ...]:
        """Every table whose name is known, by id; `block_seq` is its last status change (targets keep
        the status of the highest one)."""
        return tuple(
            TableDDL(table_id, t.name, tuple(sorted(t.indexes)), t.dropped, t.seq)
            for table_id, t in sorted(self._tables.items()) if t.name is not None
        )

    def changes_to(self, held: Iterable[TableDDL]) -> list[TableDDL]:
        """`tables()` that a target holding `held` lacks: a new table, another status, a missing index.
        (Block numbers alone do not count: a target also records the block of a table's revisions.)"""
        by_id = {t.table_id: t for t in held}
        return [t for t in self.tables() if t.table_id not in by_id or by_id[t.table_id].dropped != t.dropped
                or not set(t.indexes) <= set(by_id[t.table_id].indexes)]

    def dropped(self) -> dict[str, bool]:
        """tableId → dropped, for the state digest."""
        return {table_id: t.dropped for table_id, t in self._tables.items()}


_HANDLERS = {SEED: DdlState._seed, SEEN: DdlState._seen, CREATE_TABLE: DdlState._create_table,
             DROP_TABLE: DdlState._drop_table, UNDROP_TABLE: DdlState._undrop_table,
             CREATE_INDEX: DdlState._create_index}
