"""Tests of the C converter `ledgerdr._iontext.binary_to_text` (Ion 1.0 binary -> Ion text).

The property: for every binary stream, `simpleion.loads(text)` equals `simpleion.loads(binary)` value for
value, checked with `ion_equals` and with ledgerdr's Ion Hash (which also tells apart decimal and timestamp
precision, offsets, -0d0, typed nulls, symbol/string, clob/blob, sexp/list). Plus real data (a QLDB stream
sample and the embedded ledger's journal blocks), local symbol tables, and malformed input (random bytes,
truncations, mutations): a ValueError, never a crash or an out-of-bounds read.

The module is an optional C extension: skipped when it is not built here (CI builds it, so it runs there).
"""

from __future__ import annotations

import random
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType, Timestamp, TimestampPrecision
from amazon.ion.equivalence import ion_equals
from amazon.ion.simple_types import (
    IonPyBool,
    IonPyBytes,
    IonPyDecimal,
    IonPyFloat,
    IonPyInt,
    IonPyList,
    IonPyNull,
    IonPyText,
    IonPyTimestamp,
)
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ionwrite import varuint
from support.ion_strategies import datetimes, multimap, timestamps
from support.qldb_export_factory import SAMPLES

_iontext = pytest.importorskip("ledgerdr._iontext")  # built by setup.py / CI; optional elsewhere
binary_to_text = _iontext.binary_to_text

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLE = SAMPLES / "streams-dmv_block-summary-and-revision.ion"
IVM = b"\xe0\x01\x00\xea"


def assert_equivalent(binary: bytes) -> bytes:
    """Convert `binary`, check the text against amazon.ion's reading of the binary, return the text."""
    text = binary_to_text(binary)
    expected = simpleion.loads(binary, single_value=False)
    got = simpleion.loads(text, single_value=False)
    assert len(got) == len(expected), text
    for g, e in zip(got, expected, strict=True):
        assert ion_equals(g, e), (text, g, e)
        assert ion_hash(g) == ion_hash(e), (text, g, e)
    assert text.count(b"\n") == len(expected)
    return text


# --- a hand encoder for the cases amazon.ion's writer never produces ----------------------------------------


def tlv(t: int, body: bytes, l_nibble: int | None = None) -> bytes:
    if l_nibble is not None:
        return bytes([t << 4 | l_nibble]) + body
    if len(body) < 14:
        return bytes([t << 4 | len(body)]) + body
    return bytes([t << 4 | 14]) + varuint(len(body)) + body


def string(s: str) -> bytes:
    return tlv(8, s.encode())


def symbol(sid: int) -> bytes:
    return tlv(7, sid.to_bytes((sid.bit_length() + 7) // 8, "big"))


def struct(*fields: tuple[int, bytes]) -> bytes:
    return tlv(13, b"".join(varuint(sid) + value for sid, value in fields))


def annotated(sids: list[int], value: bytes) -> bytes:
    annots = b"".join(varuint(s) for s in sids)
    return tlv(14, varuint(len(annots)) + annots + value)


def lst(*values: bytes) -> bytes:
    return tlv(11, b"".join(values))


def symtab(symbols: list[bytes], imports: bytes | None = None) -> bytes:
    fields = [] if imports is None else [(6, imports)]
    return annotated([3], struct(*fields, (7, lst(*symbols))))


# --- a strategy for Ion values ------------------------------------------------------------------------------

_chars = st.one_of(
    st.sampled_from("\x00\x0b\x7f\"'\\\n\t\u00e9\u2028\U0001f600"),
    st.characters(blacklist_categories=("Cs",)),
)
texts = st.text(_chars, max_size=10)
names = st.one_of(
    st.sampled_from(
        ["a", "b", "id", "null", "true", "nan", "$1", "$ion", "$ion_1_0", "a b", "", "+", "x_$9"]
    ),
    texts,
)
ints = st.one_of(st.integers(-300, 300), st.integers(-(2**64), 2**64), st.integers(-(2**300), 2**300))
floats = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, float("inf"), float("-inf"), 1e16, 1e-7, 2.5]))
floats32 = st.floats(width=32)


@st.composite
def decimals(draw: st.DrawFn) -> Decimal:
    sign = draw(st.integers(0, 1))
    coefficient = draw(st.one_of(st.just(0), st.integers(0, 10**6), st.integers(0, 10**40)))
    exponent = draw(st.one_of(st.integers(-12, 12), st.integers(-5000, 5000)))
    return Decimal((sign, tuple(int(d) for d in str(coefficient)), exponent))


