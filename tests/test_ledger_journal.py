"""The embedded ledger's journal: exports in QLDB's layout verify in every format, the digest is the
Merkle root of all block hashes, proofs fold to it, tampering is detected, redaction keeps the chain
verifying, and an Ion-binary export is a byte copy of the stored blocks."""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from amazon.ion import simpleion
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.errors import ConfigError, LedgerError
from ledgerdr.journal.codecs import ExportFormat, read_ion_value
from ledgerdr.journal.exports import verify_location
from ledgerdr.journal.hashing import ion_hash, merkle_root
from ledgerdr.journal.layout import parse_data_object_key
from ledgerdr.journal.proofs import fold_proof, tree_proof
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.ledger.workload import run_workload
from ledgerdr.stores.file import FileStore

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def now_ms() -> datetime:
    """A window end after every block committed so far, and not in the future."""
    time.sleep(0.002)
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def export_all(ledger: Ledger, root: Path, fmt: ExportFormat, prefix: str = "exports/", **options):
    store = FileStore(root)
    return store, export_journal(
        ledger, start=EPOCH, end=now_ms(), store=store, prefix=prefix, fmt=fmt, **options
    )


def block_hashes(ledger: Ledger) -> list[bytes]:
    return [row.block_hash for row in ledger.iter_blocks()]


@pytest.fixture
def workload_ledger(tmp_path):
    with Ledger.create(tmp_path / "ledger.db", durability="normal") as ledger:
        run_workload(ledger, 60, seed=7)
        yield ledger


# ------------------------------------------------------------------------------- random workloads


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    transactions=st.integers(2, 40),
    tables=st.integers(1, 4),
    max_blocks=st.sampled_from([1, 7, 10_000]),
)
def test_random_workloads_export_and_verify_in_every_format(seed, transactions, tables, max_blocks):
    with tempfile.TemporaryDirectory() as tmp:
        with Ledger.create(Path(tmp) / "l.db", durability="normal") as ledger:
            stats = run_workload(ledger, transactions, seed=seed, tables=tables)
            digest = ledger.get_digest()
            assert digest["digest"] == merkle_root(block_hashes(ledger))
            for fmt in ExportFormat:
                store, result = export_all(
                    ledger, Path(tmp) / fmt.value, fmt, max_blocks_per_object=max_blocks
                )
                assert (result.first_seq, result.last_seq, result.blocks) == (
                    0,
                    ledger.block_count - 1,
                    ledger.block_count,
                )
                assert result.revisions == stats.documents_written
                report = verify_location(store, "exports/")
                assert report.ok, report.problems
                assert report.blocks == ledger.block_count and report.revisions == result.revisions
                assert report.tip_hash is not None and report.digest is not None
                if fmt.is_ion:
                    assert report.revisions_fully_verified == result.revisions


def test_digest_is_the_merkle_root_and_block_proofs_fold_to_it(workload_ledger):
    hashes = block_hashes(workload_ledger)
    digest = workload_ledger.get_digest()
    assert digest["digest"] == merkle_root(hashes)
    assert digest["digestTipAddress"] == {
        "strandId": workload_ledger.strand_id,
        "sequenceNo": len(hashes) - 1,
    }
    rng = random.Random(1)
    for _ in range(40):
        tip = rng.randrange(len(hashes))
        seq = rng.randrange(tip + 1)
        block, proof = workload_ledger.get_block(seq, tip=tip)
        assert bytes(block["blockHash"]) == hashes[seq]
        assert proof == tree_proof(hashes[: tip + 1], seq)
        assert fold_proof(hashes[seq], proof) == merkle_root(hashes[: tip + 1])
    with pytest.raises(LedgerError, match="outside the journal"):
        workload_ledger.get_block(len(hashes))


def test_revision_proofs_fold_from_the_revision_hash_to_the_digest(workload_ledger):
    digest = workload_ledger.get_digest()
    tip = digest["digestTipAddress"]
    checked = 0
    for row in workload_ledger.iter_blocks():
        block = simpleion.loads(row.ion)
        for revision in block.get("revisions") or ():
            if "metadata" not in revision:
                continue
            found, proof = workload_ledger.get_revision(row.seq, revision["metadata"]["id"], tip=tip)
            assert found["hash"] == revision["hash"]
            assert fold_proof(bytes(found["hash"]), proof) == digest["digest"]
            checked += 1
    assert checked > 50


def test_ion_binary_export_is_a_byte_copy_of_the_stored_blocks(workload_ledger, tmp_path):
    store, result = export_all(
        workload_ledger, tmp_path / "out", ExportFormat.ION_BINARY, max_blocks_per_object=9
    )
    assert len(result.objects) > 1
    for key, size, sha256 in result.objects:
        name = parse_data_object_key(key)
        stored = b"".join(row.ion for row in workload_ledger.iter_blocks(name.first, name.last))
        assert store.get(key) == stored and size == len(stored) and store.head(key).sha256 == sha256


