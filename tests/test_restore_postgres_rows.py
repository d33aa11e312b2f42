"""Restore into PostgreSQL through the C verifier's rows (`PostgresTarget.apply_rows`: binary COPY into history,
current state built by finalize) against the revision path (`apply`), on a real private PostgreSQL server.

Both paths must leave the same rows, column for column (history, current, jsonb included), the same catalog and
the same redactions. The journal has deletes and a redaction (whose window the C verifier declines, so one restore
mixes both paths). Re-delivered rows under another unit id go through the staging fallback and change nothing; a
target that already holds a built current state merges each unit into it at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledgerdr import native
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.restore.rows import load_rows
from ledgerdr.restore.snapshot import last_block_of
from ledgerdr.restore.units import load_unit
from ledgerdr.restore.worker import apply_unit
from ledgerdr.stores import Location
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.postgres import PostgresTarget, _lock_key
from support.flows import ledger_with_a_redaction

if native.journal is None:
    pytest.skip("the C journal verifier is not in use (LEDGERDR_PURE_PYTHON, or not built)", allow_module_level=True)

_SCRIPT = ("import sys; from pathlib import Path; from ledgerdr.restore import RestoreOptions, restore; "
           "r = restore(sys.argv[1], sys.argv[2], RestoreOptions(workers=0, state_dir=Path(sys.argv[3]))); "
           "sys.exit(0 if r.verdict else 1)")


def _dump(dsn: str) -> dict[str, list[tuple]]:
    """Every row of the target's ledger tables and catalog (the unit ids and times aside)."""
    out: dict[str, list[tuple]] = {}
    with psycopg.connect(dsn) as conn:
        tables = conn.execute("SELECT table_id, table_name, current_table, history_table, indexes, dropped "
                              "FROM ledgerdr._tables ORDER BY table_id").fetchall()
        out["_tables"] = tables
        out["_redactions"] = sorted(conn.execute("SELECT * FROM ledgerdr._redactions").fetchall())
        out["_units"] = sorted(conn.execute("SELECT last_block_seq, revisions FROM ledgerdr._units").fetchall(),
                               key=repr)
        for row in tables:
            for name in row[2:4]:
                query = sql.SQL("SELECT *, data::text FROM {} ORDER BY id, version").format(
                    sql.Identifier("ledgerdr", name))
                out[name] = conn.execute(query).fetchall()
    return out


def _python_restore(source: str, dsn: str, state: Path) -> None:
    """The same restore on the revision path alone (no C accelerators), in a process of its own."""
    subprocess.run([sys.executable, "-c", _SCRIPT, source, dsn, str(state)],
                   env={**os.environ, "LEDGERDR_PURE_PYTHON": "1"}, check=True)


@pytest.fixture(scope="module")
def primary(tmp_path_factory) -> Location:
    return ledger_with_a_redaction(tmp_path_factory.mktemp("pg-rows"))


@pytest.fixture
def second_url(postgres_server):
    with postgres_server.fresh_database(uri=True) as dsn:
        yield dsn


def test_rows_path_stores_what_the_revision_path_stores(primary, pg_url, second_url, tmp_path):
    plan = plan_restore(primary)
    read = [load_rows(primary.store, unit) for unit in plan.units]
    assert any(r is None for r in read) and sum(r is not None for r in read) >= 3  # both paths in one restore

    fast = restore(primary.store.url, pg_url, RestoreOptions(workers=0, state_dir=tmp_path / "fast"))
    assert fast.verdict and fast.journal_state_digest == fast.target_state_digest
    _python_restore(primary.store.url, second_url, tmp_path / "python")
    expected = _dump(second_url)
    assert expected["_redactions"] and any(row[6] is None and row[8] is not None  # the redacted revision
                                           for name, rows in expected.items() if name.endswith("_history")
                                           for row in rows)
    assert _dump(pg_url) == expected
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM ledgerdr._stale").fetchone() == (0,)  # finalize built them


def test_redelivered_rows_under_another_unit_change_nothing(primary, pg_url, tmp_path):
    restore(primary.store.url, pg_url, RestoreOptions(workers=0, state_dir=tmp_path / "state"))
    before = _dump(pg_url)
    unit = next(u for u in plan_restore(primary).units if load_rows(primary.store, u) is not None)
    rows = load_rows(primary.store, unit)
    assert rows is not None and rows.rows
    target = PostgresTarget(pg_url)
    try:
        # a retried export overlapping the last one: the same revisions in a unit of another id
        assert target.apply_rows("overlap", list(rows.tables.values()), rows.rows, rows.blocks, rows.last_block)
        assert not target.apply_rows(unit.unit_id, list(rows.tables.values()), rows.rows, rows.blocks,
                                     rows.last_block)
        target.finalize()
        after = _dump(pg_url)
        overlap = [r for r in after["_units"] if r not in before["_units"]]
        assert overlap == [(rows.last_block[0], 0)]  # recorded, no history row added
        assert {k: v for k, v in after.items() if k != "_units"} == {k: v for k, v in before.items()
                                                                      if k != "_units"}
    finally:
        target.close()


