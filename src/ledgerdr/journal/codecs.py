"""Reading and writing journal data objects in QLDB's three export formats.

Every reader works one data object at a time, so memory is bounded by the largest object, never
by the export. Ion formats keep every Ion type exactly. JSON follows QLDB's documented
down-conversion (reference §1.5) on write, and CONTRACTS §6's fixed mapping on read: the block's
own fields are re-typed by their known schema; in `data`, strings stay strings, integers stay
integers and other numbers become decimals, read from their exact text.
"""

from __future__ import annotations

import base64
import json
import math
import re
from binascii import a2b_base64
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from amazon.ion import simpleion
from amazon.ion.core import IonType, Timestamp, TimestampPrecision
from amazon.ion.exceptions import IonException
from amazon.ion.simple_types import IonPyNull
from amazon.ion.simpleion import IonPyValueModel
from amazon.ion.symbols import SymbolToken

from ..errors import ConfigError
from .ionload import binary_segments, iter_binary_values, iter_values, load_value
from .model import Block


class ExportFormat(StrEnum):
    ION_TEXT = "ION_TEXT"
    ION_BINARY = "ION_BINARY"
    JSON = "JSON"

    @property
    def extension(self) -> str:
        return "json" if self is ExportFormat.JSON else "ion"

    @property
    def is_ion(self) -> bool:
        return self is not ExportFormat.JSON

    @classmethod
    def parse(cls, name: str | ExportFormat | None) -> ExportFormat:
        """Accepts QLDB's names and the CLI's lower-case ones; None is QLDB's default, ION_TEXT."""
        if name is None:
            return cls.ION_TEXT
        if isinstance(name, ExportFormat):
            return name
        try:
            return cls(str(name).upper())
        except ValueError:
            raise ConfigError(f"unknown export format {name!r}: use ion_text, ion_binary or json") from None


class DecodeError(ValueError):
    """A data object could not be decoded. `index` is the block's position in the object (0-based)."""

    def __init__(self, detail: str, index: int | None = None) -> None:
        super().__init__(detail)
        self.index = index


# ---------------------------------------------------------------------------------------------- reading


def read_blocks(data: bytes, fmt: ExportFormat, *, chain_only: bool = False) -> Iterator[Block]:
    """Decode one data object into blocks, in file order. Raises DecodeError on malformed input.

    `chain_only` (JSON): re-type only what the chain checks read (addresses and hashes), which is
    what keeps a JSON chain check near the cost of parsing the JSON.
    """
    if fmt is ExportFormat.JSON:
        yield from _read_json_lines(data, chain_only)
        return
    # Streamed, one block at a time: an eager `loads` builds the whole object's values first (a 20 MB
    # object became ~750 MB resident, and the cyclic collector rescanned that growing list again and
    # again: 17.8 s to parse 10,000 blocks, against 1.2 s streamed). MAY_BE_BARE returns plain Python
    # values wherever that loses no Ion type (structs stay IonPyDict, so repeated field names survive;
    # typed nulls, annotated values and clobs stay IonPy): ion_hash gives the same hash for both models
    # (tests/test_ion_hash_property.py), and building bare values costs a fraction of IonPy ones.
    segments = binary_segments(data) if fmt is ExportFormat.ION_BINARY else None
    model = IonPyValueModel.MAY_BE_BARE  # ionload: never stuck on damaged bytes
    if segments is None:
        values = iter_values(data, value_model=model)
    else:  # the framing is walked once, for the reader's guard and for the blocks' own bytes
        values = iter_binary_values(data, segments, value_model=model)
    index = 0
    while True:
        try:
            value = next(values)
        except StopIteration:
            return
        except (IonException, ValueError, TypeError, IndexError) as exc:
            raise DecodeError(f"unreadable Ion: {exc}", index) from None
        if not isinstance(value, Mapping) or getattr(value, "ion_type", IonType.STRUCT) != IonType.STRUCT:
            raise DecodeError(f"top-level value #{index} is not a block struct", index)
        yield Block(value, _raw_of(segments, index, value))
        index += 1


def _raw_of(segments: list[bytes] | None, index: int, value: Mapping[str, Any]) -> bytes | None:
    """The block's own self-contained bytes, when the object gave each block its own version marker
    (ledgerdr's exports do: a target then stores them instead of re-encoding the block, ~350 µs a block).
    The segment must hold the parsed block's own hash, which binds it to the value it came from."""
    if segments is None or index >= len(segments):
        return None
    segment = segments[index]
    block_hash = value.get("blockHash")
    return segment if isinstance(block_hash, bytes) and block_hash and block_hash in segment else None


def read_ion_value(data: bytes | str) -> Any:
    """One Ion value (text or binary), e.g. a manifest."""
    try:
        return load_value(data)
    except (IonException, ValueError, TypeError, IndexError) as exc:
        raise DecodeError(f"unreadable Ion: {exc}") from None


