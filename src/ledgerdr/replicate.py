"""The replicate flow: copy what a replica lacks, verify what arrived, advance its watermark.

Copying is skipped where a replica already holds an object with the recorded checksum, so an
interrupted run resumes where it stopped. Verification at the destination never trusts the copy
(nor S3 replication, with `verify_only`): every object is checked against the window record's sha256
and its blocks verified as a chain continuing from the replica's last watermark — incremental, so its
cost follows what is new. A watermark never passes a missing, altered or late object. What is verified
is what the replica holds: the bytes this run wrote there (they passed through this process, and the
replica's put accepted exactly them against the recorded sha256: the file store hashes what it writes,
S3 checks the ChecksumSHA256 sent with them), else the object re-read from the replica (one it already
held, one S3 copied server-side, everything with `verify_only`). Copies run ahead of verification,
window by window, so the two overlap and at most `_AHEAD_BYTES` of copied bytes wait in memory.

What a watermark already vouches for is not re-verified, but every run re-checks each of those copies
against its recorded sha256 (`stores.stored_sha256`: a HEAD on S3, the bytes hashed on a file store),
because a watermark that keeps vouching for a copy lost or altered since would be a false green. A lost
or damaged copy is repaired from the primary and named; one that cannot be is a problem naming the key.

What is copied is the version each window record names, never the key's current version: on S3 a
newer version can be put over a locked key, and only the recorded one is what the chain verified.
A replica holds the primary's root-relative keys (records name them, restore reads them), so it must
use the same key prefix; a replica whose prefix differs, or that lacks the Object Lock its
configuration requires, is refused before anything is copied.
"""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from .config import Config, RepositoryConfig
from .errors import ChecksumMismatch, ConfigError, ObjectExists, ObjectNotFound, StoreError
from .journal.codecs import ExportFormat
from .journal.layout import parse_data_object_key
from .journal.verify import BlockChecker, ChainChecker, ObjectRef, Problem, VerifyReport, verify_object
from .repository import (
    WINDOWS,
    Catalog,
    ObjectRecord,
    RecordCache,
    Watermark,
    WindowRecord,
    iso_ms,
    parse_iso,
    put_record,
    read_watermarks,
    read_windows,
    record_start,
    utcnow,
    write_watermark,
)
from .stores import (
    Location,
    Store,
    copy_object,
    copy_object_bytes,
    heal_object,
    object_lock_refusal,
    stored_sha256,
)


@dataclass
class ReplicateReport:
    repository: str
    copied: int = 0
    skipped: int = 0  # objects of the windows looked at that the replica already held
    windows_covered: int = 0  # windows under the replica's watermark: their copies re-checked, not re-verified
    rechecked: int = 0  # objects of those windows whose replica bytes were hashed again
    repaired: list[tuple[str, str]] = field(default_factory=list)  # (key, "missing" | "damaged") copied again
    bytes_copied: int = 0
    windows_verified: int = 0
    problems: list[Problem] = field(default_factory=list)
    watermark: Watermark | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ReplicateOptions:
    """How replica `name` is brought up to date: built once, by the CLI or a handler, from the configuration
    (`for_replica`). `retention` is how long copies and watermarks are retained from now; `concurrency` how
    many objects are copied at once."""

    name: str
    verify_only: bool = False
    concurrency: int = 8
    retention: timedelta = timedelta(days=30)
    require_object_lock: bool = False

    @classmethod
    def for_replica(cls, repo: RepositoryConfig, config: Config, *, verify_only: bool = False,
                    concurrency: int = 8) -> ReplicateOptions:
        return cls(repo.name, verify_only=verify_only, concurrency=concurrency,
                   retention=timedelta(days=config.backup.retention_days),
                   require_object_lock=repo.require_object_lock)


