"""A ledgerdr repository: a location holding exports plus ledgerdr's own write-once records.

Layout (CONTRACTS §2): `<prefix>exports/<t0>/<attempt>/` holds each export attempt exactly as the
source wrote it; `<prefix>_ledgerdr/windows/<t0>.json` one record per exported window;
`<prefix>_ledgerdr/watermarks/<repository>/<last_seq:020d>.json` one per verification advance.
No object is ever rewritten: the catalog is whatever listing these keys gives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from .errors import ObjectExists, StoreError, VerificationError
from .journal.exports import RecordedExports
from .journal.verify import Problem
from .signing import sign_document
from .stores import Location, ObjectInfo

T = TypeVar("T")

FORMAT_VERSION = 1
RECORDS = "_ledgerdr/"  # every JSON object under it is a record ledgerdr wrote (put_record)
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


@dataclass(frozen=True)
class Break:
    """Where a repository's record chain stops being one contiguous history (CONTRACTS §7): everything before
    `window_start` is intact; `key` names the record that breaks it."""

    kind: str  # gap | overlap | fork | unreadable_record
    key: str
    window_start: str | None  # the break's position; None when it cannot be placed (nothing after is trusted)
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.upper()} at {self.key}: {self.detail}"


@dataclass
class Catalog:
    """What a listing of the repository says (rebuilt on every read, never stored)."""

    windows: list[WindowRecord] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # record keys that failed to parse
    orphans: list[str] = field(default_factory=list)  # export attempt folders no record names
    passed: list[str] = field(default_factory=list)  # record keys at or before `read_windows(after=)`: not read
    keys: list[str] = field(default_factory=list)  # the key each of `windows` was read from (same order)
    record_sha256: dict[str, str] = field(default_factory=dict)  # record key -> sha256 of its bytes

    @property
    def last(self) -> WindowRecord | None:
        return self.windows[-1] if self.windows else None

    def gaps(self) -> list[tuple[str, str]]:
        """Time ranges between consecutive records that no record covers."""
        return [(a.window_end, b.window_start) for a, b in zip(self.windows, self.windows[1:], strict=False)
                if a.end < b.start]

    def breaks(self) -> list[Break]:
        """Every break in the record chain, in window order: a record that does not start where the last one
        ended (gap, or overlap when it starts before), that does not continue the last block (gap, overlap,
        or fork when its first block's `previousBlockHash` is not the last block's hash), that sits under a
        key its window does not name, or that cannot be read."""
        found = [Break("unreadable_record", key, record_start(key), "the record is not valid JSON or has a "
                       "newer format_version") for key in self.unreadable]
        previous: tuple[str, WindowRecord] | None = None
        tip: WindowRecord | None = None  # newest record with blocks
        for key, window in zip(self.keys, self.windows, strict=True):
            if key.rsplit("/", 1)[-1] != window.key_name:
                found.append(Break("overlap", key, window.window_start, f"record of window {window.window_start} "
                                   f"is stored under another window's key (expected {window.key_name})"))
            if previous is not None:
                found += _time_break(previous, key, window)
            if window.first_seq is not None:
                found += _block_break(tip, key, window)
                tip = window
            previous = (key, window)
        return sorted(found, key=lambda b: (b.window_start is not None, b.window_start and parse_iso(b.window_start)))

    def intact(self) -> list[WindowRecord]:
        """The windows before the first break: the only ones a status or a restore may count on."""
        breaks = self.breaks()
        if not breaks:
            return list(self.windows)
        first = breaks[0]
        if first.window_start is None:
            return []
        stop = parse_iso(first.window_start)
        return [w for w in self.windows if w.start < stop]


def record_start(key: str) -> str | None:
    """The `window_start` a window record's key names (`<t0>.json`), or None for a key that names none."""
    try:
        return iso_ms(datetime.strptime(key.rsplit("/", 1)[-1], "%Y%m%dT%H%M%SZ.json").replace(tzinfo=UTC))
    except ValueError:
        return None


def _time_break(previous: tuple[str, WindowRecord], key: str, window: WindowRecord) -> list[Break]:
    before_key, before = previous
    if window.start > before.end:
        return [Break("gap", key, window.window_start, f"nothing recorded from {before.window_end} to "
                      f"{window.window_start} (after {before_key})")]
    if window.start < before.end:
        return [Break("overlap", key, window.window_start, f"window {window.window_start} → {window.window_end} "
                      f"overlaps {before_key} ({before.window_start} → {before.window_end})")]
    return []