def test_current_state_is_built_at_the_end_of_a_bulk_load_then_merged_per_unit(primary, pg_url):
    loaded = [r for r in (load_rows(primary.store, u) for u in plan_restore(primary).units) if r is not None]
    first, later = loaded[:-1], loaded[-1]
    target = PostgresTarget(pg_url)
    try:
        target.open_lineage(first[0].strand_id or "", "ledger")
        for unit in first:
            target.apply_rows(unit.unit.unit_id, list(unit.tables.values()), unit.rows, unit.blocks, unit.last_block)
        with psycopg.connect(pg_url) as conn:
            stale = conn.execute("SELECT count(*) FROM ledgerdr._stale").fetchone()[0]
            currents = [sql.Identifier("ledgerdr", row[0]) for row in
                        conn.execute("SELECT current_table FROM ledgerdr._tables").fetchall()]
            assert stale == len(currents) > 0
            # nothing merged yet: the bulk load leaves current to finalize
            assert sum(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(c)).fetchone()[0] for c in currents) == 0
        target.finalize()
        built = digest_of_target(target)
        # a table holding a built current state: the next unit merges into it at once
        target.apply_rows(later.unit.unit_id, list(later.tables.values()), later.rows, later.blocks, later.last_block)
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM ledgerdr._stale").fetchone() == (0,)
            newest = {}
            for row in later.rows:
                newest[(row[0], row[1])] = max(newest.get((row[0], row[1]), -1), row[2])
            for (table_id, doc_id), version in newest.items():
                name = conn.execute("SELECT current_table FROM ledgerdr._tables WHERE table_id = %s",
                                    (table_id,)).fetchone()[0]
                held = conn.execute(sql.SQL("SELECT version FROM {} WHERE id = %s").format(
                    sql.Identifier("ledgerdr", name)), (doc_id,)).fetchone()
                deleted = any(r[3] is None for r in later.rows if r[:3] == (table_id, doc_id, version))
                assert held is None if deleted else held == (version,)
        assert digest_of_target(target) != built
    finally:
        target.close()


def test_tables_the_revision_path_created_are_still_bulk_loaded_by_the_rows_path(primary, pg_url):
    """A unit the rows path declines (a redaction, an unusual shape) creates the tables through `apply`; the
    units after it, through the rows path, still leave the current state to finalize."""
    units = plan_restore(primary).units
    assert load_rows(primary.store, units[1]) is not None
    target = PostgresTarget(pg_url)
    try:
        first = load_unit(primary.store, units[0])  # the revision path, as for a unit the C verifier declines
        assert first.strand_id is not None
        target.open_lineage(first.strand_id, "ledger")
        target.apply(units[0].unit_id, list(first.tables.values()), first.revisions, first.redactions,
                     last_block_of(first))
        apply_unit(primary, target, units[1], "ledger")
        with psycopg.connect(pg_url) as conn:
            stale = conn.execute("SELECT count(*) FROM ledgerdr._stale").fetchone()[0]
            assert stale == len(target.tables()) > 0
        target.finalize()
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM ledgerdr._stale").fetchone() == (0,)
    finally:
        target.close()


def _hold_locks(conn: psycopg.Connection, table_ids, *, shared: bool) -> None:
    """Take the tables' advisory locks in `conn`'s open transaction, as another applier (shared) or finalize's
    build of the current state (exclusive) holds them."""
    take = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    conn.execute("SELECT " + ", ".join(f"{take}({_lock_key('ledgerdr', 'table', t)})" for t in sorted(table_ids)))


def test_bulk_load_units_apply_beside_another_applier_of_their_tables(primary, pg_url, second_url, tmp_path):
    """Once a target has seen its tables bulk loaded, a unit of rows into them takes their locks shared: it goes
    through while another transaction holds them shared (another worker's unit), waits while one holds them
    exclusively (finalize building a current state), and the restored state is the one a plain restore gives."""
    units = plan_restore(primary).units
    rows_units = [u for u in units if load_rows(primary.store, u) is not None]
    assert len(rows_units) >= 3
    shared_unit, waiting_unit = rows_units[1], rows_units[2]
    target = PostgresTarget(pg_url)
    try:
        target._conn.execute("SET lock_timeout = '2s'")  # a wait that should not happen fails instead of hanging
        for unit in units:
            if unit is shared_unit or unit is waiting_unit:
                tables = {row[0] for row in load_rows(primary.store, unit).rows}
                with psycopg.connect(pg_url) as other, other.transaction():
                    _hold_locks(other, tables, shared=unit is shared_unit)
                    if unit is shared_unit:
                        apply_unit(primary, target, unit, "ledger")
                        continue
                    with pytest.raises(psycopg.errors.LockNotAvailable):
                        apply_unit(primary, target, unit, "ledger")
            apply_unit(primary, target, unit, "ledger")  # the waiting unit again, once the lock is released
        assert target.applied_units() == {u.unit_id for u in units}
        target.finalize()
        restore(primary.store.url, second_url, RestoreOptions(workers=0, state_dir=tmp_path / "plain"))
        with PostgresTarget(second_url) as plain:
            assert digest_of_target(target) == digest_of_target(plain)
        # the same catalog (the indexes aside: a restore's finalize creates them from the journal's DDL)
        assert [row[:4] + row[5:] for row in _dump(pg_url)["_tables"]] == \
            [row[:4] + row[5:] for row in _dump(second_url)["_tables"]]
    finally:
        target.close()
