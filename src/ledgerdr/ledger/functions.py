"""QLDB's scalar functions beyond the basic ones in expr.py: strings, timestamps and CAST.

Each takes evaluated arguments and follows PartiQL's absent-value rule: a MISSING argument gives
MISSING, a NULL one NULL (before any type check). A value of the wrong type gives MISSING, as
PartiQL's permissive mode does. Date parts (`DATE_ADD(day, …)`, `EXTRACT(year FROM …)`) arrive as
lower-case strings from the parser. Timestamps are amazon.ion `Timestamp`s; results keep the input's
precision. `TO_STRING` / `TO_TIMESTAMP` patterns use the letters of QLDB's reference (Java's
DateTimeFormatter): y, M, d, H, h, m, s, S, a, X/x and literal text in 'quotes'.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision
from amazon.ion.exceptions import IonException
from amazon.ion.simple_types import IonPyNull

from ..errors import LedgerError
from ..journal.writer import ms_timestamp
from .syntax import MISSING

# The id of the transaction running the statement being evaluated (set by Transaction.execute), for TXID().
CURRENT_TRANSACTION_ID: ContextVar[str | None] = ContextVar("ledgerdr_transaction_id", default=None)
DATE_PARTS = ("year", "month", "day", "hour", "minute", "second")
EXTRACT_PARTS = (*DATE_PARTS, "timezone_hour", "timezone_minute")
_UNIT_SECONDS = {"day": 86400, "hour": 3600, "minute": 60, "second": 1}


def _absent(args: tuple[Any, ...]) -> Any:
    """MISSING if any argument is MISSING, else None if any is NULL, else a marker for 'present'."""
    if any(a is MISSING for a in args):
        return MISSING
    if any(a is None or isinstance(a, IonPyNull) for a in args):
        return None
    return _PRESENT


_PRESENT = object()


def _strict(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Absent-value propagation, and MISSING for arguments of the wrong type (TypeError/ValueError)."""

    def apply(*args: Any) -> Any:
        absent = _absent(args)
        if absent is not _PRESENT:
            return absent
        try:
            return fn(*args)
        except (TypeError, ValueError, ArithmeticError, InvalidOperation, OverflowError, IonException):
            return MISSING

    return apply


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return str(value)


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("not a timestamp")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return int(value)


def _like(original: datetime, moment: datetime, at_least: TimestampPrecision = TimestampPrecision.YEAR) -> Timestamp:
    """`moment` as an Ion timestamp with `original`'s precision, raised to `at_least` (adding seconds to a
    day-precision timestamp gives a timestamp with seconds)."""
    precision = getattr(original, "precision", None) or TimestampPrecision.SECOND
    if precision.value < at_least.value:
        precision = at_least
    fractional = getattr(original, "fractional_precision", None) or None
    return Timestamp(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                     moment.microsecond if fractional else None, tzinfo=moment.tzinfo, precision=precision,
                     fractional_precision=fractional)


_PART_PRECISION = {"year": TimestampPrecision.YEAR, "month": TimestampPrecision.MONTH, "day": TimestampPrecision.DAY,
                   "hour": TimestampPrecision.MINUTE, "minute": TimestampPrecision.MINUTE,
                   "second": TimestampPrecision.SECOND}


# ------------------------------------------------------------------------------------------- strings
def substring(value: Any, start: Any, length: Any = None) -> str:
    """SUBSTRING(s, start[, length]): 1-based; a start before 1 eats into the length, as PartiQL says."""
    text, first = _text(value), _int(start)
    end = len(text) + 1 if length is None else first + _int(length)
    if length is not None and _int(length) < 0:
        raise ValueError("negative length")
    low, high = max(first, 1), min(end, len(text) + 1)
    return text[low - 1:high - 1] if high > low else ""


def trim(value: Any, where: str = "both", characters: Any = " ") -> str:
    """TRIM([LEADING|TRAILING|BOTH] [chars] FROM s), TRIM(s): blanks (or `chars`) removed from the ends."""
    text, chars = _text(value), _text(characters)
    if where == "leading":
        return text.lstrip(chars)
    return text.rstrip(chars) if where == "trailing" else text.strip(chars)


def txid() -> str:
    """TXID(): the id of the current transaction."""
    current = CURRENT_TRANSACTION_ID.get()
    if current is None:
        raise LedgerError("TXID() is only defined inside a transaction")
    return current


# ---------------------------------------------------------------------------------------- timestamps
def utcnow() -> Timestamp:
    return ms_timestamp(datetime.now(UTC))


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def date_add(part: str, quantity: Any, value: Any) -> Timestamp:
    moment, amount = _timestamp(value), _int(quantity)
    if part in ("year", "month"):
        moved = _add_months(moment, amount * (12 if part == "year" else 1))
    else:
        moved = moment + timedelta(seconds=_UNIT_SECONDS[part] * amount)
    return _like(moment, moved, _PART_PRECISION[part])


def date_diff(part: str, first: Any, second: Any) -> int:
    """Whole `part`s from the first timestamp to the second (negative when the second is earlier)."""
    a, b = _timestamp(first), _timestamp(second)
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=a.tzinfo or UTC), b.replace(tzinfo=b.tzinfo or UTC)
    if part in ("year", "month"):
        months = (b.year - a.year) * 12 + b.month - a.month
        if months > 0 and _add_months(a, months) > b:
            months -= 1
        elif months < 0 and _add_months(a, months) < b:
            months += 1
        return int(months / 12) if part == "year" else months
    return int((b - a).total_seconds() / _UNIT_SECONDS[part])


