"""One interpreter of the journal's DDL (`targets.ddl`) for restore, compact and standby (issue 16, item 8).

After `DROP TABLE Scratch` a restore from raw exports showed `Scratch` ACTIVE and one from a snapshot
INACTIVE, and both said VERIFIED: the state digest did not include a table's status. Here: the
interpreter's rules (QLDB's), the end-to-end case, and a property test over random journals.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.compact import compact
from ledgerdr.errors import LedgerError
from ledgerdr.journal.codecs import ExportFormat, read_blocks
from ledgerdr.ledger.engine import Ledger
from ledgerdr.restore.run import RestoreOptions, restore
from ledgerdr.restore.standby import follow_once
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.targets import open_target
from ledgerdr.targets.base import TableDDL
from ledgerdr.targets.ddl import (
    CREATE_INDEX,
    CREATE_TABLE,
    DROP_TABLE,
    SEEN,
    UNDROP_TABLE,
    DdlEvent,
    DdlState,
    events_of_block,
)
from ledgerdr.targets.digest import digest_of_revisions, digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import T0

# ------------------------------------------------------------------------------------ the interpreter


def _state(*events: DdlEvent, seed=()) -> dict[str, TableDDL]:
    return {t.table_id: t for t in DdlState(seed).apply_all(events).tables()}


def test_a_name_reused_after_drop_is_another_table():
    tables = _state(
        DdlEvent(1, 0, CREATE_TABLE, "T"), DdlEvent(2, 0, SEEN, "T", "A"), DdlEvent(3, 0, DROP_TABLE, "T"),
        DdlEvent(4, 0, CREATE_TABLE, "T"), DdlEvent(5, 0, SEEN, "T", "B"), DdlEvent(6, 0, DROP_TABLE, "T"),
        DdlEvent(7, 0, UNDROP_TABLE, table_id="A"),
    )
    assert (tables["A"].dropped, tables["A"].block_seq) == (False, 7)
    assert (tables["B"].dropped, tables["B"].block_seq) == (True, 6)


def test_statement_order_inside_one_block_decides():
    # DROP TABLE T; CREATE TABLE T; INSERT INTO T — in one transaction: the old T is dropped, the new one not
    tables = _state(DdlEvent(1, 0, SEEN, "T", "A"), DdlEvent(2, 0, DROP_TABLE, "T"),
                    DdlEvent(2, 1, CREATE_TABLE, "T"), DdlEvent(2, 2, SEEN, "T", "B"))
    assert tables["A"].dropped and not tables["B"].dropped


def test_events_arrive_in_any_order_and_are_interpreted_in_block_order():
    events = [DdlEvent(1, 0, CREATE_TABLE, "T"), DdlEvent(1, 1, CREATE_INDEX, "T", fields=("f",)),
              DdlEvent(2, 0, SEEN, "T", "A"), DdlEvent(3, 0, DROP_TABLE, "T")]
    assert _state(*reversed(events)) == _state(*events)
    assert _state(*events)["A"] == TableDDL("A", "T", ("f",), True, 3)  # the index waited for the table's id


def test_a_drop_of_a_table_never_written_changes_no_other_table():
    tables = _state(DdlEvent(1, 0, SEEN, "T", "A"), DdlEvent(2, 0, DROP_TABLE, "T"),
                    DdlEvent(3, 0, CREATE_TABLE, "T"), DdlEvent(4, 0, DROP_TABLE, "T"))
    assert tables == {"A": TableDDL("A", "T", (), True, 2)}


def test_a_snapshot_seeds_the_state_and_later_events_continue_it():
    seed = [TableDDL("A", "T", ("f",), True, 3)]
    tables = _state(DdlEvent(9, 0, UNDROP_TABLE, table_id="A"), DdlEvent(10, 0, DROP_TABLE, "T"), seed=seed)
    assert tables["A"] == TableDDL("A", "T", ("f",), True, 10)


def test_events_survive_the_unit_record():
    event = DdlEvent(4, 2, CREATE_INDEX, "T", fields=("f",))
    assert DdlEvent.from_list(event.to_list()) == event


def test_the_state_digest_includes_each_tables_status():
    """Two targets equal row for row but not in a table's status have different digests."""
    from support.scenarios import JournalScenario

    scenario = JournalScenario(seed=3)
    scenario.create_table("Scratch")
    scenario.random_transactions(3)
    table_id = scenario.tables["Scratch"]
    active = digest_of_revisions(scenario.revisions(), dropped={})
    dropped = digest_of_revisions(scenario.revisions(), dropped={table_id: True})
    assert active.digest != dropped.digest
    assert dropped.differences(active) == [f"table 'Scratch' ({table_id}): INACTIVE here, ACTIVE in the other"]


