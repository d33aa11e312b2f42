"""The state digest from a target's stored rows (`digest_of_state_rows`: `ledgerdr._statedigest` in C, with the
rows it leaves over decided in Python) against the reference, `digest_of_rows` over `iter_state`.

Both must give the same `StateDigest`, field for field (digest, per-table hashes and counts, reasons, mismatches),
on ledgers with many tables, deletes, redactions, dropped tables, JSON revisions whose types were lost and rows
altered after the restore. Without the extension (LEDGERDR_PURE_PYTHON=1, the Makefile's first pass) the same
tests run `digest_of_state_rows` on its Python path; the tests of the C functions themselves are then skipped.
"""

from __future__ import annotations

import random
import sqlite3
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerdr import native
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.targets.base import stored_metadata
from ledgerdr.targets.digest import (
    RECORD,
    PackedJournal,
    _fold_python,
    digest_of_journal,
    digest_of_packed_journal,
    digest_of_parts,
    digest_of_revisions,
    digest_of_rows,
    digest_of_state_rows,
    digest_of_target,
    digest_part_of_state_rows,
    journal_entries,
    leaf_hash,
    pack_history_rows,
    pack_journal,
    target_dropped,
    unpack_journal,
)
from ledgerdr.targets.embedded import EmbeddedTarget, _dumps
from support.scenarios import JournalScenario

needs_c = pytest.mark.skipif(native.statedigest is None, reason="ledgerdr._statedigest is not in use")
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_DOCS = st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=8)


def _scenario(seed: int, tables: int, transactions: int) -> JournalScenario:
    """`tables` tables (one dropped and created again under its name when there are two or more), random
    inserts, updates and deletes, and redactions of superseded revisions."""
    s = JournalScenario(seed)
    names = [f"T{i}" for i in range(tables)]
    for i, name in enumerate(names):
        s.create_table(name, ("VIN",) if i % 2 else ())
    s.random_transactions(transactions // 2)
    if tables > 1:
        s.drop_table(names[0])
        s.random_transactions(transactions // 4)
        s.create_table(names[0])
    s.random_transactions(transactions - transactions // 2 - transactions // 4)
    s.redact_some(s.rng.randint(0, 4))
    return s


def _restored(tmp_path, scenario: JournalScenario, fmt: ExportFormat, unit_size: int) -> EmbeddedTarget:
    target = EmbeddedTarget(tmp_path / f"restored-{random.random()}.db")
    target.open_lineage(scenario.strand_id, "ledger")
    units = scenario.units(unit_size, fmt)
    random.Random(unit_size).shuffle(units)  # units arrive in any order
    for unit in units:
        unit.apply_to(target)
    target.finalize()
    return target


def _both(target: EmbeddedTarget):
    dropped = target_dropped(target)
    return digest_of_state_rows(target.iter_state_rows(), dropped), digest_of_rows(target.iter_state(decode=False),
                                                                                  dropped)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), tables=st.integers(1, 7), transactions=st.integers(4, 60),
       fmt=st.sampled_from([ExportFormat.ION_BINARY, ExportFormat.ION_TEXT, ExportFormat.JSON]),
       unit_size=st.integers(1, 9))
def test_rows_digest_equals_the_reference_on_varied_ledgers(tmp_path_factory, seed, tables, transactions, fmt,
                                                            unit_size):
    scenario = _scenario(seed, tables, transactions)
    target = _restored(tmp_path_factory.mktemp("d"), scenario, fmt, unit_size)
    try:
        rows, reference = _both(target)
        assert rows == reference
        assert not rows.mismatches
        journal = digest_of_revisions(scenario.revisions(fmt), scenario.redactions(), scenario.dropped())
        assert rows.digest == journal.digest
        assert digest_of_target(target) == reference
    finally:
        target.close()


def _row_keys(batches) -> list[tuple]:
    return [(batch.table_id, batch.current, row[0], row[1]) for batch in batches for row in batch.rows]


@pytest.mark.parametrize("count", [2, 3, 5, 40])
def test_state_rows_split_into_parts_hold_every_row_once_and_digest_alike(tmp_path, count):
    """Finalize hashes the target's rows in `count` processes (`iter_state_rows(index, count)`): the parts
    hold every stored row exactly once, whatever the number of documents per table (fewer than `count`
    in every table at 40), and their folded digest is the whole target's."""
    scenario = _scenario(11, 4, 80)
    target = _restored(tmp_path, scenario, ExportFormat.ION_BINARY, 5)
    try:
        whole = _row_keys(target.iter_state_rows())
        parts = [_row_keys(target.iter_state_rows(index, count)) for index in range(count)]
        assert sorted(key for part in parts for key in part) == sorted(whole)
        # the rows were divided, unless no table has `count` documents (then part 0 holds them all)
        assert sum(1 for part in parts if part) > 1 if count < 10 else parts[0] == whole
        folded = digest_of_parts([digest_part_of_state_rows(target.iter_state_rows(index, count))
                                  for index in range(count)], target_dropped(target))
        assert folded == digest_of_target(target)
        assert folded.digest == digest_of_revisions(scenario.revisions(ExportFormat.ION_BINARY),
                                                    scenario.redactions(), scenario.dropped()).digest
    finally:
        target.close()


def test_many_tables_dropped_tables_and_every_reason_are_counted_alike(tmp_path):
    scenario = _scenario(7, 12, 120)
    target = _restored(tmp_path, scenario, ExportFormat.JSON, 3)
    try:
        rows, reference = _both(target)
        assert rows == reference
        assert len(rows.tables) >= 12 and any(t.dropped for t in rows.tables.values())
        assert rows.journal_hash_used["deleted"] and rows.journal_hash_used["redacted"]
        assert rows.journal_hash_used["json_type_lost"]  # JSON loses Ion types in vehicle documents
    finally:
        target.close()


def test_altered_rows_are_decided_by_the_reference_and_named_alike(tmp_path):
    """A history row's data changed, a current row's hash changed and a document made unreadable to the C
    reader: the rows path hands those rows to Python, which names the same mismatches."""
    scenario = _scenario(3, 3, 40)
    target = _restored(tmp_path, scenario, ExportFormat.ION_BINARY, 4)
    path = target.path
    target.close()
    with sqlite3.connect(path) as conn:
        history = conn.execute("SELECT table_id, doc_id, version FROM history WHERE data IS NOT NULL "
                               "ORDER BY doc_id LIMIT 3").fetchall()
        conn.execute("UPDATE history SET data = ? WHERE table_id = ? AND doc_id = ? AND version = ?",
                     (_dumps({"altered": 1}), *history[0]))
        conn.execute("UPDATE documents SET hash = ? WHERE doc_id = (SELECT min(doc_id) FROM documents)",
                     (b"\x01" * 32,))
        # Ion text where Ion binary belongs: the C reader declines it, the Python path decodes it
        conn.execute("UPDATE history SET data = CAST('{a:1}' AS BLOB) WHERE table_id = ? AND doc_id = ? "
                     "AND version = ?", history[1])
    target = EmbeddedTarget(path)
    try:
        rows, reference = _both(target)
        assert rows == reference
        assert {(m.document_id, m.where) for m in rows.mismatches} >= {(history[0][1], "history")}
        assert any(m.where == "current" for m in rows.mismatches)
    finally:
        target.close()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), tables=st.integers(1, 6), parts=st.integers(1, 6), twice=st.booleans(),
       fmt=st.sampled_from([ExportFormat.ION_BINARY, ExportFormat.JSON]))
