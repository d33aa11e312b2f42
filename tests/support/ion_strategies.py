"""Hypothesis strategies for Ion values that several property tests share: timestamps at every precision,
plain datetimes, and structs that repeat field names. Each test module keeps its own texts, names and
number ranges, which it tunes to what it checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from amazon.ion.core import IonType, Timestamp, TimestampPrecision
from amazon.ion.simple_types import IonPyDict
from amazon.ion.symbols import SymbolToken
from hypothesis import strategies as st

# Offsets in minutes; None is the unknown offset (-00:00).
offsets = st.one_of(st.none(), st.just(0), st.integers(-23 * 60 - 59, 23 * 60 + 59))


@st.composite
def timestamps(draw: st.DrawFn, max_digits: int = 9) -> Timestamp:
    """An Ion timestamp at any precision, with 0 to `max_digits` fraction digits at second precision."""
    precision = draw(st.sampled_from(list(TimestampPrecision)))
    year = draw(st.one_of(st.integers(2, 9998), st.sampled_from([2, 9998, 2000, 2024])))
    month = draw(st.integers(1, 12)) if precision >= TimestampPrecision.MONTH else 1
    day = (
        draw(st.integers(1, 31 if month in (1, 3, 5, 7, 8, 10, 12) else 28))
        if precision >= TimestampPrecision.DAY
        else 1
    )
    hour = minute = second = 0
    tz = None
    if precision >= TimestampPrecision.MINUTE:
        hour, minute = draw(st.integers(0, 23)), draw(st.integers(0, 59))
        offset = draw(offsets)
        tz = None if offset is None else timezone(timedelta(minutes=offset))
    fraction = Decimal(0)
    if precision >= TimestampPrecision.SECOND:
        second = draw(st.integers(0, 59))
        digits = draw(st.integers(0, max_digits))
        if digits:
            fraction = Decimal(draw(st.one_of(st.just(0), st.integers(0, 10**digits - 1)))).scaleb(-digits)
    return Timestamp(
        year, month, day, hour, minute, second, None, tz, precision=precision, fractional_seconds=fraction
    )


@st.composite
def datetimes(draw: st.DrawFn) -> datetime:
    """A plain datetime, naive or aware: dumps writes it at second precision with six digits."""
    value = draw(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
    offset = draw(offsets)
    return value if offset is None else value.replace(tzinfo=timezone(timedelta(minutes=offset)))


def multimap(fields: list[tuple[str, Any]], annotations: tuple[SymbolToken, ...]) -> IonPyDict:
    """A struct that may repeat a field name, with annotations."""
    value = IonPyDict.from_value(IonType.STRUCT, {}, annotations)
    for name, child in fields:
        value.add_item(name, child)
    return value


# A fuzz test's damage: (relative position, octet) edits, each applied as one kind of change.
damage_edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=3)
damage_kinds = st.sampled_from(["replace", "truncate", "insert"])


def damaged(data: bytes, edits: list[tuple[float, int]], how: str) -> bytes:
    """`data` (not empty) with an octet replaced or inserted at each edit's relative position, or cut at the first."""
    out = bytearray(data)
    for where, octet in edits:
        position = int(where * len(out))
        if how == "replace":
            out[position] = octet
        elif how == "insert":
            out[position:position] = bytes((octet,))
        else:
            del out[position:]
            break
    return bytes(out)


# One flipped byte each, in the local symbol table's list of symbols (a string's length made a number).
STALLS_AMAZON_ION_C = [bytes.fromhex(
    "e00100eaeed38183decf87becc8356494e844d616b658459656172" + flipped + "5072696365864f776e6572738c5072696d6172"
    "794f776e657288506572736f6e4964" + tail + "8f5365636f6e646172794f776e6572738474616773847768656eded18a8e91314e"
    "34414c3131443735433130393135318b84466f72648c2207db8d4840290000000000008ede9e8fde99908e9641424344454647"
    "48494a4b4c4d4e4f5051525354555691b092b481618162930f") for flipped, tail in (("48", "8e"), ("85", "2d"))]
