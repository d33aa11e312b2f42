"""QLDB's id shape: 22 Base62 characters. Two kinds, one alphabet.

`new_id` is uniformly random (export, strand and transaction ids of written journals); `time_ordered_id`
starts with the current millisecond, for ids the embedded ledger uses as SQLite keys.
"""

from __future__ import annotations

import os
import secrets
import time

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random octets below 248 = 4 × 62 map uniformly onto Base62 characters; the rest are dropped.
_TO_BASE62 = bytes(ord(_BASE62[b % 62]) for b in range(256))
_ABOVE_248 = bytes(range(248, 256))

_time_prefix: tuple[int, str] = (-1, "")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def new_id() -> str:
    """A 22-character Base62 id, uniformly random: the shape of QLDB's export, transaction and document ids."""
    return _base62(int.from_bytes(secrets.token_bytes(17), "big"), 22)  # 136 bits > 22 base-62 digits' 131


def time_ordered_id() -> str:
    """A 22-character Base62 id: 8 characters of the current millisecond, then 14 uniformly random ones
    (~83 random bits per millisecond). Drawn on the commit path, so cheap.

    Time-ordered, like a UUIDv7: documents, history and transactions are keyed by these ids in SQLite
    B-trees, and ids that grow with time append to the right edge of those trees instead of landing on
    random pages. With random ids a 40-document commit dirtied ~270 pages, with these ~90 (the write
    benchmark's main cost). Base62's alphabet is in ASCII order, so text order is time order."""
    global _time_prefix
    ms = time.time_ns() // 1_000_000
    if ms != _time_prefix[0]:
        _time_prefix = (ms, _base62(ms, 8))
    while True:
        # 24 octets leave fewer than 14 below 248 with probability ~1e-9; then draw again.
        tail = os.urandom(24).translate(_TO_BASE62, _ABOVE_248)
        if len(tail) >= 14:
            return _time_prefix[1] + tail[:14].decode("ascii")
