"""Ion binary encoding for the write path, with the Ion Hash computed in the same pass.

`simpleion.dumps` costs ~100 µs per document and per block, and hashing then walks the same value again
(CONTRACTS §10). The binary representation of an Ion scalar is exactly what Ion Hash escapes and hashes
(the spec hashes the binary representation), so one walk can produce both: `encode_hashed` returns a
value's binary encoding and its Ion Hash serialization s(value).

Symbols are numbered by a `SymbolTable` that the caller shares between the values that will end up in one
Ion stream: a transaction encodes each document against its table when the statement stages it, and the
journal writer later encodes the block envelope against the same table, so the documents' encoded bytes
are spliced into the block unchanged. A document stored on its own is `table.standalone(value_ion)`: the
version marker, the table's symbols so far (its own and those of documents staged before it in the same
transaction) and the value.

Values are typed exactly as `simpleion.dumps` types them (see `journal.hashing`), IonPy values included,
so `loads(encode(v))` equals `loads(dumps(v))` and `s(v)` equals `hashing.ion_hash_repr(v)`. A value the
encoder cannot represent raises `Unencodable`; callers then fall back to `simpleion.dumps` and
`hashing.ion_hash`, which raise the error users have always seen.

The other direction, the Ion Hash read straight from the Ion binary this module writes, is `journal.ionread`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from hashlib import sha256
from typing import Any

from amazon.ion.core import IonType, Timestamp
from amazon.ion.simple_types import (
    IonPyBool,
    IonPyBytes,
    IonPyDecimal,
    IonPyDict,
    IonPyFloat,
    IonPyInt,
    IonPyList,
    IonPyNull,
    IonPyStdDict,
    IonPySymbol,
    IonPyText,
    IonPyTimestamp,
)
from amazon.ion.symbols import SymbolToken

from .. import native
from .hashing import (
    _EXACT,
    _FLOAT_NAN_REPR,
    _NULL_S,
    _PACK_DOUBLE,
    _TQ,
    _decimal_repr,
    _dict_store,
    _escape,
    _s_annotated,
    _s_name,
    _s_symbol_token,
    _timestamp_repr,
    _uint_bytes,
)

__all__ = ["IVM", "SYSTEM_SYMBOLS", "SymbolTable", "Unencodable", "encode_hashed", "encode_ion", "td"]

IVM = b"\xe0\x01\x00\xea"
SYSTEM_SYMBOLS = (
    "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version", "imports", "symbols", "max_id",
    "$ion_shared_symbol_table",
)


class Unencodable(ValueError):
    """The value holds something this encoder does not write (the caller falls back to simpleion)."""


def varuint(value: int) -> bytes:
    """VarUInt: 7-bit groups, high group first, the end flag on the last octet."""
    if value < 0x80:
        return bytes((0x80 | value,))
    groups = [0x80 | (value & 0x7F)]
    value >>= 7
    while value:
        groups.append(value & 0x7F)
        value >>= 7
    return bytes(reversed(groups))


_VARUINT = [varuint(i) for i in range(1024)]


_TDS = [[bytes((code | n,)) for n in range(14)] for code in range(0, 256, 16)]


def td(type_code: int, length: int) -> bytes:
    """The type descriptor (and VarUInt length when it does not fit in the low nibble)."""
    if length < 14:
        return _TDS[type_code >> 4][length]
    return bytes((type_code | 14,)) + (
        _VARUINT[length] if length < 1024 else varuint(length)
    )


_VARUINT_SIDS = [varuint(i) for i in range(16384)]
_SYSTEM_SIDS = {text: i for i, text in enumerate(SYSTEM_SYMBOLS, 1)}
_STRING_IONS: dict[str, bytes] = {}  # symbol text → its string encoding in a symbol table (bounded)
_BATCHES: dict[tuple[tuple[str, ...], int], tuple[dict[str, bytes], bytes]] = {}


def _string_piece(text: str) -> bytes:
    piece = _STRING_IONS.get(text)
    if piece is None:
        raw = text.encode("utf-8")
        piece = td(0x80, len(raw)) + raw
        if len(_STRING_IONS) < 65_536:
            _STRING_IONS[text] = piece
    return piece


class SymbolTable:
    """Local symbols shared by the values of one Ion stream: text → SID, from 10 (after the system
    symbols, which are reused as simpleion does). Grows only; never renumbers. A new table per
    transaction is the common case, so adding symbols is kept cheap (cached encodings)."""

    __slots__ = ("sids", "texts", "_pieces", "_prelude")

    def __init__(self) -> None:
        self.sids: dict[str, int] = dict(_SYSTEM_SIDS)
        self.texts: list[str] = []
        self._pieces: list[bytes] = []  # the symbol list's encoded strings, in chunks
        self._prelude: tuple[int, bytes] = (0, IVM)  # the last prelude, by symbol count

    def sid(self, text: str) -> int:
        sid = self.sids.get(text)
        if sid is None:
            sid = self.sids[text] = len(self.texts) + 10
            self.texts.append(text)
            self._pieces.append(_string_piece(text))
        return sid

    def field(self, text: str) -> bytes:
        """The encoded field-name SID of `text` (added to the table if new)."""
        sid = self.sids.get(text)
        if sid is None:
            sid = self.sid(text)
        return _VARUINT_SIDS[sid] if sid < 16384 else varuint(sid)

    def fields(self, texts: tuple[str, ...]) -> dict[str, bytes]:
        """`field` of each text, adding the missing ones as one batch: the journal writer's envelope
        names are added to a new table per block, and the batch's encodings are cached by position."""
        missing = tuple(t for t in texts if t not in self.sids)
        if not missing:
            return {t: self.field(t) for t in texts}
        base = len(self.texts) + 10
        cached = _BATCHES.get((missing, base))
        if cached is None:
            cached = (
                {t: varuint(base + i) for i, t in enumerate(missing)},
                b"".join(_string_piece(t) for t in missing),
            )
            if len(_BATCHES) < 4096:
                _BATCHES[(missing, base)] = cached
        added, piece = cached
        self.sids.update(zip(missing, range(base, base + len(missing)), strict=True))
        self.texts.extend(missing)
        self._pieces.append(piece)
        if len(missing) == len(texts):
            return added
        return {t: added.get(t) or self.field(t) for t in texts}

    def prelude(self) -> bytes:
        """The version marker and a local symbol table declaring every symbol added so far."""
        count = len(self.texts)
        if self._prelude[0] == count:
            return self._prelude[1]
        body = b"".join(self._pieces)
        fields = b"\x87" + td(0xB0, len(body)) + body  # symbols: [...]
        content = b"\x81\x83" + td(0xD0, len(fields)) + fields  # $ion_symbol_table::{...}
        self._prelude = (count, IVM + td(0xE0, len(content)) + content)
        return self._prelude[1]

    def standalone(self, value_ion: bytes) -> bytes:
        """A self-contained Ion binary stream holding one value encoded against this table."""
        return self.prelude() + value_ion


