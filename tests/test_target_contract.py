"""The `Target` contract, run on every restore target: the embedded ledger and PostgreSQL (a private server,
tests/pg_server.py). A target joins by adding a `make` below. What a target cannot do it declares as data
(`Target.keeps_journal`, `writable_ledger`, `has_position_record`); the properties that need a capability
read it and skip, saying which target lacks what, never silently.

Properties: idempotent apply, order independence, re-delivery, a restore cut at a block (`--until`), the
state digest, history once per revision, deletes and redactions in any order, lineage, the position record,
hostile names, index creation, table DDL status, exact data round trips, JSON exports, concurrent appliers,
units given as the C verifier's rows (`apply_rows`) mixed with units given as revisions.
Checks of how PostgreSQL lays rows out stay in tests/test_target_postgres.py.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from amazon.ion import simpleion

from ledgerdr import native
from ledgerdr.errors import RestoreError
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.model import Block
from ledgerdr.targets.base import TableDDL, Target
from ledgerdr.targets.ddl import DdlState, events_of_block, is_ddl_text
from ledgerdr.targets.digest import (
    digest_of_revisions,
    digest_of_rows,
    digest_of_state_rows,
    digest_of_target,
    target_dropped,
)
from ledgerdr.targets.embedded import EmbeddedTarget
from ledgerdr.targets.postgres import PostgresTarget
from support.scenarios import (
    HOSTILE_NAMES,
    ROUND_TRIP,
    JournalScenario,
    Unit,
    hostile_scenario,
    standard_scenario,
)

LEDGER = "vehicle-registration"
TARGETS = ["embedded", "postgres"]
CAPABILITIES = ("keeps_journal", "splits_state", "writable_ledger", "has_position_record", "applies_rows",
                "gives_state_rows")

# A factory per target: `make(name)` opens a new instance on the target called `name` (the same name is the
# same data, as several workers see one target).
Make = Callable[[str], Target]


@pytest.fixture(params=TARGETS)
def make(request, tmp_path: Path) -> Iterator[Make]:
    opened: list[Target] = []

    def embedded(name: str) -> Target:
        return EmbeddedTarget(tmp_path / f"{name}.db")

    def postgres(name: str) -> Target:
        return PostgresTarget(request.getfixturevalue("pg_dsn"), name)

    def factory(name: str = "restored") -> Target:
        target = {"embedded": embedded, "postgres": postgres}[request.param](name)
        opened.append(target)
        return target

    yield factory
    for target in opened:
        target.close()


def bound(make: Make, s: JournalScenario, name: str = "restored") -> Target:
    target = make(name)
    target.open_lineage(s.strand_id, LEDGER)
    return target


def requires(target: Target, capability: str) -> None:
    if not getattr(target, capability):  # the contract reads the declared capability, as the flows do
        pytest.skip(f"the {target.kind} target declares {capability} = False")


@pytest.fixture(scope="module")
def scenario() -> JournalScenario:
    return standard_scenario(seed=11, transactions=80)


def journal_digest(s: JournalScenario, fmt: ExportFormat = ExportFormat.ION_BINARY, *, until: int | None = None):
    blocks = [Block(b.value) for b in s.blocks if until is None or b.address.sequence_no <= until]
    revisions = [r for r in s.revisions(fmt) if until is None or r.block_seq <= until]
    redactions = [r for r in s.redactions() if until is None or _redaction_seq(s, r) <= until]
    dropped = DdlState().apply_all(e for b in blocks for e in events_of_block(b)).dropped()
    return digest_of_revisions(revisions, redactions, dropped)


def _redaction_seq(s: JournalScenario, redaction) -> int:
    return next(b.sequence_no for b in s.read_blocks(ExportFormat.ION_BINARY)
                for r in (b.redaction_info or {}).get("revisions") or ()
                if (str(r["tableId"]), str(r["documentId"]), int(r["version"])) == redaction.key)


def units(s: JournalScenario, size: int, fmt: ExportFormat = ExportFormat.ION_BINARY) -> list[Delivery]:
    """The scenario's units, each with the blocks it was cut from (a target that keeps the journal takes
    them, as the restore's workers hand them over)."""
    blocks = s.read_blocks(fmt)
    return [Delivery(unit, tuple(b for b in blocks if first <= b.sequence_no <= unit.last_block[0]))
            for unit, first in zip(s.units(size, fmt), range(0, len(blocks), size), strict=True)]


