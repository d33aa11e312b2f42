"""The restore state digest (CONTRACTS §8) over journal revisions: order, duplicates, deletes,
redactions, table names reused after DROP, and JSON revisions that lost their Ion types.

Journals are written by `JournalWriter` (QLDB's hashing rules) through `support.scenarios.JournalScenario`,
which the PostgreSQL target tests use too.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from hashlib import sha256

from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.targets.digest import digest_of_revisions, leaf_hash
from support.scenarios import JournalScenario, standard_scenario

# ------------------------------------------------------------------------------------ tests


def test_leaf_follows_the_contract_byte_layout():
    revision_hash = bytes(range(32))
    expected = sha256(b"tbl\x00doc\x00" + (7).to_bytes(8, "big") + revision_hash).digest()
    assert leaf_hash("tbl", "doc", 7, revision_hash) == expected
    assert leaf_hash("tbl", "doc", 8, revision_hash) != expected


def test_digest_counts_every_revision_by_how_its_hash_was_obtained():
    s = standard_scenario()
    revisions, redactions = s.revisions(), s.redactions()
    digest = digest_of_revisions(revisions, redactions)
    deletes = sum(r.deleted for r in revisions)
    assert digest.revisions == len({r.key for r in revisions})
    assert digest.journal_hash_used["deleted"] == deletes > 0
    assert digest.journal_hash_used["redacted"] == len(redactions) == 3
    assert digest.recomputed == digest.revisions - deletes - len(redactions)
    assert digest.mismatches == ()
    assert len(digest.tables) == 3  # Vehicle before DROP, Person, Vehicle after


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_order_and_duplicate_deliveries_do_not_change_the_digest(rng):
    s = _scenario_cache()
    revisions, redactions = s.revisions(), s.redactions()
    reference = digest_of_revisions(revisions, redactions)
    delivered = revisions + rng.sample(revisions, len(revisions) // 3)  # a third delivered twice
    rng.shuffle(delivered)
    shuffled_redactions = redactions * 2
    rng.shuffle(shuffled_redactions)
    again = digest_of_revisions(delivered, shuffled_redactions)
    assert again == reference


def test_current_state_holds_the_newest_version_of_live_documents_only():
    s = standard_scenario(seed=2)
    revisions = s.revisions()
    digest = digest_of_revisions(revisions)
    expected = s.expected_current()
    for table_id, table in digest.tables.items():
        assert table.live_documents == sum(1 for t, _ in expected if t == table_id)
    # The current digest depends only on each live document's newest revision.
    newest_live = [r for r in revisions if expected.get((r.table_id, r.document_id)) == r.version]
    only_current = digest_of_revisions(newest_live)
    for table_id, table in digest.tables.items():
        if table.live_documents:
            assert only_current.tables[table_id].current == table.current


def test_a_delete_ends_the_document_and_an_older_revision_does_not_bring_it_back():
    s = JournalScenario(3)
    table_id = s.create_table("Vehicle")
    insert = s.write("Vehicle")
    s.commit(["INSERT INTO Vehicle ?"], [insert])
    s.commit(["DELETE FROM Vehicle"], [s.write("Vehicle", insert.document_id, delete=True)])
    revisions = s.revisions()
    digest = digest_of_revisions(revisions)
    assert digest.tables[table_id].live_documents == 0
    assert digest_of_revisions(list(reversed(revisions))) == digest
    before_delete = digest_of_revisions(revisions[:1])
    assert before_delete.tables[table_id].live_documents == 1
    assert before_delete.tables[table_id].current != digest.tables[table_id].current


def test_redaction_keeps_the_hash_whether_it_arrives_before_or_after_the_revision():
    s = standard_scenario(seed=4)
    revisions, redactions = s.revisions(), s.redactions()
    after = digest_of_revisions(revisions, redactions)
    assert digest_of_revisions(revisions).digest == after.digest  # the leaf keeps the journal's hash
    assert after.journal_hash_used["redacted"] == len(redactions)
    # A copy of the journal exported after the redaction holds the revision in its redacted form.
    keys = {r.key for r in redactions}
    redacted_form = [replace(r, data=None, data_hash=ion_hash(r.data)) if r.key in keys else r for r in revisions]
    assert digest_of_revisions(redacted_form) == after
    assert digest_of_revisions(revisions + redacted_form, redactions) == after


def test_tables_are_keyed_by_table_id_not_by_name():
    s = standard_scenario(seed=5)
    revisions = s.revisions()
    digest = digest_of_revisions(revisions)
    names = sorted(t.table_name for t in digest.tables.values())
    assert names == ["Person", "Vehicle", "Vehicle"]
    old_vehicle, new_vehicle = [t for t, d in digest.tables.items() if d.table_name == "Vehicle"]
    moved = [replace(r, table_id=new_vehicle) if r.table_id == old_vehicle else r for r in revisions]
    assert digest_of_revisions(moved).digest != digest.digest


def test_json_revisions_whose_types_were_lost_use_the_journal_hash_and_are_counted_apart():
    s = standard_scenario(seed=6, transactions=30)
    ion = digest_of_revisions(s.revisions(), s.redactions())
    json_revisions = s.revisions(ExportFormat.JSON)
    lost = sum(r.type_lost for r in json_revisions)
    assert lost > 0  # timestamps and blobs come back as strings
    json = digest_of_revisions(json_revisions, s.redactions())
    assert json.digest == ion.digest
    assert json.journal_hash_used["json_type_lost"] == lost - sum(
        1 for r in json_revisions if r.type_lost and r.key in {x.key for x in s.redactions()})
    assert json.mismatches == ()


def test_altered_data_is_named_as_a_mismatch_and_changes_the_digest():
    s = standard_scenario(seed=7, transactions=20)
    revisions = s.revisions()
    good = digest_of_revisions(revisions)
    victim = next(r for r in revisions if r.data is not None)
    altered = [replace(r, data={**r.data, "Price": Decimal("1.00")}) if r is victim else r for r in revisions]
    bad = digest_of_revisions(altered)
    assert [(m.table_id, m.document_id, m.version) for m in bad.mismatches] == [victim.key]
    assert bad.digest != good.digest
    assert bad.differences(good) and not good.differences(good)


_CACHE: dict[str, JournalScenario] = {}


def _scenario_cache() -> JournalScenario:
    if "s" not in _CACHE:
        _CACHE["s"] = standard_scenario(seed=8)
    return _CACHE["s"]
