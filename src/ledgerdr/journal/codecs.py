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
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.exceptions import IonException
from amazon.ion.simple_types import IonPyNull

from ..errors import ConfigError
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
    try:
        values = simpleion.loads(data, single_value=False)
    except (IonException, ValueError, TypeError, IndexError) as exc:
        raise DecodeError(f"unreadable Ion: {exc}") from None
    for index, value in enumerate(values):
        if not isinstance(value, Mapping) or getattr(value, "ion_type", IonType.STRUCT) != IonType.STRUCT:
            raise DecodeError(f"top-level value #{index} is not a block struct", index)
        yield Block(value)


def read_ion_value(data: bytes | str) -> Any:
    """One Ion value (text or binary), e.g. a manifest."""
    try:
        return simpleion.loads(data)
    except (IonException, ValueError, TypeError, IndexError) as exc:
        raise DecodeError(f"unreadable Ion: {exc}") from None


def _read_json_lines(data: bytes, chain_only: bool = False) -> Iterator[Block]:
    for index, line in enumerate(data.splitlines()):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"line {index + 1} is not JSON: {exc}", index) from None
        if not isinstance(obj, dict):
            raise DecodeError(f"line {index + 1} is not a JSON object", index)
        if chain_only:
            try:
                yield Block(_retype_chain(obj))
            except (KeyError, TypeError, ValueError) as exc:
                raise DecodeError(f"line {index + 1}: block does not match QLDB's schema: {exc}", index) from None
            continue
        if _revisions_have_float(obj):
            # orjson reads 1.20 as the float 1.2; re-read the line so decimals keep their exact text.
            obj = json.loads(line, parse_float=Decimal)
        try:
            yield Block(retype_json_block(obj))
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
    return None if text is None else base64.b64decode(text)


def parse_timestamp(text: str) -> Any:
    """An Ion timestamp from its text form, keeping its precision (JSON keeps timestamps as text)."""
    value = simpleion.loads(text)
    if getattr(value, "ion_type", None) != IonType.TIMESTAMP:
        raise ValueError(f"not an Ion timestamp: {text!r}")
    return value


def _retype_chain(obj: dict[str, Any]) -> dict[str, Any]:
    obj["blockAddress"] = _address(obj["blockAddress"])
    for name in ("blockHash", "entriesHash", "previousBlockHash"):
        if name in obj:
            obj[name] = _blob(obj[name])
    obj["entriesHashList"] = [_blob(h) for h in obj.get("entriesHashList") or ()]
    for revision in obj.get("revisions") or ():
        revision["hash"] = _blob(revision["hash"])
    return obj


def _address(value: Mapping[str, Any]) -> dict[str, Any]:
    return {"strandId": value["strandId"], "sequenceNo": int(value["sequenceNo"])}


def retype_json_block(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Give a JSON block back the Ion types its schema fixes (hashes, timestamps, ints)."""
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
            out[name] = [_retype_revision(r) for r in value]
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


def _retype_revision(rev: Mapping[str, Any]) -> dict[str, Any]:
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
    if "data" in rev:
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
        return simpleion.dumps(value, binary=True)
    if fmt is ExportFormat.ION_TEXT:
        return simpleion.dumps(value, binary=False, omit_version_marker=True).encode() + b"\n"
    return orjson.dumps(to_json(value)) + b"\n"


def encode_ion_value(value: Any, fmt: ExportFormat) -> bytes:
    """A manifest or other single value, in the export's format (QLDB writes manifests that way)."""
    if fmt is ExportFormat.ION_BINARY:
        return simpleion.dumps(value, binary=True)
    if fmt is ExportFormat.ION_TEXT:
        return simpleion.dumps(value, binary=False, omit_version_marker=True).encode()
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
    if isinstance(value, Sequence):
        return [to_json(v) for v in value]
    text = getattr(value, "text", None)  # a symbol token
    if text is not None:
        return str(text)
    raise TypeError(f"cannot down-convert {type(value).__name__} to JSON")


def _decimal_fragment(value: Decimal) -> Any:
    """A JSON number with the decimal's exact digits (orjson has no Decimal type; a Fragment is raw JSON)."""
    if not value.is_finite():
        return None
    sign, digits, exponent = value.as_tuple()
    if exponent < 0:
        text = f"{value:f}"  # keeps trailing zeros: 1.20 stays 1.20
    else:
        text = ("-" if sign else "") + "".join(map(str, digits)) + (f"e{exponent}" if exponent else "")
    return orjson.Fragment(text.encode())


def timestamp_text(value: datetime) -> str:
    """The Ion text form of a timestamp, precision kept."""
    return simpleion.dumps(value, binary=False, omit_version_marker=True)