@dataclass(frozen=True)
class Delivery:
    unit: Unit
    blocks: tuple[Block, ...]

    @property
    def unit_id(self) -> str:
        return self.unit.unit_id

    @property
    def redactions(self):
        return self.unit.redactions

    def again_as(self, unit_id: str) -> Delivery:
        return Delivery(replace(self.unit, unit_id=unit_id), self.blocks)

    def apply_to(self, target: Target) -> bool:
        u = self.unit
        return target.apply(u.unit_id, u.tables, u.revisions, u.redactions, u.last_block,
                            blocks=self.blocks if target.keeps_journal else ())


def apply_as_rows(delivery: Delivery, target: Target, unit_id: str | None = None) -> bool:
    """Apply a unit as a restore worker does: as the C verifier's rows where it reads the unit's blocks and they
    define no table (restore.rows), else as revisions. True when it went as rows."""
    checked = native.journal.verify_blocks(b"".join(b.raw for b in delivery.blocks), True) if native.journal else None
    if checked is None or any(is_ddl_text(text) for block in checked for text in block[-1]):
        delivery.again_as(unit_id or delivery.unit_id).apply_to(target)
        return False
    tables, rows, blocks = {}, [], []
    for seq, _strand, _previous, block_hash, count, _system, _start, _end, ts_ms, revisions, _statements in checked:
        blocks.append((seq, delivery.blocks[len(blocks)].raw, block_hash, ts_ms, count))
        for table_id, table_name, doc_id, version, ion, revision_hash, tx_ms, tx_id in revisions:
            tables.setdefault(table_id, TableDDL(table_id, table_name, (), False, seq))
            rows.append((table_id, doc_id, version, ion, revision_hash, tx_ms, tx_id, seq, None))
    target.apply_rows(unit_id or delivery.unit_id, list(tables.values()), rows, blocks, delivery.unit.last_block)
    return True


def current_versions(target: Target) -> dict[tuple[str, str], int]:
    return {(r.table_id, r.document_id): r.version for r in target.iter_state() if r.current}


# ------------------------------------------------------------------------------------ the interface


def test_target_satisfies_the_protocol_and_declares_its_capabilities(make) -> None:
    target = make()
    assert isinstance(target, Target)
    assert all(isinstance(getattr(target, c), bool) for c in CAPABILITIES)


# ------------------------------------------------------------------------------------ applying units


def test_restore_in_order_matches_the_journal(make, scenario) -> None:
    target = bound(make, scenario)
    deliveries = units(scenario, 4)
    assert all(unit.apply_to(target) for unit in deliveries)
    target.finalize()
    digest, expected = digest_of_target(target), journal_digest(scenario)
    assert digest == expected, digest.differences(expected)
    assert digest.mismatches == () and digest.recomputed > 0
    assert current_versions(target) == scenario.expected_current()
    info = target.info()
    assert info["units"] == len(deliveries) and info["revisions"] == expected.revisions
    assert info["documents"] == len(scenario.expected_current())
    assert info["strand_id"] == scenario.strand_id and info["tables"] == 3
    assert info["last_block"]["sequence_no"] == scenario.blocks[-1].address.sequence_no


def test_units_applied_twice_are_no_ops(make, scenario) -> None:
    target = bound(make, scenario)
    deliveries = units(scenario, 5)
    for unit in deliveries:
        unit.apply_to(target)
    before, info = digest_of_target(target), target.info()
    assert not any(unit.apply_to(target) for unit in deliveries)
    assert target.applied_units() == {u.unit_id for u in deliveries}
    assert digest_of_target(target) == before and target.info() == info


