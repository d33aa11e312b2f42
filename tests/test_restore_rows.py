"""Restore through the C verifier's rows (`restore.rows`, `EmbeddedTarget.apply_rows`) against the Python path.

Both paths must leave the embedded target holding the same rows, column for column: history, current documents,
blocks, tables, index entries, redactions. The journal here has indexes, deletes and a redaction (whose block the
C verifier declines, so a restore mixes both paths), and the units also arrive reversed and twice.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from amazon.ion import simpleion

from ledgerdr import native
from ledgerdr.errors import RestoreError, StoreError, VerificationError
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.hashing import merkle_root
from ledgerdr.journal.proofs import DigestAccumulator
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.storage import pack_stack, unpack_stack
from ledgerdr.queues.sqlite import SqliteQueue
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.restore.rows import load_rows
from ledgerdr.restore.run import split_units
from ledgerdr.restore.units import load_unit
from ledgerdr.restore.worker import WorkerSpec, apply_unit, run_worker
from ledgerdr.stores import FileStore
from ledgerdr.targets import embedded as embedded_target
from ledgerdr.targets.ddl import DdlState
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import backed_up_ledger, ledger_with_a_redaction
from support.scenarios import standard_scenario

if native.journal is None:
    pytest.skip("the C journal verifier is not in use (LEDGERDR_PURE_PYTHON, or not built)", allow_module_level=True)

_QUERIES = {
    "tables": "SELECT table_id, name, status, created_seq FROM tables",
    "history": "SELECT * FROM history",
    "documents": "SELECT * FROM documents",
    "blocks": "SELECT * FROM blocks",
    "indexes": "SELECT table_id, field, status FROM indexes",
    "index_entries": "SELECT i.table_id, i.field, e.key, e.doc_id FROM index_entries e JOIN indexes i USING (index_id)",
    "restore_units": "SELECT last_seq FROM restore_units",  # (the index pass's unit id names its restore)
    "restore_redactions": "SELECT * FROM restore_redactions",
}


def _rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {name: sorted(conn.execute(query).fetchall(), key=repr) for name, query in _QUERIES.items()}


def test_rows_path_stores_what_the_python_path_stores(tmp_path):
    primary = ledger_with_a_redaction(tmp_path)
    plan = plan_restore(primary)
    read = [load_rows(primary.store, unit) for unit in plan.units]
    # both paths in one restore: the redaction's window goes through load_unit, the others (the window that
    # creates the tables too: its DDL blocks are decoded for their events) through the C rows
    assert any(r is None for r in read) and sum(r is not None for r in read) >= 3

    fast = restore(primary.store.url, f"embedded:{tmp_path / 'fast.db'}",
                   RestoreOptions(workers=0, state_dir=tmp_path / "fast-state"))
    assert fast.verdict and fast.journal_state_digest == fast.target_state_digest
    script = ("import sys; from pathlib import Path; from ledgerdr.restore import RestoreOptions, restore; "
              "r = restore(sys.argv[1], sys.argv[2], RestoreOptions(workers=0, state_dir=Path(sys.argv[3]))); "
              "sys.exit(0 if r.verdict else 1)")
    subprocess.run([sys.executable, "-c", script, primary.store.url, f"embedded:{tmp_path / 'python.db'}",
                    str(tmp_path / "python-state")], env={**os.environ, "LEDGERDR_PURE_PYTHON": "1"}, check=True)
    expected = _rows(tmp_path / "python.db")
    assert expected["restore_redactions"] and expected["index_entries"]
    assert any(row[3] is None and row[8] is not None for row in expected["history"])  # the redacted revision
    assert _rows(tmp_path / "fast.db") == expected

    # the same units reversed and half of them twice: the redaction arrives before the revision it erases
    queue = SqliteQueue(tmp_path / "q.db", name="dup")
    bodies = [u.to_bytes() for u in reversed(plan.units)]
    queue.send_batch(bodies + bodies[::2])
    run_worker(queue, WorkerSpec(primary.url, f"embedded:{tmp_path / 'dup.db'}", str(tmp_path / "dup-state"),
                                 ledger_name=plan.ledger_name))
    target = EmbeddedTarget(tmp_path / "dup.db")
    target.finalize()
    assert digest_of_target(target).digest == fast.journal_state_digest
    target.close()
    shuffled = _rows(tmp_path / "dup.db")  # (no index pass without finalize; tables first seen elsewhere)
    for name in ("history", "documents", "blocks", "restore_redactions"):
        assert shuffled[name] == expected[name]


def test_restore_commits_at_normal_durability_and_promote_gives_the_ledger_its_own_back(tmp_path):
    """Units commit at synchronous=NORMAL (finalize checkpoints before the verdict); a promoted ledger's writes
    are durable again (FULL, the ledger's default)."""
    target = EmbeddedTarget(tmp_path / "t.db")
    conn = target.storage.conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    target.open_lineage("strand", "ledger")
    target.promote("lineage-1")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    target.close()


def test_finalize_never_skips_its_checkpoint_while_a_reader_holds_an_older_snapshot(tmp_path, monkeypatch):
    """The checkpoint that makes the units durable waits for a reader of an older snapshot and is tried again;
    when the reader outlasts every try, finalize fails naming the target (no verdict on an unsynced log), and
    succeeds once the reader is done, nothing lost."""
    monkeypatch.setattr(embedded_target, "_CHECKPOINT_ATTEMPTS", 2)  # two tries, not ten busy timeouts of 60 s
    path = tmp_path / "t.db"
    target = EmbeddedTarget(path)
    target.open_lineage("strand", "ledger")
    target.finalize()  # a later round's (a standby's): the file has left its bulk load's rollback journal for WAL
    target.storage.conn.execute("PRAGMA busy_timeout=20")
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # holds this snapshot
    target.write_position_record(b"after the reader's snapshot")
    with pytest.raises(RestoreError, match=f"{path}.*checkpointed") as refused:
        target.finalize()
    assert "nothing is lost" in str(refused.value)
    reader.rollback()
    reader.close()
    target.finalize()
    assert target.read_position_record() == b"after the reader's snapshot"
    target.close()


def test_reads_beside_finalize_meet_the_current_rows_and_hold_back_only_the_checkpoint(tmp_path):
    """`finalize_beside_reads` starts the reads once the current rows are built, builds the index entries while a
    reader holds its snapshot (commits do not wait for readers), and checkpoints and scrubs the WAL of a
    redaction's bytes only after the reads have ended; the file then holds what `finalize` gives."""
    primary = ledger_with_a_redaction(tmp_path)
    plan = plan_restore(primary)
    ddl = DdlState()
    paths = {name: tmp_path / f"{name}.db" for name in ("beside", "plain")}
    for path in paths.values():
        target = EmbeddedTarget(path)
        for unit in plan.units:
            apply_unit(primary, target, unit, "ledger")
        target.close()
    for unit in plan.units:
        ddl.apply_all(event for r in [load_rows(primary.store, unit)] if r is not None for event in r.ddl)
    plain, beside = EmbeddedTarget(paths["plain"]), EmbeddedTarget(paths["beside"])
    plain.finalize()
    for target in (plain, beside):
        target.apply("ddl", ddl.changes_to(target.table_ddls()), [], [], None)
    plain.finalize()
    seen: dict[str, object] = {}

    def start_reads():
        reader = EmbeddedTarget(paths["beside"])
        seen["stale_index"] = reader.storage.conn.execute("SELECT count(*) FROM restore_stale_index").fetchone()[0]
        digest = digest_of_target(reader)  # the current rows are there to read
        reader.storage.conn.execute("BEGIN")
        reader.storage.conn.execute("SELECT count(*) FROM history").fetchone()  # holds this snapshot

        def wait():
            seen["stale_index_after"] = sqlite3.connect(paths["beside"]).execute(
                "SELECT count(*) FROM restore_stale_index").fetchone()[0]  # built while the reader read
            seen["wal_before_end"] = os.path.getsize(f"{paths['beside']}-wal")
            reader.storage.conn.execute("COMMIT")
            reader.close()
            return digest

        return wait

    digest = beside.finalize_beside_reads(start_reads)
    assert digest == digest_of_target(plain)
    assert seen["stale_index"] and not seen["stale_index_after"] and seen["wal_before_end"] > 0
    assert os.path.getsize(f"{paths['beside']}-wal") == 0  # scrubbed (a redaction) once the reader was done
    beside.close()
    plain.close()
    assert _rows(paths["beside"]) == _rows(paths["plain"])
    accumulators = [_accumulator(path) for path in paths.values()]
    assert accumulators[0] == accumulators[1] and accumulators[0][1]  # folded apart, stored the same


def _accumulator(path: Path) -> tuple[bytes, list[tuple]]:
    """The digest accumulator a ledger file holds: its stack and its stored subtrees."""
    with sqlite3.connect(path) as conn:
        stack = conn.execute("SELECT value FROM meta WHERE key = 'digest_stack'").fetchone()[0]
        return stack, conn.execute("SELECT * FROM merkle_nodes ORDER BY height, idx").fetchall()


def test_a_digest_fold_made_from_an_older_stack_is_folded_again(tmp_path):
    """The accumulator folded apart (`finalize_beside_reads`' thread) is stored only when the stack it started
    from is the one stored; when another finalize folded meanwhile it is folded again, never stored twice."""
    _, location = backed_up_ledger(tmp_path, minutes=2, per_minute=30)
    paths = [tmp_path / "raced.db", tmp_path / "plain.db"]
    for path in paths:
        target = EmbeddedTarget(path)
        for unit in plan_restore(location).units:
            apply_unit(location, target, unit, "ledger")
        target.close()
    raced, plain = EmbeddedTarget(paths[0]), EmbeddedTarget(paths[1])
    early = raced._digest_fold_apart()  # from the empty stack
    assert early.nodes and not early.before
    raced.finalize()  # folds and stores every block
    raced._extend_digest(early)  # stale: folded again from the stored stack (nothing new), not stored twice
    plain.finalize()
    raced.close()
    plain.close()
    assert _accumulator(paths[0]) == _accumulator(paths[1])


def test_a_unit_that_starts_inside_its_object_goes_through_the_c_verifier(tmp_path):
    """`split_units` cuts an object into block ranges: the C verifier then also returns the object's blocks before
    the unit's first (checked for the chain, without rows or statements), which the DDL check must pass over."""
    _, location = backed_up_ledger(tmp_path, minutes=2, per_minute=12)
    whole = plan_restore(location).units
    units = [u for u in split_units(whole, 3) if any(u.key == w.key and u.first_seq > w.first_seq for w in whole)]
    read = [load_rows(location.store, unit) for unit in units]
    assert units and any(r is not None for r in read)
    for unit, rows in zip(units, read, strict=True):
        if rows is not None:
            assert [block[0] for block in rows.blocks] == list(range(unit.first_seq, unit.last_seq + 1))


def test_finalize_folds_the_contiguous_blocks_and_a_filled_hole_later(tmp_path):
    """Blocks arrive with a hole: finalize folds up to it, and all of them once it is filled; the accumulator and
    its stored subtrees are those of adding each block in turn (`Storage.extend_digest`)."""
    scenario = standard_scenario(seed=5, transactions=40)
    blocks = scenario.read_blocks(ExportFormat.ION_BINARY)
    units = list(zip(scenario.units(4), (blocks[i:i + 4] for i in range(0, len(blocks), 4)), strict=True))
    target = EmbeddedTarget(tmp_path / "t.db")
    target.open_lineage(scenario.strand_id, "ledger")

    def apply(unit, unit_blocks):
        target.apply(unit.unit_id, unit.tables, unit.revisions, unit.redactions, unit.last_block, blocks=unit_blocks)

    for unit, unit_blocks in [units[0], *units[2:]]:
        apply(unit, unit_blocks)
    target.finalize()
    assert sum(1 << height for height, _ in unpack_stack(target.storage.get_meta("digest_stack"))) == 4
    apply(*units[1])
    target.finalize()
    stored = target.storage.get_meta("digest_stack")
    nodes = sorted(target.storage.conn.execute("SELECT * FROM merkle_nodes"))
    target.close()
    hashes = [block.block_hash for block in blocks]
    reference = DigestAccumulator()
    for block_hash in hashes:
        reference.add(block_hash)
    assert stored == pack_stack(reference._stack)
    # every stored subtree is the root of its blocks; every complete subtree of height >= 1 is stored
    assert nodes == sorted((height, index, merkle_root(hashes[index << height:(index + 1) << height]))
                           for height in range(1, len(hashes).bit_length())
                           for index in range(len(hashes) >> height))


def test_the_units_of_one_object_read_its_verified_bytes_once(tmp_path):
    """A worker takes the units cut from one object in turn: the next one reuses the bytes that matched the recorded
    sha256 (no fetch, no hash: another store without the object gives the same rows), and a unit of other recorded
    bytes is never answered from them."""
    _, location = backed_up_ledger(tmp_path, minutes=1, per_minute=12)
    (whole,) = plan_restore(location).units
    first, second = split_units([whole], (whole.last_seq - whole.first_seq + 1) // 2)[:2]
    assert first.key == second.key and first.sha256 == second.sha256 is not None
    expected = load_rows(location.store, second)
    elsewhere = FileStore(tmp_path / "empty")  # holds nothing
    assert load_rows(location.store, first) is not None
    got = load_rows(elsewhere, second)
    assert got is not None and expected is not None and got.rows == expected.rows and got.blocks == expected.blocks
    with pytest.raises(StoreError):  # other recorded bytes: fetched (and not found there)
        load_rows(elsewhere, dataclasses.replace(second, sha256="0" * 64))
    with pytest.raises(VerificationError):  # fetched, and the bytes do not match what the unit records
        load_rows(location.store, dataclasses.replace(second, sha256="0" * 64))


def _current(target: EmbeddedTarget) -> list[tuple]:
    return target.storage.conn.execute("SELECT * FROM documents ORDER BY table_id, doc_id").fetchall()


def test_a_new_table_is_bulk_loaded_until_finalize_and_a_known_one_merged_unit_by_unit(tmp_path):
    """Rows of a table created since the last finalize go to history only; finalize (or a read of the state) builds
    its current rows and index entries from history at once, as merging unit by unit gives them (the current rows
    first, all a read of the state needs; the index entries by the next finalize). After it (a
    standby's next round), the table's units merge their newest versions at once again."""
    _, location = backed_up_ledger(tmp_path, minutes=2, per_minute=30)
    read = [load_rows(location.store, unit) for unit in split_units(plan_restore(location).units, 4)]
    assert all(r is not None for r in read) and len(read) > 6
    ddl = DdlState().apply_all(event for r in read for event in r.ddl)
    tables = ddl.changes_to([])
    assert any(table.indexes for table in tables)
    merged = EmbeddedTarget(tmp_path / "merged.db")  # every table known before its rows: merged unit by unit
    bulk = EmbeddedTarget(tmp_path / "bulk.db")
    for target in (merged, bulk):
        target.open_lineage(read[0].strand_id, "ledger")
    merged.apply("tables", tables, [], [], None)
    merged.finalize()
    half = len(read) // 2

    def apply(target: EmbeddedTarget, units: list) -> None:
        for r in units:
            target.apply_rows(r.unit.unit_id, list(r.tables.values()), r.rows, r.blocks, r.last_block)

    for target in (merged, bulk):
        apply(target, read[:half])
    assert _current(merged) and not _current(bulk)  # bulk: history only, so far
    # info (a standby's status) counts the documents the units define, and builds nothing
    assert bulk.info()["documents"] == merged.info()["documents"] == len(_current(merged))
    assert bulk.storage.conn.execute("SELECT count(*) FROM restore_stale").fetchone()[0] == len(tables)
    bulk.apply("ddl", ddl.changes_to(bulk.table_ddls()), [], [], None)
    assert not bulk.storage.conn.execute("SELECT 1 FROM index_entries").fetchall()  # left to finalize too
    assert digest_of_target(bulk) == digest_of_target(merged)  # the read builds the current rows it reads …
    assert _current(bulk) == _current(merged)
    assert not bulk.storage.conn.execute("SELECT 1 FROM index_entries").fetchall()  # … and not the index entries
    reopened = EmbeddedTarget(tmp_path / "bulk.db")  # an interrupted finalize: the next one builds what is left
    reopened.finalize()
    reopened.close()
    assert not bulk.storage.conn.execute("SELECT 1 FROM restore_stale_index").fetchall()
    bulk.finalize()
    assert _current(bulk) == _current(merged)
    assert _rows(tmp_path / "bulk.db")["index_entries"] == _rows(tmp_path / "merged.db")["index_entries"] != []
    for target in (merged, bulk):  # the next round: known tables merge unit by unit
        apply(target, read[half:])
    assert _current(bulk) == _current(merged) != []
    assert _rows(tmp_path / "bulk.db")["index_entries"] == _rows(tmp_path / "merged.db")["index_entries"]
    assert digest_of_target(bulk) == digest_of_target(merged)
    merged.close()
    bulk.close()


def _history_key(target: EmbeddedTarget) -> list[str]:
    """The unique indexes on history's key columns (named, or made by a UNIQUE constraint)."""
    conn = target.storage.conn
    return [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                             "tbl_name = 'history'")
            if [c[2] for c in conn.execute(f"PRAGMA index_info('{name}')")] == ["table_id", "doc_id", "version"]]


def _journal_modes(*targets: EmbeddedTarget) -> list[str]:
    return [target.storage.conn.execute("PRAGMA journal_mode").fetchone()[0] for target in targets]


def test_history_gets_its_key_once_the_rows_are_in_and_a_revision_delivered_twice_is_kept_once(tmp_path):
    """A restore target's history is loaded without its unique key, which the first finalize builds from the rows in
    one pass (BENCHMARKS.md, "history's key built once"), in rollback-journal mode, which the first finalize ends. A revision that arrived twice meanwhile (an overlapping
    export under another unit) is then held once, the first one applied, as `INSERT OR IGNORE` would have kept it;
    afterwards the key is there and skips a re-delivered row at once."""
    _, location = backed_up_ledger(tmp_path, minutes=2, per_minute=30)
    read = [load_rows(location.store, unit) for unit in split_units(plan_restore(location).units, 4)]
    first, second = read[0], read[1]
    target = EmbeddedTarget(tmp_path / "restored.db")
    target.open_lineage(first.strand_id, "ledger")
    assert _history_key(target) == []
    target.apply_rows("a", list(first.tables.values()), first.rows, first.blocks, first.last_block)
    twice = first.rows[0]
    altered = (*twice[:6], "not-the-first", *twice[7:])  # marks the copy applied second
    target.apply_rows("b", list(second.tables.values()), [altered, *second.rows], second.blocks, second.last_block)
    count = "SELECT count(*) FROM history WHERE table_id = ? AND doc_id = ? AND version = ?"
    assert target.storage.conn.execute(count, twice[:3]).fetchone()[0] == 2  # no key yet: both went in
    # bulk loaded in rollback-journal mode, by every connection (another worker's too), until finalize
    worker = EmbeddedTarget(tmp_path / "restored.db")
    assert _journal_modes(target, worker) == ["delete", "delete"]
    worker.close()
    target.finalize()
    assert _journal_modes(target, EmbeddedTarget(tmp_path / "restored.db")) == ["wal", "wal"]
    assert _history_key(target) == ["history_key"]
    assert target.storage.get_meta("history_key_deferred") is None
    assert target.storage.conn.execute(count, twice[:3]).fetchone()[0] == 1
    kept = target.storage.conn.execute("SELECT tx_id FROM history WHERE table_id = ? AND doc_id = ? AND version = ?",
                                       twice[:3]).fetchone()[0]
    assert kept == twice[6] != "not-the-first"
    held = target.info()["revisions"]
    assert held == len(first.rows) + len(second.rows)
    target.apply_rows("c", [], [altered], [], second.last_block)  # the key skips it now
    assert target.info()["revisions"] == held
    reopened = EmbeddedTarget(tmp_path / "restored.db")
    assert not reopened.storage.ensure_history_key()  # built once: nothing left to build
    reopened.close()
    target.close()


def test_a_unit_that_needs_history_by_key_builds_the_key_first(tmp_path):
    """What looks history rows up by their key before finalize (revisions applied one by one, as a redaction's unit
    is) builds the key first, so it never scans the table; so does the engine's own insert of a revision."""
    _, location = backed_up_ledger(tmp_path, minutes=2, per_minute=30)
    read = [load_rows(location.store, unit) for unit in split_units(plan_restore(location).units, 4)]
    target = EmbeddedTarget(tmp_path / "restored.db")
    target.open_lineage(read[0].strand_id, "ledger")
    target.apply_rows("a", list(read[0].tables.values()), read[0].rows, read[0].blocks, read[0].last_block)
    target.apply("tables only", list(read[0].tables.values()), [], [], None)
    assert _history_key(target) == []  # nothing looked up by key: still deferred
    content = load_unit(location.store, read[1].unit)
    target.apply("b", list(content.tables.values()), content.revisions, content.redactions, None)
    assert _history_key(target) == ["history_key"]
    target.close()
    fresh = Ledger.create(tmp_path / "engine.db", bulk_load=True)
    fresh.execute("CREATE TABLE T")
    fresh.execute("INSERT INTO T ?", {"a": 1})
    assert fresh._storage.get_meta("history_key_deferred") is None
    fresh.close()


def test_a_restored_ledger_serves_as_any_ledger(tmp_path):
    """The ledger file a restore creates (bulk-loaded tables) is an ordinary ledger, with SQLite's default pages
    as a ledger the engine creates (larger pages made the restore cheaper but every later commit and read of the
    promoted ledger dearer, BENCHMARKS.md); promoted, it opens, answers as its source and takes writes."""
    path, location = backed_up_ledger(tmp_path, minutes=1, per_minute=12)
    report = restore(location.store.url, f"embedded:{tmp_path / 'restored.db'}",
                     RestoreOptions(workers=0, state_dir=tmp_path / "state"))
    assert report.verdict
    sizes = []
    for ledger_file in (path, tmp_path / "restored.db"):
        conn = sqlite3.connect(ledger_file)
        sizes.append(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.close()
    assert sizes[0] == sizes[1]
    target = EmbeddedTarget(tmp_path / "restored.db")
    target.promote("lineage-after")
    target.close()
    with Ledger.open(path, read_only=True) as source, Ledger.open(tmp_path / "restored.db") as restored:
        for table in source.execute("SELECT name FROM information_schema.user_tables"):
            query = f"SELECT * FROM {table['name']}"
            assert _texts(restored.execute(query)) == _texts(source.execute(query)) != []
        restored.execute(f"INSERT INTO {table['name']} ?", {"after": "promote"})


def _texts(documents: list) -> list[str]:
    return sorted(simpleion.dumps(document, binary=False) for document in documents)


def test_a_bulk_loaded_table_with_several_indexes_gets_each_index_entry_of_the_source(tmp_path):
    """Finalize builds every index of a bulk-loaded table from one read of its current rows: the restored entries of
    both indexes are the ones the source ledger's engine kept as it wrote (another code path), and a table without
    an index gets none."""
    from datetime import timedelta

    from freezegun import freeze_time

    from ledgerdr.backup import BackupPolicy, run_backup
    from ledgerdr.sources.embedded import EmbeddedSource
    from ledgerdr.stores import Location
    from support.flows import T0

    source_path = tmp_path / "source.db"
    with freeze_time(T0 + timedelta(seconds=7)), Ledger.create(source_path) as ledger:
        for statement in ("CREATE TABLE Person", "CREATE INDEX ON Person (govId)", "CREATE INDEX ON Person (name)",
                          "CREATE TABLE Plain"):
            ledger.execute(statement)
        for n in range(60):
            ledger.execute("INSERT INTO Person ?", {"govId": f"G{n:03d}", "name": f"name {n % 7}", "n": n})
            ledger.execute("INSERT INTO Plain ?", {"n": n})
        ledger.execute("UPDATE Person SET name = 'renamed' WHERE n < 10")
        ledger.execute("UPDATE Person SET govId = 'X' || govId WHERE n >= 50")
        ledger.execute("DELETE FROM Person WHERE n > 55")
    location = Location(FileStore(tmp_path / "primary"), "")
    source = EmbeddedSource(source_path)
    with freeze_time(T0 + timedelta(minutes=1, seconds=6)):
        assert run_backup(source, location, BackupPolicy(interval=timedelta(minutes=1))).recorded
    source.close()
    report = restore(location.url, f"embedded:{tmp_path / 'restored.db'}",
                     RestoreOptions(workers=0, state_dir=tmp_path / "state"))
    assert report.verdict
    expected, restored = (sorted(sqlite3.connect(path).execute(_QUERIES["index_entries"]).fetchall())
                          for path in (source_path, tmp_path / "restored.db"))
    assert {field for _, field, _, _ in expected} == {"govId", "name"} and len(expected) == 2 * 56
    assert restored == expected
