"""Deterministic fault injection for tests (borg's `corrupt()`): damage real objects, or wrap a real store.

`flip_byte` and `truncate` alter a FileStore's object in place, deliberately getting past its read-only
mode and leaving the recorded sha256 untouched, as bit rot or tampering would. `FaultyStore` wraps any
store and loses objects, shortens reads or fails transiently, without touching what is stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ..errors import ObjectNotFound, StoreUnavailable
from .base import ObjectInfo, Store, validate_key
from .file import FileStore
from .retrying import StoreWrapper


def _object_path(root: FileStore | Path | str, key: str) -> Path:
    base = root.root if isinstance(root, FileStore) else Path(root)
    path = base / validate_key(str(base), key)
    if not path.is_file():
        raise ObjectNotFound(str(base), key, "fault", "no such object to damage")
    return path


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    mode = path.stat().st_mode
    path.chmod(mode | 0o200)
    try:
        yield
    finally:
        path.chmod(mode)


def flip_byte(root: FileStore | Path | str, key: str, offset: int = 0) -> int:
    """Invert every bit of the byte at `offset` (negative counts from the end) of `key` under `root`.

    Returns the absolute offset changed; raises IndexError outside the object, ObjectNotFound.
    """
    path = _object_path(root, key)
    size = path.stat().st_size
    at = offset + size if offset < 0 else offset
    if not 0 <= at < size:
        raise IndexError(f"offset {offset} outside {key} ({size} bytes)")
    with _writable(path), open(path, "r+b") as handle:
        handle.seek(at)
        byte = handle.read(1)[0]
        handle.seek(at)
        handle.write(bytes([byte ^ 0xFF]))
    return at


def truncate(root: FileStore | Path | str, key: str, length: int) -> None:
    """Cut `key` under `root` to `length` bytes (a torn write); raises ObjectNotFound."""
    path = _object_path(root, key)
    with _writable(path):
        os.truncate(path, length)


class FaultyStore(StoreWrapper):
    """A real store that misbehaves on purpose.

    - `drop_keys`: get/head raise ObjectNotFound, exists is False, list omits them (a lost object);
    - `short_read_keys`: get returns the first half of what the store returned (a short read);
    - `fail_times`: the first that many calls of any method raise StoreUnavailable before acting;
    - `lost_replies`: the first that many puts and deletes act, then raise StoreUnavailable (the reply was
      lost after the store did the work, as when a connection drops);
    - `break_list_after`: the first listing raises StoreUnavailable after yielding that many objects.
    `calls` counts every method call, failed or not.
    """

    def __init__(
        self,
        inner: Store,
        *,
        drop_keys: Iterable[str] = (),
        short_read_keys: Iterable[str] = (),
        fail_times: int = 0,
        lost_replies: int = 0,
        break_list_after: int | None = None,
    ) -> None:
        super().__init__(inner)
        self.drop_keys, self.short_read_keys = frozenset(drop_keys), frozenset(short_read_keys)
        self.fail_times, self.lost_replies, self.break_list_after = fail_times, lost_replies, break_list_after
        self.calls = 0

    def _enter(self, op: str, key: str) -> None:
        self.calls += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise StoreUnavailable(self.url, key, op, "injected transient failure")

    def _lose_reply(self, op: str, key: str) -> None:
        if self.lost_replies > 0:
            self.lost_replies -= 1
            raise StoreUnavailable(self.url, key, op, "injected lost reply (the operation was done)")

    def _refuse_dropped(self, op: str, key: str) -> None:
        if key in self.drop_keys:
            raise ObjectNotFound(self.url, key, op, "injected loss")

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo:
        self._enter("put", key)
        info = self.inner.put(key, data, retain_until=retain_until, sha256=sha256)
        self._lose_reply("put", key)
        return info

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes:
        self._enter("get", key)
        self._refuse_dropped("get", key)
        data = super().get(key, start=start, end=end, version_id=version_id)
        return data[: len(data) // 2] if key in self.short_read_keys else data

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        self._enter("head", key)
        self._refuse_dropped("head", key)
        return super().head(key, version_id=version_id)

    def exists(self, key: str) -> bool:
        self._enter("exists", key)
        return key not in self.drop_keys and self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._enter("list", prefix)
        limit, self.break_list_after = self.break_list_after, None
        for count, info in enumerate(i for i in self.inner.list(prefix) if i.key not in self.drop_keys):
            if limit is not None and count == limit:
                raise StoreUnavailable(self.url, info.key, "list", "injected failure in the middle of a listing")
            yield info

    def delete(self, key: str) -> None:
        self._enter("delete", key)
        self._refuse_dropped("delete", key)
        self.inner.delete(key)
        self._lose_reply("delete", key)
