"""The PostgreSQL restore target against a private PostgreSQL server: idempotent units, any order,
concurrent workers, redactions, lineage, hostile names, and exact data round trips through `ion`.

The state digest of the target (read back from PostgreSQL) must equal the digest of the journal.
"""

from __future__ import annotations

import queue
import random
import threading
from dataclasses import replace

import psycopg
import pytest
from amazon.ion import simpleion
from psycopg import sql

from ledgerdr.errors import RestoreError
from ledgerdr.journal.codecs import ExportFormat, timestamp_text
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.targets.base import Target
from ledgerdr.targets.digest import digest_of_revisions, digest_of_target
from ledgerdr.targets.postgres import PostgresTarget
from support.scenarios import JournalScenario, standard_scenario

LEDGER = "vehicle-registration"


@pytest.fixture
def open_target(pg_dsn):
    opened: list[PostgresTarget] = []

    def factory(scenario: JournalScenario | None = None, schema: str = "ledgerdr") -> PostgresTarget:
        target = PostgresTarget(pg_dsn, schema)
        opened.append(target)
        if scenario is not None:
            target.open_lineage(scenario.strand_id, LEDGER)
        return target

    yield factory
    for target in opened:
        target.close()


@pytest.fixture(scope="module")
def scenario():
    return standard_scenario(seed=11, transactions=80)


def journal_digest(s: JournalScenario, fmt: ExportFormat = ExportFormat.ION_BINARY):
    return digest_of_revisions(s.revisions(fmt), s.redactions(), s.dropped())


def current_versions(dsn: str, target: PostgresTarget) -> dict[tuple[str, str], int]:
    out = {}
    with psycopg.connect(dsn) as conn:
        for table in target.tables():
            rows = conn.execute(sql.SQL("SELECT id, version FROM {}").format(
                sql.Identifier(target.schema, table.current_table))).fetchall()
            out.update(((table.table_id, doc), version) for doc, version in rows)
    return out


def test_target_satisfies_the_protocol(open_target):
    assert isinstance(open_target(), Target)


def test_restore_in_order_matches_the_journal(open_target, pg_dsn, scenario):
    target = open_target(scenario)
    units = scenario.units(4)
    assert all(unit.apply_to(target) for unit in units)
    digest, expected = digest_of_target(target), journal_digest(scenario)
    assert digest == expected, digest.differences(expected)
    assert digest.mismatches == () and digest.recomputed > 0
    assert current_versions(pg_dsn, target) == scenario.expected_current()
    info = target.info()
    assert info["units"] == len(units) and info["revisions"] == expected.revisions
    assert info["documents"] == len(scenario.expected_current())
    assert info["strand_id"] == scenario.strand_id and info["tables"] == 3
    assert info["last_block"]["sequence_no"] == scenario.blocks[-1].address.sequence_no


def test_units_applied_twice_are_no_ops(open_target, scenario):
    target = open_target(scenario)
    units = scenario.units(5)
    for unit in units:
        unit.apply_to(target)
    before, info = digest_of_target(target), target.info()
    assert not any(unit.apply_to(target) for unit in units)
    assert target.applied_units() == {u.unit_id for u in units}
    assert digest_of_target(target) == before and target.info() == info


def test_shuffled_units_and_redelivered_revisions_give_the_same_state(open_target, pg_dsn, scenario):
    target = open_target(scenario)
    units = scenario.units(2)
    random.Random(3).shuffle(units)
    # Re-delivery inside another unit (a retried export overlapping the last one) is harmless too.
    units.append(replace(units[0], unit_id="overlap"))
    for unit in units:
        assert unit.apply_to(target)
    assert digest_of_target(target) == journal_digest(scenario)
    assert current_versions(pg_dsn, target) == scenario.expected_current()


def test_history_holds_every_revision_once(open_target, pg_dsn, scenario):
    target = open_target(scenario)
    for unit in scenario.units(7):
        unit.apply_to(target)
    expected: dict[str, int] = {}
    for r in scenario.revisions():
        expected[r.table_id] = expected.get(r.table_id, 0) + 1
    with psycopg.connect(pg_dsn) as conn:
        counted = {t.table_id: conn.execute(sql.SQL("SELECT count(*), count(DISTINCT (id, version)) FROM {}").format(
            sql.Identifier(target.schema, t.history_table))).fetchone() for t in target.tables()}
    assert counted == {t: (n, n) for t, n in expected.items()}


