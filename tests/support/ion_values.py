"""Generated Ion values for the Ion Hash property tests: plain Python values and IonPy values (annotations,
typed nulls, sexps, clobs, symbols, repeated field names), with the Ion Hash markers and escape byte
turning up often. The restrictions (NaN payloads, timestamp years, lone surrogates) are explained in
tests/test_ion_hash_property.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyBytes, IonPyList, IonPyNull, IonPyText
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from support.ion_strategies import datetimes, multimap, timestamps

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