def test_manifests_and_keys_follow_qldb_layout(workload_ledger, tmp_path):
    store, result = export_all(
        workload_ledger,
        tmp_path / "out",
        ExportFormat.ION_TEXT,
        prefix="dr/exports",
        max_blocks_per_object=25,
    )
    assert result.started_key == f"dr/exports/{result.export_id}.started.manifest"
    assert (
        result.completed_key
        == f"dr/exports/{result.export_id}.{workload_ledger.strand_id}.completed.manifest"
    )
    started = read_ion_value(store.get(result.started_key))
    assert started["exportId"] == result.export_id and started["ledgerName"] == workload_ledger.name
    assert started["outputFormat"] == "ION_TEXT" and started["prefix"] == "dr/exports/"
    completed = read_ion_value(store.get(result.completed_key))
    assert list(completed["keys"]) == [key for key, _, _ in result.objects]
    ranges = [parse_data_object_key(key) for key in completed["keys"]]
    assert ranges[0].first == 0 and ranges[-1].last == workload_ledger.block_count - 1
    assert all(b.first == a.last + 1 for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(key.startswith("dr/exports/") and key.endswith(".ion") for key in completed["keys"])


def test_objects_never_span_an_hour_and_the_window_selects_by_block_time(tmp_path):
    with freeze_time("2024-03-01T09:50:00Z") as clock:
        with Ledger.create(tmp_path / "l.db", durability="normal") as ledger:
            ledger.execute("CREATE TABLE T")
            for i in range(12):
                clock.tick(timedelta(minutes=7))
                ledger.execute("INSERT INTO T ?", {"i": i})
            clock.tick(timedelta(minutes=1))
            store = FileStore(tmp_path / "out")
            whole = export_journal(
                ledger,
                start=datetime(2024, 3, 1, 9, tzinfo=UTC),
                end=datetime.now(UTC),
                store=store,
                prefix="all/",
                fmt="ION_BINARY",
                max_blocks_per_object=3,
            )
            hour = export_journal(
                ledger,
                start=datetime(2024, 3, 1, 10, tzinfo=UTC),
                end=datetime(2024, 3, 1, 11, tzinfo=UTC),
                store=store,
                prefix="hour/",
                fmt="JSON",
            )
            empty = export_journal(
                ledger,
                start=EPOCH,
                end=EPOCH + timedelta(hours=1),
                store=store,
                prefix="empty/",
                fmt="ION_TEXT",
            )
            times = {row.seq: row.ts_ms for row in ledger.iter_blocks()}
    for key, _, _ in whole.objects:
        name = parse_data_object_key(key)
        hours = {
            datetime.fromtimestamp(times[s] / 1000, UTC).strftime("%Y/%m/%d/%H")
            for s in range(name.first, name.last + 1)
        }
        assert hours == {key.split("/", 1)[1].rsplit("/", 1)[0]}
        assert name.last - name.first < 3
    in_hour = [
        s
        for s, ms in times.items()
        if datetime(2024, 3, 1, 10, tzinfo=UTC).timestamp() * 1000
        <= ms
        < datetime(2024, 3, 1, 11, tzinfo=UTC).timestamp() * 1000
    ]
    assert (hour.first_seq, hour.last_seq, hour.blocks) == (min(in_hour), max(in_hour), len(in_hour))
    assert hour.first_previous_block_hash == ledger_hash(tmp_path, min(in_hour) - 1)
    assert empty.objects == () and empty.first_seq is None
    assert list(read_ion_value(store.get(empty.completed_key))["keys"]) == []
    assert verify_location(store, "all/").ok and verify_location(store, "hour/").ok


def ledger_hash(tmp_path: Path, seq: int) -> bytes:
    with Ledger.open(tmp_path / "l.db") as ledger:
        return next(ledger.iter_blocks(seq, seq)).block_hash


def test_export_refuses_bad_windows_and_reused_ids(workload_ledger, tmp_path):
    store = FileStore(tmp_path / "out")
    with pytest.raises(ConfigError, match="empty or reversed"):
        export_journal(workload_ledger, start=EPOCH, end=EPOCH, store=store, prefix="", fmt="ION_TEXT")
    with pytest.raises(ConfigError, match="future"):
        export_journal(
            workload_ledger,
            start=EPOCH,
            end=datetime.now(UTC) + timedelta(hours=1),
            store=store,
            prefix="",
            fmt="ION_TEXT",
        )
    export_journal(
        workload_ledger, start=EPOCH, end=now_ms(), store=store, prefix="", fmt="JSON", export_id="X1"
    )
    with pytest.raises(Exception, match="X1"):
        export_journal(
            workload_ledger, start=EPOCH, end=now_ms(), store=store, prefix="", fmt="JSON", export_id="X1"
        )


# ------------------------------------------------------------------------------------- tampering


def test_tampering_with_a_block_in_the_sqlite_file_is_detected(workload_ledger, tmp_path):
    rows = list(workload_ledger.iter_blocks())
    victim = next(row for row in rows[5:] if row.revisions)
    target = b"owner"
    assert target in victim.ion
    workload_ledger.close()
    with sqlite3.connect(workload_ledger.path) as conn:  # an attacker with write access to the file
        conn.execute(
            "UPDATE blocks SET ion = ? WHERE seq = ?", (victim.ion.replace(target, b"ownex", 1), victim.seq)
        )
    with Ledger.open(workload_ledger.path) as reopened:
        store, _ = export_all(reopened, tmp_path / "out", ExportFormat.ION_BINARY)
    report = verify_location(store, "exports/")
    assert not report.ok
    assert any(f"sequenceNo:{victim.seq}" in (p.block_address or "") for p in report.problems)


def test_tampering_with_an_exported_object_is_detected(workload_ledger, tmp_path):
    store, result = export_all(
        workload_ledger, tmp_path / "out", ExportFormat.ION_TEXT, max_blocks_per_object=20
    )
    key = result.objects[1][0]
    path = tmp_path / "out" / key
    data = bytearray(path.read_bytes())
    position = data.index(b"owner") + 2
    data[position] ^= 0x01
    os.chmod(path, 0o644)  # the file store writes objects read-only
    path.write_bytes(bytes(data))
    report = verify_location(store, "exports/")
    assert not report.ok
    assert any(p.key == key for p in report.problems)
    expected = {k: sha for k, _, sha in result.objects}
    assert any(p.key == key for p in verify_location(store, "exports/", expected=expected).problems)


# ------------------------------------------------------------------------------------- redaction


def test_redaction_replaces_data_by_its_hash_and_the_chain_still_verifies(tmp_path):
    with Ledger.create(tmp_path / "l.db") as ledger:
        ledger.execute("CREATE TABLE Person")
        (doc,) = ledger.execute("INSERT INTO Person ?", {"name": "Ann", "ssn": "123-45-6789"})
        ledger.execute("UPDATE Person SET ssn = 'redacted-by-app'")
        (old,) = ledger.execute("SELECT * FROM history(Person) AS h WHERE h.metadata.version = 0")
        table_id = ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables")[0]
        stored_before = next(ledger.iter_blocks(old["blockAddress"]["sequenceNo"]))
        request = ledger.execute(
            "EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc["documentId"]
        )
        assert request == [
            {
                "blockAddress": old["blockAddress"],
                "tableId": table_id,
                "documentId": doc["documentId"],
                "version": 0,
            }
        ]
        redacting = simpleion.loads(ledger.last_block().ion)
        assert redacting["redactionInfo"]["revisions"][0]["documentId"] == doc["documentId"]

        history = ledger.execute("SELECT * FROM history(Person) AS h WHERE h.metadata.version = 0")
        assert "data" not in history[0] and history[0]["dataHash"] == ion_hash(old["data"])
        assert history[0]["hash"] == old["hash"]
        stored_after = next(ledger.iter_blocks(old["blockAddress"]["sequenceNo"]))
        assert b"123-45-6789" in stored_before.ion and b"123-45-6789" not in stored_after.ion
        assert stored_after.block_hash == stored_before.block_hash
        assert ledger.execute("SELECT VALUE ssn FROM Person") == ["redacted-by-app"]
        with pytest.raises(LedgerError, match="already redacted"):
            ledger.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc["documentId"])
        digest = ledger.get_digest()["digest"]
        _, proof = ledger.get_revision(old["blockAddress"]["sequenceNo"], doc["documentId"])
        assert fold_proof(bytes(old["hash"]), proof) == digest
        for fmt in ExportFormat:
            store, _ = export_all(ledger, tmp_path / fmt.value, fmt)
            report = verify_location(store, "exports/")
            assert report.ok, report.problems
            assert report.revisions_chain_only.get("redacted") == 1


def test_empty_ledger_has_no_digest(tmp_path):
    with Ledger.create(tmp_path / "l.db") as ledger:
        with pytest.raises(LedgerError, match="no blocks"):
            ledger.get_digest()
        assert ledger.block_count == 0 and ledger.last_block() is None and ledger.first_block_time() is None
