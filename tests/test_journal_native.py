"""`_journal.verify_blocks`, the C journal verifier, against the Python path it stands in for.

For every object it reads, the C verifier must say what the Python path says: per block its address, hashes,
counts, time and segment, per revision the row a restore stores (table, document, version, the document as its
own Ion stream, hash, txTime, txId), and `verify` must give the same report with it as without it. Where it
declines (None) the Python path does the object. Objects are built by the journal writer (its C envelope and
its generic `simpleion` encoding), with documents of many Ion types, and then mutated byte by byte (a fuzz test:
whatever the C verifier accepts, Python must verify the same way).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel
from amazon.ion.symbols import SymbolToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr import native
from ledgerdr.journal.codecs import ExportFormat, read_blocks
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ionread import binary_ion_hash
from ledgerdr.journal.ionwrite import standalone_hashed
from ledgerdr.journal.model import BlockAddress
from ledgerdr.journal.verify import ObjectRef, VerifyReport, verify_objects
from ledgerdr.journal.writer import DocumentWrite, JournalWriter, Redaction, ms_timestamp
from ledgerdr.ledger.storage import to_ms
from ledgerdr.ledger.workload import make_document
from ledgerdr.targets.base import revisions_of_block
from support.ion_strategies import damage_edits, damage_kinds, damaged, multimap, timestamps

pytest.importorskip("ledgerdr._journal")  # CI builds it (see test_native.py)
if native.journal is None:
    pytest.skip("LEDGERDR_PURE_PYTHON is set: verify does not use the C verifier", allow_module_level=True)
verify_blocks = native.journal.verify_blocks

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WHEN = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)

_chars = st.one_of(st.sampled_from("\x0b\x0c\x0e\x00é😀"), st.characters(blacklist_categories=("Cs",)))
texts = st.one_of(st.text(_chars, max_size=10), st.sampled_from(["x" * 14, "version", "name", "id", "$ion"]))
scalars = st.one_of(
    st.integers(-(2**70), 2**70), texts, st.booleans(), st.none(), st.binary(max_size=20),
    st.floats(allow_nan=False), st.decimals(allow_nan=False, allow_infinity=False, places=3),
    timestamps(max_digits=6), texts.map(lambda t: SymbolToken(t, None)),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4),
        st.builds(multimap, st.lists(st.tuples(st.sampled_from(["a", "b"]), children), max_size=3),
                  st.just(())),
    ),
    max_leaves=12,
)
documents = st.one_of(
    st.dictionaries(texts, values, max_size=5),
    st.integers(0, 10**6).map(lambda seed: make_document(random.Random(seed), "T", seed)),
)


@st.composite
def chains(draw: st.DrawFn, max_blocks: int = 4) -> list[dict[str, Any]]:
    """Transactions of a journal: statements, writes (deletes among them), system entries."""
    out = []
    for _ in range(draw(st.integers(1, max_blocks))):
        ids = draw(st.lists(st.text("abcdef", min_size=1, max_size=4), max_size=4, unique=True))
        writes = [DocumentWrite(draw(st.sampled_from(["T", "Person"])), draw(st.sampled_from(["t1", "t2"])), i,
                                draw(st.integers(0, 2**40)), draw(st.one_of(st.none(), documents)))
                  for i in ids]
        out.append({"statements": draw(st.lists(st.sampled_from(
            ["INSERT INTO T ?", "CREATE INDEX ON T (a)", "create index on Person (key)", "SELECT é FROM T",
             "UPDATE T SET x = 1"]), min_size=1, max_size=3)),
            "writes": writes, "system": draw(st.lists(st.binary(min_size=32, max_size=32), max_size=2)),
            "generic": draw(st.booleans()), "ms": draw(st.integers(0, 10**10))})
    return out


def _object(spec: list[dict[str, Any]], writer: JournalWriter | None = None) -> bytes:
    """The blocks of `spec` as one Ion binary data object (each block self-contained, as exports write them)."""
    writer = writer or JournalWriter("strand")
    out = []
    for tx in spec:
        when = WHEN + timedelta(milliseconds=tx["ms"])
        if tx["generic"]:  # simpleion's encoding of the same block (another symbol table layout)
            block = writer._generic_block(BlockAddress(writer.strand_id, writer.next_sequence_no),
                                          writer._next_timestamp(when), "tx", tx["statements"], tx["writes"],
                                          tx["system"], tx.get("redactions", []), writer.previous_block_hash)
            writer.next_sequence_no += 1
            writer.previous_block_hash = block.block_hash
        else:
            block = writer.commit(tx["statements"], tx["writes"], timestamp=when, transaction_id="tx",
                                  system_revisions=tx["system"], redactions=tx.get("redactions", []))
        out.append(block.ion)
    return b"".join(out)


def _python_blocks(data: bytes) -> list[tuple]:
    """What verify_blocks(data, True) must return, computed by the Python path: read_blocks, revisions_of_block,
    the restore's document encoding (standalone_hashed) and storage.to_ms."""
    out = []
    position = 0
    for block in read_blocks(data, ExportFormat.ION_BINARY):
        start = data.index(block.raw, position)
        position = start + len(block.raw)
        rows = []
        for revision in revisions_of_block(block):
            ion = None if revision.data is None else standalone_hashed(revision.data)
            rows.append((revision.table_id, revision.table_name, revision.document_id, revision.version,
                         None if ion is None else ion[1], revision.hash, to_ms(revision.metadata["txTime"]),
                         str(revision.metadata["txId"])))
        system = sum(1 for r in block.revisions if "metadata" not in r)
        out.append((block.sequence_no, block.strand_id, block.previous_block_hash, block.block_hash,
                    len(block.revisions) - system, system, start, position, to_ms(block.timestamp), rows,
                    block.statements()))
    return out


