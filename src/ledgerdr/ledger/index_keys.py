"""Equality keys of the embedded ledger's indexes: the bytes `index_entries` stores for a field's value, so
that values PartiQL's `=` holds equal share a key. Used by the engine (its statements and commits) and by a
restore target (which reads keys straight from stored bytes where it can, `targets/embedded.py`)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from amazon.ion.simple_types import IonPyBool, IonPyNull
from amazon.ion.symbols import SymbolToken


def index_key(value: Any) -> bytes | None:
    """The equality key of a top-level field value, or None when the value cannot equal anything.

    Values that PartiQL `=` holds equal must get the same key (1 = 1.0 = 1e0; a symbol equals the
    string with its text; timestamps compare by instant). Unequal values may collide: the engine
    re-checks the whole WHERE clause on every candidate, so a collision costs time, never correctness.
    """
    if value is None or isinstance(value, IonPyNull):
        return None
    return _bounded(_canonical(value))


def text_index_key(utf8: bytes) -> bytes:
    """`index_key` of a string given as its UTF-8 bytes (a field read straight from stored Ion): equal to
    `index_key(utf8.decode())`, without decoding and encoding it again."""
    return _bounded(b"t" + utf8)


def _bounded(key: bytes) -> bytes:
    return key if len(key) <= 64 else b"h" + hashlib.sha256(key).digest()


def _canonical(value: Any) -> bytes:
    if value is None or isinstance(value, IonPyNull):
        return b"z"
    if isinstance(value, (bool, IonPyBool)):  # before int: both are int subclasses
        return b"b1" if value else b"b0"
    if isinstance(value, (int, float, Decimal)):
        return _number_key(value)
    if isinstance(value, SymbolToken):
        return b"t" + (value.text or "").encode()
    if isinstance(value, str):
        return b"t" + value.encode()
    if isinstance(value, datetime):
        instant = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return b"d" + instant.astimezone(UTC).isoformat().encode()
    if isinstance(value, (bytes, bytearray)):
        return b"x" + bytes(value)
    if hasattr(value, "items"):
        parts = sorted(
            _canonical(k if isinstance(k, str) else getattr(k, "text", k)) + b"=" + _canonical(v)
            for k, v in value.items()
        )
        return b"{" + _joined(parts) + b"}"
    if isinstance(value, (list, tuple)):
        return b"[" + _joined([_canonical(v) for v in value]) + b"]"
    return b"?" + repr(value).encode()


def _joined(parts: Iterable[bytes]) -> bytes:
    # Length-prefix each part so that nesting can never make two different containers collide oddly.
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _number_key(value: int | float | Decimal) -> bytes:
    # Exactly equal numbers of any type convert to the same double, so keying on it makes them collide;
    # distinct numbers that round to the same double merely share a key.
    try:
        as_float = float(value)
    except OverflowError:
        as_float = float("inf") if value > 0 else float("-inf")
    if as_float == 0.0:
        as_float = 0.0  # -0.0 equals 0
    return b"n" + repr(as_float).encode()