def json_lines(data: bytes) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """(line index, line, parsed object) for each non-blank line of a JSON Lines object, in order.
    Raises DecodeError at the first line that is not a JSON object. Shared by `read_blocks` and the
    fused JSON chain check (verify.ChainChecker.feed_json_lines), so both read the same lines alike."""
    for index, line in enumerate(data.splitlines()):
        if not line or line.isspace():  # (strip() would copy every line)
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"line {index + 1} is not JSON: {exc}", index) from None
        if not isinstance(obj, dict):
            raise DecodeError(f"line {index + 1} is not a JSON object", index)
        yield index, line, obj


def json_chain_block(obj: dict[str, Any], index: int) -> Block:
    """A parsed JSON line as a chain-only block: only addresses and hashes re-typed (in place).
    Raises DecodeError naming the line when the block does not fit QLDB's schema."""
    try:
        return Block(_retype_chain(obj))
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"line {index + 1}: block does not match QLDB's schema: {exc}", index) from None


def _read_json_lines(data: bytes, chain_only: bool = False) -> Iterator[Block]:
    for index, line, obj in json_lines(data):
        if chain_only:
            yield json_chain_block(obj, index)
            continue
        if _revisions_have_float(obj):
            # orjson reads 1.20 as the float 1.2; re-read the line so decimals keep their exact text.
            obj = json.loads(line, parse_float=Decimal)
        try:
            # no float is left in any revision's data, so it needs no conversion (nor a copy)
            yield Block(_retype_block(obj, data_has_floats=False))
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"line {index + 1}: block does not match QLDB's schema: {exc}", index) from None


def _revisions_have_float(obj: Mapping[str, Any]) -> bool:
    return any(_contains_float(r.get("data")) for r in obj.get("revisions") or () if isinstance(r, dict))


def _contains_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_contains_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_float(v) for v in value)
    return False


def _blob(text: str | None) -> bytes | None:
    # binascii directly: base64.b64decode's argument coercion cost as much as the decoding (same rules)
    return None if text is None else a2b_base64(text)


# What QLDB writes for txTime and blockTimestamp: UTC, second precision, up to 6 fraction digits.
_COMMON_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z\Z")


def parse_timestamp(text: str) -> Any:
    """An Ion timestamp from its text form, keeping its precision (JSON keeps timestamps as text).

    The common form is built directly (5 µs instead of the Ion reader's 26 µs per call; the value, its
    precision, fraction digits and Ion hash are those `simpleion.loads` gives, checked in
    tests/test_journal_verify.py); anything else goes through the reader."""
    if isinstance(text, str) and (match := _COMMON_TIMESTAMP.match(text)) is not None:
        year, month, day, hour, minute, second, fraction = match.groups()
        if fraction is None:
            return Timestamp(int(year), int(month), int(day), int(hour), int(minute), int(second), 0, UTC,
                             precision=TimestampPrecision.SECOND, fractional_precision=0,
                             fractional_seconds=Decimal(0))
        return Timestamp(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         int(fraction.ljust(6, "0")), UTC, precision=TimestampPrecision.SECOND,
                         fractional_precision=len(fraction), fractional_seconds=Decimal("0." + fraction))
    value = simpleion.loads(text)
    if getattr(value, "ion_type", None) != IonType.TIMESTAMP:
        raise ValueError(f"not an Ion timestamp: {text!r}")
    return value


def _retype_chain(obj: dict[str, Any]) -> dict[str, Any]:
    # _blob inlined: this runs for every block of a chain check, whose budget is about one JSON parse
    obj["blockAddress"] = _address(obj["blockAddress"])
    for name in ("blockHash", "entriesHash", "previousBlockHash"):
        if name in obj:
            value = obj[name]
            obj[name] = None if value is None else a2b_base64(value)
    obj["entriesHashList"] = [None if h is None else a2b_base64(h) for h in obj.get("entriesHashList") or ()]
    for revision in obj.get("revisions") or ():
        value = revision["hash"]
        revision["hash"] = None if value is None else a2b_base64(value)
    return obj


def _address(value: Mapping[str, Any]) -> dict[str, Any]:
    return {"strandId": value["strandId"], "sequenceNo": int(value["sequenceNo"])}


