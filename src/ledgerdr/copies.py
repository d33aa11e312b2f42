"""Re-checking replica copies with memory, for a process that checks the same replicas over and over.

`status` (and with it every scrape of `ledgerdr metrics`) hashes again every copy a replica's watermark
vouches for: on a file store that reads every byte of the replica, each time (S3 vouches for its own
checksum on HEAD, `stores.copying.stored_sha256`, so there it costs a HEAD per object). A metrics server
scraped every 15 s would re-read the whole replica four times a minute. `CheckedCopies` keeps, per copy
found intact, the storage's stamp of it (file: size, mtime, ctime, inode; S3: ETag and LastModified) and
when it was hashed: while a HEAD shows the same stamp and the hash is younger than `max_age`, the copy
counts as intact without being read. Anything else (a new stamp, a missing copy, an old hash, a copy
found damaged) is hashed as `status` does.

What it gives up: damage that changes no stamp (bit rot below the file system, which leaves mtime and
ctime alone) is seen within `max_age` instead of at the next scrape. `status`, `replicate` and `verify`
keep hashing every copy on every run; only a long-running metrics server uses this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import ObjectNotFound
from .replicate import copy_damage
from .repository import ObjectRecord
from .stores import Store


class CheckedCopies:
    """`replicate.copy_damage` with memory of the copies found intact (see the module docstring). Thread-safe:
    a metrics server answers scrapes on several threads."""

    def __init__(self, max_age: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age, self.clock = max_age, clock
        self._intact: dict[tuple[str, str, str], tuple[str, float]] = {}  # (store, key, sha256) -> (stamp, when)
        self._lock = threading.Lock()

    def damage(self, store: Store, obj: ObjectRecord) -> str | None:
        """"missing", "damaged" or None (intact), as `copy_damage`; raises the StoreError family as it does."""
        known = (store.url, obj.key, obj.sha256)
        try:
            stamp = store.head(obj.key).stamp
        except ObjectNotFound:
            stamp = None
        with self._lock:
            seen = self._intact.get(known)
        if stamp is not None and seen is not None and seen[0] == stamp and self.clock() - seen[1] < self.max_age:
            return None
        hashed_at = self.clock()
        was = copy_damage(store, obj)
        with self._lock:
            if was is None and stamp is not None:
                self._intact[known] = (stamp, hashed_at)
            else:
                self._intact.pop(known, None)
        return was