def test_a_delete_applied_first_is_not_undone_by_the_older_revision(open_target, pg_dsn):
    s = JournalScenario(21)
    s.create_table("Vehicle")
    insert = s.write("Vehicle")
    s.commit(["INSERT INTO Vehicle ?"], [insert])
    s.commit(["UPDATE Vehicle"], [s.write("Vehicle", insert.document_id)])
    s.commit(["DELETE FROM Vehicle"], [s.write("Vehicle", insert.document_id, delete=True)])
    target = open_target(s)
    for unit in reversed(s.units(1)):
        unit.apply_to(target)
        assert current_versions(pg_dsn, target) == {}
    assert digest_of_target(target) == journal_digest(s)


@pytest.mark.parametrize("redaction_first", [True, False])
def test_redaction_erases_data_whatever_the_order(open_target, pg_dsn, redaction_first):
    s = standard_scenario(seed=12, transactions=30)
    units = s.units(3)
    redaction_units = [u for u in units if u.redactions]
    ordered = redaction_units + [u for u in units if not u.redactions] if redaction_first else units
    target = open_target(s)
    for unit in ordered:
        unit.apply_to(target)
    digest = digest_of_target(target)
    assert digest == journal_digest(s)
    assert digest.journal_hash_used["redacted"] == len(s.redactions()) == 3
    originals = {r.key: r for r in s.revisions()}
    with psycopg.connect(pg_dsn) as conn:
        for redaction in s.redactions():
            table = next(t for t in target.tables() if t.table_id == redaction.table_id)
            row = conn.execute(sql.SQL("SELECT data, ion, data_hash, hash, deleted FROM {} WHERE id = %s AND"
                                       " version = %s").format(sql.Identifier(target.schema, table.history_table)),
                               (redaction.document_id, redaction.version)).fetchone()
            original = originals[redaction.key]
            assert row == (None, None, ion_hash(original.data), original.hash, False)


def test_another_lineage_is_refused(open_target, scenario):
    target = open_target(scenario)
    scenario.units(50)[0].apply_to(target)
    other = open_target()
    with pytest.raises(RestoreError) as caught:
        other.open_lineage("OtherStrand0123456789a", LEDGER)
    assert scenario.strand_id in str(caught.value) and "OtherStrand0123456789a" in str(caught.value)
    with pytest.raises(RestoreError):
        open_target(schema="unbound").apply("u", [], [], [], None)  # no lineage recorded in that schema
    other.open_lineage(scenario.strand_id, LEDGER)  # the same lineage continues


HOSTILE_NAMES = [
    '"; DROP TABLE x; --',
    "Robert'); DROP TABLE students;--",
    "V" * 300,
    "Fahrzeug_Ü_車両 🚗",
    "a-b", "a b", "A.B",  # the same after sanitizing
    "ledgerdr_tables",
]
HOSTILE_FIELDS = ['x"); DROP TABLE x; --', "Prix €", "it's"]


def test_hostile_table_and_field_names_restore_safely(open_target, pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.x (keep int)")
    s = JournalScenario(31)
    for name in HOSTILE_NAMES:
        s.create_table(name, tuple(HOSTILE_FIELDS))
    s.drop_table("a-b")
    s.create_table("a-b", ("VIN",))  # the same name, another tableId
    writes = [s.write(name, data={**{f: f"v{i}" for f in HOSTILE_FIELDS}, "VIN": f"VIN{i}"})
              for i, name in enumerate(sorted(s.tables))]
    s.commit(["INSERT INTO hostile ?"], writes)
    target = open_target(s)
    for unit in s.units(3):
        unit.apply_to(target)
    assert digest_of_target(target) == journal_digest(s)
    tables = target.tables()
    assert sorted(t.table_name for t in tables) == sorted([*HOSTILE_NAMES, "a-b"])
    pg_names = [n for t in tables for n in (t.current_table, t.history_table)]
    assert len(set(pg_names)) == len(pg_names) and max(len(n.encode()) for n in pg_names) <= 63
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM public.x").fetchone() == (0,)
        for table in tables:
            ident = sql.Identifier(target.schema, table.current_table)
            comment = conn.execute("SELECT obj_description(%s::regclass, 'pg_class')",
                                   (ident.as_string(conn),)).fetchone()
            assert comment == (table.table_name,)
            indexed = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
                                   " AND indexname LIKE 'ix\\_%%'", (target.schema, table.current_table)).fetchone()
            assert indexed == (len(table.indexes),) and set(table.indexes) <= {*HOSTILE_FIELDS, "VIN"}
        live = next(w for w in writes if w.table_name == HOSTILE_NAMES[0])
        table = next(t for t in tables if t.table_id == live.table_id)
        found = conn.execute(sql.SQL("SELECT id FROM {} WHERE data ->> %s = %s").format(
            sql.Identifier(target.schema, table.current_table)), (HOSTILE_FIELDS[0], live.data[HOSTILE_FIELDS[0]]))
        assert found.fetchall() == [(live.document_id,)]


