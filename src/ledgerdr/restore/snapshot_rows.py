"""A format-2 snapshot part as rows, for a target that takes rows (`Target.applies_rows`).

The part is fetched, its checksum checked, every revision hash recomputed in one C pass from the stored
bytes (`restore.snapshot.check_part`), and its rows handed to `Target.apply_rows` as they are: already in the
history table's key order, no Python value built. A part the rows cannot carry — format 1, revisions that
lost their Ion types (the target records them apart) or revisions a later redaction names (the target
remembers those) — gives None, and the caller loads it as revisions (`load_snapshot_unit`).
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field

from ..snapshots import PartRows, SnapshotManifest
from ..stores import Store
from ..targets.base import HistoryRow, JournalBlockRow, TableDDL
from ..targets.ddl import DdlEvent
from ..targets.digest import (
    ENTRY_DELETED,
    ENTRY_NO_DATA,
    JournalEntry,
    PackedJournal,
    pack_history_rows,
    pack_journal,
)
from .shapes import UnitResult, WorkUnit
from .snapshot import check_part, fetch_part, manifest_for, part_result
from .units import leaves_of


@dataclass
class SnapshotRows:
    """A verified part as `Target.apply_rows` takes it; the same shape as `restore.rows.RowUnit`."""

    unit: WorkUnit
    manifest: SnapshotManifest
    part: int
    parsed: PartRows
    tables: dict[str, TableDDL] = field(default_factory=dict)
    blocks: list[JournalBlockRow] = field(default_factory=list)  # a snapshot holds no blocks

    @property
    def strand_id(self) -> str:
        return self.manifest.strand_id

    @property
    def rows(self) -> list[HistoryRow]:
        return self.parsed.rows

    @property
    def is_tip(self) -> bool:
        return self.part == len(self.manifest.objects) - 1

    @property
    def last_block(self) -> tuple[int, bytes] | None:
        """The tip part carries the snapshot's tip into the target (as `snapshot.last_block_of`)."""
        return (self.manifest.last_seq, base64.b64decode(self.manifest.tip_hash)) if self.is_tip else None

    def result(self) -> UnitResult:
        """As `snapshot.snapshot_result`: part 0 carries the snapshot's tables, the tip part its range."""
        seeds = [DdlEvent.seed(t).to_list() for t in self.manifest.tables] if self.part == 0 else []
        return part_result(self.unit, self.manifest, self.part, len(self.rows), (), seeds)

    def journal(self) -> list[JournalEntry]:
        names = dict(self.parsed.tables)
        return [(row[0], names[row[0]], row[1], row[2], row[4],
                 0 if row[3] is not None else ENTRY_NO_DATA if row[8] is not None else ENTRY_DELETED | ENTRY_NO_DATA)
                for row in self.rows]

    def packed(self) -> PackedJournal:
        """`pack_journal(self.journal())`. A part without redacted rows has the entries of verified history
        rows (a row without data is a delete), which `pack_history_rows` packs in C without a tuple per row."""
        if self.parsed.tally.redacted == 0:
            return pack_history_rows(self.rows, dict(self.parsed.tables))
        return pack_journal(self.journal())

    def leaves(self) -> bytes:
        return leaves_of(self.unit, self.packed(), [])


def load_snapshot_rows(store: Store, unit: WorkUnit) -> SnapshotRows | None:
    """The part verified and as rows, or None (see the module comment). Raises VerificationError naming the
    part (and the block of a revision) when anything does not check; nothing is applied then."""
    manifest, part = manifest_for(store, unit)
    expected = manifest.objects[part]
    first, last = tuple(expected.first), tuple(expected.last)
    if (manifest.format_version < 2 or expected.type_lost
            or any(first <= tuple(key) <= last for key in manifest.redactions)):
        return None
    manifest, part, data = fetch_part(store, unit)
    parsed = check_part(unit.key, manifest, part, data)
    # The tables' indexes are left to finalize, as a raw unit's are (`restore.rows`): part 0's result seeds them
    # into the one interpretation of the DDL, and finalize builds each index once from the current rows, instead
    # of every part moving index entries document by document.
    tables = {t.table_id: dataclasses.replace(t, indexes=()) for t in manifest.tables}
    return SnapshotRows(unit, manifest, part, parsed, tables)
