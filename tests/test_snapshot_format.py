"""Snapshot format 2: its C reader against the Python reference, tampering refused, format 1 still restored."""

from __future__ import annotations

import hashlib
import random
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr import native
from ledgerdr.cli import cli
from ledgerdr.compact import compact
from ledgerdr.errors import VerificationError
from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.repository import read_windows
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.restore.snapshot import load_snapshot_unit, snapshot_units
from ledgerdr.restore.snapshot_rows import load_snapshot_rows
from ledgerdr.snapshots import (
    PartRows,
    SnapshotManifest,
    canonical_metadata,
    encode_part,
    manifest_key,
    newest_snapshot,
    read_part,
    read_part_python,
)
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.faults import flip_byte
from support.flows import T0, back_up_one_more_minute, backed_up_ledger, format_1_repository

SOON = T0 + timedelta(minutes=10)
needs_c = pytest.mark.skipif(native.ionhash is None, reason="the C extension is not built")


def _compacted(tmp_path, minutes: int = 3) -> tuple[Location, SnapshotManifest]:
    _, location = backed_up_ledger(tmp_path, minutes=minutes, per_minute=8)
    with freeze_time(SOON):
        compact(location)
    manifest = newest_snapshot(location)
    assert manifest is not None and manifest.format_version == 2
    return location, manifest


def _outcome(read, data: bytes, first: int, last: int) -> tuple:
    """What a reader says of `data`: the error, or everything it returns (unread documents resolved)."""
    try:
        parsed: PartRows = read(data, first, last)
    except ValueError as exc:
        return ("unreadable", str(exc).split(":")[0])
    tally = parsed.tally
    return (parsed.tables, parsed.rows, (tally.revisions, tally.deleted, tally.redacted, tally.type_lost,
                                         tally.rule_unknown), parsed.type_lost, parsed.problems)


def _forge(location: Location, manifest: SnapshotManifest, key: str, data: bytes) -> None:
    """Replace a part and the manifest's checksum of it (a forger, or a compaction bug)."""
    store = FileStore(location.store.url.removeprefix("file://"), lock_mode=None)
    objects = tuple(o if o.key != key else o.__class__(**{**o.__dict__, "size": len(data),
                                                           "sha256": hashlib.sha256(data).hexdigest()})
                    for o in manifest.objects)
    for victim in (key, manifest_key(location, manifest.last_seq)):
        store.delete(victim)
    store.put(key, data)
    store.put(manifest_key(location, manifest.last_seq),
              SnapshotManifest(**{**manifest.__dict__, "objects": objects}).to_bytes())


# ------------------------------------------------------------------------------------------ the readers


def _record(table: str, doc: str, version: int, tx_ms: int, data=None, deleted=False) -> dict:
    metadata = canonical_metadata(doc, version, tx_ms, "tx" + doc)
    meta_hash = ion_hash(metadata)
    record = {"tableId": table, "tableName": "T" + table, "blockSeq": 3, "metadata": metadata,
              "hash": meta_hash if deleted else dot(meta_hash, ion_hash(data))}
    if not deleted:
        record["data"] = data
    return record


@needs_c
def test_c_reader_rebuilds_the_metadata_hash_as_python_does_at_every_edge():
    """txTime at each millisecond width and around year and epoch boundaries, versions 0 and large."""
    moments = [0, 1, 127, 128, 255, 256, 999, 1000, -1, -86_400_001, 1_767_225_599_999,
               int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000),
               int(datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC).timestamp() * 1000),
               int(datetime(2024, 2, 29, 12, 0, 0, 128_000, tzinfo=UTC).timestamp() * 1000)]
    records = [_record("a", f"d{i:03d}", version, ms, {"n": i, "s": "x" * i})
               for i, (ms, version) in enumerate((ms, v) for ms in moments for v in (0, 1, 200, 2**40))]
    records.append(_record("b", "gone", 4, 5, deleted=True))
    data = encode_part(records)
    c, python = _outcome(read_part, data, 0, 10), _outcome(read_part_python, data, 0, 10)
    assert c == python
    assert c[4] == [] and c[2] == (len(records), 1, 0, 0, 0)


