"""Redacted data leaves every stored copy (issue 16, item 13).

After `EXEC redact_revision` the data must be gone from the ledger's files (blocks, history, the WAL and
free pages), from every restore target (embedded, PostgreSQL) and standby — also those that held it
before the redaction reached them — and from every export taken after the redaction, which carries the
revision's `dataHash` only. Exports taken *before* the redaction keep it until `prune` removes them once
a snapshot with the redaction applied covers them.

Each check reads the raw bytes of every file a component leaves (SQLite files and their WAL included)
and looks for a marker that appears nowhere else: the data goes in as a statement *parameter*, since a
literal in the statement text is part of the journal and QLDB's redaction leaves it too.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.compact import compact
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.exports import verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.prune import prune
from ledgerdr.restore.run import RestoreOptions, restore
from ledgerdr.restore.standby import follow_once
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import T0

MARKER = "erase-me-Q7ZK4-9f31c0d2"
POLICY = BackupPolicy(interval=timedelta(minutes=1))


def holding(root: Path, marker: str = MARKER) -> list[str]:
    """Every file under `root` whose raw bytes contain the marker (UTF-8, as Ion and JSON store it)."""
    needle = marker.encode()
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return sorted(found)


def _backup(root: Path, location: Location, minute: int) -> int:
    source = EmbeddedSource(root / "ledger" / "ledger.db")
    try:
        with freeze_time(T0 + timedelta(minutes=minute, seconds=6)):
            return len(run_backup(source, location, POLICY).recorded)
    finally:
        source.close()


def _redact_old_revision(ledger: Ledger) -> None:
    (old,) = ledger.execute("SELECT * FROM history(Patient) AS h WHERE h.metadata.version = 0")
    (table_id,) = ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Patient'")
    ledger.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, old["metadata"]["id"])


def test_redacted_data_leaves_the_ledger_restores_standbys_and_later_exports(tmp_path, postgres_server):
    ledger_dir, repo_dir = tmp_path / "ledger", tmp_path / "repo"
    ledger = Ledger.create(ledger_dir / "ledger.db")
    location = Location(FileStore(repo_dir), "")
    with freeze_time(T0 + timedelta(seconds=7)):
        ledger.execute("CREATE TABLE Patient")
        ledger.execute("CREATE INDEX ON Patient (ssn)")
        ledger.execute("INSERT INTO Patient ?", {"name": "Ann", "ssn": " ".join([MARKER] * 300)})
        ledger.execute("UPDATE Patient SET ssn = 'replaced'")
    ledger.close()
    assert _backup(tmp_path, location, 1) == 1
    early = EmbeddedTarget(tmp_path / "early-standby.db")  # holds the data before the redaction reaches it
    follow_once(location, early)
    before = holding(tmp_path)  # the marker is findable, so the checks below can fail
    assert "ledger/ledger.db" in before and any(f.startswith("early-standby.db") for f in before)

    ledger = Ledger.open(ledger_dir / "ledger.db")
    with freeze_time(T0 + timedelta(minutes=1, seconds=7)):
        _redact_old_revision(ledger)
        assert holding(ledger_dir) == []  # while the ledger is open: file, WAL and shared memory
        ledger.execute("INSERT INTO Patient ?", {"name": "Bob", "ssn": "other"})
    ledger.close()
    assert holding(ledger_dir) == []
    assert _backup(tmp_path, location, 2) == 1
    follow_once(location, early)
    early.close()
    assert [f for f in holding(tmp_path) if f.startswith("early-standby.db")] == []  # its file, WAL, shm

    # Every export taken after the redaction carries the dataHash only, and verifies.
    ledger = Ledger.open(ledger_dir / "ledger.db", read_only=True)
    with freeze_time(T0 + timedelta(minutes=3)):
        for fmt in ExportFormat:
            export_journal(ledger, start=T0, end=T0 + timedelta(minutes=2), store=FileStore(tmp_path / "after"),
                           prefix=fmt.value.lower(), fmt=fmt)
    ledger.close()
    assert holding(tmp_path / "after") == []
    for fmt in ExportFormat:
        report = verify_location(FileStore(tmp_path / "after"), fmt.value.lower() + "/")
        assert not report.problems and report.revisions_chain_only.get("redacted") == 1

    # A restore from raw exports, one of them taken before the redaction, and a standby started afterwards.
    raw = restore(location.store.url, f"embedded:{tmp_path / 'restored' / 'raw.db'}",
                  RestoreOptions(workers=0, state_dir=tmp_path / "restored" / "state", use_snapshots=False))
    assert raw.verdict, raw.problems
    late = EmbeddedTarget(tmp_path / "late-standby" / "standby.db")
    follow_once(location, late)
    late.close()
    assert holding(tmp_path / "restored") == [] and holding(tmp_path / "late-standby") == []
    with postgres_server.fresh_database(uri=True) as url:
        report = restore(location.store.url, url, RestoreOptions(workers=0, state_dir=tmp_path / "pg-state",
                                                                 use_snapshots=False))
        assert report.verdict, report.problems
        assert _postgres_files_holding(url) == []

    # The repository: exports taken before the redaction keep the data until prune removes them once a
    # snapshot with the redaction applied covers them.
    exported = holding(repo_dir)
    assert exported and all(key.startswith("exports/") for key in exported)
    with freeze_time(T0 + timedelta(minutes=2, seconds=8)):
        compact(location)
    assert holding(repo_dir) == exported  # the snapshot itself holds the dataHash only
    with freeze_time(T0 + timedelta(days=60)):  # the exports' 30-day retention has ended
        pruned = prune(location, confirm=True)
    assert set(exported) <= {item.key for item in pruned.items if item.action == "deleted"}
    assert holding(repo_dir) == []


def _postgres_files_holding(url: str) -> list[str]:
    """Every file of the cluster holding the marker, PostgreSQL's WAL aside (docs/architecture.md), and
    every row of the restored schema whose text holds it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # shared buffers to the table files, so the files are what is stored
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ledgerdr'").fetchall()
        for (table,) in rows:
            hit = conn.execute(f'SELECT count(*) FROM ledgerdr."{table}" t WHERE t::text LIKE %s',
                               (f"%{MARKER}%",)).fetchone()[0]
            assert hit == 0, table
    return [f for f in holding(data_dir) if not f.startswith("pg_wal/")]