def _same_as_python(data: bytes, fast: list[tuple]) -> None:
    reference = _python_blocks(data)
    assert len(fast) == len(reference)
    for mine, theirs in zip(fast, reference, strict=True):
        assert mine[:9] == theirs[:9]
        assert len(mine[9]) == len(theirs[9])
        for row, expected in zip(mine[9], theirs[9], strict=True):
            assert row[:4] == expected[:4] and row[5:] == expected[5:]
            if row[4] is None or expected[4] is None:
                assert row[4] is expected[4] is None  # a delete
            elif row[4] != expected[4]:  # Python re-encodes IonPy values its own way: the same value, then
                assert binary_ion_hash(row[4]) == ion_hash(simpleion.loads(expected[4]))
                assert simpleion.loads(row[4]) == simpleion.loads(expected[4])
        # the statements that may create an index: every one with "index" in it, and nothing else but
        # statements with a non-ASCII character (which the C code leaves to the PartiQL parser)
        indexing = [s for s in theirs[10] if "index" in s.lower()]
        assert [s for s in mine[10] if "index" in s.lower()] == indexing
        assert all("index" in s.lower() or not s.isascii() for s in mine[10])


def _reports(data: bytes) -> tuple[dict, dict]:
    """verify's report of one object with the C verifier and without it."""
    out = []
    for use_native in (True, False):
        report = VerifyReport()
        verify_objects(lambda _key: data, [ObjectRef("k.ion", "k.ion", ExportFormat.ION_BINARY)], report,
                       use_native=use_native)
        out.append(report.to_json())
    return out[0], out[1]


@SETTINGS
@given(chains())
def test_rows_and_reports_agree_with_python(spec: list[dict[str, Any]]) -> None:
    data = _object(spec)
    fast = verify_blocks(data, True)
    if fast is not None:
        _same_as_python(data, fast)
        checked = verify_blocks(data, False)
        assert checked is not None and [b[:8] for b in checked] == [b[:8] for b in fast]
    mine, theirs = _reports(data)
    assert mine == theirs and mine["ok"]


def test_workload_documents_take_the_fast_path_byte_for_byte() -> None:
    """The workload's documents (the benchmarks' and the embedded ledger's) are never declined, and each is
    stored as the very bytes the Python path would store."""
    rng = random.Random(7)
    spec = [{"statements": ["INSERT INTO Person ?"], "system": [], "generic": generic, "ms": i,
             "writes": [DocumentWrite("Person", "t1", f"d{i}-{j}", i % 3, make_document(rng, "Person", j))
                        for j in range(rng.randrange(1, 6))] + [DocumentWrite("Person", "t1", f"gone{i}", 2, None)]}
            for i in range(40) for generic in (False, True)]
    data = _object(spec)
    fast = verify_blocks(data, True)
    assert fast is not None
    _same_as_python(data, fast)
    assert all(row[4] == expected[4] for mine, theirs in zip(fast, _python_blocks(data), strict=True)
               for row, expected in zip(mine[9], theirs[9], strict=True))


