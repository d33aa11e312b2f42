"""QLDB's export layout: manifest and data-object keys, manifest contents, and export discovery.

Keys follow reference §1.2–1.4 exactly, so that AWS's own readers (and ours) read exports from
QLDB and from the embedded ledger alike. A reader takes a data object's block range from the
*second-to-last* dot-separated part of its name: the samples' `split(".")[1]` breaks on dotted
prefixes (reference §1.4 pitfall 1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..stores.base import Store
from .codecs import ExportFormat

STARTED_SUFFIX = ".started.manifest"
COMPLETED_SUFFIX = ".completed.manifest"
_DATA_NAME = re.compile(r"^(?P<strand>[^./]+)\.(?P<first>\d+)-(?P<last>\d+)\.(?P<ext>[A-Za-z0-9]+)$")



def normalize_prefix(prefix: str) -> str:
    """'' stays ''; anything else ends with exactly one '/' (reference §1.1, writer's rule)."""
    return prefix.rstrip("/") + "/" if prefix.strip("/") else ""


def started_manifest_key(prefix: str, export_id: str) -> str:
    return f"{normalize_prefix(prefix)}{export_id}{STARTED_SUFFIX}"


def completed_manifest_key(prefix: str, export_id: str, strand_id: str) -> str:
    return f"{normalize_prefix(prefix)}{export_id}.{strand_id}{COMPLETED_SUFFIX}"


def data_object_key(prefix: str, strand_id: str, first: int, last: int, fmt: ExportFormat, hour: datetime) -> str:
    """`<prefix>yyyy/mm/dd/hh/<strandId>.<first>-<last>.<ext>`; the hour is the UTC hour of the first block."""
    return f"{normalize_prefix(prefix)}{hour:%Y/%m/%d/%H}/{strand_id}.{first}-{last}.{fmt.extension}"


@dataclass(frozen=True)
class DataObjectName:
    strand_id: str
    first: int
    last: int
    extension: str


def parse_data_object_key(key: str) -> DataObjectName | None:
    """The strand and inclusive block range a data object's name declares, or None if it has none."""
    match = _DATA_NAME.match(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return DataObjectName(match["strand"], int(match["first"]), int(match["last"]), match["ext"])


@dataclass(frozen=True)
class StartedManifest:
    ledger_name: str
    export_id: str
    inclusive_start_time: Any
    exclusive_end_time: Any
    bucket: str
    prefix: str
    object_encryption_type: str = "NO_ENCRYPTION"
    output_format: str | None = None  # present only when the request named it (reference §1.2)

    @property
    def format(self) -> ExportFormat:
        return ExportFormat.parse(self.output_format)

    def to_ion(self) -> dict[str, Any]:
        value = {
            "ledgerName": self.ledger_name,
            "exportId": self.export_id,
            "inclusiveStartTime": self.inclusive_start_time,
            "exclusiveEndTime": self.exclusive_end_time,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "objectEncryptionType": self.object_encryption_type,
        }
        if self.output_format is not None:
            value["outputFormat"] = self.output_format
        return value

    @classmethod
    def from_ion(cls, value: Mapping[str, Any]) -> StartedManifest:
        return cls(
            ledger_name=str(value.get("ledgerName", "")),
            export_id=str(value["exportId"]),
            inclusive_start_time=value.get("inclusiveStartTime"),
            exclusive_end_time=value.get("exclusiveEndTime"),
            bucket=str(value.get("bucket", "")),
            prefix=str(value.get("prefix", "")),
            object_encryption_type=str(value.get("objectEncryptionType", "NO_ENCRYPTION")),
            output_format=None if value.get("outputFormat") is None else str(value["outputFormat"]),
        )


@dataclass
class ExportRef:
    """One export found under a location: its manifests' keys (not yet read)."""

    export_id: str
    directory: str  # the key prefix the manifests sit under
    started_key: str | None = None
    completed_keys: dict[str, str] = field(default_factory=dict)  # strandId -> key


def discover_exports(store: Store, prefix: str = "") -> list[ExportRef]:
    """Every export whose manifests lie anywhere below `prefix`, ordered by directory then id.

    Matching is by suffix, so exports written by QLDB under any prefix, with or without a trailing
    slash, are found. A listing with no objects gives an empty list (reference defect 2).
    """
    found: dict[tuple[str, str], ExportRef] = {}
    for info in store.list(prefix):
        directory, _, name = info.key.rpartition("/")
        directory = directory + "/" if directory else ""
        if name.endswith(STARTED_SUFFIX):
            export_id = name[: -len(STARTED_SUFFIX)]
            _ref(found, directory, export_id).started_key = info.key
        elif name.endswith(COMPLETED_SUFFIX):
            export_id, _, strand = name[: -len(COMPLETED_SUFFIX)].rpartition(".")
            if export_id:
                _ref(found, directory, export_id).completed_keys[strand] = info.key
    return [found[k] for k in sorted(found)]


def _ref(found: dict[tuple[str, str], ExportRef], directory: str, export_id: str) -> ExportRef:
    return found.setdefault((directory, export_id), ExportRef(export_id, directory))


def key_candidates(key: str, manifest_directory: str, location_prefix: str, manifest_prefix: str) -> Iterable[str]:
    """Where a manifest key may live (CONTRACTS §1), in order; callers take the first that exists.

    As given; re-rooted from the manifest's recorded prefix onto the directory the manifest was
    found in (a local copy of any part of a bucket); re-rooted onto the location's prefix; relative
    to the manifest's directory (the docs' example keys carry no prefix); the location's prefix + key.
    """
    seen: set[str] = set()
    manifest_prefix = normalize_prefix(manifest_prefix)
    options = [key]
    if manifest_prefix and key.startswith(manifest_prefix):
        rest = key[len(manifest_prefix) :]
        options += [manifest_directory + rest, location_prefix + rest]
    options += [manifest_directory + key, location_prefix + key]  # keys relative to the export prefix (docs' example)
    for option in options:
        if option and option not in seen:
            seen.add(option)
            yield option
