"""`_ionhash.encode_block`, the C block envelope, against `journal.writer._envelope_python`.

For the same block both must give the same bytes, hashes and entries, and leave the symbol table in the same
state; where the C code declines (returns None) the writer's Python path must still write the block the
generic (reference) encoding writes. The hash order of `dot` (QLDB compares hashes as signed bytes from the
last octet) is checked on hashes that differ in one octet across the sign boundary.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from amazon.ion import simpleion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.journal import writer
from ledgerdr.journal.hashing import _timestamp_repr, dot, merkle_root
from ledgerdr.journal.ionwrite import SymbolTable, encode_hashed
from ledgerdr.journal.model import BlockAddress
from ledgerdr.journal.writer import DocumentWrite, EncodedData, JournalWriter, ms_timestamp
from ledgerdr.ledger.workload import make_document

native = pytest.importorskip("ledgerdr._ionhash")  # CI builds it (see test_native.py)
if writer._NATIVE is None:
    pytest.skip("LEDGERDR_PURE_PYTHON is set: the writer does not use the C envelope", allow_module_level=True)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHEN = ms_timestamp(datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC))

_chars = st.one_of(st.sampled_from("\x0b\x0c\x0e\x00é😀"), st.characters(blacklist_categories=("Cs",)))
texts = st.one_of(st.text(_chars, max_size=12), st.sampled_from(["x" * 13, "x" * 14, "é" * 700, "data", "id"]))
hashes = st.binary(min_size=32, max_size=32)
versions = st.one_of(st.integers(0, 300), st.sampled_from([255, 256, 2**31, 2**63 - 1]))
index_sets = st.sets(st.one_of(st.integers(0, 40), st.just(2**40)), min_size=1, max_size=4).map(
    lambda s: tuple(sorted(s))
)
documents = st.one_of(
    st.none(),
    st.dictionaries(texts, st.one_of(st.integers(), texts, st.booleans(), st.none()), max_size=4),
    st.integers(0, 10**6).map(lambda seed: make_document(random.Random(seed), "T", seed)),
)


@st.composite
def blocks(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(texts, max_size=6, unique=True))
    writes = [
        DocumentWrite(draw(texts), draw(texts), doc_id, draw(versions), draw(documents), draw(index_sets))
        for doc_id in ids
    ]
    return {
        "statements": draw(st.lists(texts, max_size=4)),
        "writes": writes,
        "system": draw(st.lists(hashes, max_size=3)),
        "previous": draw(st.one_of(st.just(b""), hashes)),
        "seq": draw(st.one_of(st.integers(0, 300), st.just(2**63 - 1))),
        "tx_id": draw(texts),
        "strand": draw(texts),
        "when": ms_timestamp(WHEN + timedelta(milliseconds=draw(st.integers(0, 10**11)))),
    }


def _seeded() -> SymbolTable:
    table = SymbolTable()
    for name in ("key", "hash", "doc", "revisions"):
        table.sid(name)
    return table


def _envelope(fn: Any, block: dict[str, Any], table: SymbolTable) -> Any:
    data = writer._document_data(block["writes"], table)
    return fn(
        writer.BlockParts(
            table, BlockAddress(block["strand"], block["seq"]), _timestamp_repr(block["when"]), block["tx_id"],
            block["statements"], block["writes"], data, block["system"], [], block["previous"],
        )
    )


def _same(block: dict[str, Any], seeded: bool = False) -> tuple[Any, SymbolTable]:
    t1, t2 = (_seeded(), _seeded()) if seeded else (SymbolTable(), SymbolTable())
    fast = _envelope(writer._envelope_native, block, t1)
    reference = _envelope(writer._envelope_python, block, t2)
    assert fast is not None
    body, block_hash, entries_hash, entries, revision_hashes = fast
    assert (body, block_hash, entries_hash) == reference[:3]
    assert list(entries) == list(reference[3]) and list(revision_hashes) == list(reference[4])
    assert (t1.sids, t1.texts, t1.prelude()) == (t2.sids, t2.texts, t2.prelude())
    return fast, t1


def test_envelope_names_match_the_writer() -> None:
    assert native.ENVELOPE == writer._ENVELOPE


@SETTINGS
@given(blocks(), st.booleans())
def test_blocks_encode_the_same(block: dict[str, Any], seeded: bool) -> None:
    _same(block, seeded)


def test_block_round_trips_and_chains() -> None:
    """The C envelope's block reads back with the hashes the verifier recomputes."""
    block = {
        "statements": ["INSERT INTO T ?", "SELECT * FROM T WHERE a = ?"],
        "writes": [DocumentWrite("T", "TID", f"d{i}", i, {"a": i} if i % 3 else None, (0, 1)) for i in range(7)],
        "system": [hashlib.sha256(b"ddl").digest()],
        "previous": hashlib.sha256(b"previous").digest(),
        "seq": 12, "tx_id": "tx", "strand": "S", "when": WHEN,
    }
    (body, block_hash, entries_hash, entries, revision_hashes), table = _same(block)
    value = simpleion.loads(table.prelude() + body)
    assert bytes(value["blockHash"]) == block_hash == dot(entries_hash, block["previous"])
    assert [bytes(r["hash"]) for r in value["revisions"]] == list(revision_hashes)
    assert entries_hash == merkle_root(list(entries)) and entries[0] == merkle_root(list(revision_hashes))
    assert sorted(value["transactionInfo"]["documents"]) == [f"d{i}" for i in range(7)]


