"""`ledgerdr._ionhash`, the C twin of `journal.ionwrite`'s hot functions, against the Python reference.

1. `sha256` equals hashlib's.
2. `encode_hashed(v, table, fallback)` returns exactly what `ionwrite.encode_hashed_python(v, table)` returns, and
   leaves the symbol table in the same state (sids, texts, the encoded symbol list, the prelude), for plain
   values, Decimal, naive/UTC datetimes and Timestamps, and SymbolTokens (handled in C) mixed with values the C code hands to
   the fallback (IonPy values, Timestamps, other offsets, subclasses), on fresh and pre-seeded tables.
3. `binary_hash_repr` / `binary_ion_hash` agree with the Python ones on every input: streams both encoders
   write, the same streams mutated or truncated, and garbage after a version marker (None included).
4. The embedded ledger's workload documents, both ways.
5. `text_ion_hash` of a str is hashing.ion_hash's.
"""

from __future__ import annotations

import hashlib
import random
import struct
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.journal import ionread, ionwrite
from ledgerdr.journal.ionwrite import IVM, SymbolTable, Unencodable
from ledgerdr.ledger.workload import make_document

native = pytest.importorskip("ledgerdr._ionhash")  # CI builds it (see test_native.py)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fallback(value: Any, table: SymbolTable) -> tuple[bytes, bytes]:
    return ionwrite._HANDLERS[value.__class__](value, table)


# --- values ------------------------------------------------------------------------------------------------

_chars = st.one_of(st.sampled_from("\x0b\x0c\x0e\x00é€😀"), st.characters(blacklist_categories=("Cs",)))
texts = st.one_of(
    st.text(_chars, max_size=20),
    st.builds(  # lengths around the descriptor and VarUInt boundaries (in UTF-8 bytes)
        lambda char, count: char * count,
        st.sampled_from(["x", "\x0b", "é", "😀"]),
        st.sampled_from([0, 13, 14, 127, 128, 700, 1023, 1024, 20_000]),
    ),
)
names = st.one_of(st.sampled_from(["id", "a", "b", "\x0b", "$ion", "symbols", "name", ""]), texts)
ints = st.one_of(
    st.integers(-300, 5000),
    st.integers(-(2**64) - 5, 2**64 + 5),
    st.integers(-(2**300), 2**300),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 255, 256, -255, -256]),
)
nans = st.integers(0, 2**52 - 1).map(
    lambda m: struct.unpack(">d", struct.pack(">Q", 0x7FF0_0000_0000_0000 | (m or 1) | (m & 1) << 63))[0]
)
floats = st.one_of(st.floats(), nans, st.sampled_from([0.0, -0.0, float("inf"), float("-inf"), float("nan")]))
binaries = st.one_of(st.binary(max_size=40), st.binary(min_size=14, max_size=2000))
plain_scalars = st.one_of(
    st.none(), st.booleans(), ints, floats, texts, binaries, binaries.map(bytearray),
)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.builds(  # huge coefficients (past 18 digits, and past the 4000 the C code builds itself), any exponent
        lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.one_of(st.lists(st.integers(0, 9), min_size=1, max_size=60), st.lists(st.integers(0, 9), min_size=3990,
                                                                                 max_size=4010)),
        st.one_of(st.integers(-200, 200), st.integers(-(10**9) - 5, 10**9 + 5),
                  st.sampled_from([-(10**9), -(10**9) + 1, 10**9 - 1, 10**9, 63, 64, -63, -64, 8191, 8192, -8192])),
    ),
)
datetimes = st.one_of(
    st.datetimes(),  # naive, years 1 to 9999
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(minutes=90)))  # not UTC: the fallback
    ),
    st.datetimes().map(lambda d: d.replace(microsecond=0)),
)


def _timestamp(moment: datetime, precision: int, digits: int, zone: Any) -> Timestamp:
    """An amazon.ion Timestamp of `moment` at `precision`, with `digits` fraction digits at second precision
    (past six, held by fractional_seconds): the C code writes UTC or naive ones at second precision with up
    to five digits, and hands every other to the fallback."""
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    if precision != TimestampPrecision.SECOND:
        return Timestamp(*fields, 0, tzinfo=zone, precision=TimestampPrecision(precision))
    if digits <= 6:
        step = 10 ** (6 - digits)
        return Timestamp(*fields, moment.microsecond // step * step, tzinfo=zone,
                         precision=TimestampPrecision.SECOND, fractional_precision=digits)
    fraction = Decimal(f"0.{moment.microsecond:06d}{'7' * (digits - 6)}")
    return Timestamp(*fields, moment.microsecond, tzinfo=zone, precision=TimestampPrecision.SECOND,
                     fractional_seconds=fraction)


