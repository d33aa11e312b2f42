"""Compaction into snapshots, restore from a snapshot, and safe pruning of the raw exports it replaces."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from amazon.ion import simpleion
from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.cli.compact_cmd import compact as compact_cli
from ledgerdr.cli.compact_cmd import prune as prune_cli
from ledgerdr.compact import compact
from ledgerdr.errors import VerificationError
from ledgerdr.journal.layout import parse_data_object_key
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.prune import prune
from ledgerdr.repository import EXPORTS, Watermark, read_windows, write_watermark
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.restore.plan import units_of_window
from ledgerdr.restore.shapes import WorkUnit
from ledgerdr.restore.snapshot import is_snapshot_unit, last_block_of, load_snapshot_unit, snapshot_units
from ledgerdr.restore.units import load_unit
from ledgerdr.snapshots import SnapshotManifest, manifest_key, newest_snapshot, read_part
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.faults import flip_byte
from ledgerdr.targets.ddl import DdlState
from ledgerdr.targets.digest import digest_of_revisions, digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import T0, backed_up_ledger, format_1_repository

SOON = T0 + timedelta(minutes=10)  # export retention (30 days) still running
LATER = T0 + timedelta(days=40)  # export retention over
SECRET = b"123-45-6789"


# ------------------------------------------------------------------------------------------ helpers


def _units_after(location: Location, manifest: SnapshotManifest) -> list[WorkUnit]:
    """The snapshot's parts, then the units of every window after its tip (the planner's hook)."""
    later = [
        w for w in read_windows(location).windows if w.last_seq is not None and w.last_seq > manifest.last_seq
    ]
    return snapshot_units(manifest) + [u for w in later for u in units_of_window(w)]


def _restore_by_hand(location: Location, units: list[WorkUnit], path: Path) -> tuple[str, str]:
    """Apply units as a worker does into a fresh embedded target: (target digest, journal digest)."""
    target = EmbeddedTarget(path)
    revisions, redactions, events = [], [], []
    try:
        for unit in units:
            content = load_unit(location.store, unit)
            revisions += content.revisions
            redactions += content.redactions
            events += content.ddl
            target.open_lineage(content.strand_id, "ledger")
            target.apply(
                unit.unit_id,
                list(content.tables.values()),
                content.revisions,
                content.redactions,
                last_block_of(content),
                blocks=content.blocks,
            )
        target.finalize()
        dropped = DdlState().apply_all(events).dropped()
        return digest_of_target(target).digest, digest_of_revisions(revisions, redactions, dropped).digest
    finally:
        target.close()


def _raw_digest(location: Location, tmp_path: Path) -> str:
    report = restore(
        location.store.url,
        f"embedded:{tmp_path / 'raw.db'}",
        RestoreOptions(workers=0, state_dir=tmp_path / "raw-state"),
    )
    assert report.verdict, report.problems
    return report.journal_state_digest


def _listing(location: Location) -> dict[str, str | None]:
    return {info.key: location.store.head(info.key).sha256 for info in location.store.list("")}


def _unlocked(location: Location) -> FileStore:
    """The same directory without retention enforcement: an attacker, or a crash, for the tests."""
    return FileStore(Path(location.store.url.removeprefix("file://")), lock_mode=None)


def _ledger_with_redaction_and_drop(root: Path) -> Location:
    """Windows 0-1 are exported before a later window redacts a revision of window 0 and drops a table."""
    ledger = Ledger.create(root / "ledger.db")
    location = Location(FileStore(root / "primary"), "")
    policy = BackupPolicy(interval=timedelta(minutes=1))
    with freeze_time(T0 + timedelta(seconds=7)):
        ledger.execute("CREATE TABLE Patient")
        ledger.execute("CREATE INDEX ON Patient (name)")
        ledger.execute("CREATE TABLE Scratch")
        (doc,) = ledger.execute("INSERT INTO Patient ?", {"name": "Ann", "ssn": SECRET.decode()})
        ledger.execute("INSERT INTO Scratch ?", {"x": 1})
    with freeze_time(T0 + timedelta(minutes=1, seconds=7)):
        ledger.execute("UPDATE Patient SET ssn = 'erased-by-app'")
        run_workload(ledger, 8, seed=3)
    with freeze_time(T0 + timedelta(minutes=2, seconds=6)):
        assert len(_backup(ledger, root, location, policy)) == 2
    with freeze_time(T0 + timedelta(minutes=2, seconds=7)):
        (old,) = ledger.execute("SELECT * FROM history(Patient) AS h WHERE h.metadata.version = 0")
        (table_id,) = ledger.execute(
            "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Patient'"
        )
        ledger.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc["documentId"])
        ledger.execute("DROP TABLE Scratch")
    with freeze_time(T0 + timedelta(minutes=3, seconds=7)):
        run_workload(ledger, 6, seed=4)
    with freeze_time(T0 + timedelta(minutes=4, seconds=6)):
        assert len(_backup(ledger, root, location, policy)) == 2
    ledger.close()
    return location


def _backup(ledger: Ledger, root: Path, location: Location, policy: BackupPolicy) -> list:
    source = EmbeddedSource(root / "ledger.db")
    try:
        return run_backup(source, location, policy).recorded
    finally:
        source.close()


# ------------------------------------------------------------------------------------------ compaction


def test_compaction_folds_every_window_into_sorted_parts_and_changes_nothing(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=4, per_minute=12)
    windows = read_windows(location).windows
    before = _listing(location)
    with freeze_time(SOON):
        report = compact(location, part_bytes=20_000)
    manifest = newest_snapshot(location)
    assert manifest is not None and report.manifest_key == manifest_key(location, manifest.last_seq)
    assert (manifest.first_seq, manifest.last_seq) == (0, windows[-1].last_seq)
    assert manifest.tip_hash == windows[-1].last_block_hash
    assert manifest.windows == tuple(w.window_start for w in windows)
    assert report.revisions == sum(w.revisions for w in windows) == manifest.counts["revisions"]
    assert report.blocks_without_revisions > 0  # read-only transactions left nothing behind
    assert len(manifest.objects) > 1 and report.objects == len(manifest.objects)
    assert {t.table_name: t.indexes for t in manifest.tables} == {
        n: ("key",) for n in ("Person", "Vehicle", "Invoice")
    }
    keys = []
    for obj in manifest.objects:
        data = location.store.get(obj.key)
        assert hashlib.sha256(data).hexdigest() == obj.sha256 and len(data) < 20_000 + 8_000
        assert obj.key.endswith(".rows")
        keys += [row[:3] for row in read_part(data, manifest.first_seq, manifest.last_seq).rows]
    assert manifest.format_version == 2
    assert keys == sorted(set(keys)) and len(keys) == report.revisions
    after = _listing(location)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing existing changed
    assert all(k.startswith("_ledgerdr/snapshots/") for k in after.keys() - before.keys())


def test_restore_from_snapshot_and_later_windows_equals_restore_from_raw_exports(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=5, per_minute=10)
    expected = _raw_digest(location, tmp_path)
    windows = read_windows(location).windows
    with freeze_time(SOON):
        report = compact(location, up_to_seq=windows[2].last_seq)
    assert report.last_seq == windows[2].last_seq and report.windows_covered == 3
    manifest = newest_snapshot(location)
    units = _units_after(location, manifest)
    assert sum(map(is_snapshot_unit, units)) == len(manifest.objects) and len(units) > len(manifest.objects)
    target_digest, journal_digest = _restore_by_hand(location, units, tmp_path / "snap.db")
    assert target_digest == journal_digest == expected


def test_redactions_are_applied_and_ddl_kept(tmp_path):
    location = _ledger_with_redaction_and_drop(tmp_path)
    expected = _raw_digest(location, tmp_path)
    first_window = read_windows(location).windows[0]
    assert any(
        SECRET in location.store.get(o.key) for o in first_window.objects
    )  # the raw export still has it
    with freeze_time(SOON):
        report = compact(location)
    manifest = newest_snapshot(location)
    assert (
        report.redactions_applied == 1 and manifest.counts["redacted"] == 1 and len(manifest.redactions) == 1
    )
    assert not any(SECRET in location.store.get(o.key) for o in manifest.objects)
    tables = {t.table_name: t for t in manifest.tables}
    assert (
        tables["Scratch"].dropped and not tables["Patient"].dropped and tables["Patient"].indexes == ("name",)
    )
    assert any(s[1:] == ("Patient", "name") for s in manifest.index_statements)
    target_digest, journal_digest = _restore_by_hand(location, snapshot_units(manifest), tmp_path / "snap.db")
    assert target_digest == journal_digest == expected
    restored = Ledger.open(tmp_path / "snap.db")
    history = restored.execute("SELECT * FROM history(Patient) AS h WHERE h.metadata.version = 0")
    assert "data" not in history[0] and "dataHash" in history[0]
    restored.close()


def test_tampered_format_1_snapshot_objects_are_refused(tmp_path):
    location = format_1_repository(tmp_path)  # written by the format-1 code (tests/data/snapshot-format-1)
    manifest = newest_snapshot(location)
    assert manifest is not None and manifest.format_version == 1
    (unit,) = snapshot_units(manifest)
    records = simpleion.loads(location.store.get(unit.key), single_value=False)
    flip_byte(location.store.url.removeprefix("file://"), unit.key, -40)
    with pytest.raises(VerificationError, match="sha256") as caught:
        load_snapshot_unit(location.store, unit)
    assert caught.value.problems[0].key == unit.key

    # A forger who also rewrites the manifest's checksums is caught by the revision hashes.
    victim = next(r for r in records if "data" in r)
    victim["data"]["forged"] = 1
    data = simpleion.dumps(records, binary=True, sequence_as_stream=True)
    _forge(location, manifest, unit.key, data)
    with pytest.raises(VerificationError, match="plan's sha256"):
        load_snapshot_unit(location.store, unit)  # planned before the forgery
    (unit,) = snapshot_units(newest_snapshot(location))
    with pytest.raises(VerificationError) as caught:
        load_snapshot_unit(location.store, unit)
    assert [p.kind for p in caught.value.problems] == ["revision_hash"]
    assert str(victim["metadata"]["id"]) in caught.value.problems[0].detail


def test_a_snapshot_whose_tip_matches_no_window_is_ignored_and_refused(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=8)
    with freeze_time(SOON):
        compact(location)
    manifest = newest_snapshot(location)
    store = _unlocked(location)
    forged = SnapshotManifest(**{**manifest.__dict__, "tip_hash": manifest.objects[0].sha256[:44]})
    store.delete(manifest_key(location, manifest.last_seq))
    store.put(manifest_key(location, manifest.last_seq), forged.to_bytes())
    assert newest_snapshot(location) is None  # the planner falls back to the raw exports
    with pytest.raises(VerificationError, match="tip"):
        load_snapshot_unit(location.store, snapshot_units(manifest)[0])


def _forge(location: Location, manifest: SnapshotManifest, key: str, data: bytes) -> None:
    store = _unlocked(location)
    objects = tuple(
        o
        if o.key != key
        else o.__class__(**{**o.__dict__, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        for o in manifest.objects
    )
    for victim in (key, manifest_key(location, manifest.last_seq)):
        store.delete(victim)
    store.put(key, data)
    store.put(
        manifest_key(location, manifest.last_seq),
        SnapshotManifest(**{**manifest.__dict__, "objects": objects}).to_bytes(),
    )


def test_compaction_is_idempotent_resumes_and_builds_on_the_previous_snapshot(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=4, per_minute=8)
    windows = read_windows(location).windows
    with freeze_time(SOON):
        first = compact(location, up_to_seq=windows[1].last_seq, part_bytes=8_000)
        listing = _listing(location)
        again = compact(location, up_to_seq=windows[1].last_seq, part_bytes=8_000)
        assert again.already_compacted and _listing(location) == listing

        # Interrupted after its parts, before its manifest: a rerun finds and keeps its own parts.
        _unlocked(location).delete(first.manifest_key)
        resumed = compact(location, up_to_seq=windows[1].last_seq, part_bytes=8_000)
        assert not resumed.already_compacted and _listing(location) == listing

        second = compact(location)
        assert second.base_snapshot == first.last_seq and second.windows_folded == [
            w.window_start for w in windows[2:]
        ]
        assert compact(location).already_compacted
    expected = _raw_digest(location, tmp_path)
    target_digest, journal_digest = _restore_by_hand(
        location, snapshot_units(newest_snapshot(location)), tmp_path / "snap.db"
    )
    assert target_digest == journal_digest == expected


# ------------------------------------------------------------------------------------------ prune


def _export_keys(location: Location) -> set[str]:
    return {k for k in _listing(location) if k.startswith(EXPORTS)}


def test_prune_dry_run_lists_and_deletes_nothing(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=6)
    with freeze_time(SOON):
        compact(location)
    before = _listing(location)
    with freeze_time(LATER):
        report = prune(location)
    assert report.dry_run and report.deletable and all(i.action == "delete" for i in report.deletable)
    assert all("retention ended" in i.reason for i in report.deletable)
    assert _listing(location) == before


def test_prune_never_deletes_under_retention(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=6)
    with freeze_time(SOON):
        compact(location)
        before = _listing(location)
        report = prune(location, confirm=True)
    assert not report.deletable and report.items
    assert all(i.action == "keep" and "under retention" in i.reason for i in report.items)
    assert _listing(location) == before


def test_prune_deletes_only_covered_expired_raw_exports_in_block_order(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=5, per_minute=8)
    expected = _raw_digest(location, tmp_path)
    windows = read_windows(location).windows
    write_watermark(
        location,
        Watermark(
            "primary",
            windows[-1].last_seq,
            windows[-1].last_block_hash,
            None,
            tuple(w.window_start for w in windows),
            "2026-01-05T10:06:00.000Z",
        ),
    )
    with freeze_time(SOON):
        compact(location, up_to_seq=windows[2].last_seq)
    before = _listing(location)
    in_use = {next(o.key for o in windows[0].objects if o.key.endswith(".started.manifest"))}
    with freeze_time(LATER):
        report = prune(location, confirm=True, keep_after_seq=windows[1].last_seq, in_use=in_use)
    deleted = [i for i in report.items if i.action == "deleted"]
    covered = {o.key for w in windows[:2] for o in w.objects} - in_use
    assert {i.key for i in deleted} == covered
    data = [i.first_seq for i in deleted if parse_data_object_key(i.key)]
    assert len(data) >= 2 and data == sorted(data)  # block order (data object names do not sort by block)
    assert {i.reason for i in report.items if i.action == "keep"} >= {"in use by a restore"}
    assert any(
        "keep_after_seq" in i.reason for i in report.items if i.window_start == windows[2].window_start
    )
    after = _listing(location)
    assert before.keys() - after.keys() == covered
    assert all(
        after[k] == v for k, v in before.items() if not k.startswith(EXPORTS)
    )  # records, watermark, snapshot
    assert report.record_key in after

    # A second run deletes nothing more; compaction still works (it builds on the snapshot); restore
    # from the snapshot plus the remaining windows still equals the raw restore.
    with freeze_time(LATER):
        again = prune(location, confirm=True, keep_after_seq=windows[1].last_seq, in_use=in_use)
        assert {i.action for i in again.items if i.key in covered} == {"gone"}
        assert compact(location).base_snapshot == windows[2].last_seq
    target_digest, journal_digest = _restore_by_hand(
        location, _units_after(location, newest_snapshot(location)), tmp_path / "after-prune.db"
    )
    assert target_digest == journal_digest == expected


def test_prune_refuses_to_delete_when_the_snapshot_does_not_verify(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=6)
    with freeze_time(SOON):
        compact(location)
    manifest = newest_snapshot(location)
    flip_byte(location.store.url.removeprefix("file://"), manifest.objects[0].key, 10)
    before = _export_keys(location)
    with freeze_time(LATER), pytest.raises(VerificationError):
        prune(location, confirm=True)
    assert _export_keys(location) == before


def test_prune_with_no_snapshot_has_nothing_to_do(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=2, per_minute=4)
    with freeze_time(LATER):
        report = prune(location, confirm=True)
    assert report.snapshot_last_seq is None and not report.items and report.nothing_to_do


# ------------------------------------------------------------------------------------------ the commands


def test_compact_and_prune_commands(tmp_path, monkeypatch):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=6)
    config = tmp_path / "ledgerdr.toml"
    config.write_text(
        f'[source]\nkind = "embedded"\npath = "{tmp_path / "ledger.db"}"\n\n'
        f'[repositories.primary]\nurl = "{tmp_path / "primary"}"\n'
    )
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(compact_cli, ["--config", str(config), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    compacted = json.loads(result.output)
    assert compacted["last_seq"] == read_windows(location).windows[-1].last_seq and compacted["objects"] >= 1
    before = _listing(location)
    result = runner.invoke(prune_cli, ["--config", str(config), "--json"], catch_exceptions=False)
    dry = json.loads(result.output)
    assert result.exit_code == 0 and dry["dry_run"] and dry["deletable"] > 0 and _listing(location) == before
    result = runner.invoke(prune_cli, ["--config", str(config), "--confirm"], catch_exceptions=False)
    assert result.exit_code == 0 and f"deleted {dry['deletable']} objects" in result.output
    assert len(before) - len(_listing(location)) == dry["deletable"] - 1  # minus one: the prune record


def test_restore_command_path_uses_the_snapshot(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=4, per_minute=8)
    expected = _raw_digest(location, tmp_path)
    windows = read_windows(location).windows
    with freeze_time(SOON):
        compact(location, up_to_seq=windows[1].last_seq)
    report = restore(
        location.store.url,
        f"embedded:{tmp_path / 'snap.db'}",
        RestoreOptions(workers=0, state_dir=tmp_path / "snap-state"),
    )
    assert report.verdict, report.problems
    assert report.snapshot_last_seq == windows[1].last_seq and report.last_seq == windows[-1].last_seq
    assert report.journal_state_digest == report.target_state_digest == expected
    before = restore(
        location.store.url,
        f"embedded:{tmp_path / 'cut.db'}",  # a cut inside the snapshot
        RestoreOptions(workers=0, state_dir=tmp_path / "cut-state", until_block=windows[0].last_seq),
    )
    assert before.verdict and before.snapshot_last_seq is None and before.last_seq == windows[0].last_seq
