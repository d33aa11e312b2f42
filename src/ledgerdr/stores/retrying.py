"""Cross-cutting store behaviour as wrappers (restic's habit): retries and metering, written once.

Every wrapper is itself a `Store` and keeps the wrapped one in `inner`; `unwrap` finds the backend.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from ..errors import ObjectExists, StoreUnavailable
from .base import ObjectInfo, Store

T = TypeVar("T")


class StoreWrapper:
    """Delegates every `Store` method to `inner`; subclasses override what they change."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.properties = inner.properties
        self.url = inner.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo:
        return self.inner.put(key, data, retain_until=retain_until, sha256=sha256)

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes:
        # version_id is passed only when set, so stores without versions need not accept it.
        extra = {"version_id": version_id} if version_id else {}
        return self.inner.get(key, start=start, end=end, **extra)

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        extra = {"version_id": version_id} if version_id else {}
        return self.inner.head(key, **extra)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def copy_from(
        self, source: Store, key: str, *, version_id: str | None, sha256: str, retain_until: datetime | None = None
    ) -> ObjectInfo | None:
        return self.inner.copy_from(source, key, version_id=version_id, sha256=sha256, retain_until=retain_until)

    def heal(self, key: str, data: bytes, *, sha256: str) -> ObjectInfo:
        return self.inner.heal(key, data, sha256=sha256)


def unwrap(store: Store) -> Store:
    """The backend under any number of wrappers."""
    while isinstance(store, StoreWrapper):
        store = store.inner
    return store


class RetryingStore(StoreWrapper):
    """Retries `StoreUnavailable` up to `attempts` times in all, with exponential backoff and full jitter
    (sleep uniform in [0, min(max_delay, base_delay * 2**n)]); every other error passes through at once.

    Two retries need care because the failed attempt may have acted before its reply was lost:
    - `put`: an `ObjectExists` on a retry is our own earlier write when the stored object has our size
      and sha256; it is then reported as success (put stays idempotent for its caller).
    - `list`: a listing that fails midway resumes after the last key yielded, without repeats.
    """

    def __init__(
        self,
        inner: Store,
        *,
        attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(inner)
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay
        self._sleep, self._rng = sleep, rng

    def _backoff(self, failures: int) -> None:
        self._sleep(self._rng() * min(self.max_delay, self.base_delay * 2 ** (failures - 1)))

    def _retry(self, call: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except StoreUnavailable:
                if attempt == self.attempts:
                    raise
                self._backoff(attempt)
        raise AssertionError("unreachable")

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo:
        tries = 0

        def attempt() -> ObjectInfo:
            nonlocal tries
            tries += 1
            try:
                return self.inner.put(key, data, retain_until=retain_until, sha256=sha256)
            except ObjectExists:
                mine = self._our_earlier_write(key, data) if tries > 1 else None
                if mine is None:
                    raise
                return mine

        return self._retry(attempt)

    def _our_earlier_write(self, key: str, data: bytes) -> ObjectInfo | None:
        info = self._retry(lambda: self.inner.head(key))
        same = info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
        return info if same else None

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes:
        return self._retry(lambda: super(RetryingStore, self).get(key, start=start, end=end, version_id=version_id))

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        return self._retry(lambda: super(RetryingStore, self).head(key, version_id=version_id))

    def exists(self, key: str) -> bool:
        return self._retry(lambda: self.inner.exists(key))

    def delete(self, key: str) -> None:
        self._retry(lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        last: bytes | None = None
        failures = 0
        while True:
            try:
                for info in self.inner.list(prefix):
                    if last is not None and info.key.encode() <= last:
                        continue  # yielded before the failure
                    yield info
                    last = info.key.encode()
                return
            except StoreUnavailable:
                failures += 1
                if failures == self.attempts:
                    raise
                self._backoff(failures)


class MeteredStore(StoreWrapper):
    """Counts objects and bytes read and written (for benchmarks and reports). Not thread-safe."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.objects_read = self.bytes_read = self.objects_written = self.bytes_written = 0

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo:
        info = self.inner.put(key, data, retain_until=retain_until, sha256=sha256)
        self.objects_written += 1
        self.bytes_written += len(data)
        return info

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes:
        data = super().get(key, start=start, end=end, version_id=version_id)
        self.objects_read += 1
        self.bytes_read += len(data)
        return data

    def counts(self) -> dict[str, int]:
        return {"objects_read": self.objects_read, "bytes_read": self.bytes_read,
                "objects_written": self.objects_written, "bytes_written": self.bytes_written}
