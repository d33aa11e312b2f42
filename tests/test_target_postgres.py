"""The PostgreSQL restore target against a private PostgreSQL server: how it lays the restored state out
in PostgreSQL (columns, names, comments, indexes, jsonb) and that its digest reads what is stored.

The properties every target has (idempotent units, any order, re-delivery, redactions, lineage, hostile
names, exact round trips, concurrent appliers) are tests/test_target_contract.py's, run here too.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from amazon.ion import simpleion
from psycopg import sql

from ledgerdr.journal.codecs import ExportFormat, timestamp_text
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.targets.digest import (
    digest_of_parts,
    digest_of_revisions,
    digest_of_rows,
    digest_of_state_rows,
    digest_of_target,
    digest_part_of_state_rows,
    target_dropped,
)
from ledgerdr.targets.postgres import PostgresTarget
from ledgerdr.targets.postgres_streams import streamed
from support.scenarios import (
    HOSTILE_FIELDS,
    HOSTILE_NAMES,
    ROUND_TRIP,
    JournalScenario,
    hostile_scenario,
    standard_scenario,
)

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


def test_a_redacted_row_keeps_no_data_in_any_column(open_target, pg_dsn):
    """The contract checks what `iter_state` reads; here no column (jsonb or the Ion bytes) keeps the data."""
    s = standard_scenario(seed=12, transactions=30)
    target = open_target(s)
    for unit in s.units(3):
        unit.apply_to(target)
    originals = {r.key: r for r in s.revisions()}
    with psycopg.connect(pg_dsn) as conn:
        for redaction in s.redactions():
            table = next(t for t in target.tables() if t.table_id == redaction.table_id)
            row = conn.execute(sql.SQL("SELECT data, ion, data_hash, hash, deleted FROM {} WHERE id = %s AND"
                                       " version = %s").format(sql.Identifier(target.schema, table.history_table)),
                               (redaction.document_id, redaction.version)).fetchone()
            original = originals[redaction.key]
            assert row == (None, None, ion_hash(original.data), original.hash, False)


def test_hostile_table_and_field_names_restore_safely(open_target, pg_dsn):
    """The contract checks the restored state; here how PostgreSQL holds it: no table outside the schema
    touched, names unique and within 63 bytes, the QLDB name as a comment, indexes and jsonb lookups."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.x (keep int)")
    s = hostile_scenario()
    target = open_target(s)
    for unit in s.units(3):
        unit.apply_to(target)
    tables = target.tables()
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
        live = next(r for r in s.revisions() if r.table_name == HOSTILE_NAMES[0])
        table = next(t for t in tables if t.table_id == live.table_id)
        found = conn.execute(sql.SQL("SELECT id FROM {} WHERE data ->> %s = %s").format(
            sql.Identifier(target.schema, table.current_table)), (HOSTILE_FIELDS[0], live.data[HOSTILE_FIELDS[0]]))
        assert found.fetchall() == [(live.document_id,)]


def test_timestamps_keep_their_ion_text_and_jsonb_a_readable_copy(open_target, pg_dsn):
    """The exact round trip through `ion` is the contract's; here the columns PostgreSQL queries."""
    data = simpleion.loads(ROUND_TRIP)
    s = JournalScenario(41)
    s.create_table("Types", ("price",))
    write = s.write("Types", data=data)
    s.commit(["INSERT INTO Types ?"], [write])
    target = open_target(s)
    for unit in s.units(5):
        unit.apply_to(target)
    original = s.revisions()[0]
    table = target.tables()[0]
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(sql.SQL("SELECT tx_time_ion, tx_time, data ->> 'price', data ->> 'nul' FROM {}").format(
            sql.Identifier(target.schema, table.current_table))).fetchone()
    assert row[0] == timestamp_text(original.metadata["txTime"])
    assert row[1] == original.metadata["txTime"]
    assert row[2] == "1.20" and row[3] == "before\ufffdafter"  # jsonb cannot hold NUL; `ion` does


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


