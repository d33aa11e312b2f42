"""The embedded ledger's statements and views behave as QLDB documents them; quotas refuse work
cleanly; optimistic concurrency detects conflicts between two `Ledger` objects on one file (two
processes, as far as SQLite is concerned) and the driver retries them."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType
from freezegun import freeze_time

from ledgerdr.errors import LedgerError, OccConflict, QuotaExceeded
from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.ledger import transaction
from ledgerdr.ledger.driver import LedgerDriver
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.index_keys import index_key
from ledgerdr.ledger.storage import IndexRow

ID = re.compile(r"^[0-9A-Za-z]{22}$")


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(path):
    with Ledger.create(path, "test-ledger") as created:
        yield created


@pytest.fixture
def people(ledger):
    ledger.execute("CREATE TABLE Person")
    ledger.execute("CREATE INDEX ON Person (email)")
    ids = [
        r["documentId"]
        for r in ledger.execute(
            "INSERT INTO Person << {'email': 'ann@x', 'age': 40}, {'email': 'bob@x', 'age': 31} >>"
        )
    ]
    return dict(zip(("ann", "bob"), ids, strict=True))


def last_block(ledger):
    return simpleion.loads(ledger.last_block().ion)


# ----------------------------------------------------------------------------------------- DDL


def test_create_table_returns_table_id_and_appears_in_information_schema(ledger):
    (result,) = ledger.execute("CREATE TABLE Vehicle")
    assert ID.match(result["tableId"])
    ledger.execute("CREATE INDEX ON Vehicle (VIN)")
    (row,) = ledger.execute("SELECT * FROM information_schema.user_tables")
    assert row["name"] == "Vehicle" and row["tableId"] == result["tableId"] and row["status"] == "ACTIVE"
    (index,) = row["indexes"]
    assert index["expr"] == "[VIN]" and ID.match(index["indexId"]) and index["status"] == "ONLINE"
    assert ledger.list_tables() == ["Vehicle"]


def test_ddl_is_journaled_as_statement_text_and_one_hash_only_system_revision(ledger):
    ledger.execute("CREATE TABLE Vehicle")
    block = last_block(ledger)
    assert [s["statement"] for s in block["transactionInfo"]["statements"]] == ["CREATE TABLE Vehicle"]
    (revision,) = block["revisions"]
    assert list(revision.keys()) == ["hash"] and len(revision["hash"]) == 32
    assert "documents" not in block["transactionInfo"]


def test_duplicate_table_and_index_are_refused(ledger):
    ledger.execute("CREATE TABLE T")
    ledger.execute("CREATE INDEX ON T (a)")
    with pytest.raises(LedgerError, match="already exists"):
        ledger.execute("CREATE TABLE T")
    with pytest.raises(LedgerError, match="already has an index"):
        ledger.execute("CREATE INDEX ON T (a)")


def test_drop_table_keeps_history_by_table_id_and_undrop_restores_it(ledger, people):
    (table_id,) = ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables")
    assert ledger.execute("DROP TABLE Person") == [{"tableId": table_id}]
    (row,) = ledger.execute("SELECT * FROM information_schema.user_tables")
    assert row["status"] == "INACTIVE"
    with pytest.raises(LedgerError, match="no active table named 'Person'"):
        ledger.execute("SELECT * FROM Person")
    assert len(ledger.execute(f"SELECT * FROM history('{table_id}')")) == 2
    ledger.execute("CREATE TABLE Person")  # the name is free again: another table
    with pytest.raises(LedgerError, match="already named"):
        ledger.execute(f"UNDROP TABLE '{table_id}'")
    ledger.execute("DROP TABLE Person")
    assert ledger.execute(f"UNDROP TABLE '{table_id}'") == [{"tableId": table_id}]
    assert sorted(r["email"] for r in ledger.execute("SELECT * FROM Person")) == ["ann@x", "bob@x"]


def test_drop_index(ledger, people):
    (table,) = ledger.execute("SELECT * FROM information_schema.user_tables")
    index_id = table["indexes"][0]["indexId"]
    ledger.execute(f'DROP INDEX "{index_id}" ON Person WITH (purge = true)')
    assert ledger.execute("SELECT * FROM information_schema.user_tables")[0]["indexes"] == []
    assert ledger.execute("SELECT VALUE age FROM Person WHERE email = 'ann@x'") == [40]


# ---------------------------------------------------------------------------------- DML, views


def test_insert_returns_new_ids_and_user_view_returns_data_only(ledger, people):
    assert all(ID.match(i) for i in people.values()) and len(set(people.values())) == 2
    (doc_id,) = [
        r["documentId"]
        for r in ledger.execute("INSERT INTO Person ?", {"email": "cy@x", "n": Decimal("1.50")})
    ]
    rows = ledger.execute("SELECT * FROM Person WHERE email = 'cy@x'")
    assert rows == [{"email": "cy@x", "n": Decimal("1.50")}]
    (by_id,) = ledger.execute("SELECT * FROM Person AS p BY pid WHERE pid = ?", doc_id)
    assert by_id["pid"] == doc_id and by_id["email"] == "cy@x"


def test_committed_view_has_block_address_hash_data_and_metadata(ledger, people):
    rows = {r["metadata"]["id"]: r for r in ledger.execute("SELECT * FROM _ql_committed_Person")}
    assert set(rows) == set(people.values())
    row = rows[people["ann"]]
    assert row["blockAddress"] == {"strandId": ledger.strand_id, "sequenceNo": 2}
    assert row["data"] == {"email": "ann@x", "age": 40}
    metadata = row["metadata"]
    assert metadata["version"] == 0 and ID.match(metadata["txId"])
    assert metadata["txTime"].microsecond % 1000 == 0 and metadata["txTime"].tzinfo is not None
    assert row["hash"] == dot(ion_hash(metadata), ion_hash(row["data"]))
    (committed,) = ledger.execute(
        "SELECT * FROM _ql_committed_Person AS c WHERE c.metadata.id = ?", people["bob"]
    )
    assert committed["data"]["email"] == "bob@x"


def test_update_and_delete_make_new_versions_and_history_keeps_every_revision(ledger, people):
    assert ledger.execute("UPDATE Person SET age = age + 1 WHERE email = 'ann@x'") == [
        {"documentId": people["ann"]}
    ]
    assert ledger.execute("DELETE FROM Person AS p BY pid WHERE pid = ?", people["bob"]) == [
        {"documentId": people["bob"]}
    ]
    assert ledger.execute("SELECT * FROM Person") == [{"email": "ann@x", "age": 41}]
    committed = ledger.execute("SELECT * FROM _ql_committed_Person")
    assert [(r["metadata"]["id"], r["metadata"]["version"]) for r in committed] == [(people["ann"], 1)]
    history = ledger.execute("SELECT * FROM history(Person)")
    versions = sorted((r["metadata"]["id"], r["metadata"]["version"], "data" in r) for r in history)
    assert versions == sorted(
        [
            (people["ann"], 0, True),
            (people["ann"], 1, True),
            (people["bob"], 0, True),
            (people["bob"], 1, False),
        ]
    )
    delete = next(
        r for r in history if r["metadata"]["id"] == people["bob"] and r["metadata"]["version"] == 1
    )
    assert delete["hash"] == ion_hash(delete["metadata"])  # CONTRACTS §4 delete rule


def test_update_set_remove_nested_paths(ledger, people):
    ledger.execute(
        "UPDATE Person AS p SET p.address.city = 'Lima', p.tags = ['a', 'b'] REMOVE p.age "
        "WHERE p.email = 'bob@x'"
    )
    (row,) = ledger.execute("SELECT * FROM Person WHERE email = 'bob@x'")
    assert row == {"email": "bob@x", "address": {"city": "Lima"}, "tags": ["a", "b"]}


def test_projection_aggregates_and_where_operators(ledger, people):
    assert ledger.execute("SELECT COUNT(*) AS n FROM Person") == [{"n": 2}]
    assert ledger.execute("SELECT p.email FROM Person AS p WHERE p.age > 35") == [{"email": "ann@x"}]
    assert ledger.execute("SELECT VALUE email FROM Person WHERE email LIKE 'b%'") == ["bob@x"]


def test_indexed_equality_matches_numbers_across_types_and_follows_updates(ledger):
    ledger.execute("CREATE TABLE T")
    ledger.execute("CREATE INDEX ON T (k)")
    ledger.execute("INSERT INTO T << {'k': 1, 'tag': 'int'}, {'k': `1.0`, 'tag': 'decimal'}, {'k': 2} >>")
    assert sorted(ledger.execute("SELECT VALUE tag FROM T WHERE k = 1.00")) == ["decimal", "int"]
    assert sorted(ledger.execute("SELECT VALUE tag FROM T WHERE k = `1e0`")) == ["decimal", "int"]
    ledger.execute("UPDATE T SET k = 3 WHERE tag = 'int'")
    assert ledger.execute("SELECT VALUE tag FROM T WHERE k = 1") == ["decimal"]
    assert ledger.execute("SELECT VALUE tag FROM T WHERE k = 3") == ["int"]
    ledger.execute("DELETE FROM T WHERE k = 3")
    assert ledger.execute("SELECT VALUE tag FROM T WHERE k = 3") == []


def test_index_created_on_a_populated_table_finds_existing_documents(ledger):
    ledger.execute("CREATE TABLE T")
    ledger.execute("INSERT INTO T << {'k': 'a'}, {'k': 'b'} >>")
    ledger.execute("CREATE INDEX ON T (k)")
    assert ledger.execute("SELECT * FROM T WHERE k = 'b'") == [{"k": "b"}]


def test_ion_types_round_trip_exactly(ledger):
    ledger.execute("CREATE TABLE T")
    value = simpleion.loads(
        "{d: 1.230, t: 2024-05-01T10:00:00.123Z, b: {{aGVsbG8=}}, s: sym, l: [1, null.int, 'x'],"
        " n: {deep: [{x: 1e0}]}}"
    )
    ledger.execute("INSERT INTO T ?", value)
    (row,) = ledger.execute("SELECT * FROM T")
    assert ion_hash(row) == ion_hash(value)
    assert row["s"].ion_type == IonType.SYMBOL and row["t"].precision == value["t"].precision


def test_read_only_transactions_become_blocks(ledger, people):
    before = ledger.block_count
    txn = ledger.begin()
    txn.execute("SELECT * FROM Person")
    txn.commit()
    assert ledger.block_count == before + 1
    block = last_block(ledger)
    assert "revisions" not in block
    assert block["transactionInfo"]["statements"][0]["statement"] == "SELECT * FROM Person"
    empty = ledger.begin()
    assert empty.commit() is None and ledger.block_count == before + 1  # no statement, no block


def test_insert_then_delete_in_one_transaction_leaves_no_revision(ledger, people):
    txn = ledger.begin()
    (doc,) = txn.execute("INSERT INTO Person ?", {"email": "tmp@x"})
    assert txn.execute("SELECT VALUE email FROM Person WHERE email = 'tmp@x'") == ["tmp@x"]
    txn.execute("DELETE FROM Person AS p BY pid WHERE pid = ?", doc["documentId"])
    txn.commit()
    assert "revisions" not in last_block(ledger)
    assert ledger.execute("SELECT * FROM Person WHERE email = 'tmp@x'") == []


def test_several_changes_to_one_document_in_one_transaction_give_one_revision(ledger, people):
    txn = ledger.begin()
    txn.execute("UPDATE Person SET age = 1 WHERE email = 'ann@x'")
    txn.execute("UPDATE Person SET age = 2 WHERE email = 'ann@x'")
    txn.commit()
    (revision,) = last_block(ledger)["revisions"]
    assert revision["metadata"]["version"] == 1 and revision["data"]["age"] == 2
    assert last_block(ledger)["transactionInfo"]["documents"][people["ann"]]["statements"] == [0, 1]


def test_bad_statements_raise_ledger_errors(ledger, people):
    with pytest.raises(LedgerError, match="syntax error"):
        ledger.execute("SELEC * FROM Person")
    with pytest.raises(LedgerError, match="no active table"):
        ledger.execute("SELECT * FROM Nope")
    with pytest.raises(LedgerError, match="parameters"):
        ledger.execute("SELECT * FROM Person WHERE email = ?")
    with pytest.raises(LedgerError, match="must be a struct"):
        ledger.execute("INSERT INTO Person VALUE 5")
    with pytest.raises(LedgerError, match="latest live revision"):
        ledger.execute(
            "EXEC redact_revision ?, ?, ?",
            {"strandId": ledger.strand_id, "sequenceNo": 2},
            ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables")[0],
            people["ann"],
        )


def test_failed_statement_leaves_the_transaction_unchanged(ledger, people):
    txn = ledger.begin()
    txn.execute("UPDATE Person SET age = 50 WHERE email = 'bob@x'")
    with pytest.raises(LedgerError, match="not a struct"):  # fails on the second document only
        txn.execute("UPDATE Person AS p SET p.email.x = 1")
    txn.commit()
    assert [s["statement"] for s in last_block(ledger)["transactionInfo"]["statements"]] == [
        "UPDATE Person SET age = 50 WHERE email = 'bob@x'"
    ]
    assert sorted(ledger.execute("SELECT VALUE age FROM Person")) == [40, 50]


def test_read_only_ledger_refuses_writes_and_writes_no_block(path, people):
    with Ledger.open(path, read_only=True) as reader:
        blocks = reader.block_count
        with pytest.raises(LedgerError, match="read-only"):
            reader.execute("INSERT INTO Person ?", {"email": "no"})
        assert len(reader.execute("SELECT * FROM Person")) == 2
        assert reader.block_count == blocks


def test_a_ledger_made_read_only_by_another_connection_refuses_its_next_commit(path, people):
    """The flag is re-read under the write lock whenever another connection has written: a transaction begun
    while the ledger was writable cannot commit once a restore (another process) has made it read-only."""
    with Ledger.open(path) as writer, Ledger.open(path) as other:
        writer.execute("INSERT INTO Person ?", {"email": "before"})
        blocks = writer.block_count
        txn = writer.begin()
        txn.execute("INSERT INTO Person ?", {"email": "begun-while-writable"})
        other.set_read_only(True)
        with pytest.raises(LedgerError, match="read-only"):
            txn.commit()
        assert writer.block_count == blocks and writer.read_only
        other.set_read_only(False)
        writer.refresh_read_only()
        writer.execute("INSERT INTO Person ?", {"email": "after"})
        assert writer.block_count == blocks + 1


# --------------------------------------------------------------------------------------- quotas


def assert_unchanged(ledger, blocks, count):
    assert ledger.block_count == blocks
    assert ledger.execute("SELECT COUNT(*) AS n FROM Person") == [{"n": count}]


def test_more_than_40_documents_in_a_transaction_is_refused(ledger, people):
    blocks = ledger.block_count
    with pytest.raises(QuotaExceeded, match="at most 40 documents"):
        ledger.execute("INSERT INTO Person ?", [{"i": i} for i in range(41)])
    assert_unchanged(ledger, blocks, 2)
    txn = ledger.begin()
    txn.execute("INSERT INTO Person ?", [{"i": i} for i in range(38)])
    with pytest.raises(QuotaExceeded):
        txn.execute("INSERT INTO Person ?", [{"i": i} for i in range(3)])
    txn.execute("INSERT INTO Person ?", [{"i": i} for i in range(2)])  # still usable, still within 40
    txn.commit()
    assert ledger.execute("SELECT COUNT(*) AS n FROM Person") == [{"n": 42}]


def test_document_and_transaction_size_quotas(ledger, people):
    blocks = ledger.block_count
    with pytest.raises(QuotaExceeded, match="128"):
        ledger.execute("INSERT INTO Person ?", {"blob": b"x" * (128 * 1024)})
    txn = ledger.begin()
    with pytest.raises(QuotaExceeded, match="4,194,304"):
        for _ in range(40):
            txn.execute("INSERT INTO Person ?", {"blob": b"x" * (120 * 1024)})
    txn.abort()
    assert_unchanged(ledger, blocks, 2)


def test_statement_length_quota(ledger, people):
    with pytest.raises(QuotaExceeded, match="100,000"):
        ledger.execute("SELECT * FROM Person WHERE email = '" + "x" * 100_000 + "'")


def test_table_and_index_quotas(ledger):
    for i in range(20):
        ledger.execute(f"CREATE TABLE T{i}")
    with pytest.raises(QuotaExceeded, match="20 active tables"):
        ledger.execute("CREATE TABLE Extra")
    for i in range(20):  # dropped tables still count towards the 40
        ledger.execute(f"DROP TABLE T{i}")
        ledger.execute(f"CREATE TABLE U{i}")
    ledger.execute("DROP TABLE U0")
    with pytest.raises(QuotaExceeded, match="40 tables in total"):
        ledger.execute("CREATE TABLE Extra")
    for field in "abcde":
        ledger.execute(f"CREATE INDEX ON U1 ({field})")
    with pytest.raises(QuotaExceeded, match="5 per table"):
        ledger.execute("CREATE INDEX ON U1 (f)")


def test_transaction_time_quota(ledger, people, monkeypatch):
    txn = ledger.begin()
    txn.execute("SELECT * FROM Person")
    monkeypatch.setattr(transaction, "MAX_TRANSACTION_SECONDS", 0.0)
    with pytest.raises(QuotaExceeded, match="limit is 0 s"):
        txn.commit()
    assert not txn.is_open


# ------------------------------------------------------------------------------------------ OCC


def test_two_writers_of_the_same_document_conflict(path, people):
    with Ledger.open(path) as a, Ledger.open(path) as b:
        t1, t2 = a.begin(), b.begin()
        for txn in (t1, t2):
            (age,) = txn.execute("SELECT VALUE age FROM Person AS p BY pid WHERE pid = ?", people["ann"])
            txn.execute("UPDATE Person AS p BY pid SET p.age = ? WHERE pid = ?", age + 1, people["ann"])
        t1.commit()
        with pytest.raises(OccConflict, match=people["ann"]):
            t2.commit()
        assert b.execute("SELECT VALUE age FROM Person WHERE email = 'ann@x'") == [41]
        assert a.block_count == b.block_count


def test_scan_conflicts_with_a_concurrent_insert_but_blind_inserts_do_not(path, people):
    with Ledger.open(path) as a, Ledger.open(path) as b:
        scanner = a.begin()
        count = len(scanner.execute("SELECT * FROM Person"))
        scanner.execute("INSERT INTO Person ?", {"email": "count", "n": count})
        inserter, other = b.begin(), b.begin()
        inserter.execute("INSERT INTO Person ?", {"email": "new@x"})
        other.execute("INSERT INTO Person ?", {"email": "new2@x"})
        inserter.commit()
        other.commit()  # inserts read nothing, so they never conflict with each other
        with pytest.raises(OccConflict, match="scanned"):
            scanner.commit()


def test_commits_from_two_ledger_objects_continue_one_chain(path, people):
    with Ledger.open(path) as a, Ledger.open(path) as b:
        for i in range(6):
            (a if i % 2 else b).execute("INSERT INTO Person ?", {"i": i})
        blocks = [simpleion.loads(row.ion) for row in a.iter_blocks()]
    assert [blk["blockAddress"]["sequenceNo"] for blk in blocks] == list(range(len(blocks)))
    for previous, block in zip(blocks, blocks[1:], strict=False):
        assert block["previousBlockHash"] == previous["blockHash"]
        assert block["blockTimestamp"] >= previous["blockTimestamp"]


def test_driver_retries_the_whole_lambda_after_a_conflict(path, people):
    attempts = []
    with Ledger.open(path) as other, LedgerDriver(path, backoff_base=0.001) as driver:

        def increment(txn):
            attempts.append(1)
            (age,) = txn.execute_statement("SELECT VALUE age FROM Person WHERE email = 'ann@x'")
            if len(attempts) == 1:  # a concurrent writer commits between our read and our commit
                other.execute("UPDATE Person SET age = 100 WHERE email = 'ann@x'")
            txn.execute_statement("UPDATE Person SET age = ? WHERE email = 'ann@x'", age + 1)
            return age

        assert driver.execute_lambda(increment) == 100
        assert len(attempts) == 2 and driver.retries == 1
        assert driver.ledger.execute("SELECT VALUE age FROM Person WHERE email = 'ann@x'") == [101]


def test_driver_gives_up_after_retry_limit(path, people):
    attempts = []
    with Ledger.open(path) as other, LedgerDriver(path, retry_limit=2, backoff_base=0.001) as driver:

        def always_conflicting(txn):
            attempts.append(1)
            list(txn.execute_statement("SELECT * FROM Person WHERE email = 'ann@x'"))
            other.execute("UPDATE Person SET age = age + 1 WHERE email = 'ann@x'")
            txn.execute_statement("UPDATE Person SET age = 0 WHERE email = 'ann@x'")

        with pytest.raises(OccConflict):
            driver.execute_lambda(always_conflicting)
    assert len(attempts) == 3


def test_driver_refuses_a_parameter_over_128_kib_as_serve_does(path, people):
    """QLDB's per-parameter limit, measured on the parameter's Ion binary; the message is the one `serve`
    returns in its BadRequestException, and nothing of the transaction commits."""
    big = {"email": "big@x", "payload": "x" * (128 * 1024)}
    size = len(simpleion.dumps(big, binary=True))
    with LedgerDriver(path) as driver:
        blocks = driver.ledger.block_count
        with pytest.raises(QuotaExceeded) as refused:
            driver.execute_lambda(lambda txn: txn.execute_statement(
                "SELECT * FROM Person WHERE email = ? OR payload = ?", "small", big))
        assert str(refused.value) == f"Parameters[1] is {size:,} bytes; the limit is 131,072"
        assert driver.ledger.block_count == blocks
        fits = {"email": "fits@x", "payload": "x" * (127 * 1024)}
        driver.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Person ?", fits))
        assert driver.ledger.block_count == blocks + 1


def test_driver_aborts_on_other_errors_and_on_abort(path, people):
    with LedgerDriver(path) as driver:
        blocks = driver.ledger.block_count

        def failing(txn):
            txn.execute_statement("INSERT INTO Person ?", {"email": "lost"})
            raise ValueError("application error")

        with pytest.raises(ValueError, match="application error"):
            driver.execute_lambda(failing)

        def aborting(txn):
            txn.execute_statement("INSERT INTO Person ?", {"email": "lost"})
            txn.abort()

        assert driver.execute_lambda(aborting) is None
        assert driver.ledger.block_count == blocks
        assert driver.list_tables() == ["Person"]
        cursor = driver.execute_lambda(lambda txn: txn.execute_statement("SELECT VALUE email FROM Person"))
        assert sorted(cursor) == ["ann@x", "bob@x"]


def test_history_time_bounds_select_revisions_active_in_the_range(tmp_path):
    with freeze_time("2024-05-01T10:00:00Z") as clock, Ledger.create(tmp_path / "l.db") as ledger:
        ledger.execute("CREATE TABLE T")
        ledger.execute("INSERT INTO T ?", {"v": 0})  # version 0 active 10:00 .. 10:03
        for minute, value in ((3, 1), (5, 2)):  # version 1 active 10:03 .. 10:05; version 2 from 10:05
            clock.move_to(f"2024-05-01T10:0{minute}:00Z")
            ledger.execute("UPDATE T SET v = ?", value)

        def versions(start, end):
            return sorted(
                ledger.execute("SELECT VALUE h.metadata.version FROM history(T, ?, ?) AS h", start, end)
            )

        at = lambda text: datetime.fromisoformat(text)  # noqa: E731
        assert versions(at("2024-05-01T10:03:30+00:00"), at("2024-05-01T10:04:00+00:00")) == [1]
        assert versions(at("2024-05-01T10:02:00+00:00"), at("2024-05-01T10:05:00+00:00")) == [0, 1, 2]
        clock.move_to("2024-05-01T12:30:00Z")  # history() refuses an end in the future, as QLDB does
        assert versions(at("2024-05-01T11:00:00+00:00"), at("2024-05-01T12:00:00+00:00")) == [2]
        assert versions(None, at("2024-05-01T09:00:00+00:00")) == []


def test_opening_something_that_is_not_a_ledger_fails_clearly(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match="not a ledgerdr ledger"):
        Ledger.open(tmp_path / "junk.db")
    with pytest.raises(LedgerError, match="no ledger at"):
        Ledger.open(tmp_path / "missing.db")
    Ledger.create(tmp_path / "new" / "dir" / "l.db").close()
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(tmp_path / "new" / "dir" / "l.db")


def test_a_commit_that_fails_midway_leaves_nothing_behind(path, people):
    """Two ledgers stage the same redaction; the second commit fails after its block and writes were
    already applied inside the SQLite transaction, which must roll back as a whole."""
    with Ledger.open(path) as a, Ledger.open(path) as b:
        a.execute("UPDATE Person SET age = 1 WHERE email = 'ann@x'")
        (old,) = a.execute(
            "SELECT * FROM history(Person) AS h WHERE h.metadata.version = 0 AND h.data.email = 'ann@x'"
        )
        (table_id,) = a.execute("SELECT VALUE tableId FROM information_schema.user_tables")
        args = (old["blockAddress"], table_id, people["ann"])
        late = b.begin()
        late.execute("INSERT INTO Person ?", {"email": "late@x"})
        late.execute("EXEC redact_revision ?, ?, ?", *args)
        a.execute("EXEC redact_revision ?, ?, ?", *args)
        blocks = b.block_count
        with pytest.raises(OccConflict, match="redacted concurrently"):
            late.commit()
        assert b.block_count == blocks
        assert b.execute("SELECT * FROM Person WHERE email = 'late@x'") == []
        b.execute("INSERT INTO Person ?", {"email": "after@x"})  # the chain continues cleanly
        assert b.get_digest()["digestTipAddress"]["sequenceNo"] == blocks + 1


def test_commit_cache_notices_writes_through_the_shared_connection(ledger):
    """A restore target writes through the ledger's own connection (no data_version change): the next
    commit must still see the catalog and chain as they are in the file."""
    ledger.execute("CREATE TABLE T")
    ledger.execute("INSERT INTO T ?", {"k": "a"})  # the commit path now caches T's (empty) index list
    (table_id,) = ledger.execute("SELECT VALUE tableId FROM information_schema.user_tables")
    storage = ledger._storage
    with storage.write_transaction():
        storage.insert_index(IndexRow("RestoredIndex00000000", table_id, "k", "ONLINE"))
    (doc,) = ledger.execute("INSERT INTO T ?", {"k": "b"})
    assert storage.index_lookup("RestoredIndex00000000", index_key("b")) == [doc["documentId"]]
