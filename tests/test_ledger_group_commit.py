"""`Ledger.commit_group`: several transactions in one SQLite transaction (one fsync), each validated
and chained as if committed alone; a conflicting one fails alone."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from ledgerdr.errors import OccConflict
from ledgerdr.journal.exports import verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.serve.committer import GroupCommitter
from ledgerdr.stores.file import FileStore


def _verified(ledger: Ledger, tmp_path) -> int:
    store = FileStore(str(tmp_path / "export"))
    end = datetime.now(UTC) + timedelta(milliseconds=5)
    time.sleep(0.01)  # the export window must have closed
    export_journal(ledger, start=datetime(2000, 1, 1, tzinfo=UTC), end=end, store=store, prefix="", fmt="ion_binary")
    report = verify_location(store)
    assert not report.problems, report.problems
    return report.blocks


def test_a_group_commits_each_member_as_its_own_block_and_a_conflict_fails_alone(tmp_path):
    path = tmp_path / "g.db"
    with Ledger.create(path) as writer:
        writer.execute("CREATE TABLE T")
        writer.execute("INSERT INTO T ?", {"k": 1, "n": 0})
    with Ledger.open(path) as a, Ledger.open(path) as b, Ledger.open(path) as committer:
        first, second, third, idle = a.begin(), b.begin(), a.begin(), b.begin()
        first.execute("UPDATE T SET n = 1 WHERE k = 1")
        second.execute("UPDATE T SET n = 2 WHERE k = 1")  # read the same version as `first`
        third.execute("INSERT INTO T ?", {"k": 2, "n": 0})
        results = committer.commit_group([first, second, third, idle])
        assert isinstance(results[1], OccConflict)
        assert results[3] is None
        assert results[0].block_address.sequence_no + 1 == results[2].block_address.sequence_no
        assert not first.is_open and not second.is_open and not third.is_open
        assert sorted((r["k"], r["n"]) for r in committer.execute("SELECT k, n FROM T")) == [(1, 1), (2, 0)]
        assert _verified(committer, tmp_path) == 5  # create, insert, first, third, and the SELECT above


def test_concurrent_commits_share_groups_and_every_one_lands(tmp_path):
    path = tmp_path / "c.db"
    with Ledger.create(path) as writer:
        writer.execute("CREATE TABLE T")
    committer = GroupCommitter(path, "full")
    sessions = [Ledger.open(path) for _ in range(8)]
    try:
        def work(ledger: Ledger, w: int) -> None:
            for i in range(25):
                txn = ledger.begin()
                txn.execute("INSERT INTO T ?", {"w": w, "i": i})
                committer.commit(txn)

        threads = [threading.Thread(target=work, args=(s, w)) for w, s in enumerate(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert committer.groups < 200  # some commits shared an fsync
    finally:
        committer.close()
        for s in sessions:
            s.close()
    with Ledger.open(path) as ledger:
        assert len(ledger.execute("SELECT * FROM T")) == 200
        assert _verified(ledger, tmp_path) == 1 + 200 + 1


def test_more_waiters_than_a_group_holds_all_land_and_a_conflict_reaches_its_session(tmp_path):
    """With groups of 2 and 6 sessions a session's transaction may sit behind a full group: its session then
    leads the next group until its own is done. An OCC loser gets its OccConflict from `commit`."""
    path = tmp_path / "g.db"
    with Ledger.create(path) as writer:
        writer.execute("CREATE TABLE T")
        writer.execute("INSERT INTO T ?", {"k": 0, "n": 0})
    committer = GroupCommitter(path, "full", max_group=2)
    sessions = [Ledger.open(path) for _ in range(6)]
    outcomes: list[str] = []
    try:
        def work(ledger: Ledger, w: int) -> None:
            for i in range(10):
                txn = ledger.begin()
                txn.execute("INSERT INTO T ?", {"k": 1, "w": w, "i": i})
                committer.commit(txn)
            mine = ledger.begin()
            mine.execute("UPDATE T SET n = ? WHERE k = 0", w)  # every session updates one document
            barrier.wait()
            try:
                committer.commit(mine)
                outcomes.append("committed")
            except OccConflict:
                outcomes.append("conflict")

        barrier = threading.Barrier(len(sessions))
        threads = [threading.Thread(target=work, args=(s, w)) for w, s in enumerate(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        committer.close()
        for s in sessions:
            s.close()
    assert sorted(outcomes) == ["committed"] + ["conflict"] * 5
    with Ledger.open(path) as ledger:
        assert len(ledger.execute("SELECT * FROM T WHERE k = 1")) == 60
        assert _verified(ledger, tmp_path) == 1 + 1 + 60 + 1 + 1  # …, the winning UPDATE, the SELECT


def test_a_group_of_one_commits_alone_and_its_conflict_leaves_the_chain_intact(tmp_path):
    """A lone transaction commits without a savepoint; when it conflicts nothing of it is written and the
    next commit (through another connection) continues the chain from the file."""
    path = tmp_path / "one.db"
    with Ledger.create(path) as writer:
        writer.execute("CREATE TABLE T")
        writer.execute("INSERT INTO T ?", {"k": 1, "n": 0})
    with Ledger.open(path) as a, Ledger.open(path) as b:
        loser, winner = a.begin(), b.begin()
        loser.execute("UPDATE T SET n = 1 WHERE k = 1")
        winner.execute("UPDATE T SET n = 2 WHERE k = 1")
        [won] = b.commit_group([winner])
        assert not isinstance(won, OccConflict) and won is not None
        [lost] = a.commit_group([loser])
        assert isinstance(lost, OccConflict)
        assert not loser.is_open and not winner.is_open
        after = a.begin()
        after.execute("INSERT INTO T ?", {"k": 2, "n": 0})
        [next_result] = a.commit_group([after])
        assert next_result.block_address.sequence_no == won.block_address.sequence_no + 1
        assert sorted((r["k"], r["n"]) for r in a.execute("SELECT k, n FROM T")) == [(1, 2), (2, 0)]
        assert _verified(a, tmp_path) == 5  # create, insert, winner, after, and the SELECT above


def test_a_lone_session_commits_through_its_own_connection_and_groups_through_the_writers(tmp_path):
    """`commit(txn, own)`: a session committing alone again commits through `own` (the writer's connection
    is left unused); under concurrency groups still form, and every commit lands, chained, either way."""
    path = tmp_path / "own.db"
    with Ledger.create(path) as writer:
        writer.execute("CREATE TABLE T")
    committer = GroupCommitter(path, "full")
    sessions = [Ledger.open(path) for _ in range(8)]
    try:
        lone = sessions[0]
        writer_changes = []
        for i in range(5):
            txn = lone.begin()
            txn.execute("INSERT INTO T ?", {"w": -1, "i": i})
            committer.commit(txn, lone)
            writer_changes.append(committer._ledger.storage.conn.total_changes)
        assert committer.groups == 5
        # the first went through the writer's connection; once the session was seen alone, its own
        assert writer_changes[0] > 0 and writer_changes[1:] == [writer_changes[0]] * 4
        assert lone.storage.conn.total_changes > 0

        def work(ledger: Ledger, w: int) -> None:
            for i in range(25):
                txn = ledger.begin()
                txn.execute("INSERT INTO T ?", {"w": w, "i": i})
                committer.commit(txn, ledger)

        threads = [threading.Thread(target=work, args=(s, w)) for w, s in enumerate(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert committer.groups < 5 + 200  # some commits shared an fsync
    finally:
        committer.close()
        for s in sessions:
            s.close()
    with Ledger.open(path) as ledger:
        assert len(ledger.execute("SELECT * FROM T")) == 205
        assert _verified(ledger, tmp_path) == 1 + 205 + 1
