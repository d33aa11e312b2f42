"""Ion from outside never stalls a run (`journal/ionload.py`).

amazon.ion's C extension loops forever on some damaged Ion binary; the documents below were found by
flipping one byte of a small document (each kept amazon.ion's C reader busy past 60 s here). Such bytes
must be refused at once with an IonException, by every reader ledgerdr puts in front of amazon.ion, and
valid Ion that our own reader declines must decode to the same value (the same Ion Hash) as before."""

from __future__ import annotations

import random

import pytest
from amazon.ion import simpleion
from amazon.ion.exceptions import IonException
from amazon.ion.simpleion import IonPyValueModel
from hypothesis import given

from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ionload import iter_values, load_value, load_value_hashed, walked
from ledgerdr.journal.ionread import binary_ion_hash
from ledgerdr.journal.ionwrite import IVM
from ledgerdr.ledger.engine import Ledger
from support.ion_values import SETTINGS, ion_values
from support.serve_process import ServeProcess

# One flipped byte each, in the local symbol table's list of symbols (a string's length made a number).
STALLS_AMAZON_ION_C = [bytes.fromhex(
    "e00100eaeed38183decf87becc8356494e844d616b658459656172" + flipped + "5072696365864f776e6572738c5072696d6172"
    "794f776e657288506572736f6e4964" + tail + "8f5365636f6e646172794f776e6572738474616773847768656eded18a8e91314e"
    "34414c3131443735433130393135318b84466f72648c2207db8d4840290000000000008ede9e8fde99908e9641424344454647"
    "48494a4b4c4d4e4f5051525354555691b092b481618162930f") for flipped, tail in (("48", "8e"), ("85", "2d"))]

DOCUMENT = simpleion.dumps({"VIN": "1N4AL11D75C109151", "Make": "Ford", "Year": 2011, "Price": 12.5,
                            "Owners": {"PrimaryOwner": {"PersonId": "ABCDEFGHIJKLMNOPQRSTUV"}},
                            "tags": ["a", "b"], "when": None}, binary=True)


@pytest.mark.parametrize("data", STALLS_AMAZON_ION_C, ids=["symbol-became-float", "symbol-became-int"])
def test_a_document_that_stalls_amazon_ions_c_reader_is_refused_at_once(data):
    assert binary_ion_hash(data) is None and not walked(data)
    with pytest.raises(IonException):
        load_value(data)
    with pytest.raises(IonException):
        list(iter_values(data + DOCUMENT))  # in a stream, before or after good values
    with pytest.raises(IonException):
        list(iter_values(DOCUMENT + data))


def test_every_one_byte_flip_decodes_or_raises_ion_exception():
    """Seeded flips of a document: each decodes or raises IonException, nothing else (the pytest timeout
    catches a stall). About 1 in 30 of these stalled the C reader before ionload."""
    rng = random.Random(11)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(600):
        damaged = bytearray(DOCUMENT)
        damaged[rng.randrange(4, len(damaged))] ^= rng.randrange(1, 256)
        try:
            load_value(bytes(damaged))
            outcomes["decoded"] += 1
        except IonException:
            outcomes["refused"] += 1
    assert outcomes["decoded"] > 50 and outcomes["refused"] > 50, outcomes


@SETTINGS
@given(ion_values)
def test_valid_ion_our_reader_declines_decodes_to_the_same_hash(value):
    """A NOP pad after the version marker is valid Ion that our reader declines: the value then comes from
    amazon.ion's pure-Python reader, and must hash as amazon.ion's C reader's value does."""
    data = simpleion.dumps(value, binary=True)
    padded = IVM + b"\x00" + data[len(IVM):]
    assert binary_ion_hash(padded) is None
    expected = ion_hash(simpleion.loads(data, value_model=IonPyValueModel.MAY_BE_BARE))
    assert ion_hash(load_value(padded, value_model=IonPyValueModel.MAY_BE_BARE)) == expected
    assert [ion_hash(v) for v in iter_values(padded + padded)] == [expected, expected]


@SETTINGS
@given(ion_values)
def test_binary_our_reader_walks_decodes_as_simpleion_loads_with_its_hash(value):
    """The walked path goes to amazon.ion's C reader directly (`_loads_walked`): the same value, of the same
    IonPy types, as `simpleion.loads`, and the walk's hash is the value's Ion Hash."""
    data = simpleion.dumps(value, binary=True)
    decoded, value_hash = load_value_hashed(data)
    expected = simpleion.loads(data)
    assert value_hash is not None and value_hash == ion_hash(expected)
    assert ion_hash(decoded) == ion_hash(expected) and type(decoded) is type(expected)
    assert load_value_hashed("{a: 1}") == (simpleion.loads("{a: 1}"), None)  # text: no walk, no hash


def test_text_is_read_by_amazon_ion_as_before():
    assert load_value("{a: 1.50, b: 2020-01-01T00:00:00.123Z}") == simpleion.loads("{a: 1.50, b: 2020-01-01T00:00:00.123Z}")
    assert list(iter_values(b'1 "two" {c: 3}')) == [1, "two", {"c": 3}]


def test_serve_refuses_a_parameter_that_stalls_amazon_ion_and_keeps_serving(tmp_path):
    """A client's damaged parameter is a BadRequestException, not a server thread lost to a loop."""
    from test_serve import _client, _commit, _statement_error

    with Ledger.create(tmp_path / "data" / "fuzzed.db", "fuzzed"):
        pass
    with ServeProcess(tmp_path / "data") as running:
        session = _client(running, "qldb-session")
        token = session.send_command(StartSession={"LedgerName": "fuzzed"})["StartSession"]["SessionToken"]
        _commit(session, token, "CREATE TABLE Car")
        for data in STALLS_AMAZON_ION_C:
            error = _statement_error(session, token, "INSERT INTO Car ?", {"IonBinary": data})
            assert error["Code"] == "BadRequestException" and "not a single valid Ion value" in error["Message"]
        _commit(session, token, "INSERT INTO Car {'VIN': 'after'}")  # the same session goes on
