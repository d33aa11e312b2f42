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

import psycopg
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
from ledgerdr.targets.postgres import PostgresTarget
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


# ------------------------------------------------------------------------- current rows shared with history
# A current row identical to its history row is that row's `in_current` (compared by the target), so its bytes are
# hashed once; a current row altered in any column the leaf reads, or without its history row, is read and hashed
# on its own, and a history row altered under its current row no longer stands for it.


class _Storage:
    """SQL on the storage of a restored target, embedded or PostgreSQL, in one spelling: `{h}`/`{c}` its history and
    current tables, `{t}` the condition naming the ledger table (`table_id` in the embedded ledger's shared tables),
    `{id}`, `{data}`, `{cols}` (a current row's columns after its document id), `?` the parameters."""

    def __init__(self, kind: str, target, table_id: str, dsn: str | None) -> None:
        self.kind, self.target, self.table_id, self.dsn = kind, target, table_id, dsn

    def run(self, statements: list[tuple[str, tuple]]) -> None:
        if self.kind == "embedded":
            names = {"h": "history", "c": "documents", "t": f"table_id = '{self.table_id}' AND ", "id": "doc_id",
                     "data": "data", "cols": "table_id, version, data, hash, tx_time_ms, tx_id, block_seq"}
            path = self.target.path
            self.target.close()
            with sqlite3.connect(path) as conn:
                for statement, args in statements:
                    conn.execute(statement.format(**names), args)
            self.target = EmbeddedTarget(path)
            return
        table = next(t for t in self.target.tables() if t.table_id == self.table_id)
        names = {"h": f'"{self.target.schema}"."{table.history_table}"', "t": "", "id": "id", "data": "ion",
                 "c": f'"{self.target.schema}"."{table.current_table}"',
                 "cols": "version, tx_time, tx_time_ion, tx_id, data, ion, hash, data_hash, deleted, type_lost, block_seq"}
        with psycopg.connect(self.dsn) as conn:
            for statement, args in statements:
                conn.execute(statement.format(**names).replace("?", "%s"), args)


def _restored_into(kind: str, tmp_path, dsn: str | None, scenario: JournalScenario):
    if kind == "embedded":
        return _restored(tmp_path, scenario, ExportFormat.ION_BINARY, 4)
    target = PostgresTarget(dsn, "ledgerdr")
    target.open_lineage(scenario.strand_id, "ledger")
    for unit in scenario.units(4):
        unit.apply_to(target)
    target.finalize()
    return target


def _flagged_and_read(batches) -> tuple[dict[str, list[str]], int]:
    """Per table, the document ids of the history rows flagged `in_current`; and how many current rows were read."""
    flagged: dict[str, list[str]] = {}
    read = 0
    for batch in batches:
        if batch.current:
            read += len(batch.rows)
        else:
            flagged.setdefault(batch.table_id, []).extend(row[0] for i, row in enumerate(batch.rows)
                                                          if batch.in_current(i))
    return flagged, read


@pytest.fixture(params=["embedded", "postgres"])
def restored(request, tmp_path):
    """A target of each kind holding `_scenario(5, 3, 60)` restored, and the scenario."""
    scenario = _scenario(5, 3, 60)
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    target = _restored_into(request.param, tmp_path, dsn, scenario)
    storage = _Storage(request.param, target, "", dsn)
    yield storage, scenario
    storage.target.close()


def test_a_restored_current_state_is_read_as_flags_on_its_history_rows(restored):
    """Right after a restore every current row is its document's newest history row: no current row is read
    again, each is a flag on that history row, and the digest is the journal's, in C as on the reference."""
    storage, scenario = restored
    live = storage.target.info()["documents"]
    flagged, read = _flagged_and_read(storage.target.iter_state_rows())
    assert live > 10 and read == 0
    assert sum(len(docs) for docs in flagged.values()) == live
    rows, reference = _both(storage.target)
    assert rows == reference
    assert rows.digest == digest_of_revisions(scenario.revisions(), scenario.redactions(), scenario.dropped()).digest
    assert sum(t.live_documents for t in rows.tables.values()) == live


def test_an_embedded_current_state_all_flagged_is_not_searched_again(tmp_path):
    """As many flags as current rows (each key unique on both sides, so one to one) means every current row is a
    flag's: the query for the rest, a comparison with history per current row, is left out; one current row more
    than flags (an orphan) brings it back, and that row is read."""
    target = _restored(tmp_path, _scenario(5, 3, 60), ExportFormat.ION_BINARY, 4)
    statements: list[str] = []
    target.storage.conn.set_trace_callback(statements.append)
    assert _flagged_and_read(target.iter_state_rows(0, 2))[1] + _flagged_and_read(target.iter_state_rows(1, 2))[1] == 0
    assert statements and not [s for s in statements if "AND NOT EXISTS (SELECT 1 FROM history h" in s]
    table_id, doc_id = target.storage.conn.execute("SELECT table_id, doc_id FROM documents LIMIT 1").fetchone()
    with target.storage.write_transaction():
        target.storage.conn.execute("INSERT INTO documents SELECT table_id, 'zz-orphan', version, data, hash, "
                                    "tx_time_ms, tx_id, block_seq FROM documents WHERE table_id = ? AND doc_id = ?",
                                    (table_id, doc_id))
    assert _flagged_and_read(target.iter_state_rows())[1] == 1
    target.close()


_NEWEST = " AND version = (SELECT version FROM {c} WHERE {t}{id} = ?)"  # the history row of the current one


def _copy_of_other(side: str, newest: str = "") -> str:
    """A statement setting the data of the rows of document `doc` on `side` to the current data of `other`."""
    return f"UPDATE {{{side}}} SET {{data}} = (SELECT {{data}} FROM {{c}} WHERE {{t}}{{id}} = ?) WHERE {{t}}{{id}} = ?" \
        + newest
