"""A served statement's parameter is decoded to amazon.ion's IonPy types and then, where a node has a plain
Python twin (an unannotated struct without repeated names, list, string, int, bool, float or decimal), handed
to the ledger as that twin (session_api._plain), so that the C encoder takes it as it takes the embedded
driver's values. The twin must be the same Ion: the same bytes and Ion Hash from the ledger's encoder (C and
Python), and the same Ion Hash, for any value a client can send."""

from __future__ import annotations

import base64

from amazon.ion import simpleion
from amazon.ion.simple_types import IonPyDict, IonPySymbol, IonPyText
from hypothesis import given

from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ionload import load_value_hashed
from ledgerdr.journal.ionwrite import SymbolTable, encode_hashed, encode_hashed_python
from ledgerdr.serve.session_api import _parameter, _plain
from support.ion_values import SETTINGS, ion_values


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