def test_packed_journal_digest_equals_the_journal_digest(seed, tables, parts, twice, fmt):
    """Entries packed in parts (a document's versions spread over several, some delivered twice) and redactions
    named in other parts than their revisions: the same digest as `digest_of_journal` over the entries."""
    scenario = _scenario(seed, tables, 50)
    entries = journal_entries(scenario.revisions(fmt))
    random.Random(seed).shuffle(entries)
    if twice:
        entries += entries[: len(entries) // 3]
    size = -(-len(entries) // parts)
    packed = [pack_journal(entries[i:i + size]) for i in range(0, len(entries), size)]
    assert [e for part in packed for e in unpack_journal(part)] == entries
    for part in packed:
        part.check()
    redactions = [r.key for r in scenario.redactions()]
    expected = digest_of_journal(entries, redactions, scenario.dropped())
    assert digest_of_packed_journal(packed, redactions, scenario.dropped()) == expected
    assert expected.digest == digest_of_revisions(scenario.revisions(fmt), scenario.redactions(),
                                                  scenario.dropped()).digest


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["T1", "T2", "Tß"]), _TEXT, st.integers(0, 2**64 - 1), st.booleans(),
                          st.binary(min_size=32, max_size=32)), max_size=20))
def test_history_rows_pack_as_their_journal_entries(rows):
    """`pack_history_rows` (C where built) packs what `pack_journal` packs of the rows' entries."""
    history = [(t, doc, version, b"ion" if data else None, h, 0, "tx", 1, None) for t, doc, version, data, h in rows]
    names = {"T1": "one", "T2": "two", "Tß": "drei"}
    packed = pack_history_rows(history, names)
    assert packed == pack_journal((t, names[t], doc, version, h, 0 if data else 3) for t, doc, version, data, h in rows)