def test_concurrent_workers_do_not_deadlock_and_agree(pg_dsn, scenario):
    units = scenario.units(1)
    work: queue.Queue = queue.Queue()
    for unit in units + random.Random(5).sample(units, 10):  # some delivered twice
        work.put(unit)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with PostgresTarget(pg_dsn) as target:
                target.open_lineage(scenario.strand_id, LEDGER)
                while True:
                    try:
                        work.get_nowait().apply_to(target)
                    except queue.Empty:
                        return
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "workers deadlocked"
    assert errors == []
    with PostgresTarget(pg_dsn) as target:
        assert target.applied_units() == {u.unit_id for u in units}
        assert digest_of_target(target) == journal_digest(scenario)


ROUND_TRIP = r"""{
  price: 1.20, zero: -0.000, exp: 12.3d-40, big: 123456789012345678901234567890,
  year: 2024T, minute: 2024-03-01T09:00+05:30, nanos: 2024-03-01T09:00:00.123456789-00:00,
  millis: 2024-03-01T09:00:00.100-08:00, blob: {{aGVsbG8gd29ybGQ=}}, clob: {{"plain text"}},
  sym: 'a symbol', nul: "before\x00after", floats: [1e0, -0e0, nan, +inf],
  nulls: [null, null.int, null.timestamp, null.struct], sexp: (a b 1),
  nested: outer::{ inner: inner::[1, { deep: deeper::"x" }], 'quoted "field"': true },
  dup: 1, dup: 2
}"""


def test_data_types_round_trip_exactly_through_the_ion_column(open_target, pg_dsn):
    data = simpleion.loads(ROUND_TRIP)
    s = JournalScenario(41)
    s.create_table("Types", ("price",))
    write = s.write("Types", data=data)
    s.commit(["INSERT INTO Types ?"], [write])
    target = open_target(s)
    for unit in s.units(5):
        unit.apply_to(target)
    rows = [r for r in target.iter_state() if r.document_id == write.document_id]
    assert [r.current for r in rows] == [False, True]
    for row in rows:
        assert simpleion.dumps(row.data, binary=False) == simpleion.dumps(data, binary=False)
        assert ion_hash(row.data) == ion_hash(data)
    digest = digest_of_target(target)
    assert digest == journal_digest(s) and digest.recomputed == 1 and digest.mismatches == ()
    original = s.revisions()[0]
    table = target.tables()[0]
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(sql.SQL("SELECT tx_time_ion, tx_time, data ->> 'price', data ->> 'nul' FROM {}").format(
            sql.Identifier(target.schema, table.current_table))).fetchone()
    assert row[0] == timestamp_text(original.metadata["txTime"])
    assert row[1] == original.metadata["txTime"]
    assert row[2] == "1.20" and row[3] == "before\ufffdafter"  # jsonb cannot hold NUL; `ion` does


def test_json_export_restores_with_type_lost_revisions_counted(open_target, scenario):
    target = open_target(scenario)
    for unit in scenario.units(6, ExportFormat.JSON):
        unit.apply_to(target)
    digest = digest_of_target(target)
    expected = journal_digest(scenario, ExportFormat.JSON)
    assert digest == expected and expected.journal_hash_used["json_type_lost"] > 0
    assert digest.digest == journal_digest(scenario).digest  # the same state as an Ion restore


def test_the_digest_reads_current_rows_as_stored(open_target, pg_dsn, scenario):
    """iter_state decodes a current row only once when PostgreSQL finds it identical to its history
    row; a current row altered in place must still change the digest."""
    target = open_target(scenario)
    for unit in scenario.units(4):
        unit.apply_to(target)
    expected = journal_digest(scenario)
    assert digest_of_target(target) == expected
    with psycopg.connect(pg_dsn) as conn:
        live = {t.table_id: [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {} WHERE ion IS NOT NULL ORDER BY id")
                                                         .format(sql.Identifier(target.schema, t.current_table)))]
                for t in target.tables()}
        table = next(t for t in target.tables() if len(live[t.table_id]) >= 2)
        current = sql.Identifier(target.schema, table.current_table)
        doc, other = live[table.table_id][:2]
        conn.execute(sql.SQL("UPDATE {0} SET ion = (SELECT ion FROM {0} WHERE id = %s) WHERE id = %s").format(current),
                     (other, doc))
    altered = digest_of_target(target)
    assert altered.digest != expected.digest
    assert [(m.document_id, m.where) for m in altered.mismatches] == [(doc, "current")]
    assert altered.tables[table.table_id].history == expected.tables[table.table_id].history