def replicate(primary: Location, replica: Location, options: ReplicateOptions, *, now: datetime | None = None,
              on_object: Callable[[str], None] | None = None, cache: RecordCache | None = None,
              on_total: Callable[[int], None] | None = None) -> ReplicateReport:
    """Bring replica `options.name` up to the primary's recorded windows, verify, and write a watermark.

    Idempotent and resumable. Every run re-checks the replica's copy of each object its watermark vouches for
    (the windows it verified before, their records included) against the sha256 recorded for it, by hashing
    the replica's bytes: a missing or damaged copy is copied again from the primary (`report.repaired`); with
    `verify_only`, or when the storage refuses, it is a Problem naming the key. A follower passes the same
    `cache` every round, so records and watermarks it has read are not fetched again until the listing shows
    them changed. Raises ConfigError, before anything is copied, when the replica's prefix differs from the
    primary's or (`require_object_lock`) its storage lacks Object Lock. Bad objects and records are not
    raised: each is a Problem in the report naming its key and block address, and the watermark stops before
    the first window that has one (and does not move while a vouched-for copy stays damaged).
    `on_total(n)` is told, once, how many objects this run re-checks or copies; `on_object(key)` each one done.
    """
    name, verify_only, concurrency = options.name, options.verify_only, options.concurrency
    refuse_unfit_replica(primary, replica, name, require_object_lock=options.require_object_lock)
    now = now or utcnow()
    retention = options.retention
    report = ReplicateReport(name)
    marks = read_watermarks(replica, name, cache=cache)
    last = marks[-1] if marks else None
    covered = set(last.windows_verified) if last else set()
    catalog = read_windows(primary, cache=cache)
    blocked_from = _unreadable_records(catalog.unreadable, report)
    pairs = list(zip(catalog.keys, catalog.windows, strict=True))
    vouched = [(k, w) for k, w in pairs if w.window_start in covered]
    report.windows_covered = len(vouched)
    rechecks = _jobs(vouched, catalog)
    fresh = [] if verify_only else [(k, w) for k, w in pairs if w.window_start not in covered]
    if on_total:
        on_total(len(rechecks) + sum(len(w.objects) + 1 for _, w in fresh))
    _recheck(primary, replica, rechecks, report, repair=not verify_only, concurrency=concurrency,
             retain_until=now + retention, on_object=on_object)
    with _CopyAhead(primary, replica, fresh, catalog, report, now + retention, on_object, concurrency) as copies:
        if any(p.kind in _DAMAGE for p in report.problems):
            copies.drain()
            report.watermark = last  # a vouched-for copy is still damaged: the watermark must not move past it
            return report
        _verify_and_mark(replica, name, last, catalog, report, now + retention, blocked_from, copies)
    return report


_DAMAGE = {"replica_missing", "replica_damaged"}


def _jobs(windows: list[tuple[str, WindowRecord]], catalog: Catalog) -> list[ObjectRecord]:
    """Every object a window vouches for on a replica: its recorded objects, and the record itself (with the
    sha256 of the primary's record bytes)."""
    jobs: list[ObjectRecord] = []
    for key, window in windows:
        jobs += window.objects
        jobs.append(ObjectRecord(key, 0, catalog.record_sha256.get(key, "")))
    return jobs


def refuse_unfit_replica(primary: Location, replica: Location, name: str, *, require_object_lock: bool) -> None:
    """Raise ConfigError naming every reason `replica` cannot mirror `primary` (none: return)."""
    problems = []
    if replica.prefix != primary.prefix:
        # Records name root-relative keys that include the primary's prefix, and restore reads exactly
        # those keys from the replica's root while it finds records under the replica's own prefix.
        problems.append(f"replica {name} ({replica.url}) has key prefix {replica.prefix!r}, the primary "
                        f"({primary.url}) has {primary.prefix!r}: the window records name keys under "
                        f"{primary.prefix!r}, so a replica must use the same prefix")
    if require_object_lock:
        refusal = object_lock_refusal(replica, name)
        if refusal:
            problems.append(refusal)
    if problems:
        raise ConfigError(f"refusing to replicate to {name}: " + "; ".join(problems),
                          hint="nothing was copied; fix the replica's url or bucket and run again")


def _unreadable_records(keys: list[str], report: ReplicateReport) -> datetime | None:
    """Report each window record the primary holds but this ledgerdr cannot read; the earliest such
    window's start (verification stops there: its blocks would look like a gap), or None."""
    starts = []
    for key in keys:
        report.problems.append(Problem("unreadable_record", key, None, "window record is not valid JSON or has "
                                       "a newer format_version; it is not copied, and no watermark passes it"))
        start = record_start(key)
        # a key that cannot be placed: verify nothing past the watermark
        starts.append(parse_iso(start) if start else datetime.min.replace(tzinfo=UTC))
    return min(starts, default=None)