def test_shuffled_units_and_redelivered_revisions_give_the_same_state(make, scenario) -> None:
    target = bound(make, scenario)
    deliveries = units(scenario, 2)
    random.Random(3).shuffle(deliveries)
    # Re-delivery inside another unit (a retried export overlapping the last one) is harmless too.
    deliveries.append(deliveries[0].again_as("overlap"))
    for unit in deliveries:
        assert unit.apply_to(target)
    assert digest_of_target(target) == journal_digest(scenario)
    assert current_versions(target) == scenario.expected_current()


def test_a_restore_cut_at_a_block_holds_the_journal_up_to_it(make, scenario) -> None:
    """`--until`: the planner cuts units at a block; the target then holds exactly the journal to there."""
    deliveries = units(scenario, 4)
    kept = deliveries[: len(deliveries) // 2]
    target = bound(make, scenario)
    for unit in reversed(kept):
        unit.apply_to(target)
    cut = kept[-1].unit.last_block[0]
    expected = journal_digest(scenario, until=cut)
    assert digest_of_target(target) == expected
    assert target.info()["last_block"]["sequence_no"] == cut
    assert expected.digest != journal_digest(scenario).digest


def test_history_holds_every_revision_once(make, scenario) -> None:
    target = bound(make, scenario)
    for unit in units(scenario, 7):
        unit.apply_to(target)
    history = [(r.table_id, r.document_id, r.version) for r in target.iter_state() if not r.current]
    assert len(history) == len(set(history)) == len(scenario.revisions())
    assert set(history) == {r.key for r in scenario.revisions()}


def test_units_as_rows_mixed_with_revisions_in_any_order_give_the_journal(make, scenario) -> None:
    """The C verifier's rows (`apply_rows`) and revisions (`apply`) in one restore, shuffled, one unit re-delivered
    as rows under another id: the journal's state, read through the target before and after `finalize`."""
    if native.journal is None:
        pytest.skip("the C journal verifier is not in use (LEDGERDR_PURE_PYTHON, or not built): no rows to apply")
    target = bound(make, scenario)
    requires(target, "applies_rows")
    deliveries = units(scenario, 1)  # (the C verifier declines many of this scenario's blocks: see the assert)
    random.Random(9).shuffle(deliveries)
    as_rows = [apply_as_rows(unit, target) for unit in deliveries]
    assert any(as_rows) and not all(as_rows)  # redactions and table definitions go as revisions
    assert apply_as_rows(deliveries[as_rows.index(True)], target, "overlap")
    expected = journal_digest(scenario)
    assert digest_of_target(target) == expected
    assert current_versions(target) == scenario.expected_current()
    target.finalize()
    assert digest_of_target(target) == expected
    assert target.info()["documents"] == len(scenario.expected_current())


def test_reads_beside_finalize_see_the_finalized_state(make, scenario) -> None:
    """`finalize_beside_reads`: reads started by it through another instance (as the restore's digest processes)
    give the journal's state, though the units left it to finalize (bulk-loaded tables); their result is what it
    returns, and the target is then finalized as by `finalize`."""
    if native.journal is None:
        pytest.skip("the C journal verifier is not in use (LEDGERDR_PURE_PYTHON, or not built): no rows to apply")
    target = bound(make, scenario)
    requires(target, "applies_rows")
    for delivery in units(scenario, 3):
        apply_as_rows(delivery, target)
    reader = make()  # the same target's data, another connection
    started: list[bool] = []

    def start_reads() -> Callable[[], object]:
        started.append(True)
        read = digest_of_target(reader)
        return lambda: read

    expected = journal_digest(scenario)
    assert target.finalize_beside_reads(start_reads) == expected and started == [True]
    assert target.info()["documents"] == len(scenario.expected_current())
    target.finalize()  # nothing left to do
    assert digest_of_target(target) == expected


def test_a_delete_applied_first_is_not_undone_by_the_older_revision(make) -> None:
    s = JournalScenario(21)
    s.create_table("Vehicle")
    insert = s.write("Vehicle")
    s.commit(["INSERT INTO Vehicle ?"], [insert])
    s.commit(["UPDATE Vehicle"], [s.write("Vehicle", insert.document_id)])
    s.commit(["DELETE FROM Vehicle"], [s.write("Vehicle", insert.document_id, delete=True)])
    target = bound(make, s)
    for unit in reversed(units(s, 1)):
        unit.apply_to(target)
        assert current_versions(target) == {}
    assert digest_of_target(target) == journal_digest(s)


@pytest.mark.parametrize("redaction_first", [True, False])
def test_redaction_erases_data_whatever_the_order(make, redaction_first: bool) -> None:
    s = standard_scenario(seed=12, transactions=30)
    deliveries = units(s, 3)
    redaction_units = [u for u in deliveries if u.redactions]
    ordered = redaction_units + [u for u in deliveries if not u.redactions] if redaction_first else deliveries
    target = bound(make, s)
    for unit in ordered:
        unit.apply_to(target)
    digest = digest_of_target(target)
    assert digest == journal_digest(s)
    assert digest.journal_hash_used["redacted"] == len(s.redactions()) == 3
    originals = {r.key: r for r in s.revisions()}
    stored = {(r.table_id, r.document_id, r.version): r for r in target.iter_state() if not r.current}
    for redaction in s.redactions():
        row, original = stored[redaction.key], originals[redaction.key]
        assert (row.data, row.data_hash, row.hash, row.deleted) == (None, ion_hash(original.data), original.hash,
                                                                     False)


def test_another_lineage_is_refused(make, scenario) -> None:
    target = bound(make, scenario)
    units(scenario, 50)[0].apply_to(target)
    other = make()
    with pytest.raises(RestoreError) as caught:
        other.open_lineage("OtherStrand0123456789a", LEDGER)
    assert scenario.strand_id in str(caught.value) and "OtherStrand0123456789a" in str(caught.value)
    with pytest.raises(RestoreError):
        make("unbound").apply("u", [], units(scenario, 50)[0].unit.revisions, [], None)  # no lineage recorded there
    other.open_lineage(scenario.strand_id, LEDGER)  # the same lineage continues


def test_concurrent_appliers_do_not_deadlock_and_agree(make, scenario) -> None:
    deliveries = units(scenario, 1)
    work: queue.Queue = queue.Queue()
    for unit in deliveries + random.Random(5).sample(deliveries, 10):  # some delivered twice
        work.put(unit)
    targets = [bound(make, scenario) for _ in range(3)]  # opened here: one instance per worker
    errors: list[BaseException] = []

    def worker(target: Target) -> None:
        try:
            while True:
                try:
                    work.get_nowait().apply_to(target)
                except queue.Empty:
                    return
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "appliers deadlocked"
    assert errors == []
    check = make()
    assert check.applied_units() == {u.unit_id for u in deliveries}
    assert digest_of_target(check) == journal_digest(scenario)


# ------------------------------------------------------------------------------------ tables and names


def test_hostile_table_and_field_names_restore_safely(make) -> None:
    s = hostile_scenario()
    target = bound(make, s)
    for unit in units(s, 3):
        unit.apply_to(target)
    assert digest_of_target(target) == journal_digest(s)
    tables = target.table_ddls()
    assert sorted(t.table_name for t in tables) == sorted([*HOSTILE_NAMES, "a-b"])
    assert current_versions(target) == s.expected_current()


def test_indexes_are_created_as_the_journal_declares_them(make) -> None:
    s = hostile_scenario()
    target = bound(make, s)
    for unit in units(s, 3):
        unit.apply_to(target)
    declared: dict[str, set[str]] = {}
    for ddls in s.ddl.values():
        for ddl in ddls:
            declared.setdefault(ddl.table_id, set()).update(ddl.indexes)
    assert {t.table_id: set(t.indexes) for t in target.table_ddls()} == declared


def test_table_ddl_status_follows_drop_and_create_again(make, scenario) -> None:
    target = bound(make, scenario)
    for unit in random.Random(7).sample(units(scenario, 3), len(units(scenario, 3))):
        unit.apply_to(target)
    status = {t.table_id: (t.table_name, t.dropped) for t in target.table_ddls()}
    vehicles = sorted(dropped for name, dropped in status.values() if name == "Vehicle")
    assert vehicles == [False, True]  # the first Vehicle dropped, the second live: two tableIds
    assert {t: d for t, (_, d) in status.items()} == scenario.dropped()


# ------------------------------------------------------------------------------------ data


def test_data_types_round_trip_exactly(make) -> None:
    data = simpleion.loads(ROUND_TRIP)
    s = JournalScenario(41)
    s.create_table("Types", ("price",))
    write = s.write("Types", data=data)
    s.commit(["INSERT INTO Types ?"], [write])
    target = bound(make, s)
    for unit in units(s, 5):
        unit.apply_to(target)
    rows = [r for r in target.iter_state() if r.document_id == write.document_id]
    assert [r.current for r in rows] == [False, True]
    for row in rows:
        assert simpleion.dumps(row.data, binary=False) == simpleion.dumps(data, binary=False)
        assert ion_hash(row.data) == ion_hash(data)
    digest = digest_of_target(target)
    assert digest == journal_digest(s) and digest.recomputed == 1 and digest.mismatches == ()


def test_json_export_restores_with_type_lost_revisions_counted(make, scenario) -> None:
    target = bound(make, scenario)
    for unit in units(scenario, 6, ExportFormat.JSON):
        unit.apply_to(target)
    digest = digest_of_target(target)
    expected = journal_digest(scenario, ExportFormat.JSON)
    assert digest == expected and expected.journal_hash_used["json_type_lost"] > 0
    assert digest.digest == journal_digest(scenario).digest  # the same state as an Ion restore


# ------------------------------------------------------------------------------------ capabilities


def test_the_position_record_survives_reopening(make, scenario) -> None:
    target = bound(make, scenario)
    if not target.has_position_record:
        assert target.read_position_record() is None
        with pytest.raises(RestoreError):
            target.write_position_record(b"{}")
    requires(target, "has_position_record")
    assert target.read_position_record() is None
    target.write_position_record(b'{"last_seq": 3}')
    target.write_position_record(b'{"last_seq": 7}')  # replaced, not appended
    assert make().read_position_record() == b'{"last_seq": 7}'


def test_promote_opens_a_writable_ledger_only_where_declared(make, scenario) -> None:
    target = bound(make, scenario)
    for unit in units(scenario, 10):
        unit.apply_to(target)
    if not target.writable_ledger:
        with pytest.raises(RestoreError, match="cannot be opened for writes"):
            target.promote("lineage-1")
        assert not target.holding().writable
    requires(target, "writable_ledger")
    assert not target.holding().writable
    target.promote("lineage-1")
    assert make().holding().writable


def test_a_target_that_keeps_the_journal_stores_the_blocks(make, scenario) -> None:
    target = bound(make, scenario)
    requires(target, "keeps_journal")
    for unit in units(scenario, 4):
        unit.apply_to(target)
    target.finalize()
    assert digest_of_target(target) == journal_digest(scenario)
    assert target.holding().last_seq == len(scenario.blocks) - 1


def test_state_rows_give_the_same_digest_as_the_revisions_read_back(make, scenario) -> None:
    """`iter_state_rows` (the C state digest's input) and `iter_state` describe the same state; a target that
    declares gives_state_rows = False refuses `iter_state_rows` rather than answer partly."""
    target = bound(make, scenario)
    for delivery in units(scenario, 4):
        delivery.apply_to(target)
    target.finalize()
    if not target.gives_state_rows:
        with pytest.raises(RestoreError):
            list(target.iter_state_rows())
        pytest.skip(f"the {target.kind} target declares gives_state_rows = False")
    if native.statedigest is None:
        pytest.skip("the C state digest is not built")
    rows_digest = digest_of_state_rows(target.iter_state_rows(), target_dropped(target))
    assert rows_digest == digest_of_rows(target.iter_state(decode=False), target_dropped(target))