@needs_c
def test_c_and_python_readers_agree_on_a_compacted_part_and_on_every_damage(tmp_path):
    location, manifest = _compacted(tmp_path)
    data = location.store.get(manifest.objects[0].key)
    first, last = manifest.first_seq, manifest.last_seq
    assert _outcome(read_part, data, first, last) == _outcome(read_part_python, data, first, last)
    rng = random.Random(7)
    for _ in range(300):
        damaged = bytearray(data)
        at = rng.randrange(len(damaged))
        damaged[at] ^= rng.choice((0x01, 0x80, 0xFF, rng.randrange(1, 256)))
        cut = bytes(damaged[: rng.randrange(len(damaged))]) if rng.random() < 0.1 else bytes(damaged)
        assert _outcome(read_part, cut, first, last) == _outcome(read_part_python, cut, first, last), at


# ------------------------------------------------------------------------------------------ tampering


def test_a_flipped_byte_of_a_part_is_refused_naming_the_part(tmp_path):
    """`compact` (which reads the snapshot it builds on) exits 4, as for any object that does not verify;
    `restore` stops naming the part, with the same code (4), as it does for a damaged raw export."""
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=8)
    windows = read_windows(location).windows
    with freeze_time(SOON):
        compact(location, up_to_seq=windows[-2].last_seq)
    manifest = newest_snapshot(location)
    assert manifest is not None
    key = manifest.objects[0].key
    flip_byte(location.store.url.removeprefix("file://"), key, random.Random(1).randrange(manifest.objects[0].size))
    config = tmp_path / "ledgerdr.toml"
    config.write_text(f'[source]\nkind = "embedded"\npath = "{tmp_path / "ledger.db"}"\n\n'
                      f'[repositories.primary]\nurl = "{tmp_path / "primary"}"\n')
    with freeze_time(SOON):
        result = CliRunner().invoke(cli, ["compact", "--config", str(config)])
    assert result.exit_code == 4 and key in result.output, result.output
    result = CliRunner().invoke(cli, ["restore", "--from", location.store.url, "--to",
                                      f"embedded:{tmp_path / 'r.db'}", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 4 and key in result.output and "sha256" in result.output, result.output


def test_a_forged_part_with_a_forged_checksum_is_refused_by_its_revision_hashes(tmp_path):
    """Past the checksum (the manifest rewritten too), the re-hash, order, range and counts refuse every
    change to what the revision hashes cover; only block numbers (not in any revision hash, as in QLDB)
    are bound by the checksum alone, and even they must stay inside the snapshot's range."""
    location, manifest = _compacted(tmp_path)
    key = manifest.objects[0].key
    original = location.store.get(key)
    parsed = read_part(original, manifest.first_seq, manifest.last_seq)
    rng = random.Random(3)
    refused = 0
    for _ in range(30):
        damaged = bytearray(original)
        at = rng.randrange(8, len(damaged))  # past the magic (a damaged magic is plainly unreadable)
        damaged[at] ^= rng.randrange(1, 256)
        _forge(location, manifest, key, bytes(damaged))
        (unit,) = snapshot_units(newest_snapshot(location))
        try:
            load_snapshot_unit(location.store, unit)
        except VerificationError as exc:
            refused += 1
            assert all(p.key == key for p in exc.problems)
            continue
        again = read_part(bytes(damaged), manifest.first_seq, manifest.last_seq)
        changed = [(a, b) for a, b in zip(parsed.rows, again.rows, strict=True) if a != b]
        assert all(a[:7] == b[:7] and a[8] == b[8] for a, b in changed), f"byte {at} changed covered data"
    assert refused >= 20  # nearly every flip lands in covered bytes


# ------------------------------------------------------------------------------------------ restoring


@pytest.mark.parametrize("workers", [0, 2])
def test_format_2_snapshot_restore_equals_raw_restore_and_goes_through_rows(tmp_path, workers):
    _, location = backed_up_ledger(tmp_path, minutes=4, per_minute=8)
    windows = read_windows(location).windows
    with freeze_time(SOON):
        compact(location, up_to_seq=windows[-2].last_seq, part_bytes=6_000)
    manifest = newest_snapshot(location)
    assert manifest is not None and manifest.format_version == 2 and len(manifest.objects) > 1
    if native.ionhash is not None:
        assert all(load_snapshot_rows(location.store, u) is not None for u in snapshot_units(manifest))
    _assert_snapshot_restore_equals_raw(location, manifest, tmp_path, workers=workers)


def _assert_snapshot_restore_equals_raw(location: Location, manifest: SnapshotManifest, tmp_path, *,
                                        workers: int) -> None:
    raw = restore(location.store.url, f"embedded:{tmp_path / 'raw.db'}",
                  RestoreOptions(workers=workers, state_dir=tmp_path / "s1", use_snapshots=False))
    snap = restore(location.store.url, f"embedded:{tmp_path / 'snap.db'}",
                   RestoreOptions(workers=workers, state_dir=tmp_path / "s2"))
    assert raw.verdict and snap.verdict, (raw.problems, snap.problems)
    assert snap.snapshot_last_seq == manifest.last_seq
    assert snap.target_state_digest == raw.target_state_digest == snap.journal_state_digest


def test_a_format_1_snapshot_still_restores_to_the_raw_state(tmp_path):
    location = format_1_repository(tmp_path)
    manifest = newest_snapshot(location)
    assert manifest is not None and manifest.format_version == 1
    assert load_snapshot_rows(location.store, snapshot_units(manifest)[0]) is None  # read as revisions
    _assert_snapshot_restore_equals_raw(location, manifest, tmp_path, workers=0)


def test_compaction_builds_format_2_on_a_format_1_base(tmp_path):
    location = format_1_repository(tmp_path)
    base = newest_snapshot(location)
    assert base is not None and base.format_version == 1
    assert back_up_one_more_minute(tmp_path / "ledger.db", location, 3) == 1
    with freeze_time(SOON):
        report = compact(location)
    manifest = newest_snapshot(location)
    assert manifest is not None and report.base_snapshot == base.last_seq
    assert manifest.format_version == 2 and manifest.last_seq > base.last_seq
    _assert_snapshot_restore_equals_raw(location, manifest, tmp_path, workers=0)


def test_metadata_a_target_would_not_rebuild_falls_back_to_format_1():
    """A txTime of other precision cannot be rebuilt from epoch ms: format 2 refuses to hold it."""
    record = _record("a", "d", 0, 1_000, {"x": 1})
    record["metadata"]["txTime"] = datetime(2026, 1, 5, 10, 0, 0, 123_456, tzinfo=UTC)
    record["hash"] = dot(ion_hash(record["metadata"]), ion_hash({"x": 1}))
    parsed = read_part(encode_part([record]), 0, 10)
    assert [detail for _, detail in parsed.problems] == ["hash does not recompute from metadata and data"]


def test_postgres_restores_both_snapshot_formats_to_the_raw_state(tmp_path, postgres_server):
    """PostgreSQL takes revisions (`applies_rows` False): a format-2 part is read and checked in one C pass,
    then decoded for it; format 1 as before. Both end at the raw restore's state digest."""
    location = format_1_repository(tmp_path)
    assert back_up_one_more_minute(tmp_path / "ledger.db", location, 3) == 1
    v1 = newest_snapshot(location)
    second = Location(FileStore(tmp_path / "second"), "")
    shutil.copytree(tmp_path / "primary", tmp_path / "second")
    with freeze_time(SOON):
        compact(second)
    v2 = newest_snapshot(second)
    assert v1 is not None and v2 is not None and (v1.format_version, v2.format_version) == (1, 2)
    digests = []
    for name, repository, use_snapshots in (("raw", location, False), ("v1", location, True), ("v2", second, True)):
        with postgres_server.fresh_database(uri=True) as url:
            report = restore(repository.store.url, url, RestoreOptions(workers=0, state_dir=tmp_path / name,
                                                                       use_snapshots=use_snapshots))
        assert report.verdict, (name, report.problems)
        assert (report.snapshot_last_seq is not None) == use_snapshots
        digests.append(report.target_state_digest)
    assert len(set(digests)) == 1
