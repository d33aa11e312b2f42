"""A ledgerdr repository: a location holding exports plus ledgerdr's own write-once records.

Layout (CONTRACTS §2): `<prefix>exports/<t0>/<attempt>/` holds each export attempt exactly as the
source wrote it; `<prefix>_ledgerdr/windows/<t0>.json` one record per exported window;
`<prefix>_ledgerdr/watermarks/<repository>/<last_seq:020d>.json` one per verification advance.
No object is ever rewritten: the catalog is whatever listing these keys gives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import ObjectExists, StoreError
from .stores import Location

FORMAT_VERSION = 1
WINDOWS = "_ledgerdr/windows/"
WATERMARKS = "_ledgerdr/watermarks/"
INCARNATIONS = "_ledgerdr/incarnations/"
EXPORTS = "exports/"


def window_name(t0: datetime) -> str:
    return t0.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ObjectRecord:
    key: str
    size: int
    sha256: str
    version_id: str | None = None


@dataclass(frozen=True)
class WindowRecord:
    window_start: str
    window_end: str
    source: dict[str, Any]
    export_id: str | None
    export_prefix: str
    format: str
    first_seq: int | None
    last_seq: int | None
    first_previous_block_hash: str | None
    last_block_hash: str | None
    blocks: int
    revisions: int
    objects: tuple[ObjectRecord, ...]
    digest: dict[str, Any] | None
    lineage: str
    recorded_at: str
    last_block_time: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def start(self) -> datetime:
        return parse_iso(self.window_start)

    @property
    def end(self) -> datetime:
        return parse_iso(self.window_end)

    @property
    def key_name(self) -> str:
        return window_name(self.start) + ".json"

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowRecord:
        raw = orjson.loads(data)
        version = raw.get("format_version", 1)
        if version != FORMAT_VERSION:
            raise ValueError(f"window record format_version {version} is newer than this ledgerdr reads")
        raw["objects"] = tuple(ObjectRecord(**o) for o in raw.get("objects", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class Watermark:
    repository: str
    last_seq: int
    last_block_hash: str
    last_block_time: str | None
    windows_verified: tuple[str, ...]
    verified_at: str
    format_version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> Watermark:
        raw = orjson.loads(data)
        raw["windows_verified"] = tuple(raw.get("windows_verified", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class Catalog:
    """What a listing of the repository says (rebuilt on every read, never stored)."""

    windows: list[WindowRecord] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # record keys that failed to parse
    orphans: list[str] = field(default_factory=list)  # export attempt folders no record names

    @property
    def last(self) -> WindowRecord | None:
        return self.windows[-1] if self.windows else None

    def gaps(self) -> list[tuple[str, str]]:
        """Time ranges between consecutive records that no record covers."""
        return [(a.window_end, b.window_start) for a, b in zip(self.windows, self.windows[1:], strict=False)
                if a.end != b.start]


def read_windows(location: Location) -> Catalog:
    catalog = Catalog()
    for info in location.store.list(location.folder(WINDOWS)):
        if not info.key.endswith(".json"):
            continue
        try:
            catalog.windows.append(WindowRecord.from_bytes(location.store.get(info.key)))
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
            catalog.unreadable.append(info.key)
    catalog.windows.sort(key=lambda w: w.start)
    return catalog


def find_orphans(location: Location, catalog: Catalog) -> list[str]:
    recorded = {w.export_prefix for w in catalog.windows}
    attempts: set[str] = set()
    base = location.folder(EXPORTS)
    for info in location.store.list(base):
        parts = info.key[len(base):].split("/")
        if len(parts) > 2:
            attempts.add(f"{base}{parts[0]}/{parts[1]}/")
    return sorted(attempts - recorded)


def record_window(location: Location, record: WindowRecord, *, retain_until: datetime | None = None) -> bool:
    """Write the record put-if-absent. False when another run already recorded this window."""
    try:
        location.store.put(location.key(WINDOWS + record.key_name), record.to_bytes(), retain_until=retain_until)
    except ObjectExists:
        return False
    return True


def read_watermarks(location: Location, repository: str) -> list[Watermark]:
    marks = []
    for info in location.store.list(location.folder(f"{WATERMARKS}{repository}/")):
        try:
            marks.append(Watermark.from_bytes(location.store.get(info.key)))
        except (StoreError, ValueError, TypeError, orjson.JSONDecodeError):
            continue
    return sorted(marks, key=lambda m: m.last_seq)


def write_watermark(location: Location, mark: Watermark, *, retain_until: datetime | None = None) -> bool:
    """A new watermark object; an existing one for the same block is left as it is (False)."""
    key = location.key(f"{WATERMARKS}{mark.repository}/{mark.last_seq:020d}.json")
    try:
        location.store.put(key, mark.to_bytes(), retain_until=retain_until)
    except ObjectExists:
        return False
    return True


@dataclass(frozen=True)
class Incarnation:
    """A promotion: from `last_seq` (hash `last_block_hash`) on, the chain continues as `lineage`."""

    lineage: str
    previous_lineage: str | None
    last_seq: int
    last_block_hash: str
    promoted_at: str
    format_version: int = FORMAT_VERSION


def write_incarnation(location: Location, incarnation: Incarnation) -> None:
    key = location.key(f"{INCARNATIONS}{incarnation.last_seq:020d}-{incarnation.lineage}.json")
    location.store.put(key, orjson.dumps(asdict(incarnation), option=orjson.OPT_INDENT_2))


def read_incarnations(location: Location) -> list[Incarnation]:
    out = []
    for info in location.store.list(location.folder(INCARNATIONS)):
        raw = orjson.loads(location.store.get(info.key))
        out.append(Incarnation(**{k: v for k, v in raw.items() if k in Incarnation.__dataclass_fields__}))
    return sorted(out, key=lambda i: i.last_seq)


def utcnow() -> datetime:
    return datetime.now(UTC)
