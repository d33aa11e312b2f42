"""`ledgerdr._ionhash`, the C twin of `journal.ionwrite`'s hot functions, against the Python reference.

1. `sha256` equals hashlib's.
2. `encode_hashed(v, table, fallback)` returns exactly what `ionwrite.encode_hashed_python(v, table)` returns, and
   leaves the symbol table in the same state, for plain values (handled in C) mixed with values the C code
   hands to the fallback (Decimal, datetime, SymbolToken, IonPy values), on fresh and pre-seeded tables.
3. `binary_hash_repr` / `binary_ion_hash` agree with the Python ones on every input: streams both encoders
   write, the same streams mutated or truncated, and garbage after a version marker (None included).
4. The embedded ledger's workload documents, both ways.
"""

from __future__ import annotations

import hashlib
import random
import struct
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.journal import ionwrite
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
fallback_scalars = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)).map(
        lambda d: d.replace(tzinfo=timezone(timedelta(minutes=90)))
    ),
    names.map(lambda n: SymbolToken(n, None)),
    st.just(SymbolToken(None, 0)),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(names, children, max_size=6),
    )


plain_values = st.recursive(plain_scalars, _containers, max_leaves=25)


def _ionpy(value: Any) -> Any:
    """The IonPy value (IonPyDict, IonPyInt, IonPyText…) that loads returns for `value` (or `value` itself
    when simpleion cannot write it, e.g. a bytearray)."""
    try:
        return simpleion.loads(simpleion.dumps(value, binary=True))
    except TypeError:
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
    assert t1.sids == t2.sids
    assert t1.texts == t2.texts
    return got


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


# --- binary_hash_repr --------------------------------------------------------------------------------------


def _check_repr(data: bytes) -> None:
    expected = ionwrite.binary_hash_repr_python(data)
    assert native.binary_hash_repr(data) == expected
    assert native.binary_ion_hash(data) == (None if expected is None else hashlib.sha256(expected).digest())


def _streams(value: Any) -> list[bytes]:
    out = []
    try:
        out.append(simpleion.dumps(value, binary=True))
    except TypeError:  # a bytearray
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
    # reader raises RecursionError at its depth cap and `ionwrite.binary_hash_repr` maps it to None.
    data = IVM + _nested_lists(20_000)
    assert ionwrite.binary_hash_repr_python(data) is None
    with pytest.raises(RecursionError):
        native.binary_hash_repr(data)
    assert ionwrite.binary_hash_repr(data) is None
    assert ionwrite.binary_ion_hash(data) is None


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
    assert native.binary_hash_repr(bytearray(data)) == ionwrite.binary_hash_repr_python(data)
    assert native.binary_hash_repr(memoryview(data)) == ionwrite.binary_hash_repr_python(data)
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