def extract(part: str, value: Any) -> int | Decimal:
    moment = _timestamp(value)
    if part == "second":
        return Decimal(moment.second) + Decimal(moment.microsecond) / Decimal(1_000_000)
    if part in ("timezone_hour", "timezone_minute"):
        offset = moment.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = -1 if minutes < 0 else 1
        hours, rest = divmod(abs(minutes), 60)
        return sign * (hours if part == "timezone_hour" else rest)
    return getattr(moment, part)


# Pattern letters → (strftime directive, regex for parsing); longest runs first.
_PATTERN = re.compile(r"'[^']*'|y+|M+|d+|H+|h+|m+|s+|S+|a|X+|x+|[^'yMdHhmsSaXx]+")
_DIRECTIVES = {
    "yyyy": "%Y", "yy": "%y", "y": "%Y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%-m", "dd": "%d", "d": "%-d",
    "HH": "%H", "H": "%-H", "hh": "%I", "h": "%-I", "mm": "%M", "m": "%-M", "ss": "%S", "s": "%-S", "a": "%p",
}


def _format_token(token: str, moment: datetime) -> str:
    if token.startswith("'"):
        return token[1:-1] or "'"
    if token[0] == "S":
        return f"{moment.microsecond:06d}"[: len(token)].ljust(len(token), "0")
    if token[0] in "Xx":
        offset = moment.utcoffset()
        if offset is None:
            raise ValueError("no offset")
        if token[0] == "X" and offset == timedelta(0):
            return "Z"
        minutes = int(offset.total_seconds() // 60)
        sign, (hours, rest) = ("-" if minutes < 0 else "+"), divmod(abs(minutes), 60)
        return f"{sign}{hours:02d}" + ("" if len(token) == 1 else (":" if len(token) >= 3 else "") + f"{rest:02d}")
    directive = _DIRECTIVES.get(token) or (_DIRECTIVES.get(token[:4]) if token[0] == "y" else None)
    if directive is None:
        return token if not token[0].isalpha() else _raise(f"pattern letters {token!r} are not supported")
    return moment.strftime(directive)


def _raise(message: str) -> str:
    raise ValueError(message)


def to_string(value: Any, pattern: Any) -> str:
    moment, text = _timestamp(value), _text(pattern)
    return "".join(_format_token(token, moment) for token in _PATTERN.findall(text))


_PARSE_DIRECTIVES = {**_DIRECTIVES, "M": "%m", "d": "%d", "H": "%H", "h": "%I", "m": "%M", "s": "%S"}


def to_timestamp(value: Any, pattern: Any = None) -> Timestamp:
    """TO_TIMESTAMP(s): an Ion timestamp text; TO_TIMESTAMP(s, pattern): parsed with the pattern."""
    text = _text(value)
    if pattern is None:
        parsed = simpleion.loads(text)
        if not isinstance(parsed, datetime):
            raise ValueError("not an Ion timestamp")
        return parsed
    parts = []
    for token in _PATTERN.findall(_text(pattern)):
        if token.startswith("'"):
            parts.append((token[1:-1] or "'").replace("%", "%%"))
        elif token[0] in "Xx":
            parts.append("%z")
        elif token[0] == "S":
            parts.append("%f")
        elif token[0].isalpha():
            directive = _PARSE_DIRECTIVES.get(token) or (_PARSE_DIRECTIVES.get(token[:4]) if token[0] == "y" else None)
            if directive is None:
                raise ValueError(f"pattern letters {token!r} are not supported")
            parts.append(directive)
        else:
            parts.append(token.replace("%", "%%"))
    moment = datetime.strptime(text.replace("Z", "+0000") if "%z" in parts else text, "".join(parts))
    present = set(parts)
    precision = next((p for directives, p in (
        ({"%S", "%-S", "%f"}, TimestampPrecision.SECOND), ({"%H", "%I", "%M"}, TimestampPrecision.MINUTE),
        ({"%d"}, TimestampPrecision.DAY), ({"%m", "%b", "%B"}, TimestampPrecision.MONTH)) if present & directives),
        TimestampPrecision.YEAR)
    return Timestamp(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
                     moment.microsecond if "%f" in parts else None, tzinfo=moment.tzinfo or UTC,
                     precision=precision, fractional_precision=6 if "%f" in parts else None)


# ---------------------------------------------------------------------------------------------- CAST
def cast(value: Any, type_name: str) -> Any:
    """CAST(v AS type) for QLDB's scalar types; an impossible conversion gives MISSING."""
    if type_name in ("int", "integer"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str):
            return int(Decimal(value.strip()))
        return int(value)
    if type_name in ("decimal", "numeric"):
        return Decimal(str(value).strip()) if not isinstance(value, bool) else Decimal(int(value))
    if type_name in ("float", "real", "double"):
        return float(value)
    if type_name in ("bool", "boolean"):
        if isinstance(value, str):
            return {"true": True, "false": False}[value.strip().lower()]
        return bool(value)
    if type_name in ("string", "symbol", "varchar", "char"):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return simpleion.dumps(value, binary=False, omit_version_marker=True)
        if isinstance(value, int | float | Decimal | str):
            return str(value)
        raise TypeError("not a scalar")
    if type_name == "timestamp":
        return value if isinstance(value, datetime) else to_timestamp(value)
    raise ValueError(f"unknown type {type_name}")


# name → evaluator (their argument counts are in partiql.FUNCTIONS, which the parser checks).
SCALARS: dict[str, Callable[..., Any]] = {
    "substring": _strict(substring),
    "trim": _strict(trim),
    "utcnow": utcnow,
    "txid": txid,
    "date_add": _strict(date_add),
    "date_diff": _strict(date_diff),
    "extract": _strict(extract),
    "to_string": _strict(to_string),
    "to_timestamp": _strict(to_timestamp),
    "cast": _strict(cast),
}