@SETTINGS
@given(chains(max_blocks=3), damage_edits, damage_kinds)
def test_fuzzed_objects_agree_with_python(spec: list[dict[str, Any]], edits: list[tuple[float, int]],
                                          how: str) -> None:
    """Bytes changed, cut or inserted anywhere: whatever the C verifier still accepts, Python verifies alike.
    (Most edits break a hash and are declined; edits of what no hash covers, such as transactionId or a
    revision's blockAddress, are read as strictly as amazon.ion reads them.)"""
    data = damaged(_object(spec), edits, how)
    fast = verify_blocks(data, True)
    if fast is None:
        assert verify_blocks(data, False) is None
        return  # verify then runs the Python path alone (and amazon.ion's reader can hang on some such bytes)
    _same_as_python(data, fast)
    mine, theirs = _reports(data)
    assert mine == theirs


@pytest.mark.parametrize("seed", range(30))
def test_random_bytes_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    data = b"\xe0\x01\x00\xea" + rng.randbytes(rng.randrange(0, 400))
    for rows in (False, True):
        assert verify_blocks(data, rows) is None


def _one_block(**changes: Any) -> list[dict[str, Any]]:
    tx = {"statements": ["INSERT INTO T ?"], "writes": [DocumentWrite("T", "t1", "d", 0, {"a": 1})], "system": [],
          "generic": False, "ms": 0}
    tx.update(changes)
    return [tx]


def test_declines_redactions() -> None:
    """A block with redactionInfo is the Python path's (the restore applies redactions from it)."""
    writer = JournalWriter("strand")
    first = _object(_one_block(), writer)
    redaction = Redaction(BlockAddress("strand", 0), "t1", "d", 0)
    data = first + _object(_one_block(writes=[], redactions=[redaction]), writer)
    assert verify_blocks(first, True) is not None
    assert verify_blocks(data, True) is None
    mine, theirs = _reports(data)
    assert mine == theirs and mine["ok"]


def test_tampered_hash_falls_back_and_is_reported() -> None:
    data = _object(_one_block())
    block = simpleion.loads(data, value_model=IonPyValueModel.MAY_BE_BARE)
    stated = bytes(block["revisions"][0]["hash"])
    tampered = data.replace(stated, hashlib.sha256(b"other").digest())
    assert verify_blocks(tampered, False) is None
    mine, theirs = _reports(tampered)
    assert mine == theirs
    assert mine["problems"][0]["kind"] == "revision_hash" and not mine["ok"]


def test_declines_a_shared_symbol_table() -> None:
    """Blocks after one version marker share its symbol table: not the layout read here."""
    data = _object(_one_block() + _one_block(ms=5))
    values = list(read_blocks(data, ExportFormat.ION_BINARY))
    shared = simpleion.dumps([b.value for b in values], binary=True, sequence_as_stream=True)
    assert verify_blocks(shared, False) is None
    mine, theirs = _reports(shared)
    assert mine == theirs and mine["ok"] and mine["revisions"] == 2


@pytest.mark.parametrize("when", [
    ms_timestamp(datetime(1970, 1, 1, tzinfo=UTC)),
    ms_timestamp(datetime(1, 1, 1, tzinfo=UTC)),
    ms_timestamp(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ms_timestamp(datetime(2000, 2, 29, 1, 2, 3, 4000, tzinfo=UTC)),
])
def test_block_times_in_milliseconds(when: datetime) -> None:
    block = JournalWriter("strand").commit(["INSERT INTO T ?"], [DocumentWrite("T", "t1", "e", 0, {"a": Decimal("1.5")})],
                          timestamp=when)
    data = block.ion
    fast = verify_blocks(data, True)
    assert fast is not None and fast[0][8] == to_ms(when) and fast[0][9][0][6] == to_ms(when)
    _same_as_python(data, fast)


def test_rows_for_a_range_and_an_early_stop() -> None:
    """A restore unit's blocks get rows; the others are read for their stated hashes and links only (their
    hashes are their own unit's to check); nothing past stop_seq is returned."""
    data = _object([tx for i in range(5) for tx in _one_block(ms=i, writes=[
        DocumentWrite("T", "t1", f"d{i}", 0, {"a": i})])])
    every = verify_blocks(data, True)
    ranged = verify_blocks(data, True, 1, 2, 3)
    assert [b[0] for b in ranged] == [0, 1, 2, 3]
    assert [b[9] is None for b in ranged] == [True, False, False, True]
    assert [b[:9] for b in ranged[1:3]] == [b[:9] for b in every[1:3]] and ranged[1][9:] == every[1][9:]
    assert [b[:8] for b in ranged[1:3]] == [b[:8] for b in every[1:3]]
    for outside, full in ((ranged[0], every[0]), (ranged[3], every[3])):
        assert outside[:4] + outside[6:8] == full[:4] + full[6:8] and outside[4:6] == (0, 0)
    assert len(verify_blocks(data, True, 0, 10, -1)) == 5
