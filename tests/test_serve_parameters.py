"""A served statement's parameter is decoded to amazon.ion's IonPy types and then, where a node has a plain
Python twin (an unannotated struct without repeated names, list, string, int, bool, float or decimal), handed
to the ledger as that twin (session_api._plain), so that the C encoder takes it as it takes the embedded
driver's values. The twin must be the same Ion: the same bytes and Ion Hash from the ledger's encoder (C and
Python), and the same Ion Hash, for any value a client can send. With ledgerdr._ionhash built, the common
subset is decoded straight to those twins in C (`binary_plain_hashed`): the same values, types and hash as the
Python path, and the same errors."""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import pytest
from amazon.ion import simpleion
from amazon.ion.simple_types import IonPyDict, IonPySymbol, IonPyText
from hypothesis import given
from hypothesis import strategies as st

from ledgerdr import native
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ionload import load_value_hashed
from ledgerdr.journal.ionwrite import SymbolTable, encode_hashed, encode_hashed_python
from ledgerdr.serve.session_api import _load, _parameter, _plain
from support.ion_values import SETTINGS, decimals, floats, ints, ion_values, names, texts


def _same_ion(decoded: object, plain: object) -> None:
    for encode in {encode_hashed, encode_hashed_python}:
        assert encode(plain, SymbolTable()) == encode(decoded, SymbolTable())
    assert ion_hash(plain) == ion_hash(decoded)


@SETTINGS
@given(ion_values)
def test_a_parameters_plain_twin_is_the_same_ion(value):
    data = simpleion.dumps(value, binary=True)
    decoded, _ = load_value_hashed(data)
    _same_ion(decoded, _plain(decoded))
    for sent in ({"IonBinary": base64.b64encode(data).decode()}, {"IonText": simpleion.dumps(value, binary=False)}):
        served, _ = _parameter(sent, 0)  # as ExecuteStatement takes it
        reference, _ = load_value_hashed(base64.b64decode(sent["IonBinary"]) if "IonBinary" in sent else sent["IonText"])
        _same_ion(reference, served)


def test_what_becomes_plain_and_what_stays():
    decoded, _ = load_value_hashed(simpleion.dumps({"n": 5, "s": "x", "l": [1, 2.5], "b": True}, binary=True))
    plain = _plain(decoded)
    assert plain.__class__ is dict and plain["s"].__class__ is str and plain["l"].__class__ is list
    kept = simpleion.loads("{a: 1, a: 2, t: 2020T, y: sym, z: ann::\"x\"}")
    assert _plain(kept).__class__ is IonPyDict  # a repeated field name: the struct stays an IonPyDict
    kept = _plain(simpleion.loads("{t: 2020T, y: sym, z: ann::\"x\", n: null.int}"))
    assert kept.__class__ is dict and kept["y"].__class__ is IonPySymbol and kept["z"].__class__ is IonPyText
    deep = simpleion.loads("[" * 100 + "]" * 100)
    _same_ion(deep, _plain(deep))


# --- the native decode (ledgerdr._ionhash.binary_plain_hashed) against the Python path ----------------------

_plain_leaves = st.one_of(st.booleans(), ints, floats, decimals(), texts)
plain_values = st.recursive(_plain_leaves, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(names, children, max_size=5)), max_leaves=20)


def _python_path(data: bytes | str) -> tuple[object, bytes]:
    """What `_parameter` gave before the native decode: amazon.ion's values, their plain twins, the walk's hash."""
    value, value_hash = load_value_hashed(data)
    return _plain(value), ion_hash(value) if value_hash is None else value_hash


def _identical(a: object, b: object) -> None:
    """The same tree: the same types node by node, dict fields in the same order, the same values (a float's
    sign and a decimal's digits and exponent included); IonPy nodes by their Ion (`_same_ion`)."""
    assert a.__class__ is b.__class__
    if a.__class__ is dict:
        assert list(a) == list(b)  # type: ignore[call-overload]
        for key in a:  # type: ignore[attr-defined]
            _identical(a[key], b[key])  # type: ignore[index]
    elif a.__class__ is list:
        for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
            _identical(x, y)
    elif a.__class__ is float:
        assert struct.pack(">d", a) == struct.pack(">d", b)  # type: ignore[arg-type]
    elif a.__class__ is Decimal:
        assert a.as_tuple() == b.as_tuple()  # type: ignore[attr-defined]
    elif a.__class__ in (str, int, bool):
        assert a == b
    else:
        _same_ion(a, b)


def _check_native_against_python(data: bytes) -> object:
    try:
        expected = _python_path(data)
    except Exception as exc:
        with pytest.raises(type(exc)):
            _load(data)
        return None
    got = _load(data)
    assert got[1] == expected[1]
    _identical(got[0], expected[0])
    _same_ion(expected[0], got[0])
    return got[0]


@pytest.mark.skipif(native.ionhash is None, reason="ledgerdr._ionhash is not built")
@SETTINGS
@given(st.one_of(plain_values, ion_values))
def test_the_native_decode_gives_what_the_python_path_gives(value):
    _check_native_against_python(simpleion.dumps(value, binary=True))


@pytest.mark.skipif(native.ionhash is None, reason="ledgerdr._ionhash is not built")
@SETTINGS
@given(plain_values, st.data())
def test_the_native_decode_agrees_on_damaged_bytes(value, data):
    raw = bytearray(simpleion.dumps(value, binary=True))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(4, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _check_native_against_python(bytes(raw[:data.draw(st.integers(4, len(raw)))]))


@pytest.mark.skipif(native.ionhash is None, reason="ledgerdr._ionhash is not built")
def test_the_native_decode_takes_the_common_values_and_leaves_the_rest():
    decode = native.ionhash.binary_plain_hashed
    common = {"n": 5, "s": "x", "l": [1, -2.5, True], "d": Decimal("-0.00"), "e": {}}
    value_hash, value = decode(simpleion.dumps(common, binary=True))
    assert value == common and value_hash == ion_hash(common)
    for text in ("{a: 1, a: 2}", "{t: 2020T}", "sym", "ann::1", "null.int", "nan", "(1 2)", "{{ AA== }}",
                 "[" * 33 + "]" * 33, str(2**64)):
        value_hash, value = decode(simpleion.dumps(simpleion.loads(text), binary=True))
        assert value is Ellipsis and value_hash is not None, text
    deep = "[" * 32 + "]" * 32  # 32 lists: the innermost at depth 31, the last _plain makes a list
    assert decode(simpleion.dumps(simpleion.loads(deep), binary=True))[1].__class__ is list
    assert decode(b"not ion") is None