timestamps = st.builds(
    _timestamp,
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.one_of(st.just(int(TimestampPrecision.SECOND)), st.integers(0, 4)),
    st.one_of(st.integers(0, 5), st.integers(0, 9)),
    st.sampled_from([UTC, None, timezone(timedelta(hours=-5))]),
)
symbol_tokens = st.one_of(names.map(lambda n: SymbolToken(n, None)), names.map(lambda n: SymbolToken(n, 7)),
                          st.just(SymbolToken(None, 0)))
fallback_scalars = st.one_of(decimals, datetimes, timestamps, symbol_tokens)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(names, children, max_size=6),
    )


plain_values = st.recursive(plain_scalars, _containers, max_leaves=25)


def _simpleion_safe(value: Any) -> bool:
    """Whether `value` is safe to give simpleion: amazon.ion's C writer fails on decimals with exponents
    past about ±10**6 and, after enough such failures, corrupts its heap (`malloc(): invalid size`)."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return not isinstance(exponent, int) or abs(exponent) < 100_000
    if isinstance(value, dict):
        return all(_simpleion_safe(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_simpleion_safe(item) for item in value)
    return True


def _ionpy(value: Any) -> Any:
    """The IonPy value (IonPyDict, IonPyInt, IonPyText…) that loads returns for `value` (or `value` itself
    when simpleion cannot write or read it back, e.g. a bytearray)."""
    if not _simpleion_safe(value):
        return value
    try:
        return simpleion.loads(simpleion.dumps(value, binary=True))
    except Exception:  # noqa: BLE001 - TypeError, or amazon.ion's IonException for a huge decimal
        return value


values = st.recursive(
    st.one_of(plain_scalars, fallback_scalars, plain_scalars.map(_ionpy)),
    lambda children: st.one_of(_containers(children), _containers(children).map(_ionpy)),
    max_leaves=25,
)


def _both(value: Any, t1: SymbolTable, t2: SymbolTable) -> tuple[bytes, bytes]:
    expected = ionwrite.encode_hashed_python(value, t2)
    got = native.encode_hashed(value, t1, fallback)
    assert got == expected
    _same_tables(t1, t2)
    return got


def _same_tables(t1: SymbolTable, t2: SymbolTable) -> None:
    assert t1.sids == t2.sids
    assert t1.texts == t2.texts
    assert b"".join(t1._pieces) == b"".join(t2._pieces)
    assert t1.prelude() == t2.prelude()


# --- sha256 ------------------------------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=300))
def test_sha256_matches_hashlib(data: bytes) -> None:
    expected = hashlib.sha256(data).digest()
    assert native.sha256(data) == expected
    assert native._sha256_portable(data) == expected  # the same code where the CPU has no SHA extensions


def test_sha256_every_length_and_large_inputs() -> None:
    rng = random.Random(5)
    for length in [*range(0, 300), 4095, 4096, 65_537, 1_000_003]:
        data = rng.randbytes(length)
        expected = hashlib.sha256(data).digest()
        assert native.sha256(data) == expected
        assert native._sha256_portable(data) == expected
    assert isinstance(native.SHA256_ACCELERATED, bool)
    assert native.sha256(bytearray(b"abc")) == hashlib.sha256(b"abc").digest()


# --- encode_hashed -----------------------------------------------------------------------------------------


@SETTINGS
@given(plain_values)
def test_plain_values_encode_the_same(value: Any) -> None:
    _both(value, SymbolTable(), SymbolTable())


@SETTINGS
@given(values)
def test_values_with_fallback_types_encode_the_same(value: Any) -> None:
    _both(value, SymbolTable(), SymbolTable())


@SETTINGS
@given(st.lists(values, min_size=2, max_size=4))
def test_seeded_tables_stay_in_step(items: list[Any]) -> None:
    t1, t2 = SymbolTable(), SymbolTable()
    for value in items:  # each value sees the symbols the earlier ones added
        _both(value, t1, t2)
    assert t1.prelude() == t2.prelude()


@pytest.mark.parametrize(
    "value",
    [
        {SymbolToken("a", None): 1},  # a key that is not a str: the whole dict goes to the fallback
        {"x": 1, SymbolToken("y", None): [2, {"z": 3}]},
        {"a": Decimal("1.50"), "b": [datetime(2024, 5, 6, 7, 8, 9), SymbolToken("sym", None)]},
        [_ionpy({"n": 1, "l": [1, "s", 2.5, None, True]}), {"d": _ionpy([b"\x0b", -7])}],
        {"a" * 14: "b" * 14, "c" * 200: ["d" * 1024]},
        {f"f{i}": i for i in range(300)},  # many fields, SIDs past one octet of VarUInt
        [[[[[[[[[[{"deep": []}]]]]]]]]]],
        2**1000,
        -(2**1000),
        -(2**63),
        float("-nan"),
        struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0],
    ],
)
def test_examples_encode_the_same(value: Any) -> None:
    _both(value, SymbolTable(), SymbolTable())


def test_sids_past_16384_use_longer_varuints() -> None:
    t1, t2 = SymbolTable(), SymbolTable()
    for i in range(17_000):
        t1.sid(f"s{i}")
        t2.sid(f"s{i}")
    _both({"s16999": 1, "s5": 2, "fresh": {"s16500": None}}, t1, t2)


def test_errors_propagate_like_the_python_code() -> None:
    # A lone surrogate cannot be UTF-8: Python's encode_hashed turns the UnicodeEncodeError into Unencodable;
    # the native one lets it escape (the caller wraps it the same way). The table ends in the same state.
    for value in ({"a": 1, "b": "\ud800"}, {"ok": 1, "\udfff": 2}, ["\ud800"]):
        t1, t2 = SymbolTable(), SymbolTable()
        with pytest.raises(Unencodable):
            ionwrite.encode_hashed_python(value, t2)
        with pytest.raises(UnicodeEncodeError):
            native.encode_hashed(value, t1, fallback)
        assert t1.texts == t2.texts
    # A type no handler takes: the fallback's exception comes through unchanged.
    with pytest.raises(Unencodable, match="cannot encode"):
        native.encode_hashed({"a": [object()]}, SymbolTable(), fallback)
    with pytest.raises(TypeError):
        native.encode_hashed({"a": 1j}, SymbolTable(), lambda v, t: "not a pair")


def test_deep_nesting_raises_recursion_error() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(RecursionError):
        native.encode_hashed(value, SymbolTable(), fallback)
    with pytest.raises(RecursionError):
        ionwrite.encode_hashed_python(value, SymbolTable())


# --- Decimal, datetime and SymbolToken in C; symbols added without table.sid ------------------------------

_SEEDS = ("a", "b", "sym", "key", "x" * 20)


def _seeded() -> SymbolTable:
    table = SymbolTable()
    for text in _SEEDS:
        table.sid(text)
    table.fields(("owner", "tags"))
    return table


@SETTINGS
@given(st.lists(fallback_scalars, max_size=6), st.booleans())
def test_new_native_scalars_encode_the_same(items: list[Any], seeded: bool) -> None:
    t1, t2 = (_seeded(), _seeded()) if seeded else (SymbolTable(), SymbolTable())
    for item in items:
        _both(item, t1, t2)
    _both(items, t1, t2)
    _both({f"k{i}": item for i, item in enumerate(items)}, t1, t2)


@pytest.mark.parametrize(
    "value",
    [
        Decimal(0), Decimal("0.0"), Decimal("-0"), Decimal("-0.00"), Decimal("0E+5"), Decimal("-0E-5"),
        Decimal("1E+5"), Decimal("1.500"), Decimal("100"), Decimal("-1"), Decimal("127"), Decimal("128"),
        Decimal("-128"), Decimal("255"), Decimal("256"), Decimal("0.000001"), Decimal("1E-63"), Decimal("1E-64"),
        Decimal("1E+63"), Decimal("1E+64"), Decimal("999999999999999999"), Decimal("1000000000000000000"),
        Decimal("-9223372036854775808"), Decimal("18446744073709551616"), Decimal("9" * 100), Decimal("-" + "8" * 4000),
        Decimal("1" * 5000), Decimal("1E+999999999"), Decimal("-1E-999999999"), Decimal("1E+1000000000"),
        Decimal("7E+2000000000"), Decimal("12345678901234567890123E-40"), Decimal("-0.000E+20"),
        datetime(2024, 5, 6, 7, 8, 9), datetime(2024, 5, 6, 7, 8, 9, 123456), datetime(2024, 5, 6, 7, 8, 9, 128),
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), datetime(1, 1, 1), datetime(127, 12, 31, 23, 59, 59),
        datetime(128, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 1, 1, 11, 12, 14, 999999), datetime(1979, 11, 14, 11, 14, 11, 11),  # escaped octets
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5))),  # fallback
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(0))),  # UTC, but not timezone.utc: fallback
        _timestamp(datetime(2024, 5, 6, 7, 8, 9, 123456), 4, 3, UTC),
        _timestamp(datetime(2024, 5, 6, 7, 8, 9, 123456), 4, 0, UTC),
        _timestamp(datetime(2024, 5, 6, 7, 8, 9), 4, 2, None),  # a zero coefficient: the exponent alone
        _timestamp(datetime(2024, 5, 6, 7, 8, 9, 999999), 4, 5, UTC),
        _timestamp(datetime(1979, 11, 14, 11, 14, 11, 11000), 4, 3, UTC),  # escaped octets
        _timestamp(datetime(2024, 5, 6, 7, 8, 9, 123456), 4, 6, UTC),  # fallback from here on
        _timestamp(datetime(2024, 5, 6, 7, 8, 9, 123456), 4, 8, None),
        _timestamp(datetime(2024, 5, 6, 7, 8, 9), 3, 0, UTC),
        _timestamp(datetime(2024, 5, 6, 7, 8, 9, 120000), 4, 2, timezone(timedelta(hours=9))),
        SymbolToken("sym", None), SymbolToken("", None), SymbolToken("$ion", None), SymbolToken("\x0b\x0e", 3),
        SymbolToken(None, 0), SymbolToken("é" * 20, None), SymbolToken("a" * 2000, None),
        {"a": SymbolToken("a", None), "b": [SymbolToken("b", None), SymbolToken("new", None)], "new": 1},
        [Decimal("1.5"), datetime(2020, 2, 29), SymbolToken("t", None), {"d": Decimal("-0E-3")}],
    ],
)
def test_new_native_examples_encode_the_same(value: Any) -> None:
    _both(value, SymbolTable(), SymbolTable())
    _both(value, _seeded(), _seeded())


def test_new_types_do_not_reach_the_fallback() -> None:
    seen: list[type] = []

    def recording(value: Any, table: SymbolTable) -> tuple[bytes, bytes]:
        seen.append(type(value))
        return fallback(value, table)

    handled = [Decimal("1.5"), Decimal("-0"), Decimal("9" * 50), datetime(2024, 1, 2),
               datetime(2024, 1, 2, tzinfo=UTC), SymbolToken("s", None), SymbolToken(None, 0),
               _timestamp(datetime(2024, 1, 2, 3, 4, 5, 678000), 4, 3, UTC),
               _timestamp(datetime(2024, 1, 2, 3, 4, 5), 4, 0, None)]
    native.encode_hashed(handled, SymbolTable(), recording)
    assert seen == []
    passed_on = [Decimal("NaN"), Decimal("Infinity"), Decimal("1E+1000000000"), Decimal("1" * 4001),
                 datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=1))), SymbolToken(123, None),
                 simpleion.loads(simpleion.dumps(Decimal("1.5"))), ionwrite.Timestamp(2024, 1, 2),
                 _timestamp(datetime(2024, 1, 2), 4, 6, UTC), _timestamp(datetime(2024, 1, 2), 3, 0, UTC),
                 _timestamp(datetime(2024, 1, 2), 4, 3, timezone(timedelta(hours=1))),
                 simpleion.loads("2024-01-02T03:04:05.678Z")]
    for value in passed_on:
        seen.clear()
        try:
            native.encode_hashed([value], SymbolTable(), recording)
        except Exception:  # noqa: BLE001 - NaN, SymbolToken(123): the Python code raises, which is the point
            pass
        assert seen == [type(value)], value


@pytest.mark.parametrize(
    "value",
    [SymbolToken(None, 5), [1, SymbolToken(None, 5)], {"a": SymbolToken(None, None)}, Decimal("NaN"),
     {"a": [Decimal("-Infinity")]}, Decimal("sNaN"), SymbolToken(42, None)],
)
def test_unencodable_new_types_raise_through_the_fallback(value: Any) -> None:
    t1, t2 = _seeded(), _seeded()
    with pytest.raises(Unencodable):
        ionwrite.encode_hashed_python(value, t2)
    with pytest.raises(Exception) as raised:
        native.encode_hashed(value, t1, fallback)
    # The fallback's exception comes through unchanged; the wrapper turns it into Unencodable as Python does.
    assert isinstance(raised.value, (Unencodable, TypeError, ValueError, KeyError, AttributeError))
    with pytest.raises(Unencodable):
        ionwrite._encode_hashed_native(value, SymbolTable())
    assert t1.sids == t2.sids
    assert t1.texts == t2.texts


def test_symbol_with_surrogate_text_fails_like_the_python_code() -> None:
    # Python's SymbolTable.sid adds the text, then fails encoding it: the C code lets the fallback do that.
    t1, t2 = SymbolTable(), SymbolTable()
    with pytest.raises(Unencodable):
        ionwrite.encode_hashed_python([SymbolToken("\ud800", None)], t2)
    with pytest.raises(UnicodeEncodeError):
        native.encode_hashed([SymbolToken("\ud800", None)], t1, fallback)
    assert t1.sids == t2.sids
    assert t1.texts == t2.texts
    assert t1._pieces == t2._pieces


def test_symbols_are_added_without_table_sid_only_for_an_exact_symbol_table() -> None:
    class Counting(SymbolTable):
        __slots__ = ("calls",)

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def sid(self, text: str) -> int:
            self.calls.append(text)
            return super().sid(text)

    value = {"a": 1, "b": SymbolToken("c", None), "d": [{"a": SymbolToken("e", None)}]}
    counting, reference = Counting(), SymbolTable()
    _both(value, counting, reference)
    assert counting.calls == ["a", "b", "c", "d", "e"]
    exact = SymbolTable()
    before = SymbolTable.sid
    try:
        SymbolTable.sid = None  # type: ignore[assignment,method-assign]  # must not be called
        native.encode_hashed(value, exact, fallback)
    finally:
        SymbolTable.sid = before  # type: ignore[method-assign]
    _same_tables(exact, reference)
    again = SymbolTable()
    ionwrite.encode_hashed_python(value, again)
    assert again.standalone(b"") == exact.standalone(b"")


def test_table_grown_by_fields_then_native_then_python() -> None:
    t1, t2 = SymbolTable(), SymbolTable()
    for table in (t1, t2):
        table.fields(("blockAddress", "strandId", "sequenceNo"))
    _both({"strandId": "s", "fresh": SymbolToken("other", None)}, t1, t2)
    for table in (t1, t2):
        table.fields(("fresh", "later", "blockAddress"))
    ionwrite.encode_hashed_python({"python": SymbolToken("p", None)}, t1)
    native.encode_hashed({"python": SymbolToken("p", None)}, t2, fallback)
    _same_tables(t1, t2)
    loaded = simpleion.loads(t1.standalone(native.encode_hashed(SymbolToken("later", None), t1, fallback)[0]))
    assert loaded.text == "later"


# --- binary_hash_repr --------------------------------------------------------------------------------------


def _check_repr(data: bytes) -> None:
    expected = ionread.binary_hash_repr_python(data)
    assert native.binary_hash_repr(data) == expected
    assert native.binary_ion_hash(data) == (None if expected is None else hashlib.sha256(expected).digest())
    for name in ("a", "b", "id", "name", "\x0b", "", "absent"):  # the same streams read for one field
        assert native.binary_top_field(data, name) == ionread.binary_top_field_python(data, name)


def _streams(value: Any) -> list[bytes]:
    out = []
    try:
        if _simpleion_safe(value):
            out.append(simpleion.dumps(value, binary=True))
    except Exception:  # noqa: BLE001 - TypeError for a bytearray, IonException for a huge decimal
        pass
    table = SymbolTable()
    try:
        out.append(table.standalone(ionwrite.encode_ion(value, table)))
    except Unencodable:
        pass
    return out


@SETTINGS
@given(values)
def test_streams_read_the_same(value: Any) -> None:
    for data in _streams(value):
        _check_repr(data)


@SETTINGS
@given(values, st.randoms(use_true_random=False))
def test_mutated_streams_read_the_same(value: Any, rng: random.Random) -> None:
    interesting = [0x00, 0x0B, 0x0C, 0x0E, 0x0F, 0x1F, 0x71, 0x80, 0x81, 0x83, 0x87, 0x8E, 0xD1, 0xE0, 0xEE, 0xFF]
    for data in _streams(value):
        for _ in range(10):
            altered = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(len(altered))
                octet = rng.choice(interesting) if rng.random() < 0.5 else rng.randrange(256)
                action = rng.randrange(4)
                if action == 0:
                    altered[at] = octet
                elif action == 1:
                    altered.insert(at, octet)
                elif action == 2 and len(altered) > 1:
                    del altered[at]
                else:
                    altered[at] ^= 1 << rng.randrange(8)
            _check_repr(bytes(altered))
        for cut in range(len(data) + 1) if len(data) < 64 else rng.sample(range(len(data) + 1), 64):
            _check_repr(data[:cut])


@SETTINGS
@given(st.binary(max_size=64), st.lists(st.sampled_from(list(range(0x00, 0x100, 0x11)) + [0x83, 0x87, 0xEE]),
                                        max_size=32))
def test_garbage_after_a_version_marker(garbage: bytes, descriptors: list[int]) -> None:
    _check_repr(garbage)
    _check_repr(IVM + garbage)
    _check_repr(IVM + bytes(descriptors) + garbage)
    _check_repr(IVM + b"\xee" + garbage)
    _check_repr(IVM + bytes.fromhex("e7 81 83 d4 87 b2 81 61") + garbage)


@pytest.mark.parametrize(
    "hex_stream",
    [
        "",
        "e0 01 00 ea",
        "e0 01 00 ea e0 01 00 ea 0f",
        "e0 01 00 ea 48 7f f8 00 00 00 00 00 01",
        "e0 01 00 ea 48 ff f0 00 00 00 00 00 00",
        "e0 01 00 ea 4e 88 00 00 00 00 00 00 00 00",  # float with a VarUInt length
        "e0 01 00 ea 30",  # negative zero int
        "e0 01 00 ea 71 00",
        "e0 01 00 ea 7e 8a 00 00 00 00 00 00 00 00 00 01",  # a 10-octet SID
        "e0 01 00 ea 7e 8a 00 00 00 00 00 00 00 00 00 00",  # a 10-octet zero SID
        "e0 01 00 ea ef 81 83 d0",
        "e0 01 00 ea e4 81 83 d1 80 21 01",  # sorted-struct symbol table
        "e0 01 00 ea e8 81 83 d5 87 b3 82 c3 a9 d3 8a 21 01",
        "e0 01 00 ea e8 81 83 d5 87 b3 82 ed a0 d3 8a 21 01",  # symbol text not UTF-8 (a surrogate)
        "e0 01 00 ea e7 81 83 d4 87 b2 81 61 e5 82 8a 8a 21 01",  # annotated int
        "e0 01 00 ea e7 81 83 d4 87 b2 81 61 e5 82 8a 8a e3 81 8a 20",  # nested annotation wrapper
        "e0 01 00 ea e3 ff ff ff ff ff ff ff ff ff ff 7f 81",  # enormous VarUInts
        "e0 01 00 ea de ff ff ff ff ff ff ff ff ff 81 84 20",
        "e0 01 00 ea d3 84 21 01 d3 84 21 01",
        "e0 01 00 ea d1",
        "e0 01 00 ea e1 81",
        "e0 01 00 ea e2 81 83",
        "e0 01 00 ea e3 81 83 d0",
        "e0 01 00 ea e3 81 83 d0 20",
    ],
)
def test_hand_made_streams(hex_stream: str) -> None:
    _check_repr(bytes.fromhex(hex_stream))


def test_deeply_nested_stream_is_outside_the_subset_both_ways() -> None:
    # Hostile nesting: the readers' contract is None ("decode it instead"), never an exception. The C
    # reader raises RecursionError at its depth cap and `ionread.binary_hash_repr` maps it to None.
    data = IVM + _nested_lists(20_000)
    assert ionread.binary_hash_repr_python(data) is None
    with pytest.raises(RecursionError):
        native.binary_hash_repr(data)
    assert ionread.binary_hash_repr(data) is None
    assert ionread.binary_ion_hash(data) is None


def _nested_lists(depth: int) -> bytes:
    """`depth` lists, each holding the next, the innermost empty."""
    heads = []
    length = 1  # the innermost b"\xb0"
    for _ in range(depth):
        head = b"\xbe" + ionwrite.varuint(length)
        heads.append(head)
        length += len(head)
    return b"".join(reversed(heads)) + b"\xb0"


def test_input_types() -> None:
    data = simpleion.dumps({"a": [1, "b"]}, binary=True)
    assert native.binary_hash_repr(bytearray(data)) == ionread.binary_hash_repr_python(data)
    assert native.binary_hash_repr(memoryview(data)) == ionread.binary_hash_repr_python(data)
    with pytest.raises(TypeError):
        native.binary_hash_repr("text")


# --- the embedded ledger's documents ----------------------------------------------------------------------


def test_workload_documents() -> None:
    rng = random.Random(17)
    block_1, block_2 = SymbolTable(), SymbolTable()  # one transaction's table across documents
    for serial in range(400):
        document = make_document(rng, "Vehicle", serial)
        t1, t2 = SymbolTable(), SymbolTable()
        ion, serialized = _both(document, t1, t2)
        assert hashlib.sha256(serialized).digest() == native.sha256(serialized)
        standalone = t1.standalone(ion)
        _check_repr(standalone)
        assert native.binary_ion_hash(standalone) == hashlib.sha256(serialized).digest()
        _check_repr(simpleion.dumps(document, binary=True))
        _both(document, block_1, block_2)
    _check_repr(block_1.standalone(native.encode_hashed([1, "x"], block_1, fallback)[0]))


# --- stored_index_keys ------------------------------------------------------------------------------------


def _index_keys_both_ways(rows: list[tuple[str, bytes | None]], name: str) -> tuple[dict, dict]:
    """The keys of field `name` per document: from stored_index_keys (its undecided rows keyed by
    `_stored_index_key`, as the embedded target does), and from `_stored_index_key` alone. A document that
    amazon.ion cannot load back (a decimal past its range) has no key either way."""
    from ledgerdr.targets.embedded import _stored_index_key

    def python_key(data: bytes) -> bytes | None:
        try:
            return _stored_index_key(data, name)
        except Exception:  # noqa: BLE001 - IonException, as when the target builds the index
            return None

    entries, undecided = native.stored_index_keys(rows, name, "index-id")
    assert all(index_id == "index-id" for index_id, _, _ in entries)
    got = {doc_id: key for _, key, doc_id in entries}
    assert len(got) == len(entries) and not got.keys() & {doc_id for doc_id, _ in undecided}
    got.update((doc_id, key) for doc_id, data in undecided if (key := python_key(data)) is not None)
    expected = {doc_id: key for doc_id, data in rows if data is not None and (key := python_key(data)) is not None}
    return got, expected


@SETTINGS
@given(st.lists(values, min_size=1, max_size=6), st.lists(st.one_of(ints, texts), max_size=6))
def test_stored_index_keys_are_the_python_keys(items: list[Any], fields: list[Any]) -> None:
    rows: list[tuple[str, bytes | None]] = [("no data", None)]
    for value in [*items, *({"a": field, "b": len(rows)} for field in fields), *({"a": item} for item in items)]:
        rows.extend((f"d{len(rows)}", data) for data in _streams(value))
    for name in ("a", "b", "absent", "\x0b"):
        got, expected = _index_keys_both_ways(rows, name)
        assert got == expected


def test_stored_index_keys_of_ints_and_strings_at_their_boundaries() -> None:
    edges: list[Any] = [0, -1, 1, 2**53, 2**53 + 1, 2**62 + 3, 2**63 - 1, 2**63, -(2**63), 2**64, -(2**64) + 1,
                        10**16, 123456789012345678, "", "x" * 63, "x" * 64, "é" * 40, "😀"]
    rows: list[tuple[str, bytes | None]] = []
    for value in edges:
        table = SymbolTable()
        rows.append((f"d{len(rows)}", table.standalone(ionwrite.encode_ion({"a": value}, table))))
    entries, undecided = native.stored_index_keys(rows, "a", "i")
    # only the ints whose magnitude is past int64 are left to Python
    assert [edges[int(doc_id[1:])] for doc_id, _ in undecided] == [2**63, -(2**63), 2**64, -(2**64) + 1]
    got, expected = _index_keys_both_ways(rows, "a")
    assert got == expected and len(got) == len(edges)
    assert native.stored_index_keys(rows, "\ud800", "i") is None  # a name UTF-8 cannot hold: Python decides


def test_escaped_bytes_at_every_offset_and_structs_of_every_size() -> None:
    """The escape (0x0B, 0x0C, 0x0E each preceded by 0x0C) is taken eight bytes at a time where none needs it, and
    a struct's field hashes are sorted by insertion up to 16 fields, by qsort past that: strings and blobs with
    an escaped byte at each offset of several 8-byte windows (and runs of them), and structs of 0 to 40 fields,
    hash as the Python code hashes them."""
    values: list[Any] = []
    for length in range(0, 26):
        for offset in range(length):
            for special in (0x0B, 0x0C, 0x0E):
                raw = bytearray(b"abcdefghijklmnopqrstuvwxyz"[:length])
                raw[offset] = special
                values += [bytes(raw), raw.decode("latin-1")]
        values.append(bytes([0x0B, 0x0C, 0x0E] * length))
    values += [{f"f{i}": i * 7919 for i in range(count)} for count in range(41)]
    values += [{f"k{i}": bytes([0x0C] * (i % 9)) for i in range(count)} for count in (15, 16, 17, 33)]
    for value in values:
        for data in _streams(value):
            _check_repr(data)


@SETTINGS
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.integers(0, 31))
def test_dot_is_hashing_dot(a: bytes, b: bytes, shared: int) -> None:
    """`dot` (the digest accumulator's fold in C) gives hashing.dot's bytes, also for hashes that agree on their
    last `shared` bytes (QLDB's order then decided lower down), from bytes, bytearray and memoryview."""
    from ledgerdr.journal.hashing import dot

    b = b[: 32 - shared] + a[32 - shared:]
    for x, y in ((a, b), (b, a), (a, a)):
        assert native.dot(x, y) == dot(x, y)
        assert native.dot(bytearray(x), memoryview(y)) == dot(x, y)


def test_dot_of_an_empty_or_a_wrong_length_operand_is_hashing_dots() -> None:
    from ledgerdr.journal.hashing import dot

    h = hashlib.sha256(b"x").digest()
    for x, y in ((b"", h), (h, b""), (b"", b""), (b"", b"abc"), (b"abc", b"")):
        assert native.dot(x, y) == dot(x, y) and type(native.dot(x, y)) is bytes
    for x, y in ((b"abc", h), (h, h + b"!"), (h[:31], h[:31])):
        with pytest.raises(ValueError) as python_error:
            dot(x, y)
        with pytest.raises(ValueError) as c_error:
            native.dot(x, y)
        assert str(c_error.value) == str(python_error.value)


@SETTINGS
@given(st.one_of(st.text(), st.text(st.sampled_from("\x0b\x0c\x0ea\u00e9\U0001f600\ud800"))))
def test_text_ion_hash_is_hashings_ion_hash_of_a_str(text: str) -> None:
    """`text_ion_hash` (a served transaction id's and statement's Ion Hash) gives hashing.ion_hash's bytes for
    every str with a UTF-8 form, the Ion Hash markers and the escape byte included; None for one without (a lone
    surrogate) and for anything but an exact str, which hashing.ion_hash then decides."""
    from ledgerdr.journal.hashing import ion_hash

    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert native.text_ion_hash(text) is None
        return
    assert native.text_ion_hash(text) == ion_hash(text)


def test_text_ion_hash_leaves_anything_but_a_str_to_python() -> None:
    class Text(str):
        pass

    assert native.text_ion_hash(Text("x")) is None and native.text_ion_hash(b"x") is None