# ------------------------------------------------------------------------------------ end to end

POLICY = BackupPolicy(interval=timedelta(minutes=1))


def _backup(root: Path, location: Location, minute: int) -> None:
    source = EmbeddedSource(root / "ledger.db")
    try:
        with freeze_time(T0 + timedelta(minutes=minute, seconds=6)):
            run_backup(source, location, POLICY)
    finally:
        source.close()


def _restore(location: Location, root: Path, name: str, *, snapshots: bool):
    report = restore(location.store.url, f"embedded:{root / name}",
                     RestoreOptions(workers=0, state_dir=root / f"{name}-state", use_snapshots=snapshots))
    assert report.verdict, report.problems
    return report


def _tables(path: Path) -> list[TableDDL]:
    target = EmbeddedTarget(path)
    try:
        return target.table_ddls()
    finally:
        target.close()


def _statuses(path: Path) -> dict[str, bool]:
    return {t.table_name: t.dropped for t in _tables(path)}


def _keep_and_drop_scratch(root: Path) -> Location:
    """Window 0 writes Keep and Scratch; window 1 drops Scratch."""
    ledger = Ledger.create(root / "ledger.db")
    location = Location(FileStore(root / "primary"), "")
    with freeze_time(T0 + timedelta(seconds=7)):
        ledger.execute("CREATE TABLE Keep")
        ledger.execute("CREATE TABLE Scratch")
        ledger.execute("INSERT INTO Keep ?", {"a": 1})
        ledger.execute("INSERT INTO Scratch ?", {"b": 2})
    with freeze_time(T0 + timedelta(minutes=1, seconds=7)):
        ledger.execute("DROP TABLE Scratch")
        ledger.execute("INSERT INTO Keep ?", {"a": 3})
    ledger.close()
    _backup(root, location, 2)
    return location


def test_drop_table_then_compact_raw_and_snapshot_restores_agree(tmp_path):
    location = _keep_and_drop_scratch(tmp_path)
    raw = _restore(location, tmp_path, "raw.db", snapshots=False)
    with freeze_time(T0 + timedelta(minutes=2, seconds=8)):
        compact(location, retention=None)
    snap = _restore(location, tmp_path, "snap.db", snapshots=True)
    assert snap.snapshot_last_seq is not None
    assert _statuses(tmp_path / "raw.db") == _statuses(tmp_path / "snap.db") == {"Keep": False, "Scratch": True}
    assert raw.target_state_digest == raw.journal_state_digest == snap.target_state_digest
    standby = EmbeddedTarget(tmp_path / "standby.db")
    try:
        follow_once(location, standby)
        assert digest_of_target(standby).digest == raw.journal_state_digest
    finally:
        standby.close()


# ------------------------------------------------------------------------------------ property

NAMES = ("Alpha", "Beta")
_op = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES)),
    st.tuples(st.just("drop"), st.sampled_from(NAMES)),
    st.tuples(st.just("undrop"), st.integers(0, 3)),
    st.tuples(st.just("index"), st.sampled_from(NAMES), st.sampled_from(("a", "b"))),
    st.tuples(st.just("insert"), st.sampled_from(NAMES), st.integers(0, 99)),
    st.tuples(st.just("update"), st.sampled_from(NAMES), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("redact"), st.sampled_from(NAMES)),
    st.tuples(st.just("tick")),  # the next one-minute window
)


def _run(ledger: Ledger, op: tuple, dropped: list[str]) -> None:
    kind = op[0]
    try:
        if kind == "create":
            ledger.execute(f"CREATE TABLE {op[1]}")
        elif kind == "drop":
            (result,) = ledger.execute(f"DROP TABLE {op[1]}")
            dropped.append(str(result["tableId"]))
        elif kind == "undrop" and dropped:
            ledger.execute(f"UNDROP TABLE \"{dropped[op[1] % len(dropped)]}\"")
        elif kind == "index":
            ledger.execute(f"CREATE INDEX ON {op[1]} ({op[2]})")
        elif kind == "insert":
            ledger.execute(f"INSERT INTO {op[1]} ?", {"a": op[2], "b": str(op[2])})
        elif kind == "update":
            ledger.execute(f"UPDATE {op[1]} SET a = ?", op[2])
        elif kind == "delete":
            ledger.execute(f"DELETE FROM {op[1]} WHERE a < 50")
        elif kind == "redact":
            _redact_an_old_revision(ledger, op[1])
    except LedgerError:
        pass  # e.g. DROP of a table that does not exist: QLDB refuses it and the journal records nothing