annotations = st.lists(names.map(lambda n: SymbolToken(n, None)), max_size=3).map(tuple)
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    decimals(),
    texts,
    st.binary(max_size=40),
    timestamps(max_digits=12),
    datetimes(),
)
ionpy_scalars = st.one_of(
    st.builds(lambda t, a: IonPyNull.from_value(t, None, a), st.sampled_from(list(IonType)), annotations),
    st.builds(lambda b, a: IonPyBytes.from_value(IonType.CLOB, b, a), st.binary(max_size=20), annotations),
    st.builds(lambda b, a: IonPyBytes.from_value(IonType.BLOB, b, a), st.binary(max_size=20), annotations),
    st.builds(lambda s, a: IonPyText.from_value(IonType.SYMBOL, s, a), names, annotations),
    st.builds(lambda s, a: IonPyText.from_value(IonType.STRING, s, a), texts, annotations),
    st.builds(lambda v, a: IonPyInt.from_value(IonType.INT, v, a), ints, annotations),
    st.builds(lambda v, a: IonPyBool.from_value(IonType.BOOL, v, a), st.booleans(), annotations),
    st.builds(lambda v, a: IonPyFloat.from_value(IonType.FLOAT, v, a), floats, annotations),
    st.builds(lambda v, a: IonPyDecimal.from_value(IonType.DECIMAL, v, a), decimals(), annotations),
    st.builds(lambda v, a: IonPyTimestamp.from_value(IonType.TIMESTAMP, v, a), timestamps(max_digits=12), annotations),
    names.map(lambda n: SymbolToken(n, None)),
    st.just(SymbolToken(None, 0)),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(names, children, max_size=5),
        st.builds(multimap, st.lists(st.tuples(names, children), max_size=5), annotations),
        st.builds(lambda xs, a: IonPyList.from_value(IonType.SEXP, xs, a), st.lists(children, max_size=4), annotations),
        st.builds(lambda xs, a: IonPyList.from_value(IonType.LIST, xs, a), st.lists(children, max_size=4), annotations),
    )  # fmt: skip


ion_values = st.recursive(st.one_of(plain_scalars, ionpy_scalars), _containers, max_leaves=15)


def _is_ivm_like_symbol(value: Any) -> bool:
    """A top-level symbol `$ion_1_0`: Ion text reads it as a version marker (amazon.ion rejects it in binary)."""
    text = value.text if isinstance(value, SymbolToken) else value
    kind = getattr(value, "ion_type", None)
    return (
        (isinstance(value, SymbolToken) or kind is IonType.SYMBOL)
        and text == "$ion_1_0"
        and not getattr(value, "ion_annotations", ())
    )


@SETTINGS
@given(st.lists(ion_values, min_size=1, max_size=4), st.booleans())
def test_equivalent_to_amazon_ion(values: list[Any], separate_blocks: bool) -> None:
    values = [v for v in values if not _is_ivm_like_symbol(v)]
    if separate_blocks:  # several self-contained blocks, each with its own local symbol table
        binary = b"".join(simpleion.dumps(v, binary=True) for v in values)
    else:
        binary = simpleion.dumps(values, binary=True, sequence_as_stream=True)
    assert_equivalent(binary)


@SETTINGS
@given(st.lists(floats32, min_size=1, max_size=5))
def test_float32(values: list[float]) -> None:
    import struct as pystruct

    binary = IVM + b"".join(b"\x44" + pystruct.pack(">f", v) for v in values)
    assert_equivalent(binary)