def test_state_rows_the_c_digest_cannot_rebuild_are_decided_as_read_back(open_target, pg_dsn, scenario):
    """`iter_state_rows` gives every row a restore writes to the C digest; a row whose txTime is stored at
    another precision, whose `deleted` flag its data columns do not imply, or that is flagged type-lost gives
    the digest `iter_state` gives (here with mismatches), whole or cut into parts."""
    target = open_target(scenario)
    for unit in scenario.units(4):
        unit.apply_to(target)
    target.finalize()
    assert not any(batch.in_python for batch in target.iter_state_rows())
    assert digest_of_state_rows(target.iter_state_rows(), target_dropped(target)) == journal_digest(scenario)
    live = current_versions(pg_dsn, target)
    table = max(target.tables(), key=lambda t: sum(key[0] == t.table_id for key in live))
    history = sql.Identifier(target.schema, table.history_table)
    current = sql.Identifier(target.schema, table.current_table)
    with psycopg.connect(pg_dsn) as conn:
        docs = [r[0] for r in conn.execute(sql.SQL("SELECT id FROM {} WHERE ion IS NOT NULL ORDER BY id")
                                           .format(current))]
        assert len(docs) >= 3
        conn.execute(sql.SQL("UPDATE {} SET tx_time_ion = to_char(tx_time AT TIME ZONE 'UTC',"
                             " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') WHERE id = %s").format(history), (docs[0],))
        conn.execute(sql.SQL("UPDATE {} SET deleted = true WHERE id = %s").format(current), (docs[1],))
        conn.execute(sql.SQL("UPDATE {} SET type_lost = true WHERE id = %s").format(current), (docs[2],))
    expected = digest_of_rows(target.iter_state(decode=False), target_dropped(target))
    assert expected.mismatches and expected.journal_hash_used["json_type_lost"] == 0  # history rows stay as they were
    assert any(batch.in_python for batch in target.iter_state_rows())
    assert digest_of_state_rows(target.iter_state_rows(), target_dropped(target)) == expected
    parts = [digest_part_of_state_rows(target.iter_state_rows(index, 3)) for index in range(3)]
    whole = digest_part_of_state_rows(target.iter_state_rows())
    for side in ("history", "current"):  # every row in exactly one part
        assert sorted(record for part in parts for record in _records(getattr(part, side).get(table.table_id))) \
            == sorted(_records(getattr(whole, side)[table.table_id]))
    assert digest_of_parts(parts, target_dropped(target)) == expected


def _other_connections(dsn: str, expected: int) -> int:
    """Connections to the test's database other than the asking one, waiting (a while) for them to be `expected`
    or fewer: a backend exits shortly after its client closes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(100):
            count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                 " AND pid <> pg_backend_pid()").fetchone()[0]
            if count <= expected:
                break
            time.sleep(0.05)
    return count


def test_state_rows_read_side_by_side_come_from_one_snapshot(open_target, pg_dsn, scenario):
    """The tables are read on connections of their own, all in the snapshot of the first: units committed while
    the rows are read (a table created among them) change nothing read; the next read sees them."""
    units = scenario.units(4)
    target = open_target(scenario)
    for unit in units[:len(units) // 2]:
        unit.apply_to(target)
    target.finalize()
    dropped = target_dropped(target)
    before = digest_of_target(target)
    assert before != journal_digest(scenario)
    batches = target.iter_state_rows()
    taken = [next(batches)]
    writer = open_target(scenario)
    for unit in units[len(units) // 2:]:
        assert unit.apply_to(writer)
    taken += list(batches)
    assert digest_of_state_rows(taken, dropped) == before
    assert digest_of_target(target) == journal_digest(scenario)


def test_state_rows_left_unread_close_their_connections(open_target, pg_dsn, scenario):
    """A reader that stops after the first batch (the digest failing, say) leaves no connection behind, and the
    target reads its state again whole."""
    target = open_target(scenario)
    for unit in scenario.units(4):
        unit.apply_to(target)
    target.finalize()
    batches = target.iter_state_rows()
    next(batches)
    batches.close()
    assert _other_connections(pg_dsn, 1) == 1  # the target's own
    assert digest_of_target(target) == journal_digest(scenario)


def test_side_by_side_streams_give_every_item_and_raise_a_failure(pg_dsn):
    """`streamed`: every item of every producer, whichever connection ran it; a producer's failure is raised to
    the caller and every connection is closed."""
    def count_to(n: int):
        def produce(conn):
            for i in range(n):
                yield conn.execute("SELECT %s::int", (i,)).fetchone()[0]
        return produce

    def failing(conn):
        yield conn.execute("SELECT 1").fetchone()[0]
        raise ValueError("a producer failed")

    def connect():
        return psycopg.connect(pg_dsn, autocommit=True)

    assert sorted(streamed(connect, [count_to(3), count_to(40), count_to(0), count_to(2), count_to(5)])) == sorted(
        [*range(3), *range(40), *range(2), *range(5)])
    with pytest.raises(ValueError, match="a producer failed"):
        list(streamed(connect, [count_to(500), failing, count_to(500), count_to(500)]))
    assert _other_connections(pg_dsn, 0) == 0


def _records(packed: bytearray | None) -> list[bytes]:
    return [] if packed is None else [bytes(packed[i:i + 33]) for i in range(0, len(packed), 33)]
