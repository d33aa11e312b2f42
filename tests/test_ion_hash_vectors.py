"""Ion Hash, dot and Merkle root against published vectors.

- Every case of the official Ion Hash test file (amazon-ion/ion-hash-test `ion_hash_tests.ion`), read two ways:
  `ion-python`, amazon.ion's pure-Python reader on the file as it is; and `ion-c`, the C extension (what
  ledgerdr uses) reading each case's value re-encoded in Ion binary. The C extension cannot read the file
  itself: its text reader refuses values with more than 10 annotations (IERR_TOO_MANY_ANNOTATIONS), and two
  cases have 13 and 14. Each case is checked against its final `identity` digest (the serialized bytes s(v))
  and its final `md5` digest where it has one.
- The real QLDB vectors of reference §3.8: a block with its revision, and a GetRevision response.
- dot's symmetry, empty operands and signed byte order; the Merkle root's pairing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.symbols import SymbolToken
from hypothesis import given
from hypothesis import strategies as st

from ledgerdr.journal.hashing import dot, ion_hash, ion_hash_repr, merkle_root

SAMPLES = Path(__file__).resolve().parent / "data"  # copies, with provenance in data/README.md
IVM = b"\xe0\x01\x00\xea"


def _load_vector_cases() -> list[Any]:
    data = (SAMPLES / "ion-hash-test_ion_hash_tests.ion").read_bytes()
    return list(simpleion.load_python(io.BytesIO(data), single_value=False))


CASES = _load_vector_cases()


def _case_id(index: int) -> str:
    case = CASES[index]
    if case.ion_annotations:
        name = case.ion_annotations[0].text
    elif "ion" in case:
        name = simpleion.dumps(case["ion"], binary=False).removeprefix("$ion_1_0 ")
    else:
        name = "10n:" + bytes(case["10n"]).hex()
    return f"{index:03d}-{name[:40]}"


def _case_value(case: Any, reader: str) -> Any:
    """The case's source value as the chosen reader returns it."""
    if "10n" in case:  # the source is given as Ion binary octets
        binary = IVM + bytes(case["10n"])
        return simpleion.loads(binary) if reader == "ion-c" else simpleion.load_python(io.BytesIO(binary))
    value = case["ion"]
    if reader == "ion-c":
        buffer = io.BytesIO()
        simpleion.dump_python(value, buffer, binary=True)
        return simpleion.loads(buffer.getvalue())
    return value


def _final_digest(events: Any) -> bytes:
    """The last `digest::`/`final_digest::` sexp of an expectation: the digest of the whole value."""
    finals = [
        e for e in events if e.ion_annotations and e.ion_annotations[0].text in ("digest", "final_digest")
    ]
    return bytes(finals[-1])