# --- specific forms -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"\x20", b"0"),
        (b"\x21\x05", b"5"),
        (b"\x31\x05", b"-5"),
        (b"\x29" + b"\x00" + b"\xff" * 8, b"18446744073709551615"),
        (b"\x2a" + b"\x01" + b"\x00" * 9, str(2**72).encode()),
        (b"\x40", b"0e0"),
        (b"\x50", b"0d0"),
        (b"\x52\xc1\x80", b"-0d-1"),
        (b"\x51\xc2", b"0d-2"),
        (b"\x53\xc2\x04\xce", b"1230d-2"),
        (b"\x0f", b"null"),
        (b"\x1f", b"null.bool"),
        (b"\x3f", b"null.int"),
        (b"\xdf", b"null.struct"),
        (b"\x10\x11", b"false\ntrue"),
        (b"\x70", b"$0"),
        (b"\x71\x04", b"name"),
        (b"\xd0", b"{}"),
        (b"\xb0\xc0", b"[]\n()"),
        (b"\xb4\x20\x00\x21\x01", b"[0,1]"),  # a NOP pad inside a list
        (b"\xd4\x84\x20\x80\x00", b"{name:0}"),  # a NOP pad as a struct field
        (b"\xd1\x82\x84\x20", b"{name:0}"),  # a sorted struct (L=1): length as a VarUInt
        (b"\x01\x00\x00" + b"\x0e\x81\x00", b""),  # NOP pads at top level
        (b"\x63\xc0\x0f\xe4", b"2020T"),
        (b"\x64\xc0\x0f\xe4\x81", b"2020-01T"),
        (b"\x65\xc0\x0f\xe4\x81\x82", b"2020-01-02"),
        (b"\x67\x80\x0f\xe4\x81\x82\x83\x84", b"2020-01-02T03:04Z"),
        (b"\x67\xc0\x0f\xe4\x81\x82\x83\x84", b"2020-01-02T03:04-00:00"),
        (b"\x67\x81\x0f\xe4\x81\x82\x97\xbb", b"2020-01-03T00:00+00:01"),  # UTC 23:59 on the 2nd
        (b"\x67\xc1\x0f\xe4\x81\x81\x80\x80", b"2019-12-31T23:59-00:01"),
        (b"\x69\x80\x0f\xe4\x81\x82\x83\x84\x85\xc3", b"2020-01-02T03:04:05.000Z"),
        (b"\x6a\x80\x0f\xe4\x81\x82\x83\x84\x85\xc3\x07", b"2020-01-02T03:04:05.007Z"),
        (b"\x69\x80\x0f\xe4\x81\x82\x83\x84\x85\x80", b"2020-01-02T03:04:05Z"),  # 0d0 fraction: ignored
        (b"\x92\x22\x7f", b'{{"\\x22\\x7F"}}'),
        (b"\xa3abc", b"{{YWJj}}"),
        (b"\x84a\x00\xc3\xa9", b'"a\\x00\xc3\xa9"'),
    ],
)
def test_forms(body: bytes, text: bytes) -> None:
    out = binary_to_text(IVM + body)
    assert out == (text + b"\n" if text else b"")
    assert_equivalent(IVM + body)


def test_symbols_quoted_when_needed() -> None:
    names = ["abc", "_x$1", "null", "true", "false", "nan", "$12", "$", "a b", "", "it's", "é", "$ion_1_0"]
    binary = IVM + symtab([string(n) for n in names]) + lst(*(symbol(10 + i) for i in range(len(names))))
    out = assert_equivalent(binary)
    assert out == b"[abc,_x$1,'null','true','false','nan','$12',$,'a b','','it\\'s','\xc3\xa9',$ion_1_0]\n"


# --- real data ----------------------------------------------------------------------------------------------


def test_qldb_stream_sample() -> None:
    values = simpleion.loads(SAMPLE.read_text(), single_value=False)
    assert values
    assert_equivalent(simpleion.dumps(values, binary=True, sequence_as_stream=True))
    assert_equivalent(b"".join(simpleion.dumps(v, binary=True) for v in values))


def test_ledger_journal_blocks(tmp_path: Path) -> None:
    from ledgerdr.ledger.engine import Ledger
    from ledgerdr.ledger.workload import run_workload

    with Ledger.create(tmp_path / "t.qldb") as ledger:
        run_workload(ledger, 40, seed=7)
        blocks = [row.ion for row in ledger.iter_blocks(0, None)]
    assert len(blocks) >= 40
    for block in blocks[:5]:
        assert_equivalent(block)
    assert_equivalent(b"".join(blocks))


# --- local symbol tables ------------------------------------------------------------------------------------


def test_blocks_with_different_symbol_tables() -> None:
    block_a = IVM + symtab([string("x"), string("y")]) + struct((10, symbol(11)))
    block_b = IVM + symtab([string("p")]) + struct((10, symbol(10)))
    assert binary_to_text(block_a + block_b) == b"{x:y}\n{p:p}\n"
    assert_equivalent(block_a + block_b)
    with pytest.raises(ValueError, match="unknown text"):  # block_b's table does not have SID 11
        binary_to_text(block_b + IVM + symbol(11))


def test_symbol_table_append_and_replace() -> None:
    first = symtab([string("a")])
    appended = symtab([string("b")], imports=symbol(3))
    replaced = symtab([string("c")])
    binary = IVM + first + symbol(10) + appended + lst(symbol(10), symbol(11)) + replaced + symbol(10)
    assert binary_to_text(binary) == b"a\n[a,b]\nc\n"
    assert_equivalent(binary)
    with pytest.raises(ValueError, match="unknown text"):
        binary_to_text(IVM + first + replaced + symbol(11))


def test_symbol_table_unknown_text_and_shared_imports() -> None:
    # a null or non-string entry in `symbols` takes a SID but has no text
    binary = IVM + symtab([b"\x8f", tlv(2, b"\x05"), string("z")])
    assert binary_to_text(binary + symbol(12)) == b"z\n"
    for sid in (10, 11, 13, 1000):
        with pytest.raises(ValueError, match="unknown text"):
            binary_to_text(binary + symbol(sid))
    shared = lst(struct((4, string("shared")), (5, tlv(2, b"\x01")), (8, tlv(2, b"\x02"))))
    with pytest.raises(ValueError, match="shared symbol table"):
        binary_to_text(IVM + symtab([string("q")], imports=shared) + symbol(10))
    with pytest.raises(ValueError):
        binary_to_text(IVM + symtab([], imports=symbol(4)) + symbol(1))
    # a version marker resets to the system symbols
    with pytest.raises(ValueError, match="unknown text"):
        binary_to_text(IVM + symtab([string("q")]) + symbol(10) + IVM + symbol(10))


