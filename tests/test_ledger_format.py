"""The embedded ledger's file format (docs/format.md, "Embedded ledger file"): new ledgers and restore targets are
format 2 (`history` a rowid table with a unique index on its key); a format-1 file (`history` WITHOUT ROWID, keyed)
keeps opening, serving, taking writes, being restored into, resumed and promoted, unchanged."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from ledgerdr import native
from ledgerdr.errors import LedgerError
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.storage import FORMAT_VERSION, Storage
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.restore.rows import load_rows
from ledgerdr.restore.worker import apply_unit
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import ledger_with_a_redaction

# A ledger file written by ledgerdr before format 2 (tests/data/sidecar-v1/PROVENANCE.md)
OLD_LEDGER = Path(__file__).resolve().parent / "data" / "sidecar-v1" / "ledger.db"


_QUERIES = {name: f"SELECT * FROM {name}" for name in ("history", "documents", "blocks", "merkle_nodes")} | {
    # index ids are a target's own
    "index_entries": "SELECT i.table_id, i.field, e.key, e.doc_id FROM index_entries e JOIN indexes i USING (index_id)"}


def _layout(path: Path) -> tuple[int, str]:
    """(format_version, the history table's definition) of a ledger file."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0]
        return version, conn.execute("SELECT sql FROM sqlite_master WHERE name = 'history'").fetchone()[0]
    finally:
        conn.close()


def _rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {name: sorted(conn.execute(query).fetchall(), key=repr) for name, query in _QUERIES.items()}
    finally:
        conn.close()


def _format_1_file(path: Path) -> None:
    """An empty ledger file of format 1, whose history table is defined as ledgerdr defined it before format 2."""
    Ledger.create(path, format_version=1).close()
    assert _layout(path) == (1, _layout(OLD_LEDGER)[1])


def test_a_new_ledger_is_format_2_and_its_history_keeps_each_key_once(tmp_path):
    with Ledger.create(tmp_path / "new.db") as ledger:
        ledger.execute("CREATE TABLE Person")
        ledger.execute("INSERT INTO Person ?", {"name": "a"})
        ledger.execute("UPDATE Person SET name = 'b'")
        row = ledger.storage.conn.execute("SELECT rowid, * FROM history").fetchall()[0]
        with pytest.raises(sqlite3.IntegrityError):  # the unique key index: one row per (table, document, version)
            ledger.storage.conn.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row[1:])
        ledger.storage.conn.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row[1:])
        assert ledger.storage.conn.execute("SELECT count(*) FROM history").fetchone()[0] == 2
        assert [r["data"]["name"] for r in ledger.execute("SELECT * FROM history(Person)")] == ["a", "b"]
    version, definition = _layout(tmp_path / "new.db")
    assert version == FORMAT_VERSION == 2 and "WITHOUT ROWID" not in definition and "UNIQUE" in definition
    with pytest.raises(LedgerError, match="format version 3"):
        Storage.create(tmp_path / "three.db", durability="normal", meta={}, format_version=3)


def test_a_ledger_written_before_format_2_opens_serves_and_takes_writes_unchanged(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(OLD_LEDGER, path)
    before = _layout(path)
    with Ledger.open(path) as ledger:
        ledger.execute("CREATE INDEX ON Person (name)")
        count = len(ledger.execute("SELECT * FROM history(Person)"))
        doc = ledger.execute("SELECT id FROM Person BY id")[0]["id"]
        ledger.execute("UPDATE Person AS p BY id SET p.name = 'renamed' WHERE id = ?", doc)
        assert ledger.execute("SELECT name FROM Person BY id WHERE id = ?", doc)[0]["name"] == "renamed"
        assert ledger.execute("SELECT VALUE p_id FROM Person AS p BY p_id WHERE p.name = 'renamed'") == [doc]
        history = ledger.execute("SELECT h.metadata.version, h.data.name FROM history(Person) AS h "
                                 "WHERE h.metadata.id = ?", doc)
        assert len(ledger.execute("SELECT * FROM history(Person)")) == count + 1
        assert history[-1]["name"] == "renamed" and [h["version"] for h in history] == sorted(h["version"]
                                                                                           for h in history)
        first = ledger.execute("SELECT h.blockAddress, h.metadata.version FROM history(Person) AS h "
                               "WHERE h.metadata.id = ? AND h.metadata.version = 0", doc)[0]
        table_id = ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Person'")[0]
        ledger.execute("EXEC redact_revision ?, ?, ?", first["blockAddress"], table_id, doc)
        digest = ledger.get_digest()
    assert _layout(path) == before and before[0] == 1
    with Ledger.open(path, read_only=True) as again:
        assert again.get_digest() == digest
        assert again.storage.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.skipif(native.journal is None, reason="the C verifier's rows (apply_rows) are not in use")
def test_a_format_1_target_is_restored_into_resumed_and_promoted_as_a_format_2_one(tmp_path):
    """A restore into a format-1 file, cut after half its units (a unit re-delivered too) and resumed, stores the
    rows a restore into a new (format-2) file stores, verifies, promotes and takes writes; the file stays format 1."""
    primary = ledger_with_a_redaction(tmp_path)
    new = restore(primary.store.url, f"embedded:{tmp_path / 'new.db'}",
                  RestoreOptions(workers=0, state_dir=tmp_path / "new-state"))
    assert new.verdict and _layout(tmp_path / "new.db")[0] == 2

    old_path = tmp_path / "old.db"
    _format_1_file(old_path)
    plan = plan_restore(primary)
    target = EmbeddedTarget(old_path)
    for unit in plan.units[: len(plan.units) // 2]:
        apply_unit(primary, target, unit, plan.ledger_name)
    rows = next(r for r in (load_rows(primary.store, u) for u in plan.units[:1]) if r is not None)
    assert target.apply_rows("re-delivered", list(rows.tables.values()), rows.rows, rows.blocks, rows.last_block)
    target.close()  # the restore is cut here: no finalize
    resumed = restore(primary.store.url, f"embedded:{old_path}", RestoreOptions(workers=0, state_dir=tmp_path / "s"))
    assert resumed.verdict and resumed.target_state_digest == new.target_state_digest
    assert _rows(old_path) == _rows(tmp_path / "new.db")

    for path in (old_path, tmp_path / "new.db"):
        target = EmbeddedTarget(path)
        assert digest_of_target(target).digest == new.journal_state_digest
        target.promote("after")
        target.close()
        with Ledger.open(path) as ledger:
            ledger.execute("INSERT INTO Person ?", {"after": "promote"})
            assert len(ledger.execute("SELECT * FROM Person AS p WHERE p.after = 'promote'")) == 1
    assert _layout(old_path)[0] == 1 and "WITHOUT ROWID" in _layout(old_path)[1]
