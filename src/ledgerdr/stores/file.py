"""A `Store` on a local (or mounted) directory: write-once files with retention recorded beside them.

Layout under `root`:
- `<key>` — the object, read-only (0444) once written;
- `.ledgerdr-meta/objects/<h[:2]>/<h>.meta.json` (h = sha256 of the key) — JSON sidecar with the object's
  key, sha256 and retain-until (sidecar format 2). Named so that no tool takes it for an object: format 1
  mirrored the object tree under the objects' own names (`.ledgerdr-meta/objects/<key>`), so
  `find -name '*.manifest'` or a sync of the folder to S3 picked up decoys that are not QLDB manifests.
  Hashed and flat, as the locks: a `<key>.meta.json` beside the mirrored tree would collide with a key
  such as `a.meta.json/b`. Format-1 sidecars are still read (a repository written before keeps working);
  a new put writes format 2;
- `.ledgerdr-meta/locks/<h[:2]>/<h>` (h = sha256 of the key) — per-key flock files, flat so that a lock
  left by a deleted `a` never blocks a later `a/b`;
- `<dir>/<name>.<pid>.<random>.ledgerdr-tmp` — in-flight temp files; a crash can leave one behind.
`list` never yields the hidden directory or temp files, and keys under `.ledgerdr-meta/` are refused.

Retention on a file system is enforced against ledgerdr (and anyone using this class), not against a root
user: it is a guard against mistakes, while S3 Object Lock is the guard against an attacker.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

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

META_DIR = ".ledgerdr-meta"
_FORMAT_VERSION = 2  # of the sidecar; 2: hashed `.meta.json` names, 1: the object's own key (still read)
SIDECAR_SUFFIX = ".meta.json"
# errno values of a network file system that may succeed when tried again (NFS server restart, timeout).
_TRANSIENT_ERRNOS = {errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN, errno.EINTR}
# errno values telling that the file system cannot hard-link (FAT, some FUSE and SMB mounts).
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


# --- helpers shared by the backends (s3.py imports them; they would sit well in base.py) ---------------


def checked_sha256(store: str, key: str, data: bytes, expected: str | None) -> str:
    """Lowercase hex sha256 of `data`; raises `ChecksumMismatch` when `expected` is given and differs."""
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and expected.lower() != digest:
        raise ChecksumMismatch(
            store, key, "put", f"expected sha256 {expected}, bytes have {digest}",
            hint="the data changed between hashing and writing; nothing was stored",
        )
    return digest


def future_utc(store: str, key: str, when: datetime | None) -> datetime | None:
    """`when` in UTC (a naive datetime is taken as UTC, as botocore does); refuses a time in the past.

    A past retain-until is refused on every backend (S3 refuses it too): it almost always means a local
    time was passed where UTC was meant, and would silently leave the object unprotected.
    """
    if when is None:
        return None
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if utc <= datetime.now(UTC):
        raise StoreError(store, key, "put", f"retain_until {utc.isoformat()} is not in the future")
    return utc


def checked_range(store: str, key: str, start: int | None, end: int | None) -> tuple[int, int | None]:
    """Normalise a [start, end) byte range; both ends are optional and must not be negative.

    Ranges follow Python slice rules on every backend: an end past the object is clamped, a start at or
    past the end gives b"".
    """
    lo = 0 if start is None else start
    if lo < 0 or (end is not None and end < 0):
        raise StoreError(store, key, "get", f"invalid byte range [{start}, {end})")
    return lo, end


def is_valid_key(store: str, key: str) -> bool:
    """False for names ledgerdr could not have written (non-UTF-8, "a//b" from another tool)."""
    try:
        key.encode()
        validate_key(store, key)
    except (UnicodeEncodeError, StoreError):
        return False
    return True


def unusable_root(root: Path | str, *, create: bool) -> str | None:
    """Why a directory store cannot live at `root`, or None (issue 16 item 12).

    Never the root of the file system (a backup wrote exports/, _ledgerdr/ and .ledgerdr-meta/ into `/`),
    never an existing file. With `create` (a store about to be written), a missing root must be creatable:
    its nearest existing ancestor is a directory this process may write into."""
    path = Path(os.path.realpath(root))
    if path.parent == path:
        return f"{path} is the root of the file system; use a directory of its own"
    if path.exists():
        return None if path.is_dir() else f"{path} is a file, not a directory"
    if not create:
        return None
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{path} cannot be created: {ancestor} is a file"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {ancestor} is not writable"
    return None


# --- the backend -------------------------------------------------------------------------------------------


class FileStore:
    """Write-once objects under `root`. See the module docstring for the layout.

    `lock_mode` "compliance" (default) refuses deletes before retain-until; None records retention but does
    not enforce it (then `properties.enforces_retention` is False). Works on a root that does not exist yet
    (it is created on the first put). Raises ConfigError for the file system's root or a file (see
    `unusable_root`). POSIX only (hard links and flock).
    """

    def __init__(self, root: Path | str, *, lock_mode: str | None = "compliance") -> None:
        if lock_mode is not None and lock_mode.lower() != "compliance":
            raise ConfigError(f"file store lock_mode must be 'compliance' or None, not {lock_mode!r}")
        refusal = unusable_root(root, create=False)
        if refusal:
            raise ConfigError(f"a file store cannot live at {root}: {refusal}")
        self.root = Path(os.path.abspath(root))
        self.lock_mode = None if lock_mode is None else "compliance"
        self.url = self.root.as_uri()
        self._resolved_root: Path | None = None  # `_real_root`
        self.properties = StoreProperties(
            "file", enforces_retention=self.lock_mode is not None, server_side_copy=False, has_versions=False,
            heals_in_place=True,
        )

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r}, lock_mode={self.lock_mode!r})"

    # --- Store protocol ----------------------------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo:
        """Write `data` at `key` if the key is free; raises ObjectExists (nothing changes), ChecksumMismatch.

        Crash-safe: the object appears complete or not at all. The sidecar is written before the object
        is linked into place, so a visible object always has its retention recorded.
        """
        path = self._path(key)
        digest = checked_sha256(self.url, key, data, sha256)
        until = future_utc(self.url, key, retain_until)
        with self._os_errors("put", key), self._key_lock(key):
            self._refuse_taken(path, key)
            self._make_dirs(path.parent, key)
            tmp = self._write_temp(path, data)
            try:
                self._write_meta(key, {"size": len(data), "sha256": digest, "retain_until": until})
                self._place(tmp, path, key)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        return ObjectInfo(key, len(data), digest, until)

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes:
        """Bytes [start, end) of `key`; raises ObjectNotFound. `version_id` is ignored: one version per key."""
        path = self._path(key)
        lo, hi = checked_range(self.url, key, start, end)
        with self._os_errors("get", key):
            try:
                handle = open(path, "rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ObjectNotFound(self.url, key, "get") from None
            with handle:
                handle.seek(lo)
                return handle.read() if hi is None else handle.read(max(0, hi - lo))

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Size (actual), sha256 and retain-until (as recorded at write time); raises ObjectNotFound.
        `version_id` is ignored, as in `get`.

        An object copied in without a sidecar (e.g. `aws s3 sync`) reports sha256 and retain_until None.
        """
        path = self._path(key)
        with self._os_errors("head", key):
            return self._info(key, path)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        with self._os_errors("exists", key):
            return path.is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, in UTF-8 byte order; empty for a missing root or prefix.
        Key, size and stamp only, as S3 lists them: sha256 and retention live in a sidecar per object, and
        reading thousands of those made every listing of a long history slow (use `head`)."""
        validate_prefix(self.url, prefix)
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        self._inside_root(start, prefix)
        root = str(self.root)  # plain strings: a listing of thousands of records must not cost a Path each
        with self._os_errors("list", prefix):
            keys = sorted((k for k in self._walk(start) if k.startswith(prefix)), key=str.encode)
            for key in keys:
                try:
                    yield self._info(key, f"{root}/{key}", with_sidecar=False)
                except ObjectNotFound:
                    continue  # deleted while we listed

    def copy_from(
        self, source: Store, key: str, *, version_id: str | None, sha256: str, retain_until: datetime | None = None
    ) -> ObjectInfo | None:
        """No server-side copy (`server_side_copy` False): None, and the caller copies through get and put."""
        return None

    def heal(self, key: str, data: bytes, *, sha256: str) -> ObjectInfo:
        """Put back the bytes recorded for `key` where the file no longer holds them (bit rot, an edit in
        place, a lost file): `data` must hash to `sha256`, which must be what the sidecar recorded when the
        object was written, and the file must not. Write-once holds: only bytes that are not the recorded
        object are replaced, only by the recorded object, and its retention stays as recorded. Raises
        ObjectExists (the object is intact: nothing is written), ChecksumMismatch (`data` or `sha256` is not
        what was recorded), StoreError (no sidecar: what was recorded is unknown). Atomic (temp + rename).
        """
        path = self._path(key)
        digest = checked_sha256(self.url, key, data, sha256)
        with self._os_errors("heal", key), self._key_lock(key):
            recorded, _ = self._read_meta(key)
            if recorded is None:
                raise StoreError(self.url, key, "heal", "no sidecar records what this object's bytes were")
            if recorded != digest:
                raise ChecksumMismatch(self.url, key, "heal", f"the object was recorded as sha256 {recorded}, "
                                       f"the bytes offered are {digest}")
            try:
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                current = None
            if current == recorded:
                raise ObjectExists(self.url, key, "heal", hint="the object is intact: nothing to heal")
            self._make_dirs(path.parent, key)
            tmp = self._write_temp(path, data)
            try:
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        return self._info(key, path)

    def delete(self, key: str) -> None:
        """Remove `key`; raises ObjectNotFound, RetentionViolation before retain-until (when enforcing)."""
        path = self._path(key)
        with self._os_errors("delete", key), self._key_lock(key):
            info = self._info(key, path)
            if self.lock_mode and info.retain_until and info.retain_until > datetime.now(UTC):
                raise RetentionViolation(
                    self.url, key, "delete", f"retained until {info.retain_until.isoformat()}",
                    hint="write-once storage: the object can be removed only after its retention ends",
                )
            path.unlink()
            for meta in self._meta_paths(key):
                _unlink_file(meta)
            _fsync_dir(path.parent)

    # --- paths -------------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        validate_key(self.url, key)
        if key.split("/", 1)[0] == META_DIR:
            raise StoreError(self.url, key, "validate", f"{META_DIR}/ is reserved for ledgerdr's metadata")
        path = self.root / key
        self._inside_root(path, key)
        return path

    def _inside_root(self, path: Path, key: str) -> None:
        # validate_key stops '..'; this stops a symlinked directory inside the root pointing elsewhere.
        if self._no_symlink_below_root(path):
            return
        if not path.resolve().is_relative_to(self._real_root()):
            raise StoreError(self.url, key, "validate", "key resolves outside the store root")

    def _no_symlink_below_root(self, path: Path) -> bool:
        """True when no existing part of `path` below the root is a symlink, so that `path` resolves inside the
        root without resolving it: one lstat per part below the root, where `resolve` took one per part of
        the whole path (and most of the time of a put or a get)."""
        parts = path.relative_to(self.root).parts
        current = str(self._real_root())
        for part in parts:
            current = f"{current}/{part}"
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return True  # nothing below exists: it cannot lead elsewhere
            if stat.S_ISLNK(mode):
                return False  # resolve it, and see where it leads
        return True

    def _real_root(self) -> Path:
        """The root with its symlinks resolved, cached once the root exists (every key's path is checked
        against it; resolving the root again for every key doubled the cost of that check)."""
        real = self._resolved_root
        if real is None:
            real = self.root.resolve()
            if self.root.is_dir():
                self._resolved_root = real
        return real

    def _meta_path(self, key: str) -> Path:
        """Where a sidecar of this version is written (format 2)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / META_DIR / "objects" / digest[:2] / f"{digest}{SIDECAR_SUFFIX}"

    def _meta_paths(self, key: str) -> tuple[Path, Path]:
        """Where a sidecar of `key` may be, newest format first: format 2, then format 1 (the key itself)."""
        return self._meta_path(key), self.root / META_DIR / "objects" / key

    # --- writing -----------------------------------------------------------------------------------------

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """Serialise writers of one key across processes; the kernel drops the lock if a writer dies."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        lock_path = self.root / META_DIR / "locks" / digest[:2] / digest
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            # no fsync of a new lock directory: a lock file needs no durability (a crash drops every flock
            # anyway), yet a first copy into an empty replica paid one fsync of `locks/` for nearly every object
            os.makedirs(lock_path.parent, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _refuse_taken(self, path: Path, key: str) -> None:
        if path.is_dir():
            raise StoreError(self.url, key, "put", "a directory of other keys occupies this key on a file store")
        if path.exists():
            raise ObjectExists(self.url, key, "put", hint="write-once storage never overwrites; use a new key")

    def _make_dirs(self, directory: Path, key: str) -> None:
        """Create missing parents, fsyncing each new entry's parent so the path survives a power loss."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:  # another writer made it meanwhile, or it is a file
                if not new.is_dir():
                    raise StoreError(self.url, key, "put", f"{new.name!r} is an object, not a directory") from None
                continue
            _fsync_dir(new.parent)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        """A durable, read-only copy of `data` beside `path`, under a name no other writer uses."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
                handle.flush()
            os.fchmod(fd, 0o444)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def _write_meta(self, key: str, fields: dict[str, Any]) -> None:
        """Replace the sidecar atomically. Under the key lock with the key absent, any old sidecar is a
        leftover of a writer that crashed before linking its object, so replacing it is safe."""
        until = fields["retain_until"]
        record = {
            "format_version": _FORMAT_VERSION,
            "key": key,
            "size": fields["size"],
            "sha256": fields["sha256"],
            "retain_until": None if until is None else until.isoformat(),
            "lock_mode": self.lock_mode,
            "written_at": datetime.now(UTC).isoformat(),
        }
        meta = self._meta_path(key)
        self._make_dirs(meta.parent, key)
        tmp = self._write_temp(meta, json.dumps(record, sort_keys=True).encode())
        os.replace(tmp, meta)
        _fsync_dir(meta.parent)

    def _place(self, tmp: Path, path: Path, key: str) -> None:
        """Give `tmp` its final name without ever replacing an existing file.

        os.link fails with EEXIST when the name is taken, even by a writer outside our lock (another tool,
        another host on NFS), so put-if-absent holds. Where hard links are unsupported, an O_EXCL
        placeholder claims the name and os.replace fills it atomically.
        """
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            self._meta_path(key).unlink(missing_ok=True)  # the sidecar we wrote describes our bytes, not theirs
            raise ObjectExists(self.url, key, "put", hint="another writer created the key first") from None
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
        except FileExistsError:
            self._meta_path(key).unlink(missing_ok=True)
            raise ObjectExists(self.url, key, "put", hint="another writer created the key first") from None
        os.replace(tmp, path)

    # --- reading -----------------------------------------------------------------------------------------

    def _info(self, key: str, path: Path | str, *, with_sidecar: bool = True) -> ObjectInfo:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.url, key, "head") from None
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(self.url, key, "head", "a directory, not an object")
        sha256, until = self._read_meta(key) if with_sidecar else (None, None)
        # ctime moves on every write and cannot be set back (utime sets only mtime): an in-place rewrite of
        # the same size, as tampering or `faults.flip_byte` does, still changes the stamp.
        stamp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
        return ObjectInfo(key, st.st_size, sha256, until, stamp=stamp)

    def _read_meta(self, key: str) -> tuple[str | None, datetime | None]:
        for meta in self._meta_paths(key):
            try:
                data = meta.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue  # a format-1 path that is a directory: the sidecars of keys under `key/`
            try:
                record = orjson.loads(data)
            except ValueError as exc:
                raise StoreError(
                    self.url, key, "head", f"unreadable metadata {meta.relative_to(self.root)}: {exc}",
                    hint="the sidecar was altered; verify the object against the window record",
                ) from None
            break
        else:
            return None, None
        until = record.get("retain_until")
        return record.get("sha256"), None if until is None else datetime.fromisoformat(until)

    def _walk(self, start: Path) -> Iterator[str]:
        """Root-relative keys of regular files under `start`, skipping metadata, temp files, symlinks and
        names that are not valid keys (non-UTF-8, backslashes): they cannot be ledgerdr's. Unreadable or
        missing directories are passed over, as `os.walk` does; `scandir` spares a stat per file."""
        rel_top = Path(start).relative_to(self.root).as_posix()
        rel_top = "" if rel_top == "." else rel_top
        if rel_top.split("/", 1)[0] == META_DIR:  # a prefix that starts inside the metadata
            return
        pending = [(str(start), rel_top)]
        while pending:
            directory, rel_dir = pending.pop()
            try:
                with os.scandir(directory) as entries:
                    found = list(entries)
            except OSError:
                continue
            for entry in found:
                key = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if rel_dir or entry.name != META_DIR:
                        pending.append((entry.path, key))
                elif not entry.is_symlink() and not entry.name.endswith(TEMP_SUFFIX) and is_valid_key(self.url, key):
                    yield key

    @contextmanager
    def _os_errors(self, op: str, key: str) -> Iterator[None]:
        """Translate OSError into the StoreError family, keeping the address (store, key, op)."""
        try:
            yield
        except PermissionError as exc:
            raise AccessDenied(
                self.url, key, op, exc.strerror or str(exc),
                hint=f"check the permissions of {exc.filename or self.root}",
            ) from exc
        except OSError as exc:
            error = StoreUnavailable if exc.errno in _TRANSIENT_ERRNOS else StoreError
            raise error(self.url, key, op, f"{exc.strerror or exc} ({exc.filename})") from exc


def _unlink_file(path: Path) -> None:
    """Remove a sidecar if it is there (a format-1 path may be a directory of other keys' sidecars)."""
    try:
        path.unlink()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass


def _fsync_dir(directory: Path) -> None:
    """Make a directory entry change durable; a no-op where directories cannot be fsynced."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