def test_packed_entries_that_do_not_hold_together_are_refused():
    part = pack_journal([("T", "t", "d", 1, b"h" * 32, 0), ("T", "t", "e", 2, b"i" * 32, 1)])
    with pytest.raises(ValueError, match="2 packed journal entries where 3"):
        PackedJournal(part.tables, part.packed, 3).check()
    for bad in (PackedJournal(part.tables, part.packed[:-1], 2), PackedJournal((), part.packed, 2)):
        with pytest.raises(ValueError):
            bad.check()
    if native.statedigest is not None:  # the C fold refuses them too
        for tables, packed in ((part.tables, part.packed[:-1]), (part.tables[:0], part.packed)):
            with pytest.raises(ValueError):
                native.statedigest.journal([(tables, packed)], set())
    with pytest.raises(ValueError, match="hash of 31 bytes"):
        pack_journal([("T", "t", "d", 1, b"h" * 31, 0)])
    with pytest.raises(ValueError, match="does not pack"):
        pack_journal([("T", "t", "d", -1, b"h" * 32, 0)])


# ------------------------------------------------------------------------------------------ the C functions




@needs_c
@settings(max_examples=300, deadline=None)
@given(table_id=_TEXT, doc_id=_TEXT, tx_id=_TEXT, version=st.integers(0, 2**64 - 1),
       tx_ms=st.integers(-62_135_596_800_000, 253_402_300_799_999) | st.sampled_from([0, 127, 128, 255, 256, 999]),
       data=st.dictionaries(_TEXT, _DOCS, max_size=4))
def test_leaf_of_a_row_equals_the_python_leaf(table_id, doc_id, tx_id, version, tx_ms, data):
    """Every txTime from year 1 to 9999 (each millisecond count, before and after the epoch), any version
    an 8-byte leaf holds, any text: the C metadata hash and leaf are the Python ones."""
    ion = _dumps(data)
    revision_hash = dot(ion_hash(stored_metadata(doc_id, version, tx_ms, tx_id)), ion_hash(data))
    packed, fallback = native.statedigest.leaves(table_id, [(doc_id, version, ion, revision_hash, tx_ms, tx_id, None)],
                                                 None)
    assert fallback == []
    assert packed == leaf_hash(table_id, doc_id, version, revision_hash) + b"\x00"


@needs_c
def test_rows_outside_what_c_takes_are_left_to_python():
    meta_hash = ion_hash(stored_metadata("d", 1, 0, "t"))
    good = dot(meta_hash, ion_hash({"a": 1}))
    rows = [
        ("d", 1, _dumps({"a": 1}), good, 0, "t", None),  # recomputes
        ("d", 1, _dumps({"a": 2}), good, 0, "t", None),  # does not: Python names the mismatch
        ("d", 1, b"{a:1}", good, 0, "t", None),  # not Ion binary
        ("d", -1, _dumps({"a": 1}), good, 0, "t", None),  # a version no leaf holds: Python raises
        ("d", 1, _dumps({"a": 1}), good, 10**17, "t", None),  # a txTime past year 9999
        ("d", 1, _dumps({"a": 1}), good[:31], 0, "t", None),  # a hash of the wrong length
        ("d\ud800", 1, _dumps({"a": 1}), good, 0, "t", None),  # text UTF-8 cannot encode
        ("d", 2, None, b"h" * 32, 0, "t", None),  # a delete: the journal's hash, whatever it is
        ("d", 3, None, b"h" * 32, 0, "t", b"x" * 32),  # redacted
    ]
    packed, fallback = native.statedigest.leaves("T", rows, None)
    assert fallback == [1, 2, 3, 4, 5, 6]
    assert packed[:RECORD] == leaf_hash("T", "d", 1, good) + b"\x00"
    assert packed[7 * RECORD:8 * RECORD] == leaf_hash("T", "d", 2, b"h" * 32) + b"\x02"
    assert packed[8 * RECORD:] == leaf_hash("T", "d", 3, b"h" * 32) + b"\x03"
    lost, _ = native.statedigest.leaves("T", rows[:1], {("d", 1)})
    assert lost == leaf_hash("T", "d", 1, good) + b"\x01"


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3)), max_size=60),
       st.lists(st.integers(0, 7), max_size=30))
def test_fold_equals_the_python_fold(history, current):
    """Few distinct leaves, so duplicates with the same or another reason are common."""
    def leaf(n: int) -> bytes:
        return sha256(bytes((n,))).digest()

    packed_history = b"".join(leaf(n) + bytes((reason,)) for n, reason in history)
    packed_current = b"".join(leaf(n) + b"\x00" for n in current)
    c = native.statedigest.fold(packed_history, packed_current)
    py = _fold_python(packed_history, packed_current)
    assert (c[0], c[1], c[2], c[3], list(c[4])) == py
    with pytest.raises(ValueError, match="multiple of 33"):
        native.statedigest.fold(b"x" * 32, b"")
