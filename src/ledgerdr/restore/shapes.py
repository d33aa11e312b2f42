"""The data a restore passes between its steps, and nothing else: a work unit (what to apply), its content
once loaded and verified (what a target applies), and the result a worker records (what finalize links).

Data only: this module imports no step of the restore, so the planner, the unit loader and the snapshot
reader all build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import orjson

from ..journal.model import Block
from ..targets.base import Redaction, RestoredRevision, TableDDL
from ..targets.ddl import DdlEvent

SNAPSHOT_FORMAT = "SNAPSHOT"  # WorkUnit.fmt of a snapshot part: the unit's kind, kept in an existing field


@dataclass(frozen=True)
class WorkUnit:
    """One data object, and the blocks of it to apply: [first_seq, last_seq], committed before `until_ms`."""

    unit_id: str
    key: str
    fmt: str
    first_seq: int
    last_seq: int
    sha256: str | None = None
    version_id: str | None = None
    until_ms: int | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkUnit:
        return cls(**orjson.loads(data))


@dataclass
class UnitContent:
    unit: WorkUnit
    strand_id: str | None = None
    blocks: list[Block] = field(default_factory=list)
    tables: dict[str, TableDDL] = field(default_factory=dict)
    revisions: list[RestoredRevision] = field(default_factory=list)
    redactions: list[Redaction] = field(default_factory=list)
    ddl: list[DdlEvent] = field(default_factory=list)  # what its blocks say about tables (`targets.ddl`)


@dataclass(frozen=True)
class UnitResult:
    """What a worker records after applying a unit; finalize links these into one chain."""

    unit_id: str
    first_seq: int | None
    first_previous_hash: str | None
    last_seq: int | None
    last_hash: str | None
    last_block_time_ms: int | None
    revisions: int
    type_lost: tuple[str, ...] = ()
    ddl: tuple[list, ...] = ()  # `DdlEvent.to_list()` of the unit's DDL events, for finalize's one interpretation

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> UnitResult:
        raw = orjson.loads(data)
        raw["type_lost"] = tuple(raw.get("type_lost", ()))
        raw["ddl"] = tuple(raw.get("ddl", ()))
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def ddl_events(self) -> list[DdlEvent]:
        return [DdlEvent.from_list(raw) for raw in self.ddl]
