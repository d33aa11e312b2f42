"""`ledgerdr._pgcopy` against the Python it stands in for (targets/pgcopy.py).

`to_json(ion)` must give byte for byte `jsonb_text(simpleion.loads(ion))` (QLDB's JSON down-conversion as the
PostgreSQL target's jsonb column holds it) for every Ion value it reads, and None (the Python fallback) for the
rest; `history_copy` must write the bytes the Python builder writes. Values come from hypothesis strategies over
every Ion type (tests/support/ion_strategies.py: timestamps at every precision and offset, structs repeating
field names), encoded by amazon.ion and by ledgerdr's own encoder (the journal verifier's documents).
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyBytes, IonPyFloat
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr import native
from ledgerdr.journal.codecs import timestamp_text
from ledgerdr.journal.ionwrite import standalone_hashed
from ledgerdr.journal.writer import ms_timestamp
from ledgerdr.ledger.workload import make_document
from ledgerdr.targets import pgcopy
from support.ion_strategies import damage_edits, damage_kinds, damaged, datetimes, multimap, timestamps

pytest.importorskip("ledgerdr._pgcopy")  # CI builds it (see test_native.py)
if native.pgcopy is None:
    pytest.skip("LEDGERDR_PURE_PYTHON is set: the Python conversion is the one in use", allow_module_level=True)
to_json = native.pgcopy.to_json

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_chars = st.one_of(st.sampled_from('\x00\x01\x1f\x7f"\\/é\u2028😀'), st.characters(blacklist_categories=("Cs",)))
texts = st.text(_chars, max_size=12)
clobs = st.binary(max_size=12).map(lambda b: IonPyBytes.from_value(IonType.CLOB, b))
floats32 = st.floats(width=32).map(lambda f: IonPyFloat.from_value(IonType.FLOAT, f))
scalars = st.one_of(
    st.integers(-(2**64), 2**64), st.integers(-(2**70), 2**70), texts, st.booleans(), st.none(),
    st.binary(max_size=20), clobs, st.floats(), floats32,
    st.decimals(allow_nan=False, allow_infinity=False), st.decimals(allow_nan=False, allow_infinity=False, places=3),
    timestamps(), datetimes(), texts.map(lambda t: SymbolToken(t, None)),
    st.sampled_from([IonType.STRUCT, IonType.LIST, IonType.INT, IonType.STRING]).map(
        lambda t: simpleion.loads(f"null.{t.name.lower()}")),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4),
        st.builds(multimap, st.lists(st.tuples(st.sampled_from(["a", "b", "é"]), children), max_size=4),
                  st.just(()))),
    max_leaves=16,
)


def _python(ion: bytes) -> bytes:
    return pgcopy.document_json(ion).encode()


def _agrees(ion: bytes) -> bool:
    """True when C read the value (and then wrote the Python bytes); False when it declined."""
    mine = to_json(ion)
    if mine is None:
        return False
    assert mine == _python(ion), simpleion.loads(ion)
    return True


@SETTINGS
@given(values)
def test_json_from_ion_bytes_is_the_python_conversion(value) -> None:
    ion = simpleion.dumps(value, binary=True)
    try:
        expected = _python(ion)
    except (TypeError, ValueError):  # JSON cannot hold it (a symbol with unknown text): C must decline too
        assert to_json(ion) is None
        return
    mine = to_json(ion)
    assert mine is None or mine == expected


def test_what_the_c_conversion_reads() -> None:
    """Every Ion type the workloads write is read in C (not left to the fallback), each edge case exactly."""
    cases = [
        "0", "-1", "18446744073709551615", "-18446744073709551615", "true", "null", "null.struct", "null.int",
        "0e0", "-0e0", "1.5e16", "1e-5", "1.234e-5", "1e-6", "-2.5e-7", "1e300", "nan", "+inf", "-inf",
        "0.", "-0.00", "1.20", "-127d1", "0d5", "123.456", "0.0001", "12345678901234567d-30",
        "2007T", "2007-02T", "2007-02-23", "2007-02-23T12:14Z", "2007-02-23T12:14:33-00:00",
        "2007-02-23T12:14:33.079+05:30", "2007-02-23T23:59:59.123456789-23:59", "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.9+00:00", "2007-12-31T23:30:00.5-01:00",
        '"a\\0b\\x01\\n\\"\\\\"', "'sym'", "{{ \"a\\0\\x7f\\\"\" }}", "{{ aGVsbG8= }}", "{{ }}",
        "[1, (2 3), {a: 1, b: 2, a: 3, c: [x::4]}]", "ann::{'$ion': 1, 'é': \"\\u2028\"}",
    ]
    for text in cases:
        ion = simpleion.dumps(simpleion.loads(text), binary=True)
        assert _agrees(ion), text
    rng = random.Random(3)
    for serial in range(300):
        document = make_document(rng, "Person", serial)
        for ion in (simpleion.dumps(document, binary=True), standalone_hashed(document)[1]):
            assert _agrees(ion)


def test_what_it_leaves_to_python() -> None:
    """A coefficient over 64 bits, a symbol without text, a stream of two values, bytes that are not Ion."""
    for ion in (simpleion.dumps(2**70, binary=True), simpleion.dumps(Decimal(2**70), binary=True),
                b"\xe0\x01\x00\xea\x71\x63", simpleion.dumps([1], binary=True) + b"\x20", b"{}", b""):
        assert to_json(ion) is None


def _rows(count: int) -> list[tuple]:
    rng = random.Random(count)
    rows = []
    for i in range(count):
        document = make_document(rng, "Person", i) if i % 5 else None
        rows.append((f"t{i % 3}", f"doc{i % 7}", i, None if document is None else standalone_hashed(document)[1],
                     rng.randbytes(32), rng.randrange(-10**12, 10**13), f"tx{i}", i // 2,
                     rng.randbytes(32) if i % 11 == 0 and document is None else None))
    rows.append(("t0", "odd", 1, simpleion.dumps(2**70, binary=True), b"h" * 32, 0, "tx", 9, None))  # fallback
    return rows


def test_history_copy_writes_what_python_writes() -> None:
    rows = _rows(200)
    mine = native.pgcopy.history_copy(rows, pgcopy.document_json)
    assert mine == pgcopy._history_copy(rows)
    assert list(mine) == ["t0", "t1", "t2"]


@SETTINGS
@given(st.integers(-(10**12), 253402300799999))
def test_ms_text_is_the_ion_text_of_a_millisecond_utc_timestamp(ms: int) -> None:
    """txTime's Ion text written from its epoch milliseconds is what the revision path stores."""
    from datetime import UTC, datetime, timedelta
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    if moment.year < 1:
        return
    row = [("t", "d", 0, None, b"h" * 32, ms, "tx", 0, None)]
    assert timestamp_text(ms_timestamp(moment)) == pgcopy.ms_text(ms)
    assert native.pgcopy.history_copy(row, pgcopy.document_json) == pgcopy._history_copy(row)


@SETTINGS
@given(values, damage_edits, damage_kinds)
def test_damaged_bytes_are_read_alike_or_declined(value, edits: list[tuple[float, int]], how: str) -> None:
    """Bytes changed, cut or inserted anywhere (a fuzz test; also run under ASan/UBSan): C never reads past its
    input, and whatever it still reads, amazon.ion reads to the same JSON."""
    data = damaged(simpleion.dumps(value, binary=True), edits, how)
    mine = to_json(data)
    if mine is not None:
        assert mine == _python(data)
