"""`ledgerdr restore --to postgresql://…` end to end, through the real CLI into a private PostgreSQL server.

One embedded ledger is backed up three times (Ion text, Ion binary, JSON) so every format restores the
same journal: the state digest read back from PostgreSQL must equal the journal's, the embedded
restore's, and across formats; JSON restores name what lost its Ion types. Re-runs and second
restores must be identical row for row, `--until-block` must stop exactly there, hostile table and
field names (quotes, semicolons, > 63 bytes, unicode) must land in quoted, injectively mapped tables,
and a tampered object must be refused before any of its rows reach PostgreSQL.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from psycopg import sql

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.cli import cli
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.hashing import ion_hash
from ledgerdr.journal.ids import new_id
from ledgerdr.journal.writer import DocumentWrite, JournalWriter
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.restore import plan_restore
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location, open_location
from ledgerdr.stores.faults import flip_byte
from ledgerdr.targets.digest import digest_of_target
from ledgerdr.targets.embedded import EmbeddedTarget
from ledgerdr.targets.postgres import PostgresTarget
from support.flows import T0
from support.qldb_export_factory import write_qldb_export

FORMATS = (ExportFormat.ION_TEXT, ExportFormat.ION_BINARY, ExportFormat.JSON)
MINUTES = 4


@pytest.fixture(scope="module")
def ledger(tmp_path_factory) -> tuple[Path, dict[ExportFormat, str]]:
    """One ledger with history over MINUTES one-minute windows, backed up once per export format."""
    root = tmp_path_factory.mktemp("pg-cli")
    path = root / "ledger.db"
    with Ledger.create(path) as created:
        for minute in range(MINUTES):
            with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
                run_workload(created, 8, seed=40 + minute)
                if minute == 0:
                    created.execute("CREATE TABLE Plain")
                # documents JSON carries without loss (strings, small ints, nesting): a JSON restore keeps
                # them exactly, while the workload's decimals, timestamps and symbols lose their types
                created.execute("INSERT INTO Plain ?", {"name": f"p{minute}", "n": minute, "tags": ["a", {"b": 1}]})
    repositories = {}
    source = EmbeddedSource(path)
    for fmt in FORMATS:
        folder = root / fmt.value.lower()
        with freeze_time(T0 + timedelta(minutes=MINUTES, seconds=6)):
            report = run_backup(source, Location(FileStore(folder), ""),
                                BackupPolicy(interval=timedelta(minutes=1), fmt=fmt))
        assert len(report.recorded) == MINUTES and not report.failed
        repositories[fmt] = str(folder)
    source.close()
    return path, repositories


def restore_cli(source: str, target: str, state: Path, *extra: str) -> tuple[int, dict]:
    """`ledgerdr restore … --json` through click; (exit code, report)."""
    result = CliRunner().invoke(cli, ["restore", "--from", source, "--to", target, "--workers", "0",
                                      "--state-dir", str(state), "--json", *extra])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, orjson.loads(result.stdout)


def target_digest(url: str):
    with PostgresTarget(url) as target:
        return digest_of_target(target)


def snapshot(url: str) -> dict:
    """Every ledger table's history and current rows (all columns) plus the table catalog, for
    comparing two databases row for row."""
    out: dict = {}
    with psycopg.connect(url) as conn, PostgresTarget(url) as target:
        out["_tables"] = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY table_id").format(
            sql.Identifier(target.schema, "_tables"))).fetchall()
        out["_units"] = conn.execute(sql.SQL(
            "SELECT unit_id, last_block_seq, last_block_hash, revisions FROM {} WHERE unit_id NOT LIKE '%%-ddl-%%'"
            " ORDER BY unit_id").format(sql.Identifier(target.schema, "_units"))).fetchall()
        for table in target.tables():
            for name in (table.history_table, table.current_table):
                out[name] = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY id, version").format(
                    sql.Identifier(target.schema, name))).fetchall()
    return out


# ------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("fmt", [ExportFormat.ION_TEXT, ExportFormat.ION_BINARY])
def test_ion_exports_restore_to_the_journal_state(ledger, pg_url, tmp_path, fmt):
    _, repositories = ledger
    code, report = restore_cli(repositories[fmt], pg_url, tmp_path / "state")
    assert code == 0 and report["verdict"], report["problems"]
    assert report["target_state_digest"] == report["journal_state_digest"]
    assert report["type_lost"] == 0 and report["units_applied"] == report["units"] == MINUTES
    digest = target_digest(pg_url)  # read back independently of the restore's own comparison
    assert digest.digest == report["journal_state_digest"] and digest.mismatches == ()
    assert digest.recomputed > 0 and digest.revisions == report["revisions"]
    # the embedded target, restored from the other Ion format, holds the same state
    other = ExportFormat.ION_BINARY if fmt is ExportFormat.ION_TEXT else ExportFormat.ION_TEXT
    code, embedded = restore_cli(repositories[other], f"embedded:{tmp_path / 'e.db'}", tmp_path / "state-e")
    assert code == 0 and embedded["target_state_digest"] == digest.digest


def test_json_export_matches_where_no_type_was_lost_and_names_the_rest(ledger, postgres_server, tmp_path):
    _, repositories = ledger
    with postgres_server.fresh_database(uri=True) as ion_url, postgres_server.fresh_database(uri=True) as json_url:
        assert restore_cli(repositories[ExportFormat.ION_BINARY], ion_url, tmp_path / "s1")[0] == 0
        code, report = restore_cli(repositories[ExportFormat.JSON], json_url, tmp_path / "s2")
        assert code == 0 and report["verdict"], report["problems"]
        # type-lost revisions fall back on the journal's hash, so the digest is the Ion restore's
        assert report["target_state_digest"] == target_digest(ion_url).digest
        assert report["type_lost"] > 0 and len(report["type_lost_examples"]) == min(report["type_lost"], 50)
        ion_rows, json_rows = snapshot(ion_url), snapshot(json_url)
    assert ion_rows.keys() == json_rows.keys()
    named, flagged, compared = set(report["type_lost_examples"]), set(), 0
    names = {row[0]: row[1] for row in ion_rows["_tables"]}
    columns = ("id", "version", "tx_time", "tx_time_ion", "tx_id", "data", "ion", "hash", "data_hash", "deleted",
               "type_lost", "block_seq")
    for row in ion_rows["_tables"]:
        history = row[3]
        for ion_row, json_row in zip(ion_rows[history], json_rows[history], strict=True):
            i, j = dict(zip(columns, ion_row, strict=True)), dict(zip(columns, json_row, strict=True))
            assert (i["id"], i["version"], i["hash"], i["tx_time_ion"], i["tx_id"]) == \
                   (j["id"], j["version"], j["hash"], j["tx_time_ion"], j["tx_id"])
            assert not i["type_lost"]
            if j["type_lost"]:
                flagged.add(f"{names[row[0]]} {j['id']} v{j['version']}")
            else:  # no type lost: the very same Ion value and JSON came back
                assert (j["ion"], j["data"]) == (i["ion"], i["data"])
                compared += 1
    assert compared > 0 and len(flagged) == report["type_lost"] and named <= flagged


# ------------------------------------------------------------------------------------ idempotence


def test_a_rerun_is_harmless_and_two_restores_are_identical(ledger, postgres_server, tmp_path):
    _, repositories = ledger
    source = repositories[ExportFormat.ION_BINARY]
    with postgres_server.fresh_database(uri=True) as a, postgres_server.fresh_database(uri=True) as b:
        first = restore_cli(source, a, tmp_path / "a")[1]
        before = snapshot(a)
        again = restore_cli(source, a, tmp_path / "a-again")[1]
        assert first["verdict"] and again["verdict"]
        assert again["target_state_digest"] == first["target_state_digest"]
        assert snapshot(a) == before  # nothing added, nothing changed
        assert restore_cli(source, b, tmp_path / "b")[1]["verdict"]
        assert snapshot(b) == before  # a second restore is identical row for row, names and all
    assert any(row[4] for row in before["_tables"])  # the DDL's CREATE INDEX came through


def test_until_block_restores_exactly_that_state(ledger, pg_url, tmp_path):
    source_path, repositories = ledger
    cut = 9
    code, report = restore_cli(repositories[ExportFormat.ION_TEXT], pg_url, tmp_path / "s", "--until-block", str(cut))
    assert code == 0 and report["verdict"] and report["last_seq"] == cut
    code, embedded = restore_cli(repositories[ExportFormat.ION_BINARY], f"embedded:{tmp_path / 'cut.db'}",
                                 tmp_path / "e", "--until-block", str(cut))
    assert code == 0 and embedded["target_state_digest"] == report["target_state_digest"] == \
        target_digest(pg_url).digest
    source = Ledger.open(source_path)
    try:
        names = {t.table_id: t.name for t in source._storage.tables()}
        expected_history: dict[str, int] = {}
        newest: dict[tuple[str, str], tuple[int, bool]] = {}
        for name in set(names.values()):
            for row in source.execute(f"SELECT * FROM history({name})"):
                if row["blockAddress"]["sequenceNo"] > cut:
                    continue
                expected_history[name] = expected_history.get(name, 0) + 1
                key = (name, str(row["metadata"]["id"]))
                version = int(row["metadata"]["version"])
                if key not in newest or version > newest[key][0]:
                    newest[key] = (version, "data" in row and row["data"] is not None)
    finally:
        source.close()
    with psycopg.connect(pg_url) as conn, PostgresTarget(pg_url) as target:
        tables = target.tables()
        history = {t.table_name: conn.execute(sql.SQL("SELECT count(*), max(block_seq) FROM {}").format(
            sql.Identifier(target.schema, t.history_table))).fetchone() for t in tables}
        current = {(t.table_name, doc): version for t in tables for doc, version in conn.execute(
            sql.SQL("SELECT id, version FROM {}").format(sql.Identifier(target.schema, t.current_table)))}
    assert {name: count for name, (count, _) in history.items()} == expected_history
    assert max(top for _, top in history.values()) <= cut
    assert current == {key: version for key, (version, live) in newest.items() if live}


# ------------------------------------------------------------------------------------ hostile input

LONG_A, LONG_B = "V" * 300 + "A", "V" * 300 + "B"  # equal in their first 300 bytes
HOSTILE_TABLES = ['"; DROP TABLE keep; --', "Robert'); DROP TABLE students;--", LONG_A, LONG_B,
                  "車両テーブル_" * 12, "a-b", "a b", "_tables"]
HOSTILE_FIELDS = ['x"); DROP TABLE keep; --', "Prix €", "it's", "F" * 100]


def quoted(name: str) -> str:
    """A PartiQL quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def test_hostile_table_and_field_names_restore_safely(pg_url, tmp_path):
    """A raw QLDB export whose journal names tables and fields to break SQL and PostgreSQL's 63-byte limit."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.keep (n int)")
        conn.execute("INSERT INTO public.keep VALUES (1)")
    writer = JournalWriter()
    ids = {name: new_id() for name in HOSTILE_TABLES}
    blocks = [writer.commit([f"CREATE TABLE {quoted(n)}" for n in HOSTILE_TABLES], system_revisions=[bytes(32 * [7])])]
    blocks.append(writer.commit([f"CREATE INDEX ON {quoted(HOSTILE_TABLES[0])} ({quoted(HOSTILE_FIELDS[0])})",
                                 f"CREATE INDEX ON {quoted(LONG_A)} ({quoted(HOSTILE_FIELDS[3])})"]))
    documents = {}
    for i, name in enumerate(HOSTILE_TABLES):
        documents[name] = new_id()
        data = {**{field: f"{field}={i}" for field in HOSTILE_FIELDS}, "n": i}
        blocks.append(writer.commit(["INSERT INTO t ?"], [DocumentWrite(name, ids[name], documents[name], 0, data)]))
    write_qldb_export(tmp_path / "raw", blocks, ExportFormat.ION_BINARY)
    code, report = restore_cli(str(tmp_path / "raw"), pg_url, tmp_path / "state")
    assert code == 0 and report["verdict"], report["problems"]
    assert report["target_state_digest"] == report["journal_state_digest"]
    with PostgresTarget(pg_url) as target, psycopg.connect(pg_url) as conn:
        tables = {t.table_name: t for t in target.tables()}
        assert set(tables) == set(HOSTILE_TABLES)
        pg_names = [n for t in tables.values() for n in (t.current_table, t.history_table)]
        # injective, within PostgreSQL's 63-byte limit, and every one exists under exactly that name
        assert len(set(pg_names)) == len(pg_names) and max(len(n.encode()) for n in pg_names) <= 63
        existing = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                               (target.schema,))}
        assert set(pg_names) <= existing
        # the mapping is recorded: in the catalog table and as each table's comment
        recorded = dict(conn.execute(sql.SQL("SELECT table_name, current_table FROM {}").format(
            sql.Identifier(target.schema, "_tables"))).fetchall())
        assert recorded == {name: t.current_table for name, t in tables.items()}
        for name, table in tables.items():
            ident = sql.Identifier(target.schema, table.current_table).as_string(conn)
            assert conn.execute("SELECT obj_description(%s::regclass, 'pg_class')", (ident,)).fetchone() == (name,)
            i = HOSTILE_TABLES.index(name)
            for field in HOSTILE_FIELDS:  # the hostile field names are plain JSON keys, queryable as such
                found = conn.execute(sql.SQL("SELECT id FROM {} WHERE data ->> %s = %s").format(
                    sql.Identifier(target.schema, table.current_table)), (field, f"{field}={i}")).fetchall()
                assert found == [(documents[name],)]
        assert set(tables[HOSTILE_TABLES[0]].indexes) == {HOSTILE_FIELDS[0]}
        assert set(tables[LONG_A].indexes) == {HOSTILE_FIELDS[3]} and tables[LONG_B].indexes == ()
        indexed = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND "
                               "indexname LIKE 'ix\\_%%'", (target.schema, tables[LONG_A].current_table)).fetchall()
        assert len(indexed) == 1 and "F" * 100 in indexed[0][0]
        assert conn.execute("SELECT n FROM public.keep").fetchall() == [(1,)]  # nothing was injected


# ------------------------------------------------------------------------------------ tampering


def test_tampered_object_is_refused_before_anything_from_it_is_applied(ledger, pg_url, tmp_path):
    _, repositories = ledger
    copy = tmp_path / "repo"
    copy_tree(Path(repositories[ExportFormat.ION_BINARY]), copy)
    plan = plan_restore(open_location(str(copy)))
    victim = plan.units[1]
    flip_byte(FileStore(copy), victim.key, -50)
    result = CliRunner().invoke(cli, ["restore", "--from", str(copy), "--to", pg_url, "--workers", "0",
                                      "--state-dir", str(tmp_path / "state"), "--json"])
    # a permanent failure: reported at once, naming the object, never retried into a dead letter
    assert result.exit_code == 4 and victim.key in result.stderr and "sha256" in result.stderr
    with psycopg.connect(pg_url) as conn, PostgresTarget(pg_url) as target:
        assert victim.unit_id not in target.applied_units()
        for table in target.tables():
            for name in (table.history_table, table.current_table):
                seqs = {r[0] for r in conn.execute(sql.SQL("SELECT DISTINCT block_seq FROM {}").format(
                    sql.Identifier(target.schema, name)))}
                assert not seqs & set(range(victim.first_seq, victim.last_seq + 1))
        assert any(target.tables())  # the other units were applied


def copy_tree(src: Path, dst: Path) -> None:
    """A writable copy of a repository (the module's repositories are shared between tests)."""
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def test_embedded_and_postgres_restores_agree_on_every_document(ledger, pg_url, tmp_path):
    """Not only the digest: every live document's Ion value is the same in both targets."""
    _, repositories = ledger
    source = repositories[ExportFormat.ION_BINARY]
    assert restore_cli(source, pg_url, tmp_path / "p")[1]["verdict"]
    assert restore_cli(source, f"embedded:{tmp_path / 'e.db'}", tmp_path / "e")[1]["verdict"]
    embedded = EmbeddedTarget(tmp_path / "e.db")
    try:
        expected = {(r.table_id, r.document_id, r.version, r.current): r.data for r in embedded.iter_state()}
    finally:
        embedded.close()
    with PostgresTarget(pg_url) as target:
        restored = {(r.table_id, r.document_id, r.version, r.current): r.data for r in target.iter_state()}
    assert restored.keys() == expected.keys()
    assert all(ion_hash(restored[k]) == ion_hash(v) for k, v in expected.items() if v is not None)