def test_top_level_ivm_symbol_is_rejected() -> None:
    with pytest.raises(ValueError):
        binary_to_text(IVM + symbol(2))
    assert binary_to_text(IVM + lst(symbol(2))) == b"[$ion_1_0]\n"


# --- malformed input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x21\x01",  # no version marker
        IVM[:3],
        b"\xe0\x01\x01\xea",  # Ion 1.1
        IVM + b"\xf0",  # reserved type
        IVM + b"\x21",  # truncated int
        IVM + b"\x30",  # negative zero int
        IVM + b"\x12",  # bool with L=2
        IVM + b"\x43\x00\x00\x00",  # float of 3 bytes
        IVM + b"\x82\xc3\x28",  # bad UTF-8
        IVM + b"\x83\xed\xa0\x80",  # UTF-8 surrogate
        IVM + b"\xb2\x21",  # list member longer than the list
        IVM + b"\xe3\x81\x84\x21\x01",  # annotation wrapper shorter than its value
        IVM + b"\xe4\x81\x84\x20\x20",  # annotation wrapper longer than its value
        IVM + b"\xe3\x80\x20\x20",  # empty annotation list
        IVM + b"\x65\xc0\x0f\xe4\x8d\x82",  # month 13
        IVM + b"\x65\xc0\x0f\xe4\x82\x9e",  # February 30
        IVM + b"\x66\xc0\x0f\xe4\x81\x82\x83",  # hour without minute
        IVM + b"\x6a\x80\x0f\xe4\x81\x82\x83\x84\x85\xc1\x0a",  # fraction 1.0
        IVM + b"\x71\x0a",  # SID out of range
        IVM + b"\xe0",  # annotation wrapper with L=0 (a broken version marker)
        IVM + b"\xd1\x80",  # empty sorted struct
        IVM + b"\x2e\x7f",  # truncated VarUInt length
        IVM + b"\x5e\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # absurd length
    ],
)
def test_malformed_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="byte offset"):
        binary_to_text(data)


def test_empty_and_markers_only() -> None:
    assert binary_to_text(b"") == b""
    assert binary_to_text(IVM * 3) == b""
    with pytest.raises(TypeError):
        binary_to_text("text")  # type: ignore[arg-type]


def _valid_stream() -> bytes:
    values = simpleion.loads(SAMPLE.read_text(), single_value=False)
    extra = [Decimal("-0.00"), Timestamp(2020, 1, 2, 3, 4, 5, None, timezone(timedelta(minutes=-90)),
             precision=TimestampPrecision.SECOND, fractional_seconds=Decimal("0.120")), 2**100, -1.5, None]  # fmt: skip
    return b"".join(simpleion.dumps(v, binary=True) for v in [*values, extra, "tail"])


def test_every_prefix() -> None:
    data = _valid_stream()
    lines = binary_to_text(data).splitlines(keepends=True)
    allowed = {b"".join(lines[:k]) for k in range(len(lines) + 1)}
    ok = 0
    for end in range(len(data)):
        try:
            out = binary_to_text(data[:end])
        except ValueError as error:
            assert "byte offset" in str(error)
            continue
        ok += 1
        assert out in allowed
    assert ok >= len(lines)  # at least each value boundary


def test_random_garbage_and_mutations() -> None:
    rng = random.Random(1234)
    data = _valid_stream()
    for _ in range(3000):
        garbage = IVM + rng.randbytes(rng.randrange(1, 64))
        try:
            binary_to_text(garbage)
        except ValueError:
            pass
    agreed = 0
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(4, len(mutated))] = rng.randrange(256)
        try:
            text = binary_to_text(bytes(mutated))
        except ValueError:
            continue
        try:
            expected = simpleion.loads(bytes(mutated), single_value=False)
        except Exception:
            continue  # amazon.ion rejects it; the converter is free to be lenient here
        got = simpleion.loads(text, single_value=False)
        assert len(got) == len(expected)
        assert all(ion_equals(g, e) for g, e in zip(got, expected, strict=True))
        agreed += 1
    assert agreed > 0


def test_deep_nesting_is_bounded() -> None:
    value = b"\x20"
    for _ in range(1500):
        value = lst(value)
    with pytest.raises(ValueError, match="too deep"):
        binary_to_text(IVM + value)