# name: (statements with their parameters, named by role; whether the table's history and current hashes then
# differ from the journal's; the (document, side) pairs the digest names as not recomputing)
ALTERATIONS = {
    "current data": ([(_copy_of_other("c"), ("other", "doc"))], (False, True), {("doc", "current")}),
    "current txId": ([("UPDATE {c} SET tx_id = tx_id || 'x' WHERE {t}{id} = ?", ("doc",))], (False, True),
                     {("doc", "current")}),
    "history data": ([(_copy_of_other("h", _NEWEST), ("other", "doc", "doc"))], (True, False),
                     {("doc", "history")}),
    # the same change to both: still identical, one row stands for both, and both are named
    "both data": ([(_copy_of_other("h", _NEWEST), ("other", "doc", "doc")),
                   (_copy_of_other("c"), ("other", "doc"))], (True, True),
                  {("doc", "history"), ("doc", "current")}),
    "history row deleted": ([("DELETE FROM {h} WHERE {t}{id} = ?" + _NEWEST, ("doc", "doc"))], (True, False), set()),
    "current row without any history": (
        [("INSERT INTO {c} ({id}, {cols}) SELECT 'zz-orphan', {cols} FROM {c} WHERE {t}{id} = ?", ("doc",))],
        (False, True), {("zz-orphan", "current")}),
}


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_altered_rows_under_a_shared_current_state_are_still_caught(restored, alteration):
    """Each alteration changes the digest on the side it touched (and only there), C and the reference alike."""
    storage, scenario = restored
    flagged, _ = _flagged_and_read(storage.target.iter_state_rows())
    storage.table_id, (doc, other, *_) = next((t, docs) for t, docs in sorted(flagged.items()) if len(docs) >= 2)
    statements, changed, named = ALTERATIONS[alteration]
    roles = {"doc": doc, "other": other}
    storage.run([(statement, tuple(roles[role] for role in args)) for statement, args in statements])
    rows, reference = _both(storage.target)
    assert rows == reference
    journal = digest_of_revisions(scenario.revisions(), scenario.redactions(), scenario.dropped())
    assert rows.digest != journal.digest
    mine, theirs = rows.tables[storage.table_id], journal.tables[storage.table_id]
    assert (mine.history != theirs.history, mine.current != theirs.current) == changed
    assert {(m.document_id, m.where) for m in rows.mismatches} == {(roles.get(d, d), w) for d, w in named}
    assert _flagged_and_read(storage.target.iter_state_rows())[1] == (0 if alteration == "both data" else 1)


def test_identical_rows_the_c_digest_cannot_rebuild_share_their_leaf_in_python(pg_dsn, tmp_path):
    """PostgreSQL: a history row and its identical current row both stored with a txTime at another precision go to
    the Python path (`in_python`) together, the history row still flagged: both are named, as on the reference."""
    scenario = _scenario(5, 3, 60)
    target = _restored_into("postgres", tmp_path, pg_dsn, scenario)
    try:
        flagged, _ = _flagged_and_read(target.iter_state_rows())
        table_id, docs = next((t, docs) for t, docs in sorted(flagged.items()) if docs)
        seconds = "SET tx_time_ion = to_char(tx_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') WHERE {id} = ?"
        _Storage("postgres", target, table_id, pg_dsn).run([("UPDATE {h} " + seconds + _NEWEST, (docs[0], docs[0])),
                                                            ("UPDATE {c} " + seconds, (docs[0],))])
        batches = list(target.iter_state_rows())
        assert any(b.in_python and not b.current and any(b.in_current(i) for i in range(len(b.rows))) for b in batches)
        assert _flagged_and_read(batches)[1] == 0
        rows, reference = _both(target)
        assert rows == reference
        assert {(m.document_id, m.where) for m in rows.mismatches} == {(docs[0], "history"), (docs[0], "current")}
    finally:
        target.close()


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
    packed, fallback, shared = native.statedigest.leaves(
        table_id, [(doc_id, version, ion, revision_hash, tx_ms, tx_id, None)], None)
    assert fallback == [] and shared == b""
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
    packed, fallback, _ = native.statedigest.leaves("T", rows, None)
    assert fallback == [1, 2, 3, 4, 5, 6]
    assert packed[:RECORD] == leaf_hash("T", "d", 1, good) + b"\x00"
    assert packed[7 * RECORD:8 * RECORD] == leaf_hash("T", "d", 2, b"h" * 32) + b"\x02"
    assert packed[8 * RECORD:] == leaf_hash("T", "d", 3, b"h" * 32) + b"\x03"
    lost, _, _ = native.statedigest.leaves("T", rows[:1], {("d", 1)})
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


@needs_c
@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32), st.integers(4090, 20_000), st.integers(0, 3), st.booleans())
def test_fold_of_many_records_equals_the_python_fold(seed, count, prefix_bytes, with_repeats):
    """From 4,096 records the C fold scatters them by their first two octets before sorting: evenly spread leaves,
    leaves sharing up to three leading octets (one run, as qsort alone), repeats of one leaf with other reasons."""
    rng = random.Random(seed)
    prefix = bytes(rng.getrandbits(8) for _ in range(prefix_bytes))
    leaves = [prefix + rng.randbytes(32 - prefix_bytes) for _ in range(count)]
    if with_repeats:
        leaves += [rng.choice(leaves) for _ in range(count // 10)]
    packed = b"".join(leaf + bytes((rng.randrange(4),)) for leaf in leaves)
    current = packed[:RECORD * (count // 3)]
    c = native.statedigest.fold(packed, current)
    assert (c[0], c[1], c[2], c[3], list(c[4])) == _fold_python(packed, current)
