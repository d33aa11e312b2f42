"""A unit read by the C journal verifier: rows ready to insert, never Python values.

`load_rows` fetches the unit's object and has `_journal.verify_blocks` check every block from its Ion binary
bytes (every revision's hash, the Merkle roots, the block hashes) and hand back, per document revision, the row
a target stores: its table, id, version, the document as its own Ion binary stream, hash, txTime and txId. The
links between the object's blocks are checked here, as `units.load_unit` checks them. The few blocks whose
statements may change a table definition are also decoded in Python, for the DDL interpreter's events. Anything
the C verifier does not read, an object whose blocks do not link, or a `--until` cut-off (decided on the blocks' parsed
timestamps, as `load_unit` does) gives None: the caller then goes through `load_unit`, which stays the
reference and reports every problem. Nothing is applied before the whole object has been verified.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from .. import native
from ..errors import VerificationError
from ..journal.codecs import ExportFormat, read_blocks
from ..journal.verify import Problem
from ..stores import Store
from ..targets.base import HistoryRow, TableDDL
from ..targets.base import JournalBlockRow as BlockRow
from ..targets.ddl import SEEN, DdlEvent, events_of_block, first_seen, is_ddl_text
from ..targets.digest import pack_history_rows
from .overlaps import fetch_object
from .shapes import UnitResult, WorkUnit
from .units import leaves_of


@dataclass
class RowUnit:
    unit: WorkUnit
    strand_id: str | None = None
    first_previous_hash: bytes | None = None
    tables: dict[str, TableDDL] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # the last name a revision gives each table id
    rows: list[HistoryRow] = field(default_factory=list)
    blocks: list[BlockRow] = field(default_factory=list)
    ddl: list[DdlEvent] = field(default_factory=list)  # the tables the rows' revisions show active

    @property
    def last_block(self) -> tuple[int, bytes] | None:
        return (self.blocks[-1][0], self.blocks[-1][2]) if self.blocks else None

    def result(self) -> UnitResult:
        blocks = self.blocks
        return UnitResult(
            unit_id=self.unit.unit_id,
            first_seq=blocks[0][0] if blocks else None,
            first_previous_hash=_b64(self.first_previous_hash) if blocks and self.first_previous_hash is not None
            else None,
            last_seq=blocks[-1][0] if blocks else None,
            last_hash=_b64(blocks[-1][2]) if blocks else None,
            last_block_time_ms=blocks[-1][3] if blocks else None,
            revisions=len(self.rows),
            ddl=tuple(event.to_list() for event in first_seen(self.ddl)),
        )

    def leaves(self) -> bytes:
        return leaves_of(self.unit, pack_history_rows(self.rows, self.names), [])


def load_rows(store: Store, unit: WorkUnit) -> RowUnit | None:
    """The unit verified and turned into rows by the C verifier, or None (see the module comment). Raises
    VerificationError when the object's bytes do not match the sha256 recorded for them."""
    if native.journal is None or unit.fmt != "ION_BINARY" or unit.until_ms is not None:
        return None
    data = _verified_object(store, unit)
    # Rows for the unit's blocks only; with a recorded checksum nothing past them is read (as load_unit)
    blocks = native.journal.verify_blocks(data, True, unit.first_seq, unit.last_seq,
                                          unit.last_seq if unit.sha256 else -1)
    if blocks is None:
        return None
    out = RowUnit(unit)
    last_seq: int | None = None
    last_hash, strand = b"", None
    for seq, strand_id, previous, block_hash, revisions, _system, start, end, ts_ms, rows, statements in blocks:
        if last_seq is not None and (seq != last_seq + 1 or previous != last_hash or strand_id != strand):
            return None  # load_unit names the break
        last_seq, last_hash, strand = seq, block_hash, strand_id
        if seq > unit.last_seq:
            if unit.sha256:
                break  # as load_unit: the rest is other units', verified when the object was recorded
            continue
        if seq < unit.first_seq:
            continue
        out.strand_id = strand_id
        raw = data[start:end]
        if any(is_ddl_text(text) for text in statements):
            # A table definition changes here: the one interpreter reads this block's statements in their
            # order (`events_of_block`, as load_unit does for every block); the block was verified above.
            out.ddl.extend(events_of_block(next(iter(read_blocks(raw, ExportFormat.ION_BINARY)))))
            out.names.update((row[0], row[1]) for row in rows)  # its tables are seen by those events
        _add_block(out, seq, previous, block_hash, revisions, raw, ts_ms, rows)
    return out


# The last data object whose bytes matched their recorded sha256, by that sha256: a worker takes the units cut from
# one object (`run.split_units`) one after another, and the next one neither fetches nor hashes it again. Bytes
# with that sha256 are those bytes, whichever store or key gave them. One object (tens of MB) stays in memory.
_verified: tuple[str, bytes] | None = None


def _verified_object(store: Store, unit: WorkUnit) -> bytes:
    """The unit's object, checked against its recorded sha256 (VerificationError when it does not match)."""
    global _verified
    if unit.sha256 and _verified is not None and _verified[0] == unit.sha256:
        return _verified[1]
    data = fetch_object(store, unit.key, unit.version_id)
    if unit.sha256:
        if hashlib.sha256(data).hexdigest() != unit.sha256:
            raise VerificationError(f"object {unit.key}: bytes do not match the recorded sha256; nothing applied",
                                    [Problem("checksum_mismatch", unit.key, None, "sha256 mismatch")])
        _verified = (unit.sha256, data)
    return data


def _add_block(out: RowUnit, seq: int, previous: bytes, block_hash: bytes, revisions: int, raw: bytes,
               ts_ms: int, rows: tuple) -> None:
    if not out.blocks:
        out.first_previous_hash = previous
    out.blocks.append((seq, raw, block_hash, ts_ms, revisions))
    tables, names, history = out.tables, out.names, out.rows
    for table_id, table_name, document_id, version, ion, revision_hash, tx_ms, tx_id in rows:
        if table_id not in tables:
            tables[table_id] = TableDDL(table_id, table_name, (), False, seq)
        if names.get(table_id) is None:
            # A revision's table is active at its block (its first in the unit; later ones change nothing).
            out.ddl.append(DdlEvent(seq, 0, SEEN, table_name, table_id))
        names[table_id] = table_name
        history.append((table_id, document_id, version, ion, revision_hash, tx_ms, tx_id, seq, None))


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
