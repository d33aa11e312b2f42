"""Ion Hash read straight from Ion binary: the reader twin of `journal.ionwrite`.

The inverse direction: s(value) of the value a self-contained Ion binary stream holds, computed from its
bytes without building Python values (a stored document is re-hashed this way when a restore checks what
its target holds). Each scalar's s() is `B ‖ TQ ‖ escape(representation) ‖ E` and the representation is
the bytes of its binary encoding, so the walk copies them; symbols and field names are resolved through
the stream's local symbol table. Only one shape of stream is read: a version marker, at most one local
symbol table of the form `$ion_symbol_table::{symbols:[strings]}`, then exactly one value. Anything else
(imports, several values, NOP padding, unknown symbols, a length that does not add up) returns None and
the caller decodes and hashes the value instead.

Safe against false matches: s() is unambiguous (escaping), so when the result equals s(v) for a value v,
every copied representation is byte-for-byte that of the matching scalar of v, and the same bytes decode
to the same scalar; the stream therefore holds v. A scalar in a non-minimal encoding (which `encode_hashed`
and simpleion never write: an 8-byte positive zero float, a 4-byte float, a padded int or decimal) gives
an s() that no value has, so it can only cause a mismatch, which callers confirm by decoding.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any

from amazon.ion.core import IonType

from .. import native
from .hashing import _FALSE_S, _FLOAT_NAN_REPR, _NULL_S, _TRUE_S, _escape, _s_name
from .ionwrite import IVM, SYSTEM_SYMBOLS

__all__ = ["binary_hash_repr", "binary_hash_repr_python", "binary_ion_hash", "binary_top_field"]

_NATIVE: Any = native.ionhash  # untyped C module; used only when built


class _NotRead(Exception):
    """Outside the subset `binary_hash_repr` reads."""


_LST_CACHE: dict[bytes, tuple[bytes | None, ...]] = {}  # symbol table bytes → s(symbol) by SID (bounded)
_SYSTEM_NAMES = (None, *(_s_name(text) for text in SYSTEM_SYMBOLS))
_SCALAR_TQ = {0x20: b"\x0b\x20", 0x30: b"\x0b\x30", 0x50: b"\x0b\x50", 0x60: b"\x0b\x60", 0x80: b"\x0b\x80",
              0x90: b"\x0b\x90", 0xA0: b"\x0b\xa0"}
_NULLS = {
    0x0: _NULL_S[IonType.NULL], 0x1: _NULL_S[IonType.BOOL], 0x2: _NULL_S[IonType.INT], 0x3: _NULL_S[IonType.INT],
    0x4: _NULL_S[IonType.FLOAT], 0x5: _NULL_S[IonType.DECIMAL], 0x6: _NULL_S[IonType.TIMESTAMP],
    0x7: _NULL_S[IonType.SYMBOL], 0x8: _NULL_S[IonType.STRING], 0x9: _NULL_S[IonType.CLOB],
    0xA: _NULL_S[IonType.BLOB], 0xB: _NULL_S[IonType.LIST], 0xC: _NULL_S[IonType.SEXP],
    0xD: _NULL_S[IonType.STRUCT],
}


def _read_varuint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    while pos < end:
        octet = data[pos]
        pos += 1
        value = (value << 7) | (octet & 0x7F)
        if octet & 0x80:
            return value, pos
    raise _NotRead("truncated VarUInt")


def _symbol_names(data: bytes, pos: int, end: int) -> tuple[bytes | None, ...]:
    """s(symbol) of each SID of the local symbol table struct at data[pos:end] (after the annotation)."""
    key = data[pos:end]
    names = _LST_CACHE.get(key)
    if names is not None:
        return names
    length, pos = _typed_length(data, pos, end, 0xD, "symbol table is not a struct")
    if pos + length != end:
        raise _NotRead("symbol table length")
    found: list[bytes | None] = list(_SYSTEM_NAMES)
    seen = False
    while pos < end:
        sid, pos = _read_varuint(data, pos, end)
        if sid != 7 or seen:  # only `symbols`, once (imports, max_id… are not read)
            raise _NotRead("symbol table field")
        seen = True
        length, pos = _typed_length(data, pos, end, 0xB, "symbols is not a list")
        stop = pos + length
        if stop > end:
            raise _NotRead("symbols length")
        while pos < stop:
            length, pos = _typed_length(data, pos, stop, 0x8, "a symbol that is not a string")
            if pos + length > stop:
                raise _NotRead("symbol length")
            try:
                text = data[pos:pos + length].decode("utf-8")
            except UnicodeDecodeError:
                raise _NotRead("symbol text is not UTF-8") from None
            found.append(_s_name(text))
            pos += length
    names = tuple(found)
    if len(_LST_CACHE) < 4096:
        _LST_CACHE[key] = names
    return names


_EXPONENT, _MANTISSA = 0x7FF0_0000_0000_0000, 0x000F_FFFF_FFFF_FFFF  # of an IEEE binary64


def _typed_length(data: bytes, pos: int, end: int, type_code: int, what: str) -> tuple[int, int]:
    """(length, position of the body) of a non-null value of `type_code` at data[pos]; raises
    _NotRead(`what`) for another type or a null. A sorted struct (L=1) has its length as a VarUInt."""
    descriptor = data[pos]
    pos += 1
    if descriptor >> 4 != type_code or descriptor & 0x0F == 0x0F:
        raise _NotRead(what)
    length = descriptor & 0x0F
    if length == 14 or (type_code == 0xD and length == 1):
        length, pos = _read_varuint(data, pos, end)
    return length, pos


def _read_value(data: bytes, pos: int, end: int, names: tuple[bytes | None, ...]) -> tuple[bytes, int]:
    """(s(value), position after it) of the value at data[pos], which must end by `end`."""
    descriptor = data[pos]
    pos += 1
    code, length = descriptor & 0xF0, descriptor & 0x0F
    if length == 15:
        null = _NULLS.get(code >> 4)
        if null is None:
            raise _NotRead("null of no type")
        return null, pos
    if code == 0x10:
        if length > 1:
            raise _NotRead("bool")
        return (_TRUE_S if length else _FALSE_S), pos
    if length == 14 or (length == 1 and code == 0xD0):
        length, pos = _read_varuint(data, pos, end)
    stop = pos + length
    if stop > end:
        raise _NotRead("length past the end")
    if code in _SCALAR_TQ:
        if code == 0x30 and not length:
            raise _NotRead("negative zero int")
        raw = data[pos:stop]
        return (_SCALAR_TQ[code] + raw.replace(b"\x0c", b"\x0c\x0c").replace(b"\x0b", b"\x0c\x0b")
                .replace(b"\x0e", b"\x0c\x0e") + b"\x0e"), stop
    if code == 0xD0:
        return _read_fields(data, pos, stop, names), stop
    if code == 0xB0 or code == 0xC0:
        parts = [b"\x0b\xb0" if code == 0xB0 else b"\x0b\xc0"]
        while pos < stop:
            item, pos = _read_value(data, pos, stop, names)
            parts.append(item)
        parts.append(b"\x0e")
        return b"".join(parts), stop
    if code == 0x40:
        if length == 0:
            return b"\x0b\x40\x0e", stop
        if length != 8:
            raise _NotRead("float width")
        bits = int.from_bytes(data[pos:stop], "big")
        if bits & _EXPONENT == _EXPONENT and bits & _MANTISSA:  # any nan, whatever its sign and payload
            return b"\x0b\x40" + _escape(_FLOAT_NAN_REPR) + b"\x0e", stop
        return b"\x0b\x40" + _escape(data[pos:stop]) + b"\x0e", stop
    if code == 0x70:
        sid = int.from_bytes(data[pos:stop], "big")
        if not sid:
            return b"\x0b\x71\x0e", stop
        name = names[sid] if sid < len(names) else None
        if name is None:
            raise _NotRead("unknown symbol")
        return name, stop  # s(symbol value) = s(symbol as a name)
    if code == 0xE0:
        annotations_length, pos = _read_varuint(data, pos, stop)
        annotations_end = pos + annotations_length
        if annotations_end >= stop:
            raise _NotRead("annotation wrapper")
        parts = [b"\x0b\xe0"]
        while pos < annotations_end:
            sid, pos = _read_varuint(data, pos, annotations_end)
            name = names[sid] if 0 < sid < len(names) else None
            if name is None:
                raise _NotRead("unknown annotation")
            parts.append(name)
        if data[pos] >> 4 == 0xE:
            raise _NotRead("nested annotation wrapper")
        inner, pos = _read_value(data, pos, stop, names)
        if pos != stop:
            raise _NotRead("annotation wrapper length")
        parts += (inner, b"\x0e")
        return b"".join(parts), stop
    raise _NotRead(f"type descriptor {descriptor:#x}")  # NOP padding, reserved


def _read_fields(data: bytes, pos: int, stop: int, names: tuple[bytes | None, ...]) -> bytes:
    """s(struct) of the fields at data[pos:stop]; strings, the commonest fields, read inline."""
    hashes = []
    count = len(names)
    while pos < stop:
        octet = data[pos]
        if octet & 0x80:
            sid = octet & 0x7F
            pos += 1
        else:
            sid, pos = _read_varuint(data, pos, stop)
        if not 0 < sid < count:
            raise _NotRead("unknown field name")
        name = names[sid]
        if name is None:
            raise _NotRead("unknown field name")
        if pos >= stop:
            raise _NotRead("field without a value")
        descriptor = data[pos]
        if descriptor >> 4 == 0x8 and descriptor < 0x8E:
            after = pos + 1 + (descriptor & 0x0F)
            if after > stop:
                raise _NotRead("length past the end")
            item = (b"\x0b\x80" + data[pos + 1:after].replace(b"\x0c", b"\x0c\x0c").replace(b"\x0b", b"\x0c\x0b")
                    .replace(b"\x0e", b"\x0c\x0e") + b"\x0e")
            pos = after
        else:
            item, pos = _read_value(data, pos, stop, names)
        hashes.append(sha256(name + item).digest())
    if pos != stop:
        raise _NotRead("struct length")
    hashes.sort()
    return b"\x0b\xd0" + _escape(b"".join(hashes)) + b"\x0e"


def _stream_prelude(data: bytes) -> tuple[tuple[bytes | None, ...], int]:
    """(s(symbol) by SID, position of the first value) of a self-contained stream: after the version marker
    and its local symbol table when the stream has one. Raises _NotRead without a version marker."""
    if not data.startswith(IVM):
        raise _NotRead("no version marker")
    pos, end = 4, len(data)
    if pos < end and data[pos] >> 4 == 0xE:  # an annotation wrapper: the symbol table, or the value
        descriptor = data[pos]
        length, body = descriptor & 0x0F, pos + 1
        if length == 14:
            length, body = _read_varuint(data, body, end)
        stop = body + length
        annotations_length, first = _read_varuint(data, body, stop)
        if annotations_length == 1 and data[first] == 0x83 and stop <= end:  # $ion_symbol_table::
            return _symbol_names(data, first + 1, stop), stop
    return _SYSTEM_NAMES, pos


def binary_hash_repr_python(data: bytes) -> bytes | None:
    """s(value) of the single value of the self-contained Ion binary stream `data`, read from its bytes;
    None when the stream is outside the subset read here (see above): decode and hash it then."""
    try:
        names, pos = _stream_prelude(data)
        end = len(data)
        if pos >= end or data.startswith(IVM, pos):
            return None
        value, pos = _read_value(data, pos, end, names)
        return value if pos == end else None
    except (_NotRead, IndexError, RecursionError):  # a hostile nesting depth is outside the subset
        return None


def _binary_hash_repr_native(data: bytes) -> bytes | None:
    try:
        serialized: bytes | None = _NATIVE.binary_hash_repr(data)
        return serialized
    except RecursionError:
        return None


binary_hash_repr = binary_hash_repr_python if _NATIVE is None else _binary_hash_repr_native


def binary_ion_hash(data: bytes) -> bytes | None:
    """`hashing.ion_hash` of the value `data` holds (`binary_hash_repr`), or None when not read here."""
    if _NATIVE is not None:
        try:
            digest: bytes | None = _NATIVE.binary_ion_hash(data)
            return digest
        except RecursionError:
            return None
    serialized = binary_hash_repr_python(data)
    return None if serialized is None else sha256(serialized).digest()


_ABSENT = (-1, b"")


def binary_top_field_python(data: bytes, name: str) -> tuple[int, bytes] | None:
    """(type descriptor, representation) of the top-level field `name` of the struct held by the
    self-contained Ion binary stream `data` (the stream shape `binary_hash_repr` reads); `(-1, b"")` when
    the struct has no such field. None when the stream is outside that shape, is not a struct, or names the
    field more than once: decode it then. Lets an index be built without decoding every document."""
    try:
        names, pos = _stream_prelude(data)
        end = len(data)
        descriptor = data[pos]  # an annotation wrapper left here is no struct: None below
        if descriptor >> 4 != 0xD or descriptor & 0x0F == 0x0F:
            return None
        length = descriptor & 0x0F
        pos += 1
        if length == 14 or length == 1:
            length, pos = _read_varuint(data, pos, end)
        if pos + length != end:
            return None
        wanted = _s_name(name)
        found = _ABSENT
        while pos < end:
            sid, pos = _read_varuint(data, pos, end)
            if not 0 < sid < len(names) or names[sid] is None:
                return None
            descriptor = data[pos]
            start = pos + 1
            length = descriptor & 0x0F
            if length == 15 or descriptor >> 4 == 0x1:
                length = 0
            elif length == 14 or (length == 1 and descriptor >> 4 == 0xD):
                length, start = _read_varuint(data, start, end)
            pos = start + length
            if pos > end:
                return None
            if names[sid] == wanted:
                if found is not _ABSENT:
                    return None
                found = (descriptor, data[start:pos])
        return found
    except (_NotRead, IndexError):
        return None


binary_top_field = binary_top_field_python if _NATIVE is None else _NATIVE.binary_top_field