def retype_json_block(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Give a JSON block back the Ion types its schema fixes (hashes, timestamps, ints)."""
    return _retype_block(obj, data_has_floats=True)


def _retype_block(obj: Mapping[str, Any], *, data_has_floats: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if name == "blockAddress":
            out[name] = _address(value)
        elif name == "blockTimestamp":
            out[name] = parse_timestamp(value)
        elif name in ("blockHash", "entriesHash", "previousBlockHash"):
            out[name] = _blob(value)
        elif name == "entriesHashList":
            out[name] = [_blob(h) for h in value]
        elif name == "transactionInfo":
            out[name] = _retype_transaction_info(value)
        elif name == "redactionInfo":
            out[name] = _retype_redaction_info(value)
        elif name == "revisions":
            out[name] = [_retype_revision(r, data_has_floats) for r in value]
        else:
            out[name] = value
    return out


def _retype_transaction_info(info: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(info)
    if "statements" in info:
        out["statements"] = [
            {
                **s,
                **({"startTime": parse_timestamp(s["startTime"])} if "startTime" in s else {}),
                **({"statementDigest": _blob(s["statementDigest"])} if "statementDigest" in s else {}),
            }
            for s in info["statements"]
        ]
    return out


def _retype_redaction_info(info: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(info)
    if "revisions" in info:
        out["revisions"] = [
            {**r, **({"blockAddress": _address(r["blockAddress"])} if "blockAddress" in r else {})}
            for r in info["revisions"]
        ]
    return out


def _retype_revision(rev: Mapping[str, Any], data_has_floats: bool = True) -> dict[str, Any]:
    out = dict(rev)
    if "blockAddress" in rev:
        out["blockAddress"] = _address(rev["blockAddress"])
    for name in ("hash", "dataHash"):
        if name in rev:
            out[name] = _blob(rev[name])
    if "metadata" in rev:
        meta = dict(rev["metadata"])
        if "txTime" in meta:
            meta["txTime"] = parse_timestamp(meta["txTime"])
        if "version" in meta:
            meta["version"] = int(meta["version"])
        out["metadata"] = meta
    if "data" in rev and data_has_floats:
        out["data"] = _json_data(rev["data"])
    return out


def _json_data(value: Any) -> Any:
    """CONTRACTS §6: strings stay strings, integers ints, other numbers decimals."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _json_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_data(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- writing


def encode_block(value: Mapping[str, Any], fmt: ExportFormat) -> bytes:
    """One block in `fmt`. Ion binary blocks are self-contained (each begins with the version marker),
    so concatenating them gives a valid Ion stream: an Ion-binary export is a byte copy."""
    if fmt is ExportFormat.ION_BINARY:
        return _ion_binary(value)
    if fmt is ExportFormat.ION_TEXT:
        return _ion_text(value).encode() + b"\n"
    return orjson.dumps(to_json(value)) + b"\n"


def encode_ion_value(value: Any, fmt: ExportFormat) -> bytes:
    """A manifest or other single value, in the export's format (QLDB writes manifests that way)."""
    if fmt is ExportFormat.ION_BINARY:
        return _ion_binary(value)
    if fmt is ExportFormat.ION_TEXT:
        return _ion_text(value).encode()
    return orjson.dumps(to_json(value))


def to_json(value: Any) -> Any:
    """QLDB's down-conversion of an Ion value to JSON (reference §1.5): lossy by design."""
    if value is None or isinstance(value, IonPyNull):
        return None
    ion_type = getattr(value, "ion_type", None)
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        if ion_type == IonType.CLOB:
            return "".join(chr(b) if 0x20 <= b <= 0x7E else f"\\u00{b:02x}" for b in value)
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value) if -(2**63) <= value < 2**64 else orjson.Fragment(str(int(value)).encode())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, Decimal):
        return _decimal_fragment(value)
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, SymbolToken):  # before Sequence: a symbol token (IonPySymbol too) is a namedtuple
        if value.text is None:
            raise TypeError(f"cannot down-convert a symbol with unknown text (SID {value.sid}) to JSON")
        return str(value.text)
    if isinstance(value, Sequence):
        return [to_json(v) for v in value]
    raise TypeError(f"cannot down-convert {type(value).__name__} to JSON")


def _decimal_fragment(value: Decimal) -> Any:
    """A JSON number with the decimal's exact digits (orjson has no Decimal type; a Fragment is raw JSON)."""
    if not value.is_finite():
        return None
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite decimal's exponent is a number (not n, N or F)
    if exponent < 0:
        text = f"{value:f}"  # keeps trailing zeros: 1.20 stays 1.20
    else:
        text = ("-" if sign else "") + "".join(map(str, digits)) + (f"e{exponent}" if exponent else "")
    return orjson.Fragment(text.encode())


def timestamp_text(value: datetime) -> str:
    """The Ion text form of a timestamp, precision kept."""
    return _ion_text(value)


def _ion_binary(value: Any) -> bytes:
    data: bytes = simpleion.dumps(value, binary=True)
    return data


def _ion_text(value: Any) -> str:
    text: str = simpleion.dumps(value, binary=False, omit_version_marker=True)
    return text
