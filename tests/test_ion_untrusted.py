"""Ion from outside never stalls a run (`journal/ionload.py`).

amazon.ion's C extension loops forever on some damaged Ion binary; the documents in `STALLS_AMAZON_ION_C`
(tests/support/ion_strategies.py) were found by flipping one byte of a small document (each kept amazon.ion's C
reader busy past 60 s here). Such bytes must be refused at once with an IonException, by every reader ledgerdr puts
in front of amazon.ion, and valid Ion that our own reader declines must decode to the same value (the same Ion
Hash) as before."""

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
from support.ion_strategies import STALLS_AMAZON_ION_C
from support.ion_values import SETTINGS, ion_values

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
