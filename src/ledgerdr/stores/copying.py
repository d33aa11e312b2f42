"""Copying one object between two stores: a free function over the `Store` interface (STYLE §1).

The version to copy is named explicitly. On S3 a key is not an object: a plain PutObject over a locked key
adds a newer version, so "the current version" may be bytes nobody recorded; a window record names the
version it verified, and that is the one a replica must receive.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from .base import ObjectInfo, Store
from .retrying import unwrap


def copy_object(source: Store, dest: Store, key: str, *, version_id: str | None = None, sha256: str | None = None,
                retain_until: datetime | None = None) -> ObjectInfo:
    """Copy `key` (its version `version_id`, where `source` keeps versions) to the same key in `dest`,
    put-if-absent, retained until the later of `retain_until` and the source object's own retention.

    Between two S3 stores the copy is server-side when S3 itself vouches that the source version's bytes
    have `sha256`; otherwise the bytes pass through this process and `dest.put` checks them against
    `sha256`. Not idempotent: a second call raises ObjectExists. Raises ObjectNotFound (no such key or
    version in `source`), ObjectExists, ChecksumMismatch (the source's bytes are not `sha256`: nothing is
    stored), and the rest of the StoreError family.
    """
    return copy_object_bytes(source, dest, key, version_id=version_id, sha256=sha256, retain_until=retain_until)[0]


def copy_object_bytes(source: Store, dest: Store, key: str, *, version_id: str | None = None,
                      sha256: str | None = None,
                      retain_until: datetime | None = None) -> tuple[ObjectInfo, bytes | None]:
    """`copy_object`, also giving the bytes it wrote when they passed through this process (None: S3 copied
    them server-side). They are the very bytes `dest.put` accepted after checking them against `sha256`, so a
    caller can verify them without reading the copy back (replicate does)."""
    if sha256 and source.properties.server_side_copy and dest.properties.server_side_copy:
        # botocore retries the server-side calls itself (so no retrying wrapper); a failure that outlasts them
        # reaches the caller. None: this pair cannot copy server-side (e.g. another kind of store).
        info = unwrap(dest).copy_from(source, key, version_id=version_id, sha256=sha256, retain_until=retain_until)
        if info is not None:
            return info, None
    version = (version_id or None) if source.properties.has_versions else None  # "" names no version
    head = source.head(key, version_id=version)
    data = source.get(key, version_id=version)
    until = retain_until
    floor = until or datetime.now(UTC)  # a lapsed source retention adds nothing (and put refuses past times)
    if head.retain_until is not None and head.retain_until > floor:
        until = head.retain_until
    return dest.put(key, data, retain_until=until, sha256=sha256), data


def heal_object(source: Store, dest: Store, key: str, *, sha256: str, version_id: str | None = None) -> ObjectInfo:
    """Put the recorded bytes back into `dest`'s damaged copy of `key`, read from `source` (its version
    `version_id`), where `dest` heals in place (`properties.heals_in_place`: the file store). Raises
    ChecksumMismatch (the source's bytes are not `sha256`, or `sha256` is not what `dest` recorded), ObjectExists
    (the copy is intact), ObjectNotFound and the rest of the StoreError family."""
    data = source.get(key, version_id=(version_id or None) if source.properties.has_versions else None)
    return unwrap(dest).heal(key, data, sha256=sha256)


def stored_sha256(store: Store, key: str) -> str:
    """The sha256 of the bytes `store` holds at `key` now (its current version), never taken from what a writer
    claimed: a HEAD where the storage vouches for its own checksum of the bytes (`checksum_on_head`: S3), else
    the bytes read and hashed (a file store's sidecar says what was written, not what is there after bit rot
    or an edit in place). What a replica's re-check compares with the sha256 its window record holds.
    Raises ObjectNotFound and the StoreError family."""
    if store.properties.checksum_on_head:
        vouched = store.head(key).content_sha256
        if vouched is not None:
            return vouched
    return hashlib.sha256(store.get(key)).hexdigest()