# ------------------------------------------------------------------------------------------- copy


_AHEAD_BYTES = 64 * 1024 * 1024  # recorded bytes copied ahead of verification (at least one window is)


class _CopyAhead:
    """Copies the objects of `windows` (each window's recorded objects, then its record) on `pool`, window by
    window in the order verification takes them, at most `_AHEAD_BYTES` of recorded sizes ahead of it.

    `take(key)` waits for the copies of the window whose record is `key`, records each outcome in the report
    (in window order, as before copying and verifying overlapped) and gives the bytes that passed through this
    process, by key, so verification need not read back what was just written. `drain()` finishes every copy
    still to come (copying does not stop where verification does)."""

    def __init__(self, primary: Location, replica: Location, windows: list[tuple[str, WindowRecord]],
                 catalog: Catalog, report: ReplicateReport, retain_until: datetime,
                 on_object: Callable[[str], None] | None, concurrency: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        self._submit = lambda job: self._pool.submit(_copy_one, primary, replica, job, retain_until)
        self._waiting = deque((key, _jobs([(key, window)], catalog)) for key, window in windows)
        self._running: deque[tuple[str, list[tuple[ObjectRecord, Future[_Copied]]]]] = deque()
        self._untaken = {key for key, _ in windows}
        self._ahead = 0  # recorded bytes submitted and not yet taken
        self._report, self._on_object = report, on_object

    def take(self, key: str) -> dict[str, bytes]:
        """The bytes copied of window `key`'s objects, once all its copies are done (none when this run copies
        none of that window); windows before it are finished and their bytes dropped."""
        if key not in self._untaken:
            return {}
        while True:
            self._start()
            done, held = self._finish()
            if done == key:
                return held

    def drain(self) -> None:
        while self._waiting or self._running:
            self._start()
            self._finish()

    def __enter__(self) -> _CopyAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # an error left copies running: none outlives the run

    def _start(self) -> None:
        while self._waiting and (not self._running or self._ahead < _AHEAD_BYTES):
            key, jobs = self._waiting.popleft()
            self._running.append((key, [(job, self._submit(job)) for job in jobs]))
            self._ahead += sum(job.size for job in jobs)

    def _finish(self) -> tuple[str, dict[str, bytes]]:
        key, running = self._running.popleft()
        self._untaken.discard(key)
        report, held = self._report, {}
        for job, future in running:
            outcome, data = future.result()
            self._ahead -= job.size
            if isinstance(outcome, Problem):
                report.problems.append(outcome)
            elif outcome == 0:
                report.skipped += 1
            else:
                report.copied += 1
                report.bytes_copied += outcome
            if data is not None:
                held[job.key] = data
            if self._on_object:
                self._on_object(job.key)
        return key, held


def _recheck(primary: Location, replica: Location, jobs: list[ObjectRecord], report: ReplicateReport, *,
             repair: bool, concurrency: int, retain_until: datetime,
             on_object: Callable[[str], None] | None = None) -> None:
    """Hash the replica's copy of every object in `jobs`; copy a missing or damaged one again (`repair`)."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = pool.map(lambda job: _recheck_one(primary, replica, job, repair, retain_until), jobs)
        for job, outcome in zip(jobs, outcomes, strict=True):
            report.rechecked += 1
            if isinstance(outcome, Problem):
                report.problems.append(outcome)
            elif outcome is not None:
                report.repaired.append((job.key, outcome))
            if on_object:
                on_object(job.key)


def copy_damage(store: Store, obj: ObjectRecord) -> str | None:
    """What is wrong with `store`'s copy of `obj`: "missing", "damaged" (its bytes are not the recorded
    sha256), or None when it is intact. Raises StoreError when the copy cannot be read for another reason."""
    try:
        actual = stored_sha256(store, obj.key)
    except ObjectNotFound:
        return "missing"
    return None if not obj.sha256 or actual == obj.sha256 else "damaged"


def _recheck_one(primary: Location, replica: Location, obj: ObjectRecord, repair: bool,
                 retain_until: datetime) -> str | Problem | None:
    """None (intact), what was repaired ("missing" | "damaged"), or the Problem that is left."""
    where = _declared_blocks(obj.key)
    try:
        wrong = copy_damage(replica.store, obj)
    except StoreError as exc:
        return Problem("copy_failed", obj.key, where, f"cannot read the replica's copy: {exc}")
    if wrong is None:
        return None
    kind = f"replica_{wrong}"
    if not repair:
        return Problem(kind, obj.key, where, f"the replica's copy is {wrong} (recorded sha256 {obj.sha256}); "
                       "not repaired (--verify-only): `ledgerdr replicate` copies it again")
    try:
        if wrong == "damaged" and obj.sha256 and replica.store.properties.heals_in_place:
            heal_object(primary.store, replica.store, obj.key, sha256=obj.sha256, version_id=obj.version_id)
            return wrong
        if wrong == "damaged":  # bytes that are not the recorded ones are worth nothing; the primary has them
            replica.store.delete(obj.key)
        copy_object(primary.store, replica.store, obj.key, version_id=obj.version_id, sha256=obj.sha256 or None,
                    retain_until=retain_until)
    except StoreError as exc:
        return Problem(kind, obj.key, where, f"the replica's copy is {wrong} and cannot be repaired: {exc}")
    return wrong


_Copied = tuple[int | Problem, bytes | None]


def _copy_one(primary: Location, replica: Location, obj: ObjectRecord, retain_until: datetime) -> _Copied:
    """Bytes copied (0 = already there with the same checksum), or the Problem that stopped it; and the bytes
    written when they passed through this process (`copy_object_bytes`).

    Keys are root-relative in both stores: a replica mirrors the primary's layout. The copy is the
    recorded version (`obj.version_id`), retained at least as long as it is on the primary."""
    key, sha256 = obj.key, obj.sha256 or None
    where = _declared_blocks(key)
    try:
        existing = replica.store.head(key)
    except ObjectNotFound:
        existing = None
    except StoreError as exc:
        return Problem("copy_failed", key, where, f"cannot read the replica: {exc}"), None
    if existing is not None:
        if sha256 is None or existing.sha256 == sha256:
            return 0, None
        return Problem("replica_conflict", key, where, "the replica holds different bytes under this key; "
                       "write-once storage cannot fix it: investigate before trusting this replica"), None
    version = f"version {obj.version_id} of " if obj.version_id else ""
    try:
        copied, data = copy_object_bytes(primary.store, replica.store, key, version_id=obj.version_id,
                                         sha256=sha256, retain_until=retain_until)
    except ObjectExists:
        return 0, None  # a concurrent run copied it; verification below reads its bytes from the replica
    except ObjectNotFound as exc:
        return Problem("missing_object", key, where, f"the primary has no {version}this key: {exc}"), None
    except ChecksumMismatch as exc:
        return Problem("checksum_mismatch", key, where, f"the primary's {version}this object does not match the "
                       f"recorded sha256 (altered there, or damaged in transit); nothing was copied: {exc}"), None
    except StoreError as exc:
        return Problem("copy_failed", key, where, str(exc)), None
    return copied.size, data


def _declared_blocks(key: str) -> str | None:
    """The block range a data object's name declares, as verification names it; None for manifests."""
    name = parse_data_object_key(key)
    return f"{{sequenceNo:{name.first}..{name.last}}}" if name else None


