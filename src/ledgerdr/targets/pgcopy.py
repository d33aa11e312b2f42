"""What the PostgreSQL target writes for a document and a history row: QLDB's JSON down-conversion of a
document for the `data` jsonb column, and binary COPY data for the history rows the C journal verifier hands
over (`restore.rows`).

`jsonb_text` is the reference conversion from a Python Ion value; `ledgerdr._pgcopy` (C) converts straight
from a document's Ion binary bytes and writes whole COPY payloads, and falls back on `document_json` for a
document it does not read. Without the extension `history_copy` builds the same bytes in Python
(tests/test_pgcopy_native.py holds C and Python equal).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from amazon.ion import simpleion
from amazon.ion.core import Timestamp
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
from ..journal.codecs import timestamp_text, to_json
from .base import HistoryRow

_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")  # an unescaped \u0000 in JSON text


def jsonb_text(data: Any) -> str:
    """QLDB's JSON down-conversion as text for the `data` jsonb column. jsonb cannot hold U+0000, so an
    escaped NUL becomes U+FFFD there; the `ion` column keeps the exact value."""
    encoded = orjson.dumps(_jsonable(data))
    if b"\\u0000" in encoded:
        encoded = _JSON_NUL.sub(rb"\1\\ufffd", encoded)
    return encoded.decode()


# QLDB's JSON down-conversion (reference §1.5), dispatched on the exact type: `codecs.to_json` walks an
# isinstance chain per value, which made this conversion the most expensive part of staging a row.
# Unknown types (and anything these functions do not cover) go to `to_json`, the reference.
def _jsonable(value: Any) -> Any:
    convert = _JSONABLE.get(type(value))
    return to_json(value) if convert is None else convert(value)


def _json_int(value: int) -> Any:
    return int(value) if -(2**63) <= value < 2**64 else to_json(value)


def _json_float(value: float) -> Any:
    return None if value != value or value in (_INF, -_INF) else float(value)


def _json_bytes(value: bytes) -> Any:
    return to_json(value)  # blob → base64, clob → escaped text, as the reference does


def _json_symbol(value: SymbolToken) -> Any:
    """A symbol is its text in JSON (QLDB writes symbols as strings); one with unknown text has none."""
    if value.text is None:
        raise TypeError(f"cannot down-convert a symbol with unknown text (sid {value.sid}) to JSON")
    return str(value.text)


def _json_struct(value: Any) -> dict[str, Any]:
    return {str(k): _jsonable(v) for k, v in value.items()}


def _json_ion_struct(value: IonPyDict) -> dict[str, Any]:
    """An IonPyDict keeps a list of values per field name; JSON keeps the last one, as `to_json` does.
    Reading its store directly: `IonPyDict.items()` is a Python generator costing ~3 µs per field."""
    store = getattr(value, "_IonPyDict__store", None)
    if store is None:  # another amazon.ion layout
        return _json_struct(value)
    return {str(k): _jsonable(values[-1]) for k, values in store.items()}


def _json_list(value: Any) -> list[Any]:
    return [_jsonable(v) for v in value]


_INF = float("inf")
_JSONABLE: dict[type, Callable[[Any], Any]] = {
    str: lambda v: v, IonPyText: lambda v: v, bool: lambda v: v, IonPyBool: bool,
    int: _json_int, IonPyInt: _json_int, float: _json_float, IonPyFloat: _json_float,
    Decimal: to_json, IonPyDecimal: to_json, datetime: timestamp_text, Timestamp: timestamp_text,
    IonPyTimestamp: timestamp_text, bytes: _json_bytes, IonPyBytes: _json_bytes,
    type(None): lambda v: None, IonPyNull: lambda v: None, SymbolToken: _json_symbol, IonPySymbol: _json_symbol,
    dict: _json_struct, IonPyDict: _json_ion_struct, IonPyStdDict: _json_struct,
    list: _json_list, IonPyList: _json_list, tuple: _json_list,
}



def document_json(ion: bytes) -> str:
    """`jsonb_text` of a document given as its Ion binary (what the C conversion declined)."""
    return jsonb_text(simpleion.loads(ion))


# ------------------------------------------------------------------------------------------ binary COPY

_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z: PostgreSQL's timestamp origin
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIELD_COUNT = struct.pack(">h", 12)  # postgres.COLUMNS
_NULL = struct.pack(">i", -1)
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"


def ms_text(ms: int) -> str:
    """The Ion text of a UTC timestamp at millisecond precision (QLDB's txTime) from its epoch milliseconds."""
    t = _UNIX_EPOCH + timedelta(milliseconds=ms)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
            f"{t.microsecond // 1000:03d}Z")


def history_copy(rows: Sequence[HistoryRow]) -> dict[str, bytes]:
    """Binary COPY data (header to trailer) per table id for `rows`, in the history table's columns
    (postgres.COLUMNS): txTime as timestamptz and as its millisecond Ion text, the document as jsonb and
    as its Ion bytes, `deleted` for a row with neither data nor data hash, `type_lost` false (rows come from
    Ion binary exports, whose hashes the verifier recomputed). Raises what the JSON conversion raises for a
    document JSON cannot hold (a symbol with unknown text), as the revision path does."""
    if native.pgcopy is not None:
        copies: dict[str, bytes] = native.pgcopy.history_copy(rows, document_json)
        return copies
    return _history_copy(rows)


def _history_copy(rows: Sequence[HistoryRow]) -> dict[str, bytes]:
    out: dict[str, bytearray] = {}
    pack_i4, pack_i8 = struct.Struct(">i").pack, struct.Struct(">q").pack
    for table_id, doc_id, version, ion, hash_, tx_ms, tx_id, block_seq, data_hash in rows:
        buf = out.get(table_id)
        if buf is None:
            buf = out[table_id] = bytearray(_HEADER)
        buf += _FIELD_COUNT
        for value in (doc_id.encode(), pack_i4(version), pack_i8((tx_ms - _PG_EPOCH_MS) * 1000),
                      ms_text(tx_ms).encode(), tx_id.encode(),
                      None if ion is None else b"\x01" + document_json(ion).encode(), ion, hash_, data_hash):
            buf += _NULL if value is None else pack_i4(len(value)) + value
        buf += _TRUE if ion is None and data_hash is None else _FALSE
        buf += _FALSE + pack_i4(8) + pack_i8(block_seq)
    return {table_id: bytes(buf + b"\xff\xff") for table_id, buf in out.items()}