# --- scalars: (binary encoding, s(value)) ----------------------------------------------------------------

_TRUE = (b"\x11", b"\x0b\x11\x0e")
_FALSE = (b"\x10", b"\x0b\x10\x0e")
_NULL = (b"\x0f", _NULL_S[IonType.NULL])


def _int_pair(value: int) -> tuple[bytes, bytes]:
    if value < 0:
        magnitude = _uint_bytes(-value)
        return td(0x30, len(magnitude)) + magnitude, b"\x0b\x30" + _escape(magnitude) + b"\x0e"
    magnitude = _uint_bytes(value)
    return td(0x20, len(magnitude)) + magnitude, b"\x0b\x20" + _escape(magnitude) + b"\x0e"


_SMALL_INTS = {i: _int_pair(i) for i in range(-256, 4096)}


def _int(value: int, _table: SymbolTable) -> tuple[bytes, bytes]:
    cached = _SMALL_INTS.get(value)
    return cached if cached is not None else _int_pair(int(value))


def _bool(value: Any, _table: SymbolTable) -> tuple[bytes, bytes]:
    return _TRUE if value else _FALSE


def _float(value: float, _table: SymbolTable) -> tuple[bytes, bytes]:
    if value == 0.0 and math.copysign(1.0, value) > 0:
        return b"\x40", b"\x0b\x40\x0e"
    packed = _PACK_DOUBLE(value)
    hashed = _FLOAT_NAN_REPR if value != value else packed
    return b"\x48" + packed, b"\x0b\x40" + _escape(hashed) + b"\x0e"


