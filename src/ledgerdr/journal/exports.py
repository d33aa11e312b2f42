"""Reading exports as QLDB writes them: manifests, key resolution, object order, and `verify_location`.

Works on any export under any prefix — QLDB's own, the reference architecture's hourly ones with
overlaps and holes, or ledgerdr's — and never assumes ledgerdr's records exist.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import StoreError
from ..stores.base import Store
from .codecs import DecodeError, ExportFormat, read_ion_value
from .layout import ExportRef, StartedManifest, discover_exports, key_candidates, parse_data_object_key
from .verify import ObjectRef, Problem, VerifyReport, verify_objects


@dataclass
class LoadedExport:
    ref: ExportRef
    manifest: StartedManifest | None
    fmt: ExportFormat
    objects: list[ObjectRef] = field(default_factory=list)
    complete: bool = False


@dataclass(frozen=True)
class RecordedExports:
    """What a ledgerdr repository's window records say about the exports under it (built by
    `repository.recorded_exports`; None for raw QLDB exports, which have no records)."""

    attempts: frozenset[str]  # the export attempt folders records name (their `export_prefix`)
    sha256: Mapping[str, str]  # every recorded object's key -> the sha256 recorded for it
    problems: tuple[Problem, ...] = ()  # unreadable records, breaks in the record chain


@dataclass
class ExportPlan:
    exports: list[LoadedExport]
    objects: list[ObjectRef]  # every data object, ordered by declared block range
    problems: list[Problem]
    orphans: list[dict[str, Any]] = field(default_factory=list)  # {key, age_seconds, reason}: attempts no record names

    def keep(self) -> Callable[[int], bool]:
        """Which sequence numbers more than one object declares (their hashes must be compared)."""
        return _overlap_ranges(self.objects)


def load_export(store: Store, ref: ExportRef, location_prefix: str, problems: list[Problem],
                expected: Mapping[str, str] | None = None) -> LoadedExport:
    manifest = None
    if ref.started_key is None:
        problems.append(Problem("manifest_missing", ref.directory + ref.export_id + ".started.manifest", None,
                                "started manifest is missing"))
    else:
        manifest = _read_started(store, ref.started_key, ref.export_id, problems)
    fmt = manifest.format if manifest else ExportFormat.ION_TEXT
    loaded = LoadedExport(ref, manifest, fmt)
    if not ref.completed_keys:
        problems.append(Problem("export_incomplete", ref.started_key, None,
                                f"export {ref.export_id} has no completed manifest (still running, failed or cancelled)"))
        return loaded
    manifest_prefix = manifest.prefix if manifest else ref.directory
    for _strand, key in sorted(ref.completed_keys.items()):
        keys = _read_completed(store, key, problems)
        if keys is None:
            continue
        loaded.complete = True
        for data_key in keys:
            loaded.objects.append(_object_ref(store, data_key, ref.directory, location_prefix, manifest_prefix,
                                              fmt, expected))
    return loaded


def _read_started(store: Store, key: str, export_id: str, problems: list[Problem]) -> StartedManifest | None:
    try:
        manifest = StartedManifest.from_ion(read_ion_value(store.get(key)))
    except (StoreError, DecodeError, KeyError, TypeError, AttributeError) as exc:
        problems.append(Problem("manifest_invalid", key, None, f"cannot read started manifest: {exc}"))
        return None
    if manifest.export_id != export_id:
        problems.append(Problem("manifest_invalid", key, None,
                                f"manifest names export {manifest.export_id}, its key names {export_id}"))
    try:
        manifest.format  # noqa: B018 - validates outputFormat
    except Exception as exc:
        problems.append(Problem("wrong_format", key, None, str(exc)))
        return None
    return manifest


def _read_completed(store: Store, key: str, problems: list[Problem]) -> list[str] | None:
    try:
        value = read_ion_value(store.get(key))
        keys = [str(k) for k in value["keys"]]
    except (StoreError, DecodeError, KeyError, TypeError) as exc:
        problems.append(Problem("manifest_invalid", key, None, f"cannot read completed manifest: {exc}"))
        return None
    return keys


def _object_ref(store: Store, key: str, directory: str, location_prefix: str, manifest_prefix: str,
                fmt: ExportFormat, expected: Mapping[str, str] | None) -> ObjectRef:
    resolved = next((k for k in key_candidates(key, directory, location_prefix, manifest_prefix)
                     if _exists(store, k)), None)
    name = parse_data_object_key(key)
    object_fmt = ExportFormat.JSON if name and name.extension == "json" and fmt.is_ion else fmt
    sha = (expected or {}).get(resolved or key) or (expected or {}).get(key)
    return ObjectRef(key, resolved, object_fmt, name.first if name else None, name.last if name else None, sha)


def _exists(store: Store, key: str) -> bool:
    try:
        return store.exists(key)
    except StoreError:
        return False


def plan_location(store: Store, prefix: str = "", *, export_id: str | None = None,
                  expected: Mapping[str, str] | None = None, recorded: RecordedExports | None = None,
                  now: datetime | None = None) -> ExportPlan:
    """Every export below `prefix` (or just `export_id`), its objects ordered by block range.

    With `recorded` (a ledgerdr repository), only the attempts its records name are planned, each object
    expected to have its recorded sha256; every other attempt is an orphan (a failed or superseded run's
    leftover that write-once storage keeps): listed with its age and why it is not recorded, not verified."""
    problems: list[Problem] = []
    refs = [r for r in discover_exports(store, prefix) if export_id is None or r.export_id == export_id]
    if export_id is not None and not refs:
        problems.append(Problem("export_missing", prefix or None, None, f"no export {export_id} under this location"))
    orphans: list[dict[str, Any]] = []
    if recorded is not None:
        expected = {**recorded.sha256, **(expected or {})}
        orphans = [_orphan(store, ref, prefix, now or datetime.now(UTC)) for ref in refs
                   if ref.directory not in recorded.attempts]
        refs = [ref for ref in refs if ref.directory in recorded.attempts]
    exports = [load_export(store, ref, prefix, problems, expected) for ref in refs]
    ordered: list[tuple[tuple[int, int, int, int], ObjectRef]] = []
    for export_index, export in enumerate(exports):
        position = -1
        for object_index, obj in enumerate(export.objects):
            first = obj.first if obj.first is not None else position + 1
            position = obj.last if obj.last is not None else first
            ordered.append(((first, position, export_index, object_index), obj))
    ordered.sort(key=lambda item: item[0])
    return ExportPlan(exports, [obj for _, obj in ordered], problems, orphans)


def _orphan(store: Store, ref: ExportRef, prefix: str, now: datetime) -> dict[str, Any]:
    """An attempt no record names: its folder, its age (since the end of the window it was exporting, which
    it started after: an upper bound) and why it is not recorded, from what loading it finds."""
    found: list[Problem] = []
    loaded = load_export(store, ref, prefix, found)
    kinds = {p.kind for p in found}
    if "export_incomplete" in kinds:
        reason = "incomplete: started, never completed (a run killed, out of space or failed)"
    elif found:
        reason = "unreadable: " + "; ".join(sorted(kinds))
    else:
        reason = "complete, but no window record names it (its run stopped before recording, or lost the race)"
    end = loaded.manifest.exclusive_end_time if loaded.manifest else None
    age = round((now - end).total_seconds(), 3) if isinstance(end, datetime) and end.tzinfo else None
    return {"key": ref.started_key or ref.directory, "age_seconds": age, "reason": reason}


def verify_location(
    store: Store,
    prefix: str = "",
    *,
    export_id: str | None = None,
    strict: bool = False,
    check_revisions: bool = True,
    expected: Mapping[str, str] | None = None,
    on_object: Callable[[ObjectRef, int], None] | None = None,
    fuse_json: bool = True,
    recorded: RecordedExports | None = None,
    use_native: bool = True,
    digest_at: Collection[int] = (),
) -> VerifyReport:
    """Verify every export under the location as one chain (CONTRACTS §6). Never raises on bad data.
    `fuse_json=False` checks chain-only JSON block by block, `use_native=False` Ion binary without the C
    verifier (the fast paths' references, for tests and benchmarks).

    With `recorded` (the location is a ledgerdr repository), in every mode each recorded object's bytes are
    checked against the sha256 its window record holds (manifests included, and bytes no QLDB hash covers,
    such as field names), the record chain's breaks are problems, and unrecorded attempts are orphans
    (`report.orphans`), not problems. `digest_at`: keep the ledger digest at these blocks
    (`report.digests_at`, see `verify_objects`)."""
    plan = plan_location(store, prefix, export_id=export_id, expected=expected, recorded=recorded)
    report = VerifyReport(exports=len(plan.exports), orphans=plan.orphans)
    report.problems.extend(plan.problems)
    if recorded is not None:
        report.problems.extend(recorded.problems)
        _check_recorded_manifests(store, plan, recorded, report)
    verify_objects(store.get, plan.objects, report, strict=strict, check_revisions=check_revisions,
                   keep=plan.keep(), on_object=on_object, fuse_json=fuse_json, use_native=use_native,
                   digest_at=digest_at)
    if not plan.exports and not plan.problems:
        report.problems.append(Problem("no_exports", prefix or None, None,
                                       f"no export (no *.started.manifest) under {store.url}/{prefix}"))
    return report


def _check_recorded_manifests(store: Store, plan: ExportPlan, recorded: RecordedExports,
                              report: VerifyReport) -> None:
    """Each recorded object of the planned exports that is not a data object (the manifests) against its
    recorded sha256; data objects are checked as they are verified."""
    data = {obj.resolved_key for obj in plan.objects} | {obj.key for obj in plan.objects}
    folders = tuple(export.ref.directory for export in plan.exports)
    for key, sha in sorted(recorded.sha256.items()):
        if key in data or not key.startswith(folders):
            continue
        try:
            actual = hashlib.sha256(store.get(key)).hexdigest()
        except StoreError as exc:
            report.problems.append(Problem("missing_object", key, None, f"recorded object cannot be read: {exc}"))
            continue
        if actual != sha:
            report.problems.append(Problem("checksum_mismatch", key, None,
                                           "object bytes do not match the sha256 recorded for them"))


def _overlap_ranges(objects: list[ObjectRef]) -> Callable[[int], bool]:
    ranges: list[tuple[int, int]] = []
    reach = -1
    for obj in objects:
        if obj.first is None or obj.last is None:
            continue
        if obj.first <= reach:
            start, end = obj.first, min(obj.last, reach)
            if ranges and start <= ranges[-1][1] + 1:  # merge, so the ranges stay disjoint for bisect
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
            else:
                ranges.append((start, end))
        reach = max(reach, obj.last)
    if not ranges:
        return lambda seq: False
    starts = [r[0] for r in ranges]

    def keep(seq: int) -> bool:
        i = bisect.bisect_right(starts, seq) - 1
        return i >= 0 and ranges[i][0] <= seq <= ranges[i][1]

    return keep
