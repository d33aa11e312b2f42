"""Restore into the embedded ledger: exact, idempotent, order-independent, verified end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerdr.errors import RestoreError
from ledgerdr.journal import ion_hash
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.ledger.engine import Ledger
from ledgerdr.queues.sqlite import SqliteQueue
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.restore.worker import WorkerSpec, run_worker
from ledgerdr.stores import open_location
from ledgerdr.stores.faults import flip_byte
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import backed_up_ledger, embedded_digest
from support.qldb_export_factory import generate_blocks, write_qldb_export


def _options(tmp_path: Path, **kwargs) -> RestoreOptions:
    return RestoreOptions(workers=0, state_dir=tmp_path / "state", **kwargs)


@pytest.mark.parametrize("fmt", [ExportFormat.ION_BINARY, ExportFormat.ION_TEXT])
def test_restore_equals_the_source(tmp_path, fmt):
    source_path, primary = backed_up_ledger(tmp_path, fmt=fmt)
    report = restore(primary.store.url, f"embedded:{tmp_path / 'restored.db'}", _options(tmp_path))
    assert report.verdict, report.problems
    assert report.journal_state_digest == report.target_state_digest
    source, restored = Ledger.open(source_path), Ledger.open(tmp_path / "restored.db")
    assert restored.get_digest() == source.get_digest()  # the journal itself came back, block for block
    for table in ("Vehicle", "Person", "Invoice"):
        assert sorted(map(ion_hash, restored.execute(f"SELECT * FROM {table}"))) == \
            sorted(map(ion_hash, source.execute(f"SELECT * FROM {table}")))
        assert len(restored.execute(f"SELECT * FROM history({table})")) == \
            len(source.execute(f"SELECT * FROM history({table})"))
    source.close(), restored.close()


def test_two_restores_are_identical_and_a_rerun_is_harmless(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    a = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", _options(tmp_path))
    b = restore(primary.store.url, f"embedded:{tmp_path / 'b.db'}", _options(tmp_path))
    again = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", _options(tmp_path))
    assert a.verdict and b.verdict and again.verdict
    assert embedded_digest(tmp_path / "a.db") == embedded_digest(tmp_path / "b.db") == a.journal_state_digest


def test_duplicated_and_shuffled_units_leave_the_digest_unchanged(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    expected = restore(primary.store.url, f"embedded:{tmp_path / 'ref.db'}", _options(tmp_path)).journal_state_digest
    plan = plan_restore(primary)
    queue = SqliteQueue(tmp_path / "q.db", name="dup")
    bodies = [u.to_bytes() for u in reversed(plan.units)]
    queue.send_batch(bodies + bodies[::2])  # reversed order, and half of them delivered twice
    run_worker(queue, WorkerSpec(primary.url, f"embedded:{tmp_path / 'dup.db'}", str(tmp_path / "dup-state"),
                                 plan.ledger_name))
    target = EmbeddedTarget(tmp_path / "dup.db")
    target.finalize()
    assert digest_of_target(target).digest == expected
    target.close()


def test_until_block_restores_exactly_that_state(tmp_path):
    source_path, primary = backed_up_ledger(tmp_path)
    report = restore(primary.store.url, f"embedded:{tmp_path / 'cut.db'}", _options(tmp_path, until_block=12))
    assert report.verdict and report.last_seq == 12
    restored = Ledger.open(tmp_path / "cut.db")
    assert restored.block_count == 13
    source = Ledger.open(source_path)
    for table in ("Vehicle", "Person"):
        in_source = [r for r in source.execute(f"SELECT * FROM history({table})")
                     if r["blockAddress"]["sequenceNo"] <= 12]
        assert len(restored.execute(f"SELECT * FROM history({table})")) == len(in_source)
    source.close(), restored.close()


def test_tampered_object_is_refused_before_anything_from_it_is_applied(tmp_path):
    _, primary = backed_up_ledger(tmp_path)
    plan = plan_restore(primary)
    victim = plan.units[1]
    flip_byte(primary.store, victim.key, -50)
    # a permanent failure: reported at once with the object's key, not retried into a dead letter
    with pytest.raises(RestoreError, match=f"{victim.key}.*sha256"):
        restore(primary.store.url, f"embedded:{tmp_path / 't.db'}", _options(tmp_path))
    restored = Ledger.open(tmp_path / "t.db")
    seqs = {r[0] for r in restored._storage.conn.execute("SELECT seq FROM blocks")}
    assert not seqs & set(range(victim.first_seq, victim.last_seq + 1))
    restored.close()


def test_other_lineage_is_refused(tmp_path):
    _, primary = backed_up_ledger(tmp_path / "one")
    _, other = backed_up_ledger(tmp_path / "two", seed=5)
    assert restore(primary.store.url, f"embedded:{tmp_path / 'x.db'}", _options(tmp_path)).verdict
    with pytest.raises(RestoreError, match="another lineage"):  # refused before anything is applied
        restore(other.store.url, f"embedded:{tmp_path / 'x.db'}", _options(tmp_path))


# ------------------------------------------------------------------------ raw QLDB exports, no records


def test_raw_exports_with_overlaps_restore(tmp_path):
    blocks = generate_blocks(50, seed=11)
    write_qldb_export(tmp_path / "raw", blocks[:20], ExportFormat.ION_TEXT, prefix="qldb-dr/a/")
    write_qldb_export(tmp_path / "raw", blocks[15:40], ExportFormat.ION_TEXT, prefix="qldb-dr/b/")
    write_qldb_export(tmp_path / "raw", blocks[40:], ExportFormat.ION_BINARY, prefix="qldb-dr/c/")
    report = restore(str(tmp_path / "raw"), f"embedded:{tmp_path / 'raw.db'}", _options(tmp_path))
    assert report.verdict, report.problems
    assert report.last_seq == 49 and report.journal_state_digest == report.target_state_digest


def test_raw_exports_with_a_gap_are_refused_unless_allowed(tmp_path):
    blocks = generate_blocks(50, seed=12)
    write_qldb_export(tmp_path / "raw", blocks[:20], ExportFormat.ION_TEXT, prefix="a/")
    write_qldb_export(tmp_path / "raw", blocks[26:], ExportFormat.ION_TEXT, prefix="b/")
    with pytest.raises(RestoreError, match="20..25"):
        plan_restore(open_location(str(tmp_path / "raw")))
    report = restore(str(tmp_path / "raw"), f"embedded:{tmp_path / 'gap.db'}", _options(tmp_path, allow_gaps=True))
    assert report.lost_blocks == [(20, 25)] and not report.verdict


def test_json_restore_names_type_lost_revisions(tmp_path):
    blocks = generate_blocks(30, seed=13)
    write_qldb_export(tmp_path / "raw", blocks, ExportFormat.JSON)
    report = restore(str(tmp_path / "raw"), f"embedded:{tmp_path / 'json.db'}", _options(tmp_path))
    assert report.type_lost > 0 and report.type_lost_examples
    assert report.journal_state_digest == report.target_state_digest


def test_worker_killed_mid_restore_loses_nothing(tmp_path):
    """A `ledgerdr worker` process SIGKILLed while it works: its unit comes back after the visibility
    timeout, another worker finishes, and the state digest equals the journal's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, primary = backed_up_ledger(tmp_path, minutes=6, per_minute=40)
    expected = restore(primary.store.url, f"embedded:{tmp_path / 'ref.db'}", _options(tmp_path)).journal_state_digest
    plan = plan_restore(primary)
    queue_path = tmp_path / "q.db"
    queue = SqliteQueue(queue_path, name="kill")
    queue.send_batch([u.to_bytes() for u in plan.units])
    queue.close()
    target = tmp_path / "killed.db"
    EmbeddedTarget(target).open_lineage(plan.strand_id, plan.ledger_name or "")
    command = [str(Path(sys.executable).with_name("ledgerdr")), "worker", "--queue", f"sqlite:///{queue_path}?name=kill",
               "--from", primary.store.url, "--to", f"embedded:{target}", "--state", str(tmp_path / "results"),
               "--visibility-timeout", "2"]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    finisher = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finisher.returncode == 0, finisher.stderr
    restored = EmbeddedTarget(target)
    restored.finalize()
    assert restored.applied_units() >= {u.unit_id for u in plan.units}
    assert digest_of_target(restored).digest == expected
    restored.close()