@pytest.mark.parametrize("position", [0, 1, 15, 30, 31])
@pytest.mark.parametrize("low, high", [(0x7F, 0x80), (0x00, 0xFF), (0x01, 0x02), (0x80, 0x81)])
def test_hash_order_is_signed_octets_from_the_last(position: int, low: int, high: int) -> None:
    """Hashes equal but for one octet: the Merkle roots (dot) must order them as QLDB does."""
    base = bytearray(hashlib.sha256(b"base").digest())
    a, b = bytearray(base), bytearray(base)
    a[position], b[position] = low, high
    for system in ([bytes(a), bytes(b)], [bytes(b), bytes(a)], [bytes(a), bytes(b), bytes(base)]):
        block = {"statements": [], "writes": [], "system": system, "previous": bytes(b), "seq": 1, "tx_id": "t",
                 "strand": "S", "when": WHEN}
        fast, _ = _same(block)
        assert fast[3][0] == merkle_root(system)


def _declined(**changes: Any) -> dict[str, Any]:
    block = {
        "statements": ["S"], "writes": [DocumentWrite("T", "TID", "d", 1, {"a": 1}, (0,))], "system": [],
        "previous": b"", "seq": 3, "tx_id": "tx", "strand": "S", "when": WHEN,
    }
    block.update(changes)
    return block


@pytest.mark.parametrize(
    "block",
    [
        _declined(writes=[DocumentWrite("T", "TID", "d", 1, {"a": 1}), DocumentWrite("T", "TID", "d", 2, None)]),
        _declined(writes=[DocumentWrite("T", "TID", "d", 1, {"a": 1}, (1, 0))]),
        _declined(writes=[DocumentWrite("T", "TID", "d", 1, {"a": 1}, (0, 0))]),
        _declined(writes=[DocumentWrite("T", "TID", "d", 2**63, {"a": 1})]),
        _declined(writes=[DocumentWrite("T", "TID", "d", True, {"a": 1})]),
        _declined(writes=[DocumentWrite("T", "TID", "d", 1, {"a": 1}, [0])]),
        _declined(writes=[DocumentWrite(type("Name", (str,), {})("T"), "TID", "d", 1, {"a": 1})]),
        _declined(statements=["ok", b"bytes"]),
        _declined(statements=("\ud800",)),
        _declined(system=[b"short"]),
        _declined(previous=b"x" * 31),
        _declined(strand="\udfff"),
    ],
    ids=["same-document", "unsorted", "repeated-index", "version-2**63", "bool-version", "list-indexes",
         "str-subclass", "bytes-statement", "surrogate", "short-system-hash", "short-previous", "surrogate-strand"],
)
def test_declines_what_the_python_path_writes(block: dict[str, Any]) -> None:
    assert _envelope(writer._envelope_native, block, SymbolTable()) is None


