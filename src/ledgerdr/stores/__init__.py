"""Storage: the `Store` protocol, its backends, and locations (a store plus a prefix).

`open_location("s3://bucket/p/")` or `open_location("/d/p")` is the one way flows get a store; the
backend comes wrapped in `RetryingStore`. The S3 backend is imported only when an s3:// location is
opened, so file-only use does not load boto3.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..errors import (
    AccessDenied,
    ChecksumMismatch,
    ConfigError,
    ObjectExists,
    ObjectNotFound,
    RetentionViolation,
    StoreError,
    StoreUnavailable,
)
from .base import TEMP_SUFFIX, ObjectInfo, Store, StoreProperties, validate_key, validate_prefix
from .copying import copy_object, copy_object_bytes, heal_object, stored_sha256
from .file import FileStore
from .retrying import MeteredStore, RetryingStore, StoreWrapper, unwrap

if TYPE_CHECKING:
    from ..signing import RecordSigner
    from .s3 import Finding

__all__ = [
    "TEMP_SUFFIX", "AccessDenied", "ChecksumMismatch", "ConfigError", "FileStore", "Location", "MeteredStore",
    "ObjectExists", "ObjectInfo", "ObjectNotFound", "RetentionViolation", "RetryingStore", "Store",
    "StoreError", "StoreProperties", "StoreUnavailable", "StoreWrapper", "copy_object", "copy_object_bytes",
    "heal_object",
    "object_lock_refusal",
    "open_location", "open_store", "parse_location", "stored_sha256", "unwrap", "validate_key", "validate_prefix",
]


@dataclass(frozen=True)
class Location:
    """A store root plus a key prefix ("" or ending in exactly one "/"). `signer`, when set, signs every
    record ledgerdr writes there (`repository.put_record`; docs/format.md, "Signed records")."""

    store: Store
    prefix: str
    signer: RecordSigner | None = field(default=None, compare=False, repr=False)

    def key(self, rel: str) -> str:
        """The root-relative key of `rel` under this location; raises StoreError for an invalid key."""
        return validate_key(self.store.url, self.prefix + rel)

    def folder(self, rel: str) -> str:
        """The root-relative prefix of folder `rel` (ending in '/') under this location, for `list`."""
        return validate_prefix(self.store.url, self.prefix + rel)

    @property
    def url(self) -> str:
        return self.store.url.rstrip("/") + "/" + self.prefix if self.prefix else self.store.url


def object_lock_refusal(location: Location, repository: str, findings: list[Finding] | None = None) -> str | None:
    """Why `location` cannot serve repository `repository`, configured with `require_object_lock`; None when
    it can. S3: the bucket's Object Lock, as `ledgerdr check` sees it (`findings` reuses its preflight).
    Other stores: they must enforce retention themselves. The one check `check` and `replicate` share."""
    if unwrap(location.store).properties.name == "s3":
        from .s3 import object_lock_required

        finding = object_lock_required(location.store, repository, findings)
        return None if finding.level == "ok" else finding.message
    if location.store.properties.enforces_retention:
        return None
    return (f"repository {repository} requires Object Lock, and {location.url} does not enforce retention "
            "(its lock_mode is off)")


def parse_location(url: str) -> tuple[str, str, str]:
    """Split a location into (kind, root, prefix) per CONTRACTS §1; raises ConfigError.

    `s3://bucket/p/` → ("s3", "bucket", "p/"); `file:///d/p` or `/d/p` → ("file", "/d/p", "").
    A relative path is made absolute against the current directory.
    """
    if "://" not in url:
        if not url:
            raise ConfigError("empty location")
        return "file", os.path.abspath(url), ""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"location {url!r}: file URLs name no host (use file:///path)")
        return "file", os.path.abspath(unquote(parts.path) or "/"), ""
    if scheme == "s3":
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise ConfigError(f"location {url!r} names no bucket")
        prefix = prefix.strip("/")
        prefix = prefix + "/" if prefix else ""
        try:
            validate_prefix(url, prefix)
        except StoreError as exc:
            raise ConfigError(f"location {url!r}: prefix {prefix!r} is not a valid key prefix") from exc
        return "s3", bucket, prefix
    raise ConfigError(f"location {url!r}: unknown scheme {scheme!r} (use s3://bucket/prefix/ or a path)")


def open_store(url: str, *, retry_attempts: int = 5, **options: Any) -> Store:
    """The backend at the root of `url`, wrapped in RetryingStore. `options` go to the backend
    (FileStore: lock_mode; S3Store: client, region, endpoint_url, lock_mode, sse, kms_key_id, role_arn,
    multipart_threshold). Raises ConfigError for an unknown scheme or option, or when `url` has a prefix
    (a store has none: use open_location)."""
    kind, root, prefix = parse_location(url)
    if prefix:
        raise ConfigError(f"location {url!r} has a prefix; open it with open_location")
    return RetryingStore(_backend(kind, root, options), attempts=retry_attempts)


def open_location(url: str, *, retry_attempts: int = 5, **options: Any) -> Location:
    """`open_store` for the root of `url`, plus its prefix. Raises ConfigError."""
    kind, root, prefix = parse_location(url)
    root_url = f"s3://{root}" if kind == "s3" else root
    return Location(open_store(root_url, retry_attempts=retry_attempts, **options), prefix)


def _backend(kind: str, root: str, options: dict[str, Any]) -> Store:
    if kind == "s3":
        from .s3 import S3Store  # boto3 loads only when an S3 location is used

        cls: type = S3Store
    else:
        cls = FileStore
    accepted = set(inspect.signature(cls).parameters) - {"root", "bucket"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"option(s) {', '.join(unknown)} do not apply to {kind} stores "
                          f"(accepted: {', '.join(sorted(accepted))})")
    store: Store = cls(root, **options)
    return store