def _decimal(value: Decimal, _table: SymbolTable) -> tuple[bytes, bytes]:
    sign, _digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise Unencodable(f"{value!r} is not an Ion decimal")
    coefficient = abs(int(value.scaleb(-exponent, _EXACT)))
    if not coefficient and not exponent and not sign:
        return b"\x50", b"\x0b\x50\x0e"
    rep = _decimal_repr(exponent, coefficient, bool(sign))
    return td(0x50, len(rep)) + rep, b"\x0b\x50" + _escape(rep) + b"\x0e"


def _timestamp(value: datetime, _table: SymbolTable) -> tuple[bytes, bytes]:
    rep = _timestamp_repr(value)
    return td(0x60, len(rep)) + rep, b"\x0b\x60" + _escape(rep) + b"\x0e"


def _string(value: str, _table: SymbolTable) -> tuple[bytes, bytes]:
    raw = value.encode("utf-8")
    length = len(raw)
    head = bytes((0x80 | length,)) if length < 14 else b"\x8e" + (
        _VARUINT[length] if length < 1024 else varuint(length)
    )
    return (
        head + raw,
        b"\x0b\x80" + raw.replace(b"\x0c", b"\x0c\x0c").replace(b"\x0b", b"\x0c\x0b").replace(b"\x0e", b"\x0c\x0e")
        + b"\x0e",
    )


def _symbol_sid(token: Any, table: SymbolTable) -> int:
    text = token if isinstance(token, str) else token.text
    if text is None:
        if token.sid == 0:
            return 0
        raise Unencodable(f"a symbol with unknown text (SID {token.sid})")
    return table.sid(text)


def _symbol(token: Any, table: SymbolTable) -> tuple[bytes, bytes]:
    sid = _symbol_sid(token, table)
    magnitude = _uint_bytes(sid)
    return td(0x70, len(magnitude)) + magnitude, _s_symbol_token(token if sid else None)


def _blob(value: bytes, _table: SymbolTable) -> tuple[bytes, bytes]:
    raw = bytes(value)
    return td(0xA0, len(raw)) + raw, b"\x0b\xa0" + _escape(raw) + b"\x0e"


def _none(_value: None, _table: SymbolTable) -> tuple[bytes, bytes]:
    return _NULL


# --- containers -------------------------------------------------------------------------------------------


def _fields(pairs: Any, table: SymbolTable) -> tuple[bytes, bytes]:
    """A struct from (name, value) pairs: its encoding and s(struct), fields hashed with SHA-256.

    The hottest loop of the write path: strings (most document fields) are encoded inline."""
    body: list[bytes] = []
    hashes = []
    sids = table.sids
    handlers = _HANDLERS
    for name, item in pairs:
        text, name_s = _NAME_PARTS.get(name) or _name_parts(name)
        sid = sids.get(text)
        if sid is None:
            sid = table.sid(text)
        if item.__class__ is str:
            raw = item.encode("utf-8")
            length = len(raw)
            item_ion = (bytes((0x80 | length,)) if length < 14 else b"\x8e" + varuint(length)) + raw
            item_s = (
                b"\x0b\x80"
                + raw.replace(b"\x0c", b"\x0c\x0c").replace(b"\x0b", b"\x0c\x0b").replace(b"\x0e", b"\x0c\x0e")
                + b"\x0e"
            )
        else:
            item_ion, item_s = handlers[item.__class__](item, table)
        body += (_VARUINT_SIDS[sid] if sid < 16384 else varuint(sid), item_ion)
        hashes.append(sha256(name_s + item_s).digest())
    joined = b"".join(body)
    hashes.sort()  # sort, then escape: the official vectors fail the other way round
    return td(0xD0, len(joined)) + joined, b"\x0b\xd0" + _escape(b"".join(hashes)) + b"\x0e"