def test_declined_blocks_still_match_the_generic_encoding() -> None:
    """Through JournalWriter.commit: a document written twice goes to the Python envelope, unchanged."""
    fast, generic = JournalWriter("S"), JournalWriter("S")
    writes = [DocumentWrite("T", "TID", "d", 1, {"a": 1}, (0,)), DocumentWrite("T", "TID", "d", 2, None, (1,))]
    a = fast.commit(["A", "B"], writes, timestamp=WHEN, transaction_id="tx")
    b = generic._generic_block(a.address, a.timestamp, "tx", ["A", "B"], writes, [], [], b"")
    assert (a.block_hash, a.revision_hashes) == (b.block_hash, b.revision_hashes)
    assert simpleion.dumps(simpleion.loads(a.ion)) == simpleion.dumps(simpleion.loads(b.ion))


def test_pre_encoded_documents_are_spliced() -> None:
    """Documents the caller encoded against the block's table (the embedded ledger's case) are not re-encoded."""
    table = SymbolTable()
    writes = []
    for i in range(3):
        ion, serialized = encode_hashed({"k": i, f"f{i}": "v"}, table)
        encoded = EncodedData(table, ion, hashlib.sha256(serialized).digest())
        writes.append(DocumentWrite("T", "TID", f"d{i}", 0, {"k": i, f"f{i}": "v"}, (0,), encoded))
    block = JournalWriter("S").commit(["INSERT INTO T ?"], writes, timestamp=WHEN, transaction_id="tx")
    reference = JournalWriter("S")._generic_block(block.address, block.timestamp, "tx", ["INSERT INTO T ?"],
                                                   writes, [], [], b"")
    assert block.block_hash == reference.block_hash
    assert table.texts[:4] == ["k", "f0", "f1", "f2"]  # the documents' symbols first, then the envelope's


def test_a_table_that_is_not_a_symbol_table() -> None:
    """Any object with `sids` and `sid` works, through table.sid; a broken one raises, it is not ignored."""

    class Table(SymbolTable):
        pass

    block = _declined(writes=[DocumentWrite("T", "TID", "d", 1, None, (0,))])
    fast = _envelope(writer._envelope_native, block, Table())
    reference = _envelope(writer._envelope_python, block, SymbolTable())
    assert fast[:3] == reference[:3]

    class Broken:
        sids: list[str] = []

    with pytest.raises(TypeError, match="sids"):
        native.encode_block(Broken(), "S", 0, "tx", b"\x80", [], [], [], b"")


def test_wrong_argument_count() -> None:
    with pytest.raises(TypeError, match="9 arguments"):
        native.encode_block(SymbolTable())


def test_the_embedded_ledger_uses_the_c_envelope(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inserts, updates, deletes, reads and DDL in the embedded ledger all take the C path (a decline would
    silently cost the speed), and the journal still verifies."""
    from ledgerdr.ledger.engine import Ledger
    from ledgerdr.ledger.workload import run_workload

    python_blocks: list[int] = []
    reference = writer._envelope_python

    def counting(*args: Any) -> Any:
        python_blocks.append(args[0].address.sequence_no)
        return reference(*args)

    monkeypatch.setattr(writer, "_envelope_python", counting)
    with Ledger.create(tmp_path / "l.db") as ledger:
        stats = run_workload(ledger, transactions=80, seed=4)
        assert ledger.block_count >= 80
    assert stats.updated and stats.deleted and stats.read_only_transactions and stats.ddl_statements
    assert python_blocks == []


def test_a_table_that_changes_the_caller_lists_while_the_block_is_encoded() -> None:
    """encode_block reads its own copies: a table whose sid() empties the lists cannot pull them away."""
    digest = hashlib.sha256(b"ddl").digest()
    statements, items, system = ["A", "B"], [("T", "TID", "d", 1, None, None, (0, 1))], [digest]

    class Meddling(SymbolTable):
        def sid(self, text: str) -> int:
            statements.clear()
            items.clear()
            system.clear()
            return super().sid(text)

    rep = _timestamp_repr(WHEN)
    got = native.encode_block(Meddling(), "S", 0, "tx", rep, statements, items, system, b"")
    expected = native.encode_block(
        SymbolTable(), "S", 0, "tx", rep, ["A", "B"], [("T", "TID", "d", 1, None, None, (0, 1))], [digest], b""
    )
    assert statements == [] and got == expected