def _block_break(tip: WindowRecord | None, key: str, window: WindowRecord) -> list[Break]:
    if tip is None or tip.last_seq is None or window.first_seq is None:
        return []
    expected = tip.last_seq + 1
    if window.first_seq > expected:
        return [Break("gap", key, window.window_start, f"starts at block {window.first_seq}, the record before "
                      f"ends at block {tip.last_seq}")]
    if window.first_seq < expected:
        return [Break("overlap", key, window.window_start, f"starts at block {window.first_seq}, blocks up to "
                      f"{tip.last_seq} are recorded already")]
    if window.first_previous_block_hash and tip.last_block_hash \
            and window.first_previous_block_hash != tip.last_block_hash:
        return [Break("fork", key, window.window_start, f"block {window.first_seq} follows hash "
                      f"{window.first_previous_block_hash}, block {tip.last_seq} has {tip.last_block_hash}")]
    return []


class RecordCache:
    """What one process parsed from write-once records, for readers that list the same folder again and again
    (`replicate --follow`, the standby): a record is fetched again only when the listing shows it changed.

    An entry is keyed by the store's URL and the record's key, and holds the listing's `ObjectInfo.stamp` and
    size it was read at. A record is write-once, but on S3 a newer version can still be put over its key, and a
    file can be rewritten in place: either changes the stamp, and the record is read again. A backend that
    gives no stamp gets no caching. Each read keeps only the entries it used, so the cache never holds more
    than the last read returned. Not thread-safe: one cache per follower loop.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[str, int, Any]] = {}
        self.fetched = 0  # records read from the store (a GET each)
        self.reused = 0  # records taken from the cache

    def parse(self, location: Location, info: ObjectInfo, parse: Callable[[bytes], T]) -> T:
        """`parse` of the bytes at `info.key`, from the cache when `info` shows the object unchanged since it
        was read; otherwise a GET. Raises what `get` and `parse` raise (nothing is cached then)."""
        entry = self._entries.get((location.store.url, info.key))
        if info.stamp is not None and entry is not None and entry[:2] == (info.stamp, info.size):
            self.reused += 1
            return entry[2]
        value = parse(location.store.get(info.key))
        self.fetched += 1
        if info.stamp is not None:
            self._entries[(location.store.url, info.key)] = (info.stamp, info.size, value)
        return value

    def keep_only(self, location: Location, folder: str, used: set[str]) -> None:
        """Forget the entries under `folder` of this store that the last read did not use."""
        url = location.store.url
        for key in [k for (u, k) in self._entries if u == url and k.startswith(folder) and k not in used]:
            del self._entries[(url, key)]

    def __len__(self) -> int:
        return len(self._entries)


def _fetch(location: Location, info: ObjectInfo, parse: Callable[[bytes], T], cache: RecordCache | None) -> T:
    return parse(location.store.get(info.key)) if cache is None else cache.parse(location, info, parse)


def read_windows(location: Location, *, after: str | None = None, cache: RecordCache | None = None) -> Catalog:
    """Every window record under `location`, oldest first, and the keys of those that do not parse.

    `after` (a `window_start`): records whose key sorts at or before that window's key are listed, their keys
    put in `catalog.passed`, and neither fetched nor parsed. Keys are `<t0>.json` with a fixed-width UTC `t0`
    (`window_name`), so key order is window order; the bound compares names, not listing order. A caller uses
    it only for windows it has already consumed by other, write-once evidence (a watermark, a standby's
    position) and should check `passed` against that evidence. `cache` keeps parsed records between calls.
    Raises StoreError when the listing or a GET fails.
    """
    catalog = Catalog()
    folder = location.folder(WINDOWS)
    bound = window_name(parse_iso(after)) + ".json" if after is not None else None
    used: set[str] = set()
    read: list[tuple[str, WindowRecord]] = []
    for info in location.store.list(folder):
        name = info.key.rsplit("/", 1)[-1]
        if not name.endswith(".json"):
            continue
        if bound is not None and name <= bound:
            catalog.passed.append(info.key)
            continue
        used.add(info.key)
        try:
            record, digest = _fetch(location, info, _parse_record, cache)
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
            catalog.unreadable.append(info.key)
            continue
        read.append((info.key, record))
        catalog.record_sha256[info.key] = digest
    if cache is not None:
        cache.keep_only(location, folder, used)
    read.sort(key=lambda pair: pair[1].start)
    catalog.keys, catalog.windows = [k for k, _ in read], [w for _, w in read]
    return catalog


def _parse_record(data: bytes) -> tuple[WindowRecord, str]:
    """The record and the sha256 of its bytes: a replica's copy of a record is checked against the latter."""
    return WindowRecord.from_bytes(data), hashlib.sha256(data).hexdigest()


def find_orphans(location: Location, catalog: Catalog) -> list[str]:
    recorded = {w.export_prefix for w in catalog.windows}
    attempts: set[str] = set()
    base = location.folder(EXPORTS)
    for info in location.store.list(base):
        parts = info.key[len(base):].split("/")
        if len(parts) > 2:
            attempts.add(f"{base}{parts[0]}/{parts[1]}/")
    return sorted(attempts - recorded)


