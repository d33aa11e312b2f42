"""The write-path encoder (`journal.ionwrite`) and the journal writer's fast block encoding.

Both must mean exactly what `simpleion.dumps` and `hashing.ion_hash` mean: the same Ion values after a
round trip, the same hashes, and blocks identical to the writer's generic (reference) encoding.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from hashlib import sha256

from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel

from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ionwrite import SymbolTable, encode_hashed
from ledgerdr.journal.model import BlockAddress
from ledgerdr.journal.writer import DocumentWrite, EncodedData, JournalWriter, Redaction
from ledgerdr.ledger.workload import make_document

ODD = (
    "a::b::{x: null.int, y: (1 2 sym), z: {{ \"clob\" }}, w: $0, v: -0.0e0, u: nan, t: 2020T, "
    "s: 2020-01-01T00:00:00.000-05:00, m: 2020-01-01T10:11-00:00, dup: 1, dup: 2, d: -0d-3, e: 0d5, "
    "big: 123456789012345678901234567890, n: -5, 'field with \\x0b and \"quotes\"': \"\\x0b\\x0c\\x0e\", "
    "nested: c::[{}, [], null.struct, true, false, 1.5e300, 2024-02-29T23:59:59.123456789Z]}"
)


def text(value) -> str:
    return simpleion.dumps(value, binary=False)


def roundtrip(value, table: SymbolTable):
    ion, serialized = encode_hashed(value, table)
    back = simpleion.loads(table.standalone(ion))
    return back, sha256(serialized).digest()


def test_documents_round_trip_and_hash_like_dumps_and_ion_hash():
    rng = random.Random(5)
    table = SymbolTable()  # shared, as in one transaction: later documents see earlier symbols
    for i in range(300):
        value = make_document(rng, "Tab", i)
        if i % 3 == 1:
            value = simpleion.loads(simpleion.dumps(value, binary=True))  # IonPy values
        elif i % 3 == 2:
            value = simpleion.loads(text(value), value_model=IonPyValueModel.MAY_BE_BARE)
        back, digest = roundtrip(value, table)
        assert text(back) == text(simpleion.loads(simpleion.dumps(value, binary=True)))
        assert digest == ion_hash(value) == ion_hash(back)


def test_unusual_ion_values_round_trip():
    value = simpleion.loads(ODD)
    back, digest = roundtrip(value, SymbolTable())
    assert text(back) == text(value)
    assert digest == ion_hash(value) == ion_hash(back)


def test_fast_blocks_equal_the_generic_encoding():
    rng = random.Random(3)
    fast, generic = JournalWriter("STRAND"), JournalWriter("STRAND")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(120):
        table = SymbolTable() if i % 2 else None
        writes = []
        for j in range(rng.randrange(0, 6)):
            data = None if rng.random() < 0.2 else make_document(rng, "T", i * 10 + j)
            if j == 1 and data is not None:
                data = simpleion.loads(ODD)
            encoded = None
            if table is not None and data is not None:
                ion, serialized = encode_hashed(data, table)
                encoded = EncodedData(table, ion, sha256(serialized).digest())
            indexes = tuple(sorted({0, rng.randrange(3)}))
            writes.append(DocumentWrite("T", "TID", f"doc{i}_{j}", rng.randrange(3), data, indexes, encoded))
        statements = ["INSERT INTO T ?", "SELECT * FROM T", "x" * 3000][: rng.randrange(0, 4)]
        system = [sha256(str(i).encode()).digest()] if rng.random() < 0.1 else []
        redactions = [Redaction(BlockAddress("STRAND", 1), "TID", "doc1", 2)] if rng.random() < 0.1 else []
        when = start + timedelta(milliseconds=i * 37)
        a = fast.commit(statements, writes, timestamp=when, transaction_id=f"tx{i}",
                        system_revisions=system, redactions=redactions)
        b = generic._generic_block(a.address, a.timestamp, f"tx{i}", statements, writes, system, redactions,
                                   generic.previous_block_hash)
        generic.next_sequence_no += 1
        generic.previous_block_hash = b.block_hash
        assert (a.block_hash, a.revision_hashes) == (b.block_hash, b.revision_hashes)
        assert text(simpleion.loads(a.ion)) == text(simpleion.loads(b.ion))
        assert text(a.value) == text(b.value)


def test_unencodable_values_fall_back_to_the_generic_encoding():
    writer = JournalWriter("STRAND")
    value = {"f": simpleion.loads("$ion_symbol_table::{symbols:[\"a\"]} a")}  # a plain IonPySymbol is fine
    block = writer.commit(["INSERT"], [DocumentWrite("T", "TID", "d", 0, value)])
    assert text(simpleion.loads(block.ion)["revisions"][0]["data"]) == text(value)
    odd = {"f": object()}
    try:
        writer.commit(["INSERT"], [DocumentWrite("T", "TID", "d", 0, odd)])
    except (TypeError, ValueError) as exc:  # the generic path's error, as before
        assert "object" in str(exc) or exc.args
    else:  # pragma: no cover
        raise AssertionError("a value Ion cannot hold was written")
