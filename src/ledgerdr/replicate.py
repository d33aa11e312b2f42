"""The replicate flow: copy what a replica lacks, verify what arrived, advance its watermark.

Copying is skipped where a replica already holds an object with the recorded checksum, so an
interrupted run resumes where it stopped. Verification at the destination never trusts the copy
(nor S3 replication, with `verify_only`): every object is re-read from the replica, checked
against the window record's sha256, and its blocks verified as a chain continuing from the
replica's last watermark — incremental, so its cost follows what is new. A watermark never
passes a missing, altered or late object.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import ObjectExists, ObjectNotFound, StoreError
from .journal.codecs import ExportFormat
from .journal.layout import parse_data_object_key
from .journal.verify import BlockChecker, ChainChecker, ObjectRef, Problem, VerifyReport, verify_object
from .repository import (
    WINDOWS,
    Watermark,
    WindowRecord,
    iso_ms,
    read_watermarks,
    read_windows,
    utcnow,
    write_watermark,
)
from .stores import Location


@dataclass
class ReplicateReport:
    repository: str
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    windows_verified: int = 0
    problems: list[Problem] = field(default_factory=list)
    watermark: Watermark | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def replicate(primary: Location, replica: Location, name: str, *, verify_only: bool = False,
              concurrency: int = 8, retention: timedelta = timedelta(days=30),
              now: datetime | None = None, on_object: Callable[[str], None] | None = None) -> ReplicateReport:
    """Bring replica `name` up to the primary's recorded windows, verify, and write a watermark."""
    now = now or utcnow()
    report = ReplicateReport(name)
    windows = read_windows(primary).windows
    if not verify_only:
        _copy_all(primary, replica, windows, report, concurrency, now + retention, on_object)
    _verify_and_mark(replica, name, windows, report, now + retention)
    return report


# ------------------------------------------------------------------------------------------- copy


def _copy_all(primary: Location, replica: Location, windows: list[WindowRecord], report: ReplicateReport,
              concurrency: int, retain_until: datetime, on_object: Callable[[str], None] | None) -> None:
    jobs: list[tuple[str, str | None]] = []
    for window in windows:
        jobs += [(o.key, o.sha256) for o in window.objects]
        jobs.append((primary.key(WINDOWS + window.key_name), None))
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for key, outcome in zip((k for k, _ in jobs), pool.map(
                lambda job: _copy_one(primary, replica, job[0], job[1], retain_until), jobs), strict=True):
            if isinstance(outcome, Problem):
                report.problems.append(outcome)
            elif outcome == 0:
                report.skipped += 1
            else:
                report.copied += 1
                report.bytes_copied += outcome
            if on_object:
                on_object(key)


def _copy_one(primary: Location, replica: Location, key: str, sha256: str | None,
              retain_until: datetime) -> int | Problem:
    """Bytes copied (0 = already there with the same checksum), or the Problem that stopped it.

    Keys are root-relative in both stores: a replica mirrors the primary's layout."""
    try:
        existing = replica.store.head(key)
    except ObjectNotFound:
        existing = None
    if existing is not None:
        if sha256 is None or existing.sha256 == sha256:
            return 0
        return Problem("replica_conflict", key, None, "the replica holds different bytes under this key; "
                       "write-once storage cannot fix it: investigate before trusting this replica")
    try:
        data = primary.store.get(key)
    except StoreError as exc:
        return Problem("missing_object", key, None, f"cannot read from the primary: {exc}")
    source_until = _retain_until(primary, key)
    until = max(retain_until, source_until) if source_until else retain_until
    try:
        replica.store.put(key, data, retain_until=until, sha256=sha256)
    except ObjectExists:
        return 0  # a concurrent run copied it; verification below checks its bytes
    except StoreError as exc:
        return Problem("copy_failed", key, None, str(exc))
    return len(data)


def _retain_until(location: Location, key: str) -> datetime | None:
    try:
        return location.store.head(key).retain_until
    except StoreError:
        return None


# ------------------------------------------------------------------------------------------- verify


def _verify_and_mark(replica: Location, name: str, windows: list[WindowRecord], report: ReplicateReport,
                     retain_until: datetime) -> None:
    marks = read_watermarks(replica, name)
    last = marks[-1] if marks else None
    verified = list(last.windows_verified) if last else []
    pending = [w for w in windows if w.window_start not in set(verified)]
    chain = _seeded_chain(last)
    newest: WindowRecord | None = None
    for window in pending:
        problems: list[Problem] = []
        _verify_window(replica, window, chain, problems)
        if problems:
            report.problems.extend(problems)
            break  # no watermark passes a problem
        verified.append(window.window_start)
        report.windows_verified += 1
        newest = window
    if newest is None:
        report.watermark = last
        return
    blocks_window = next((w for w in reversed(windows) if w.window_start in set(verified) and w.last_seq is not None),
                         None)
    mark = Watermark(repository=name,
                     last_seq=chain.last_seq if chain.last_seq is not None else -1,
                     last_block_hash=base64.b64encode(chain.last_hash or b"").decode(),
                     last_block_time=blocks_window.last_block_time if blocks_window else None,
                     windows_verified=tuple(verified), verified_at=iso_ms(utcnow()))
    write_watermark(replica, mark, retain_until=retain_until) or _write_same_block(replica, mark, retain_until)
    report.watermark = mark


def _write_same_block(replica: Location, mark: Watermark, retain_until: datetime) -> bool:
    """Empty windows advance the verified time without a new block: such a watermark is keyed by
    the block and the newest window, so it is still a new object (write-once)."""
    key = replica.key(f"_ledgerdr/watermarks/{mark.repository}/{mark.last_seq:020d}-"
                      f"{mark.windows_verified[-1].replace(':', '').replace('-', '')}.json")
    try:
        replica.store.put(key, mark.to_bytes(), retain_until=retain_until)
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


def _verify_window(replica: Location, window: WindowRecord, chain: ChainChecker, problems: list[Problem]) -> None:
    record_key = replica.key(WINDOWS + window.key_name)
    if not replica.store.exists(record_key):
        problems.append(Problem("missing_object", record_key, None, "window record has not arrived"))
    fmt = ExportFormat.parse(window.format)
    data_objects = []
    for obj in window.objects:
        name = parse_data_object_key(obj.key)
        if name is None:
            _check_bytes(replica, obj.key, obj.sha256, problems)
            continue
        exists = replica.store.exists(obj.key)
        data_objects.append(ObjectRef(obj.key, obj.key if exists else None, fmt, name.first, name.last, obj.sha256))
    if chain.strand_id is None and window.source.get("strand_id"):
        chain.strand_id = window.source["strand_id"]
    for ref in sorted(data_objects, key=lambda r: (r.first, r.last)):
        verify_object(replica.store.get, ref, chain, problems)
    if window.last_seq is not None and chain.last_seq != window.last_seq:
        problems.append(Problem("gap", record_key, f"{{sequenceNo:{window.last_seq}}}",
                                f"window {window.window_start} should end at block {window.last_seq}, the replica's "
                                f"copy ends at {chain.last_seq}"))


def _check_bytes(replica: Location, key: str, sha256: str, problems: list[Problem]) -> None:
    import hashlib

    try:
        data = replica.store.get(key)
    except StoreError as exc:
        problems.append(Problem("missing_object", key, None, str(exc)))
        return
    if hashlib.sha256(data).hexdigest() != sha256:
        problems.append(Problem("checksum_mismatch", key, None, "replica bytes differ from the recorded sha256"))