# ------------------------------------------------------------------------------------------- verify


def _verify_and_mark(replica: Location, name: str, last: Watermark | None, catalog: Catalog,
                     report: ReplicateReport, retain_until: datetime, blocked_from: datetime | None,
                     copies: _CopyAhead) -> None:
    """Verify the windows the watermark does not vouch for yet, in order, each as soon as its copies are done,
    and write the watermark after the last window that verified, once every copy is done."""
    windows = catalog.windows
    verified = list(last.windows_verified) if last else []
    done = set(verified)
    pending = [(k, w) for k, w in zip(catalog.keys, windows, strict=True) if w.window_start not in done]
    chain = _seeded_chain(last)
    newest: WindowRecord | None = None
    tip = (chain.last_seq, chain.last_hash)  # of the last window that verified, never of a failed one
    problems: list[Problem] = []  # verification's, reported after every copy's outcome
    for key, window in pending:
        if blocked_from is not None and window.start >= blocked_from:
            break  # an unreadable record comes first (reported already)
        read, arrived = _reader(replica, copies.take(key))
        _check_bytes(read, key, catalog.record_sha256.get(key, ""), problems)
        _verify_window(replica, window, chain, problems, read, arrived)
        if problems:
            break  # no watermark passes a problem
        verified.append(window.window_start)
        done.add(window.window_start)
        report.windows_verified += 1
        newest = window
        tip = (chain.last_seq, chain.last_hash)
    copies.drain()
    report.problems.extend(problems)
    if newest is None:
        report.watermark = last
        return
    blocks_window = next((w for w in reversed(windows) if w.window_start in done and w.last_seq is not None), None)
    # no newly verified window holds a block: the newest block is the last watermark's (its record unread)
    block_time = blocks_window.last_block_time if blocks_window else last.last_block_time if last else None
    mark = Watermark(repository=name,
                     last_seq=tip[0] if tip[0] is not None else -1,
                     last_block_hash=base64.b64encode(tip[1] or b"").decode(),
                     last_block_time=block_time,
                     windows_verified=tuple(verified), verified_at=iso_ms(utcnow()))
    write_watermark(replica, mark, retain_until=retain_until) or _write_same_block(replica, mark, retain_until)
    report.watermark = mark


