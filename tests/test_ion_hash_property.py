"""Property tests of `ledgerdr.journal.hashing.ion_hash` over generated Ion values.

1. Round trip: `ion_hash(v) == ion_hash(loads(dumps(v)))`, through Ion binary and Ion text, for plain Python
   values and for IonPy values (annotations, typed nulls, sexps, clobs, symbols, duplicate field names).
2. Agreement with the reference implementation, the `ionhash` 1.2.1 package (made importable by
   `ionhash_shim`), on the same values as `simpleion.loads` returns them.
3. The same hash whether `loads` returns IonPy values, bare values (MAY_BE_BARE) or text symbols
   (SYMBOL_AS_TEXT; examples holding `$0`, which that model cannot load, are rejected).

Restrictions, and why:
- NaN: the spec hashes every nan as 7ff8000000000000, whatever its bits; ionhash packs the float's bits as
  they are. amazon.ion's C extension reads the text `nan` as 0x7ffefefefefefefe, and Ion binary keeps the
  payload of any NaN written by `dumps`. So the ionhash comparison draws only the canonical NaN and reads
  values from Ion **binary**; the round trips draw NaNs with any payload and sign, and
  test_ion_hash_vectors pins the text `nan` to the spec bytes.
- Timestamp years stay within 2..9998 so that converting a local time to UTC stays inside `datetime`'s range;
  offsets are whole minutes (Ion has no finer offsets).
- Strings exclude lone surrogates, which UTF-8 (and so Ion) cannot encode.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.exceptions import IonException
from amazon.ion.simple_types import IonPyBytes, IonPyList, IonPyNull, IonPyText
from amazon.ion.simpleion import IonPyValueModel
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import ionhash_shim
from ion_strategies import datetimes, multimap, timestamps
from ledgerdr.journal.hashing import ion_hash

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- scalars ----------------------------------------------------------------------------------------------

# The Ion Hash markers and the escape byte must turn up often, not by luck.
_chars = st.one_of(st.sampled_from("\x0b\x0c\x0e"), st.characters(blacklist_categories=("Cs",)))
texts = st.text(_chars, max_size=12)
names = st.one_of(st.sampled_from(["id", "version", "txTime", "a", "b", "\x0b", "$0", ""]), texts)

ints = st.one_of(
    st.integers(-300, 5000),  # the cached range and its edges
    st.integers(-(2**200), 2**200),
)


@st.composite
def decimals(draw: st.DrawFn) -> Decimal:
    sign = draw(st.integers(0, 1))
    coefficient = draw(st.one_of(st.just(0), st.integers(0, 10**30)))
    exponent = draw(st.one_of(st.integers(-12, 12), st.integers(-400, 400)))
    return Decimal((sign, tuple(int(d) for d in str(coefficient)), exponent))


_special_floats = st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf")])
floats = st.one_of(st.floats(), _special_floats)  # st.floats() also draws NaNs with other payloads and signs
canonical_floats = st.one_of(st.floats(allow_nan=False), _special_floats)


def _plain_scalars(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        ints,
        floats,
        decimals(),
        texts,
        st.binary(max_size=12),
        timestamps(),
        datetimes(),
    )


# --- IonPy values: what plain Python cannot express -------------------------------------------------------

_ION_TYPES = [t for t in IonType]
annotations = st.lists(names.map(lambda n: SymbolToken(n, None)), max_size=3).map(tuple)
symbols = st.one_of(names.map(lambda n: SymbolToken(n, None)), st.just(SymbolToken(None, 0)))


ionpy_scalars = st.one_of(
    st.builds(lambda t, a: IonPyNull.from_value(t, None, a), st.sampled_from(_ION_TYPES), annotations),
    st.builds(lambda b, a: IonPyBytes.from_value(IonType.CLOB, b, a), st.binary(max_size=12), annotations),
    st.builds(lambda s, a: IonPyText.from_value(IonType.SYMBOL, s, a), names, annotations),
    symbols,
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    fields = st.lists(st.tuples(names, children), max_size=5)
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(names, children, max_size=5),
        st.builds(multimap, fields, annotations),
        st.builds(lambda xs, a: IonPyList.from_value(IonType.SEXP, xs, a), st.lists(children, max_size=4), annotations),
        st.builds(lambda xs, a: IonPyList.from_value(IonType.LIST, xs, a), st.lists(children, max_size=4), annotations),
    )  # fmt: skip


def _ion_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(st.one_of(_plain_scalars(floats), ionpy_scalars), _containers, max_leaves=15)


ion_values = _ion_values(floats)
# NaNs with a payload survive Ion binary; ionhash hashes the payload, the spec (and ledgerdr) do not.
ion_values_canonical_nan = _ion_values(canonical_floats)

# --- properties -------------------------------------------------------------------------------------------


@SETTINGS
@given(ion_values)
def test_hash_survives_binary_round_trip(value: Any) -> None:
    assert ion_hash(simpleion.loads(simpleion.dumps(value, binary=True))) == ion_hash(value)


@SETTINGS
@given(ion_values)
def test_hash_survives_text_round_trip(value: Any) -> None:
    assert ion_hash(simpleion.loads(simpleion.dumps(value, binary=False))) == ion_hash(value)


@SETTINGS
@given(ion_values, st.sampled_from([IonPyValueModel.MAY_BE_BARE, IonPyValueModel.SYMBOL_AS_TEXT]))
def test_hash_is_the_same_in_lossless_value_models(value: Any, model: IonPyValueModel) -> None:
    """Bare Python values (MAY_BE_BARE) and IonPyText symbols (SYMBOL_AS_TEXT) keep the Ion data model."""
    binary = simpleion.dumps(value, binary=True)
    try:
        loaded = simpleion.loads(binary, value_model=model)
    except IonException as error:
        if "undefined text" not in str(error):
            raise
        reject()  # SYMBOL_AS_TEXT cannot load $0 (a symbol without text): amazon.ion's limit, not ours
    assert ion_hash(loaded) == ion_hash(simpleion.loads(binary))


@SETTINGS
@given(ion_values_canonical_nan)
def test_hash_equals_ionhash_package(value: Any) -> None:
    parsed = simpleion.loads(simpleion.dumps(value, binary=True))
    assert ion_hash(parsed) == ionhash_shim.reference_ion_hash(parsed)


def test_duplicate_field_names_all_count() -> None:
    """Both values of a repeated field are hashed: dropping one (as dict() would) changes the hash."""
    both = simpleion.loads("{a:1, a:2}")
    assert ion_hash(both) == ionhash_shim.reference_ion_hash(both)
    assert ion_hash(both) != ion_hash(simpleion.loads("{a:2}"))
    assert ion_hash(both) == ion_hash(simpleion.loads("{a:2, a:1}"))  # field order never matters