class IdentityHash:
    """The test file's `identity` hash function: its digest is the bytes it was given."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def digest(self) -> bytes:
        return self._data


# How each expected algorithm's digest is computed: h(s(v)), with the same h inside structs.
ALGORITHMS = {
    "identity": lambda v: ion_hash_repr(v, IdentityHash),
    "md5": lambda v: hashlib.md5(ion_hash_repr(v, hashlib.md5)).digest(),
}


@pytest.mark.parametrize("reader", ["ion-python", "ion-c"])
@pytest.mark.parametrize("index", range(len(CASES)), ids=_case_id)
def test_official_ion_hash_vector(index: int, reader: str) -> None:
    case = CASES[index]
    value = _case_value(case, reader)
    expectations = dict(case["expect"].items())
    unknown = sorted(set(expectations) - set(ALGORITHMS))
    if unknown:
        pytest.skip(f"expectations for hash algorithms this test does not model: {unknown}")
    for algorithm, events in expectations.items():
        assert ALGORITHMS[algorithm](value).hex(" ") == _final_digest(events).hex(" "), algorithm


def test_vector_file_covers_every_ion_type() -> None:
    """Guard against a truncated or mis-parsed vector file passing vacuously."""
    assert len(CASES) >= 160
    # null, bool, int, float, decimal, timestamp, symbol, string, clob, blob, list, sexp, struct
    types = {getattr(c["ion"], "ion_type", None) for c in CASES if "ion" in c}
    assert len(types) == 13


def test_nan_read_from_text_hashes_as_the_spec_says() -> None:
    """The C extension reads text `nan` with payload 7ffefefefefefefe; the hash must not see the payload."""
    assert ion_hash_repr(simpleion.loads("nan")) == b"\x0b\x40\x7f\xf8\x00\x00\x00\x00\x00\x00\x0e"


@pytest.mark.parametrize("value", [object(), {1, 2}, {1: "int field name"}], ids=["object", "set", "int-key"])
def test_values_ion_cannot_represent_are_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        ion_hash(value)


def test_symbol_with_unknown_text_is_refused() -> None:
    """Spec §7: only SID 0 may lack text; any other unknown symbol means the symbol table is missing."""
    with pytest.raises(ValueError, match="unknown text"):
        ion_hash(SymbolToken(None, 10))
    assert ion_hash_repr(SymbolToken(None, 0)) == b"\x0b\x71\x0e"


# --- QLDB vectors (reference §3.8) ------------------------------------------------------------------------


def b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture(scope="module")
def stream_block() -> tuple[Any, Any]:
    """(BLOCK_SUMMARY payload, REVISION_DETAILS revision) of the DMV stream sample, parsed by the C extension."""
    text = (SAMPLES / "streams-dmv_block-summary-and-revision.ion").read_text()
    summary, details = simpleion.loads(text, single_value=False)
    return summary["payload"], details["payload"]["revision"]


def test_stream_revision_hashes(stream_block: tuple[Any, Any]) -> None:
    block, revision = stream_block
    metadata_hash, data_hash = ion_hash(revision["metadata"]), ion_hash(revision["data"])
    assert metadata_hash == b64("W4Vu08IPmm+RN14ckrCKKtFaDMhGRF04l1Xm/JUh4R4=")
    assert data_hash == b64("vqwGYhSd4cV7G4YnxaJJk9CaYWFm8LFIu9zFNlAxzHs=")
    revision_hash = dot(metadata_hash, data_hash)
    assert revision_hash == b64("vJFOcsNRM14gsIBSEnwPhMVgRAWf/4EUW5gPYbtmDv0=")
    assert revision_hash == revision["hash"] == block["entriesHashList"][1]
    assert merkle_root([revision_hash]) == revision_hash  # a one-revision block's revisions root


def test_stream_transaction_info_and_statement_digest(stream_block: tuple[Any, Any]) -> None:
    block, _ = stream_block
    info = block["transactionInfo"]
    assert (
        ion_hash(info) == b64("Lz3XWBwtWyBA/Lhj+UoLhbajPQ8Mk9N4j0HJlrm2OTg=") == block["entriesHashList"][3]
    )
    statement = info["statements"][0]
    digest = ion_hash(statement["statement"])
    assert digest == b64("t5wbRW+wIi/X0n3iPhFJtbt2qpzzgWkOXIFC4xJHp4o=") == statement["statementDigest"]
    assert ion_hash(str(statement["statement"])) == digest  # a plain str hashes as the parsed string


def test_stream_entries_root_and_block_hash(stream_block: tuple[Any, Any]) -> None:
    block, _ = stream_block
    e0, e1, e2, e3 = block["entriesHashList"]
    assert dot(e0, e1) == b64("QE/QaDP5zqlXDYMSQXiRHvB6Zse+MWvoh8WUKl5UuzQ=")
    assert dot(e2, e3) == b64("qOjeF8Q4x7HvWelNDxRXAKVU6ritVXvD6rBFUI6GA14=")
    root = merkle_root(block["entriesHashList"])
    assert root == b64("RNGQGcOKCGLCo5S+hs1eboanNrocIzRiqzzq1s99G/Q=") == block["entriesHash"]
    block_hash = dot(root, block["previousBlockHash"])
    assert block_hash == b64("lu425dAWsmvzxuNHTbn4ID4mLo0bWKkjLP2Uel4wrPQ=") == block["blockHash"]


def test_signed_not_unsigned_byte_order(stream_block: tuple[Any, Any]) -> None:
    """On this block the two operands order differently as signed and as unsigned bytes (−65 vs +191 at
    the deciding byte): only the signed order reproduces blockHash."""
    block, _ = stream_block
    entries_hash, previous = bytes(block["entriesHash"]), bytes(block["previousBlockHash"])
    unsigned_first = sorted([entries_hash, previous], key=lambda h: h[::-1])
    assert hashlib.sha256(b"".join(unsigned_first)).digest() != block["blockHash"]
    assert dot(entries_hash, previous) == block["blockHash"]


def test_kvs_revision_response() -> None:
    response = json.loads((SAMPLES / "kvs-nodejs_sampleRevisionResponse.json").read_text())
    revision = simpleion.loads(response["Revision"]["IonText"])
    metadata_hash, data_hash = ion_hash(revision["metadata"]), ion_hash(revision["data"])
    assert metadata_hash == b64("R5f2f/fjwSotbU5K6oEclPHfrAeKk7nNtkAMvNiuZPg=")
    assert data_hash == b64("xlToHA0CNrpU3Mma1ICUKyEe4me6tPuvSlAnfNiGZK8=")
    assert (
        dot(metadata_hash, data_hash)
        == b64("DrFztoBrWKz+mCV+BnnMfEZRwfJcD+DNLRPLc16SidY=")
        == revision["hash"]
    )


# --- dot and merkle_root ----------------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)


@given(hashes, hashes)
def test_dot_is_symmetric(a: bytes, b: bytes) -> None:
    assert dot(a, b) == dot(b, a)
    assert len(dot(a, b)) == 32


def test_dot_empty_operand_returns_the_other() -> None:
    h = hashlib.sha256(b"x").digest()
    assert dot(h, b"") == h and dot(b"", h) == h and dot(b"", b"") == b""


def test_dot_rejects_hashes_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        dot(b"\x01" * 31, b"\x02" * 32)


def test_dot_orders_by_the_last_byte_first_as_signed() -> None:
    low, high = b"\xff" + b"\x00" * 30 + b"\x80", b"\x00" * 31 + b"\x7f"  # last bytes: -128 < 127
    assert dot(low, high) == hashlib.sha256(low + high).digest()
    tie_low, tie_high = b"\x00" * 30 + b"\xff\x01", b"\x00" * 30 + b"\x01\x01"  # decided at index 30: -1 < 1
    assert dot(tie_high, tie_low) == hashlib.sha256(tie_low + tie_high).digest()


def test_merkle_root_pairs_left_to_right_and_promotes_the_odd_node() -> None:
    h = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    assert merkle_root([]) == b""
    assert merkle_root(h[:1]) == h[0]
    assert merkle_root(h[:3]) == dot(dot(h[0], h[1]), h[2])
    assert merkle_root(h) == dot(dot(dot(h[0], h[1]), dot(h[2], h[3])), h[4])
    assert merkle_root(h[:4]) != reduce(dot, h[:4])  # not a sequential fold


def test_plain_python_metadata_hashes_like_the_parsed_one(stream_block: tuple[Any, Any]) -> None:
    """The metadata rebuilt from plain Python values (as a writer would hold them) hashes the same."""
    _, revision = stream_block
    metadata = revision["metadata"]
    plain = {"id": str(metadata["id"]), "version": int(metadata["version"]), "txTime": metadata["txTime"],
             "txId": str(metadata["txId"])}  # fmt: skip
    assert ion_hash(plain) == ion_hash(metadata)