def test_a_reader_on_an_old_snapshot_delays_the_wal_truncation_only_until_the_next_commit(tmp_path):
    ledger = Ledger.create(tmp_path / "ledger" / "ledger.db")
    with freeze_time(T0):
        ledger.execute("CREATE TABLE Patient")
        ledger.execute("INSERT INTO Patient ?", {"name": "Ann", "ssn": MARKER})
        ledger.execute("UPDATE Patient SET ssn = 'replaced'")
        reader = sqlite3.connect(tmp_path / "ledger" / "ledger.db")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM blocks").fetchone()  # holds the snapshot before the redaction
        _redact_old_revision(ledger)
        assert "ledger.db-wal" in holding(tmp_path / "ledger")  # the reader may still need those pages
        reader.execute("COMMIT")
        reader.close()
        ledger.execute("INSERT INTO Patient ?", {"name": "Bob"})  # the next commit truncates the WAL
        assert holding(tmp_path / "ledger") == []
    ledger.close()


@pytest.mark.parametrize("group", [1, 2], ids=["alone", "in-a-group"])
def test_a_redaction_committed_by_group_commit_leaves_no_bytes_in_the_wal(tmp_path, group):
    """`serve` commits through `Ledger.commit_group` (a lone session's commit as a group of one): the WAL is
    truncated after a redaction there as after `Ledger.execute`'s commit."""
    path = tmp_path / "ledger" / "ledger.db"
    with freeze_time(T0), Ledger.create(path) as session, Ledger.open(path) as committer:
        session.execute("CREATE TABLE Patient")
        session.execute("INSERT INTO Patient ?", {"name": "Ann", "ssn": MARKER})
        session.execute("UPDATE Patient SET ssn = 'replaced'")
        assert "ledger.db-wal" in holding(tmp_path / "ledger")
        (old,) = session.execute("SELECT * FROM history(Patient) AS h WHERE h.metadata.version = 0")
        (table_id,) = session.execute(
            "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Patient'")
        redact = session.begin()
        redact.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, old["metadata"]["id"])
        others = [session.begin() for _ in range(group - 1)]
        for other in others:
            other.execute("INSERT INTO Patient ?", {"name": "Bob"})
        results = committer.commit_group([redact, *others])
        assert not any(isinstance(result, Exception) for result in results), results
        assert holding(tmp_path / "ledger") == []