def _redact_an_old_revision(ledger: Ledger, name: str) -> None:
    """Redact the first superseded revision with data of the active table `name`, if there is one."""
    rows = ledger.execute(f"SELECT * FROM history({name}) AS h")
    newest: dict[str, int] = {}
    for row in rows:
        doc = str(row["metadata"]["id"])
        newest[doc] = max(newest.get(doc, -1), int(row["metadata"]["version"]))
    old = next((r for r in rows if "data" in r and int(r["metadata"]["version"]) < newest[str(r["metadata"]["id"])]),
               None)
    if old is not None:
        (table_id,) = ledger.execute(
            f"SELECT VALUE tableId FROM information_schema.user_tables WHERE name = '{name}' AND status = 'ACTIVE'")
        ledger.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, old["metadata"]["id"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=4, max_size=24))
def test_any_journal_restores_to_one_state_digest_raw_from_a_snapshot_and_via_standby(tmp_path_factory, ops):
    root = tmp_path_factory.mktemp("ddl")
    ledger = Ledger.create(root / "ledger.db")
    location = Location(FileStore(root / "primary"), "")
    ops = [("create", "Alpha"), ("insert", "Alpha", 1), *ops]
    minutes = 1 + sum(op[0] == "tick" for op in ops)
    follower = EmbeddedTarget(root / "follower.db")
    dropped: list[str] = []
    try:
        minute, step = 0, 0
        for op in ops:
            if op[0] == "tick":
                ledger.close()
                _backup(root, location, minute + 1)
                follow_once(location, follower)  # a standby that follows window by window
                if minute == minutes // 2:
                    with freeze_time(T0 + timedelta(minutes=minute + 1, seconds=8)):
                        compact(location, retention=None)  # later windows come after the snapshot
                ledger = Ledger.open(root / "ledger.db")
                minute, step = minute + 1, 0
                continue
            with freeze_time(T0 + timedelta(minutes=minute, seconds=7, milliseconds=step)):
                _run(ledger, op, dropped)
            step += 1
        ledger.close()
        _backup(root, location, minute + 1)
        follow_once(location, follower)
        expected = digest_of_target(follower).digest
    finally:
        follower.close()
    raw = _restore(location, root, "raw.db", snapshots=False)
    snap = _restore(location, root, "snap.db", snapshots=True)
    fresh = EmbeddedTarget(root / "fresh-standby.db")
    try:
        follow_once(location, fresh)  # an empty standby: the newest snapshot, then later windows
        fresh_digest = digest_of_target(fresh).digest
    finally:
        fresh.close()
    assert raw.journal_state_digest == raw.target_state_digest == snap.target_state_digest == expected == fresh_digest
    restored = {t.table_id: t.dropped for t in _tables(root / "raw.db")}  # the tables written to, as the source ledger has them
    source = Ledger.open(root / "ledger.db", read_only=True)
    try:
        truth = {t.table_id: t.status == "INACTIVE" for t in source._storage.tables() if t.table_id in restored}
    finally:
        source.close()
    assert restored == truth


def test_ddl_events_of_real_blocks_name_the_table_at_its_statement(tmp_path):
    name = "Scratch"
    ledger = Ledger.create(tmp_path / "l.db")
    with freeze_time(T0):
        ledger.execute(f"CREATE TABLE {name}")
        (doc,) = ledger.execute(f"INSERT INTO {name} ?", {"x": 1})
        ledger.execute(f"DROP TABLE {name}")
    blocks = [b for row in ledger.iter_blocks(0) for b in read_blocks(row.ion, ExportFormat.ION_BINARY)]
    ledger.close()
    events = [e for b in blocks for e in events_of_block(b)]
    kinds = [(e.kind, e.name) for e in events]
    assert kinds == [(CREATE_TABLE, name), (SEEN, name), (DROP_TABLE, name)]


def test_a_postgresql_restore_and_standby_hold_the_dropped_table_inactive(tmp_path, postgres_server):
    location = _keep_and_drop_scratch(tmp_path)
    expected = _restore(location, tmp_path, "raw.db", snapshots=False).journal_state_digest
    with postgres_server.fresh_database(uri=True) as restored, postgres_server.fresh_database(uri=True) as follower:
        report = restore(location.store.url, restored, RestoreOptions(workers=0, state_dir=tmp_path / "pg-state"))
        assert report.verdict, report.problems
        standby = open_target(follower)
        try:
            follow_once(location, standby)
            assert digest_of_target(standby).digest == report.target_state_digest == expected
            assert {t.table_name: t.dropped for t in standby.table_ddls()} == {"Keep": False, "Scratch": True}
        finally:
            standby.close()