_NAME_PARTS: dict[Any, tuple[str, bytes]] = {}  # field name → (text, s(name)), bounded


def _name_parts(name: Any) -> tuple[str, bytes]:
    parts = (_name_text(name), _s_name(name))
    if len(_NAME_PARTS) < 65_536:
        _NAME_PARTS[name] = parts
    return parts


def _name_text(name: Any) -> str:
    text = name if isinstance(name, str) else getattr(name, "text", None)
    if not isinstance(text, str):
        raise Unencodable(f"field name {name!r} has no text")
    return text


def _dict(value: dict[Any, Any], table: SymbolTable) -> tuple[bytes, bytes]:
    return _fields(value.items(), table)


def _list(value: Any, table: SymbolTable, type_code: int = 0xB0) -> tuple[bytes, bytes]:
    ions = []
    reprs = []
    for item in value:
        item_ion, item_s = _HANDLERS[item.__class__](item, table)
        ions.append(item_ion)
        reprs.append(item_s)
    joined = b"".join(ions)
    return td(type_code, len(joined)) + joined, bytes((0x0B, type_code)) + b"".join(reprs) + b"\x0e"


# --- IonPy values (documents read back from storage and updated) -----------------------------------------


def _annotate(value: Any, table: SymbolTable, pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    annotations = getattr(value, "ion_annotations", ())
    if not annotations:
        return pair
    sids = b"".join(varuint(_symbol_sid(a, table)) for a in annotations)
    content = varuint(len(sids)) + sids + pair[0]
    return td(0xE0, len(content)) + content, _s_annotated(annotations, pair[1])


def _ionpy(encode: Callable[[Any, SymbolTable], tuple[bytes, bytes]]) -> Callable[..., tuple[bytes, bytes]]:
    def handler(value: Any, table: SymbolTable) -> tuple[bytes, bytes]:
        return _annotate(value, table, encode(value, table))

    return handler


def _ionpy_text(value: IonPyText, table: SymbolTable) -> tuple[bytes, bytes]:
    if value.ion_type is IonType.SYMBOL:
        return _annotate(value, table, _symbol(str(value), table))
    return _annotate(value, table, _string(value, table))


def _ionpy_bytes(value: IonPyBytes, table: SymbolTable) -> tuple[bytes, bytes]:
    if value.ion_type is IonType.CLOB:
        raw = bytes(value)
        pair = (td(0x90, len(raw)) + raw, b"\x0b\x90" + _escape(raw) + b"\x0e")
    else:
        pair = _blob(value, table)
    return _annotate(value, table, pair)


def _ionpy_null(value: IonPyNull, table: SymbolTable) -> tuple[bytes, bytes]:
    ion_type = value.ion_type or IonType.NULL
    return _annotate(value, table, (bytes((_TQ[ion_type] | 0x0F,)), _NULL_S[ion_type]))


def _ionpy_list(value: IonPyList, table: SymbolTable) -> tuple[bytes, bytes]:
    return _annotate(value, table, _list(value, table, 0xC0 if value.ion_type is IonType.SEXP else 0xB0))


def _ionpy_dict(value: IonPyDict, table: SymbolTable) -> tuple[bytes, bytes]:
    pairs = [(name, item) for name, items in _dict_store(value).items() for item in items]
    return _annotate(value, table, _fields(pairs, table))


def _ionpy_bool(value: IonPyBool, table: SymbolTable) -> tuple[bytes, bytes]:
    # IonPyBool subclasses int; loads uses it for bools only, but trust ion_type when it says otherwise.
    if value.ion_type is IonType.INT:
        return _annotate(value, table, _int(int(value), table))
    return _annotate(value, table, _bool(value, table))


class _Handlers(dict[type, Callable[..., tuple[bytes, bytes]]]):
    """Exact type → encoder; a subclass resolves through its MRO once, then is cached."""

    def __missing__(self, cls: type) -> Callable[..., tuple[bytes, bytes]]:
        for base in cls.__mro__[1:]:
            if base in self:
                handler = self[cls] = self[base]
                return handler
        raise Unencodable(f"cannot encode a value of type {cls.__qualname__}")


_HANDLERS = _Handlers(
    {
        dict: _dict,
        list: _list,
        tuple: _list,
        str: _string,
        int: _int,
        bool: _bool,
        float: _float,
        Decimal: _decimal,
        datetime: _timestamp,
        Timestamp: _timestamp,
        bytes: _blob,
        bytearray: _blob,
        type(None): _none,
        SymbolToken: _symbol,
        IonPyText: _ionpy_text,
        IonPySymbol: _ionpy(_symbol),
        IonPyInt: _ionpy(_int),
        IonPyBool: _ionpy_bool,
        IonPyFloat: _ionpy(_float),
        IonPyDecimal: _ionpy(_decimal),
        IonPyTimestamp: _ionpy(_timestamp),
        IonPyBytes: _ionpy_bytes,
        IonPyNull: _ionpy_null,
        IonPyList: _ionpy_list,
        IonPyDict: _ionpy_dict,
        IonPyStdDict: _ionpy(_dict),
    }
)


def encode_hashed_python(value: Any, table: SymbolTable) -> tuple[bytes, bytes]:
    """(binary encoding of `value` against `table`, Ion Hash serialization s(value)).

    `sha256(s).digest()` is `hashing.ion_hash(value)`. Raises Unencodable for what it does not write.
    The reference; `encode_hashed` is the C twin when it is built (same bytes, tested).
    """
    try:
        encoded: tuple[bytes, bytes] = _HANDLERS[value.__class__](value, table)
        return encoded
    except Unencodable:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise Unencodable(str(exc)) from exc


def _python_handler(value: Any, table: SymbolTable) -> tuple[bytes, bytes]:
    """What the C encoder hands back for a type it does not write itself (IonPy values, Decimal,
    timestamps, symbols, subclasses)."""
    encoded: tuple[bytes, bytes] = _HANDLERS[value.__class__](value, table)
    return encoded


def _encode_hashed_native(value: Any, table: SymbolTable) -> tuple[bytes, bytes]:
    try:
        encoded: tuple[bytes, bytes] = _NATIVE.encode_hashed(value, table, _python_handler)
        return encoded
    except Unencodable:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise Unencodable(str(exc)) from exc


_NATIVE: Any = native.ionhash  # untyped C module; used only when built
encode_hashed = encode_hashed_python if _NATIVE is None else _encode_hashed_native


def standalone_hashed(value: Any) -> tuple[bytes, bytes] | None:
    """(Ion Hash of `value`, `value` as a self-contained Ion binary stream) from one walk, with a symbol
    table of its own so the bytes depend on the value alone; None for a value the encoder does not write."""
    table = SymbolTable()
    try:
        ion, serialized = encode_hashed(value, table)
    except Unencodable:
        return None
    return sha256(serialized).digest(), table.standalone(ion)


def encode_ion(value: Any, table: SymbolTable) -> bytes:
    """The binary encoding of `value` against `table` (see `encode_hashed`)."""
    return encode_hashed(value, table)[0]
