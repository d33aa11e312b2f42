"""Decoding Ion that comes from outside (exports, snapshots, manifests, clients' parameters) without hanging.

amazon.ion's C extension (0.15) can loop forever on damaged Ion binary: a single flipped byte in a local
symbol table did it for about 1 flip in 30 in a fuzz of small documents, and a tampering test that met one
stalled a CI run. amazon.ion's pure-Python reader raises an IonException on the same bytes. So binary from
outside reaches the C extension only once our own reader (`ionread.binary_ion_hash`, C or Python, fuzzed
against amazon.ion) has walked every value in it; anything it does not read goes to the pure-Python reader,
slower but never stuck. Ion text is passed through (fuzzed the same way, it never stalled).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeGuard

from amazon.ion import simpleion
from amazon.ion.exceptions import IonException
from amazon.ion.simpleion import IonPyValueModel

from .ionread import binary_ion_hash
from .ionwrite import IVM

__all__ = ["binary_segments", "iter_binary_values", "iter_values", "load_value", "load_value_hashed", "load_walked",
           "walked"]


def walked(data: bytes) -> bool:
    """True when our reader reads every top-level value of the Ion binary `data` (so it is well formed)."""
    return _all_walked(binary_segments(data))


def _all_walked(segments: list[bytes] | None) -> bool:
    return segments is not None and all(binary_ion_hash(segment) is not None for segment in segments)


def load_value(data: bytes | str, *, value_model: IonPyValueModel = IonPyValueModel.ION_PY) -> Any:
    """One Ion value, as `simpleion.loads` gives it; Ion binary our reader declines is decoded in Python
    (IonPy values then, whatever `value_model`: they hash alike). Damage raises IonException."""
    return load_value_hashed(data, value_model=value_model)[0]


def load_value_hashed(data: bytes | str, *,
                      value_model: IonPyValueModel = IonPyValueModel.ION_PY) -> tuple[Any, bytes | None]:
    """`load_value`, with the Ion Hash our reader computed on the way when `data` is Ion binary it reads
    (None otherwise): the walk that guards amazon.ion's C reader already yields the hash, so a caller
    that needs both (the served ExecuteStatement) reads the bytes once."""
    if not _is_binary(data):
        return simpleion.loads(data, value_model=value_model), None
    value_hash = binary_ion_hash(data)
    if value_hash is not None:
        return _loads_walked(data, value_model), value_hash
    with _as_ion_error():
        return simpleion.load_python(io.BytesIO(data)), None


def load_walked(data: bytes) -> Any:
    """`load_value(data)` of Ion binary our reader has already walked (its Ion Hash came out not None), without
    walking it again: IonPy values, IonException as `simpleion.loads` raises it."""
    return _loads_walked(data, IonPyValueModel.ION_PY)


# amazon.ion's C reader, when simpleion uses it (it does unless the extension failed to build)
_IONC = getattr(simpleion, "ionc", None) if simpleion.c_ext and getattr(
    simpleion, "__IS_C_EXTENSION_SUPPORTED", False) else None


def _loads_walked(data: bytes, value_model: IonPyValueModel) -> Any:
    """`simpleion.loads(data)` for binary our reader walked, straight to the C reader: what `loads` adds
    around it (a BytesIO, then two generator-based context managers) costs a third of a small value's
    decode, and a served ExecuteStatement decodes one per parameter. Same outcomes as `loads`: None for an
    empty stream, IonException for a second value or for nesting past the recursion limit."""
    if _IONC is None:
        return simpleion.loads(data, value_model=value_model)
    try:
        values = _IONC.ionc_read(io.BytesIO(data), value_model=value_model.value, text_buffer_size_limit=None)
        value = next(values, None)
        if next(values, _END) is not _END:
            raise IonException("Stream contained more than 1 values; expected a single value.")
    except RecursionError as exc:
        raise IonException("Container nesting exceeded the maximum supported recursion depth.") from exc
    return value


_END = object()


def iter_values(data: bytes | str, *, value_model: IonPyValueModel = IonPyValueModel.ION_PY) -> Iterator[Any]:
    """Every top-level value of a stream, one at a time (`simpleion.load(..., parse_eagerly=False)`)."""
    if _is_binary(data):
        return iter_binary_values(data, binary_segments(data), value_model=value_model)
    return _c_values(io.StringIO(data) if isinstance(data, str) else io.BytesIO(data), value_model)


def iter_binary_values(data: bytes, segments: list[bytes] | None, *,
                       value_model: IonPyValueModel = IonPyValueModel.ION_PY) -> Iterator[Any]:
    """`iter_values` of Ion binary whose `binary_segments` the caller has already walked (None: not split),
    so that a reader needing both (an export's blocks and their own bytes) walks the framing once."""
    if _all_walked(segments):
        return _c_values(io.BytesIO(data), value_model)
    return _python_values(data)


def _c_values(source: io.StringIO | io.BytesIO, value_model: IonPyValueModel) -> Iterator[Any]:
    values: Iterator[Any] = simpleion.load(source, single_value=False, parse_eagerly=False, value_model=value_model)
    return values


def _is_binary(data: bytes | str) -> TypeGuard[bytes]:
    return isinstance(data, bytes) and data.startswith(IVM)


def _python_values(data: bytes) -> Iterator[Any]:
    values: Iterator[Any] = simpleion.load_python(io.BytesIO(data), single_value=False, parse_eagerly=False)
    while True:
        with _as_ion_error():
            try:
                value = next(values)
            except StopIteration:
                return
        yield value


@contextmanager
def _as_ion_error() -> Iterator[None]:
    """The pure-Python reader meets damage with whatever its code trips on (UnicodeDecodeError, TypeError,
    OverflowError, decimal.InvalidOperation, ...): one exception type for callers to catch."""
    try:
        yield
    except IonException:
        raise
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
        raise IonException(f"{type(exc).__name__}: {exc}") from None


def binary_segments(data: bytes) -> list[bytes] | None:
    """Split an Ion binary stream into one segment per top-level user value, each from the version
    marker before it, by walking the top-level framing only (type descriptors and lengths). None when a
    segment would not stand alone (two values after one marker share its symbol table) or the framing
    is not understood; the caller then keeps no raw bytes. Never raises: the parser reports bad data."""
    segments: list[bytes] = []
    start, users, pos, end = 0, 0, 0, len(data)
    try:
        while pos < end:
            if data.startswith(IVM, pos):
                if users > 1:
                    return None
                if users == 1:
                    segments.append(data[start:pos])
                start, users, pos = pos, 0, pos + 4
                continue
            descriptor = data[pos]
            type_code, length = descriptor >> 4, descriptor & 0x0F
            pos += 1
            if type_code == 1 or length == 15:
                length = 0
            elif length == 14 or (type_code == 0xD and length == 1):
                length, pos = _varuint(data, pos)
            if type_code == 0xE:
                if length == 0:
                    return None
                _, first = _varuint(data, pos)
                annotation, _ = _varuint(data, first)
                if annotation != 3:  # not a local symbol table ($ion_symbol_table is SID 3)
                    users += 1
            elif type_code != 0:  # type 0 is a NOP pad or null.null
                users += 1
            elif length != 0 or descriptor == 0x0F:
                users += int(descriptor == 0x0F)
            pos += length
        if pos != end or users > 1:
            return None
        if users == 1:
            segments.append(data[start:end])
    except IndexError:
        return None
    return segments


def _varuint(data: bytes, pos: int) -> tuple[int, int]:
    """A VarUInt at `pos`: (value, position after it)."""
    value = 0
    while True:
        octet = data[pos]
        pos += 1
        value = (value << 7) | (octet & 0x7F)
        if octet & 0x80:
            return value, pos
