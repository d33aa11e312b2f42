"""The `Store` interface: bytes at keys, write-once, nothing more.

A store knows nothing about windows, chains or exports; helpers that do (`copy_object`,
`get_verified`) are free functions that take a store. Backends live one per file and raise only
the `StoreError` family from `ledgerdr.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..errors import StoreError

TEMP_SUFFIX = ".ledgerdr-tmp"
_BAD_SEGMENT = re.compile(r"^(|\.|\.\.)$")


@dataclass(frozen=True)
class StoreProperties:
    """What a backend can do, as data (restic's habit), so flows choose behaviour without isinstance."""

    name: str
    enforces_retention: bool  # deletes/overwrites under retention are refused by the storage itself
    server_side_copy: bool  # copy_object between two stores of this kind without moving bytes through us
    has_versions: bool  # objects carry a version id (S3)
    # `head` reports `content_sha256`: the storage's own checksum of the bytes it holds (S3's full-object
    # ChecksumSHA256, validated by S3 against the body on upload), so "are the bytes still X" costs a HEAD
    checksum_on_head: bool = False
    # `heal(key, data, sha256=)` puts back the bytes recorded for a key whose stored bytes no longer match the
    # sha256 recorded when it was written (bit rot, an edit in place); intact bytes are never replaced
    heals_in_place: bool = False
    # The S3 bucket the store's keys live in, for a service that writes into it itself (a QLDB export writes
    # straight to S3); None where the store is not an S3 bucket
    bucket: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str | None  # lowercase hex of the whole object, when the backend recorded it
    retain_until: datetime | None
    version_id: str | None = None
    storage_class: str | None = None
    # Changes whenever the object at `key` is replaced or rewritten (S3: ETag and LastModified; file: size,
    # mtime, ctime and inode). Lets a reader keep what it parsed from a write-once record between listings
    # (`repository.RecordCache`); None when the backend cannot tell, and then nothing may be kept.
    stamp: str | None = None
    # sha256 (hex) of the stored bytes as the storage computed and vouches for it; None where it keeps none
    # (a file store's sidecar, or S3's `sha256` metadata, says only what a writer claimed when writing)
    content_sha256: str | None = None


@runtime_checkable
class Store(Protocol):
    """Write-once object storage.

    Contract (checked by tests/test_store_contract.py on every backend):
    - `put` is put-if-absent: an existing key raises `ObjectExists`, and nothing changes.
      When `sha256` is given and the bytes do not match it, `ChecksumMismatch` is raised and
      nothing is stored. `retain_until` (UTC) forbids deletion before that time.
    - `get` raises `ObjectNotFound`; `start`/`end` select the byte range [start, end).
    - `get` and `head` take `version_id` (a version named by `head`) where `properties.has_versions`;
      every store accepts `version_id=None`.
    - `list(prefix)` yields ObjectInfo in UTF-8 byte order of keys; an empty prefix lists all. A listing
      fills key, size and stamp; sha256, retention and version come from `head`, which costs a request.
    - `delete` raises `RetentionViolation` before the object's retention ends.
    - Keys are relative, '/'-separated, with no empty, '.' or '..' segment and no temp suffix.
    - `version_id` selects a version where `properties.has_versions`; other stores ignore it.
    - `copy_from` is a server-side copy where `properties.server_side_copy`; it returns None, having written
      nothing, when it cannot copy this pair server-side (other stores always return None).
    - `heal` works where `properties.heals_in_place`; other stores raise StoreError.
    """

    properties: StoreProperties
    url: str

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo: ...

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes: ...

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def copy_from(
        self, source: Store, key: str, *, version_id: str | None, sha256: str, retain_until: datetime | None = None
    ) -> ObjectInfo | None:
        """Copy `key` (its version `version_id`) from `source` to the same key here without moving the bytes
        through this process, put-if-absent; None when this pair cannot (see `properties.server_side_copy`)."""
        ...

    def heal(self, key: str, data: bytes, *, sha256: str) -> ObjectInfo:
        """Put back the recorded bytes of a damaged object (see `properties.heals_in_place`)."""
        ...


def validate_key(store: str, key: str) -> str:
    """Refuse keys that could escape the root or collide with in-flight temp files."""
    if not isinstance(key, str) or not key:
        raise StoreError(store, str(key), "validate", "empty key")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise StoreError(store, key, "validate", "key must be relative and use '/' separators")
    if key.endswith(TEMP_SUFFIX):
        raise StoreError(store, key, "validate", f"keys may not end with {TEMP_SUFFIX}")
    for segment in key.split("/"):
        if _BAD_SEGMENT.match(segment):
            raise StoreError(store, key, "validate", "empty, '.' or '..' path segment")
    return key


def validate_prefix(store: str, prefix: str) -> str:
    """A list prefix may be empty or end in '/', otherwise it follows the key rules."""
    if prefix:
        validate_key(store, prefix.rstrip("/") or "x")
    return prefix