def _write_same_block(replica: Location, mark: Watermark, retain_until: datetime) -> bool:
    """Empty windows advance the verified time without a new block: such a watermark is keyed by
    the block and the newest window, so it is still a new object (write-once)."""
    key = replica.key(f"_ledgerdr/watermarks/{mark.repository}/{mark.last_seq:020d}-"
                      f"{mark.windows_verified[-1].replace(':', '').replace('-', '')}.json")
    try:
        put_record(replica, key, asdict(mark), retain_until=retain_until)
    except ObjectExists:
        return False
    return True


def _seeded_chain(last: Watermark | None) -> ChainChecker:
    report = VerifyReport()
    chain = ChainChecker(report, BlockChecker(report))
    if last is not None and last.last_seq >= 0:
        chain.last_seq = last.last_seq
        chain.last_hash = base64.b64decode(last.last_block_hash)
        chain.digest_valid = False
    return chain


def _reader(replica: Location, arrived: dict[str, bytes]) -> tuple[Callable[[str], bytes], dict[str, bytes]]:
    """A read of the replica that first gives (once) the bytes this run wrote there, and those bytes."""
    def read(key: str) -> bytes:
        data = arrived.pop(key, None)
        return replica.store.get(key) if data is None else data

    return read, dict(arrived)


def _verify_window(replica: Location, window: WindowRecord, chain: ChainChecker, problems: list[Problem],
                   read: Callable[[str], bytes], arrived: dict[str, bytes]) -> None:
    """Verify the objects of `window` as one stretch of `chain`, reading them with `read`; `arrived`: the keys
    this run wrote (so they exist)."""
    record_key = replica.key(WINDOWS + window.key_name)
    try:
        fmt = ExportFormat.parse(window.format)
    except ConfigError as exc:
        problems.append(Problem("wrong_format", record_key, f"{{sequenceNo:{window.first_seq}..{window.last_seq}}}",
                                f"window record names an unknown format: {exc}"))
        return
    data_objects = []
    for obj in window.objects:
        name = parse_data_object_key(obj.key)
        if name is None:
            _check_bytes(read, obj.key, obj.sha256, problems)
            continue
        exists = obj.key in arrived or replica.store.exists(obj.key)
        data_objects.append(ObjectRef(obj.key, obj.key if exists else None, fmt, name.first, name.last, obj.sha256))
    if chain.strand_id is None and window.source.get("strand_id"):
        chain.strand_id = window.source["strand_id"]
    for ref in sorted(data_objects, key=lambda r: (r.first, r.last)):
        verify_object(read, ref, chain, problems)
    if window.last_seq is not None and chain.last_seq != window.last_seq:
        problems.append(Problem("gap", record_key, f"{{sequenceNo:{window.last_seq}}}",
                                f"window {window.window_start} should end at block {window.last_seq}, the replica's "
                                f"copy ends at {chain.last_seq}"))


def _check_bytes(read: Callable[[str], bytes], key: str, sha256: str, problems: list[Problem]) -> None:
    try:
        data = read(key)
    except StoreError as exc:
        problems.append(Problem("missing_object", key, None, str(exc)))
        return
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        problems.append(Problem("checksum_mismatch", key, None, "replica bytes differ from the recorded sha256"))