def recorded_exports(location: Location) -> RecordedExports | None:
    """What the window records under `location` say about its exports, for `verify`: None when there are no
    records (raw QLDB exports). Breaks in the record chain and unreadable records become problems."""
    catalog = read_windows(location)
    if not catalog.windows and not catalog.unreadable:
        return None
    sha256 = {obj.key: obj.sha256 for window in catalog.windows for obj in window.objects}
    problems = tuple(Problem(b.kind, b.key, None, b.detail) for b in catalog.breaks())
    return RecordedExports(frozenset(w.export_prefix for w in catalog.windows), sha256, problems)


def put_record(location: Location, key: str, doc: dict[str, Any], *, retain_until: datetime | None = None) -> bytes:
    """The one way ledgerdr writes a record (window, watermark, incarnation, snapshot manifest, prune record):
    `doc` as indented JSON with sorted keys at root-relative `key`, put-if-absent, signed first when the
    location has a signer (`signing.sign_document`). Returns the bytes written. Raises ObjectExists when
    the key is taken, StoreError, and ConfigError when the signing key cannot be loaded."""
    if location.signer is not None:  # signed as a reader will parse it (a datetime as its text, tuples as lists)
        doc = sign_document(orjson.loads(orjson.dumps(doc)), location.signer, name=key[len(location.prefix):])
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    location.store.put(key, data, retain_until=retain_until)
    return data


def record_window(location: Location, record: WindowRecord, *, retain_until: datetime | None = None) -> bool:
    """Write the record put-if-absent. False when another run already recorded this window."""
    try:
        put_record(location, location.key(WINDOWS + record.key_name), asdict(record), retain_until=retain_until)
    except ObjectExists:
        return False
    return True


def read_watermarks(location: Location, repository: str, *, cache: RecordCache | None = None) -> list[Watermark]:
    """Repository `repository`'s watermarks in `location`, by `last_seq`; unreadable ones are left out.
    `cache` (see `RecordCache`) keeps parsed watermarks between calls of a long-running follower."""
    marks = []
    folder = location.folder(f"{WATERMARKS}{repository}/")
    used: set[str] = set()
    for info in location.store.list(folder):
        used.add(info.key)
        try:
            marks.append(_fetch(location, info, Watermark.from_bytes, cache))
        except (StoreError, ValueError, TypeError, orjson.JSONDecodeError):
            continue
    if cache is not None:
        cache.keep_only(location, folder, used)
    # Empty windows verified after a block share its last_seq: the one that verified more windows is newer
    # (sorting by last_seq alone kept an older one last, so replicas re-announced the same windows forever).
    return sorted(marks, key=lambda m: (m.last_seq, len(m.windows_verified), m.verified_at))


def write_watermark(location: Location, mark: Watermark, *, retain_until: datetime | None = None) -> bool:
    """A new watermark object; an existing one for the same block is left as it is (False)."""
    key = location.key(f"{WATERMARKS}{mark.repository}/{mark.last_seq:020d}.json")
    try:
        put_record(location, key, asdict(mark), retain_until=retain_until)
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
    put_record(location, key, asdict(incarnation))


def read_incarnations(location: Location) -> list[Incarnation]:
    """Every promotion recorded in `location`, oldest first. Raises StoreError, and VerificationError naming
    the key of one that cannot be read (which lineage may write is then unknown: nothing may be decided)."""
    out = []
    for info in location.store.list(location.folder(INCARNATIONS)):
        try:
            raw = orjson.loads(location.store.get(info.key))
            out.append(Incarnation(**{k: v for k, v in raw.items() if k in Incarnation.__dataclass_fields__}))
        except (ValueError, TypeError, AttributeError) as exc:
            raise VerificationError(f"incarnation record {info.key} cannot be read: {exc}",
                                    [Problem("unreadable_record", info.key, None, str(exc))],
                                    hint="which lineage may write to this repository is unknown until it is "
                                         "repaired") from None
    return sorted(out, key=lambda i: (i.last_seq, i.promoted_at))


def current_lineage(windows: list[WindowRecord], incarnations: list[Incarnation]) -> tuple[str | None,
                                                                                          Incarnation | None]:
    """The lineage the repository's next window must carry, and the promotion that set it (None: no promotion
    since the last recorded block). A promotion recorded at the newest recorded block (same sequence number
    and hash) hands the chain to the promoted ledger, so from then on the lineage that wrote the records
    before it is fenced: its next backup is refused, and the promoted ledger's is accepted. Once the
    promoted ledger has recorded blocks, its records carry its lineage themselves."""
    tip = next((w for w in reversed(windows) if w.last_seq is not None), None)
    at_tip = [i for i in incarnations
              if tip is not None and i.last_seq == tip.last_seq and i.last_block_hash == tip.last_block_hash]
    if at_tip:
        return at_tip[-1].lineage, at_tip[-1]
    return (windows[-1].lineage if windows else None), None


def utcnow() -> datetime:
    return datetime.now(UTC)
