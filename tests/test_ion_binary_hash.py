"""`ionread.binary_hash_repr`: the Ion Hash read straight from Ion binary bytes (the restore's re-hash of
what its target stores).

1. Agreement: on every stream `simpleion.dumps` or `ionwrite` writes for a generated value, the result is
   None (not read here) or exactly `ion_hash_repr` of the value the stream decodes to.
2. No false match: a stream altered anywhere (a byte changed, inserted or dropped) never yields the hash of
   the original value unless the altered stream still decodes to a value with that hash.
3. Shapes outside the subset (imports, two values, NOP padding, no version marker) return None.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel
from hypothesis import given
from hypothesis import strategies as st

from ledgerdr.journal.hashing import ion_hash, ion_hash_repr
from ledgerdr.journal.ionread import binary_hash_repr, binary_ion_hash
from ledgerdr.journal.ionwrite import IVM, SymbolTable, Unencodable, encode_ion
from ledgerdr.ledger.workload import make_document
from support.ion_values import SETTINGS, ion_values


def _streams(value: Any) -> list[bytes]:
    out = [simpleion.dumps(value, binary=True)]
    symbols = SymbolTable()
    try:
        out.append(symbols.standalone(encode_ion(value, symbols)))
    except Unencodable:
        pass
    return out


def _decoded_hash(data: bytes) -> bytes | None:
    try:
        return ion_hash(simpleion.loads(data, value_model=IonPyValueModel.MAY_BE_BARE))
    except Exception:
        return None


@SETTINGS
@given(ion_values)
def test_agrees_with_decoding(value: Any) -> None:
    for data in _streams(value):
        serialized = binary_hash_repr(data)
        if serialized is not None:
            assert serialized == ion_hash_repr(simpleion.loads(data))


@pytest.mark.parametrize("bits", [0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001])
def test_every_nan_hashes_as_the_canonical_nan(bits: int) -> None:
    # Found by the property test above: a nan with a payload or a sign was hashed from its raw bytes.
    data = b"\xe0\x01\x00\xea\x48" + bits.to_bytes(8, "big")
    assert binary_hash_repr(data) == ion_hash_repr(simpleion.loads(data)) == ion_hash_repr(float("nan"))


def test_reads_documents_written_by_both_encoders() -> None:
    rng = random.Random(7)
    for serial in range(300):
        document = make_document(rng, "Vehicle", serial)
        for data in _streams(document):
            assert binary_ion_hash(data) == ion_hash(document)


@SETTINGS
@given(ion_values, st.randoms(use_true_random=False))
def test_altered_bytes_never_match_falsely(value: Any, rng: random.Random) -> None:
    for data in _streams(value):
        expected = ion_hash(value)
        for _ in range(20):
            altered = bytearray(data)
            at = rng.randrange(len(altered))
            action = rng.randrange(3)
            if action == 0:
                altered[at] = rng.randrange(256)
            elif action == 1:
                altered.insert(at, rng.randrange(256))
            elif len(altered) > 1:
                del altered[at]
            if binary_ion_hash(bytes(altered)) == expected:
                assert _decoded_hash(bytes(altered)) == expected


def test_documents_altered_byte_by_byte() -> None:
    document = make_document(random.Random(3), "Vehicle", 1)
    expected = ion_hash(document)
    for data in _streams(document):
        for at in range(len(data)):
            for octet in (0x00, 0x0B, 0x0E, 0x80, 0x8E, 0xFF, data[at] ^ 0x01):
                altered = data[:at] + bytes((octet,)) + data[at + 1:]
                if altered != data and binary_ion_hash(altered) == expected:
                    assert _decoded_hash(altered) == expected


def test_shapes_outside_the_subset_are_not_read() -> None:
    one = simpleion.dumps({"a": 1}, binary=True)
    assert binary_ion_hash(one) == ion_hash({"a": 1})
    assert binary_hash_repr(one[4:]) is None  # no version marker
    assert binary_hash_repr(one + one) is None  # two values
    assert binary_hash_repr(one + b"\x00") is None  # trailing NOP pad
    assert binary_hash_repr(IVM) is None  # no value
    assert binary_hash_repr(one[:-1]) is None  # truncated
    # a symbol table that imports another one (SID meanings this reader cannot know)
    imports = IVM + bytes.fromhex("e7 81 83 d4 86 71 03") + bytes.fromhex("d3 8a 21 01")
    assert binary_hash_repr(imports) is None
    assert binary_hash_repr(IVM + bytes.fromhex("d3 8a 21 01")) is None  # SID 10 undefined
    assert binary_hash_repr(IVM + b"\x44\x00\x00\x00\x00") is None  # 4-byte float


def test_top_field_matches_the_decoded_document() -> None:
    from ledgerdr.journal.ionread import binary_top_field
    from ledgerdr.ledger.index_keys import index_key
    from ledgerdr.targets.embedded import _stored_index_key

    rng = random.Random(11)
    for serial in range(200):
        document = make_document(rng, "Vehicle", serial)
        document["n"] = rng.randrange(-(2**70), 2**70)
        for data in _streams(document):
            for name in ("key", "count", "n", "comment", "amount", "owner", "absent"):
                assert _stored_index_key(data, name) == index_key(document.get(name))
            assert binary_top_field(data, "absent") == (-1, b"")
    twice = IVM + bytes.fromhex("e9 81 83 d6 87 b4 83 6b 65 79") + bytes.fromhex("d6 8a 21 01 8a 21 02")
    assert binary_top_field(twice, "key") is None  # a repeated name: decode
    assert _stored_index_key(twice, "key") == index_key(simpleion.loads(twice)["key"])
    for text in ("", "VIN-1", "é" * 40, "車" * 30):  # short keys kept, long ones hashed, as index_key does
        data = simpleion.dumps({"key": text}, binary=True)
        assert _stored_index_key(data, "key") == index_key(text)
