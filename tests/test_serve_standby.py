"""A warm standby that `serve` serves: read-only while `ledgerdr standby` applies windows into it (reads see
each applied window, writes are refused), and `ledgerdr promote` opens it for writes without a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from amazon.ion import simpleion
from botocore.exceptions import ClientError

from ledgerdr.journal.hashing import dot, ion_hash
from support.flows import back_up_one_more_minute, backed_up_ledger
from support.serve_process import KEY_ID, REGION, SECRET, ServeProcess

LEDGERDR = str(Path(sys.executable).parent / "ledgerdr")


class Session:
    """One QLDB session through boto3's qldb-session client, computing commit digests as pyqldb does."""

    def __init__(self, url: str, ledger: str) -> None:
        self.client = boto3.client("qldb-session", endpoint_url=url, region_name=REGION,
                                   aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        self.token = self.client.send_command(StartSession={"LedgerName": ledger})["StartSession"]["SessionToken"]

    def run(self, statement: str, *params) -> list:
        send = self.client.send_command
        txn = send(SessionToken=self.token, StartTransaction={})["StartTransaction"]["TransactionId"]
        digest, statement_hash = ion_hash(txn), ion_hash(statement)
        for p in params:
            statement_hash = dot(statement_hash, ion_hash(p))
        try:
            page = send(SessionToken=self.token, ExecuteStatement={
                "TransactionId": txn, "Statement": statement,
                "Parameters": [{"IonBinary": simpleion.dumps(p, binary=True)} for p in params]})
        except ClientError:
            send(SessionToken=self.token, AbortTransaction={})
            raise
        send(SessionToken=self.token, CommitTransaction={"TransactionId": txn,
                                                         "CommitDigest": dot(digest, statement_hash)})
        return [simpleion.loads(bytes(v["IonBinary"])) for v in page["ExecuteStatement"]["FirstPage"]["Values"]]


def _ledgerdr(*args: str) -> None:
    done = subprocess.run([LEDGERDR, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _documents(session: Session) -> int:
    tables = [t["name"] for t in session.run("SELECT * FROM information_schema.user_tables")]
    return sum(len(session.run(f"SELECT * FROM {name}")) for name in tables)


def test_a_served_standby_is_read_only_while_it_applies_and_promote_opens_it_without_a_restart(tmp_path):
    primary, location = backed_up_ledger(tmp_path / "site-a", minutes=2)
    repo = str(tmp_path / "site-a" / "primary")
    data = tmp_path / "data"
    data.mkdir()
    target = f"embedded://{data / 'standby.db'}"
    _ledgerdr("standby", "--from", repo, "--to", target, "--once")
    with ServeProcess(data) as server:
        session = Session(server.url, "standby")
        before = _documents(session)
        assert before > 0
        with pytest.raises(ClientError) as refused:
            session.run("INSERT INTO Vehicle ?", {"VIN": "NEW"})
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
        assert "read-only" in refused.value.response["Error"]["Message"]

        assert back_up_one_more_minute(primary, location, 2) == 1
        _ledgerdr("standby", "--from", repo, "--to", target, "--once")  # while served
        assert _documents(session) > before  # the same session sees the applied window

        _ledgerdr("promote", "--from", repo, "--to", target, "--state-dir", str(tmp_path / "state"))
        table = session.run("SELECT * FROM information_schema.user_tables")[0]["name"]
        [written] = session.run(f"INSERT INTO {table} ?", {"written": "after promote"})
        assert len(written["documentId"]) == 22
