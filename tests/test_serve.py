"""`ledgerdr serve` in a subprocess on 127.0.0.1, driven by the real pyqldb driver (its own venv,
redirected only by environment variables) and by boto3's `qldb` / `qldb-session` clients."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from amazon.ion import simpleion
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from freezegun import freeze_time

from ledgerdr.journal.exports import verify_location
from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.ledger.storage import Durability
from ledgerdr.serve.app import ServeApp
from ledgerdr.serve.catalog import Catalog
from ledgerdr.serve.errors import AwsError
from ledgerdr.serve.server import bind
from ledgerdr.serve.session_api import SessionApi
from ledgerdr.serve.threaded import ThreadedServer
from ledgerdr.stores.file import FileStore
from support.ion_strategies import STALLS_AMAZON_ION_C
from support.serve_process import KEY_ID, REGION, SECRET, ServeProcess, run_pyqldb, start_pyqldb


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServeProcess(tmp_path_factory.mktemp("serve-data")) as running:
        yield running


def _client(server: ServeProcess, service: str):
    return boto3.client(service, endpoint_url=server.url, region_name=REGION, aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET)


def _raw(server: ServeProcess, body: bytes, *, secret: str | None = SECRET, key_id: str = KEY_ID,
         target: str = "QLDBSession.SendCommand", when: datetime | None = None) -> tuple[int, dict]:
    """POST a session-API request signed by botocore's own SigV4 (or unsigned when secret is None)."""
    request = AWSRequest("POST", server.url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    if secret is not None:
        signer = SigV4Auth(Credentials(key_id, secret), "qldb", REGION)
        with freeze_time(when or datetime.now(UTC)):  # botocore signs with the current time
            signer.add_auth(request)
    prepared = urllib.request.Request(server.url + "/", data=body, method="POST", headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# ----------------------------------------------------------------------------------- pyqldb, unchanged
def test_pyqldb_inserts_updates_deletes_selects_history_and_committed_view(server):
    out = run_pyqldb(server.url, "crud", "vehicle-registration")
    assert out["states"] == ["CREATING", "ACTIVE"]
    assert len(out["inserted"]) == 2 and all(len(r["documentId"]) == 22 for r in out["inserted"])
    assert out["selected"] == [{"VIN": "1N4AL11D75C109151", "Make": "Volvo", "Year": 2012}]
    [committed] = out["committed"]
    assert committed["data"]["Year"] == 2012 and committed["metadata"]["version"] == 1
    assert set(committed) == {"blockAddress", "hash", "data", "metadata"}
    versions = sorted((h["data"]["Make"] if h.get("data") else "(deleted)", h["version"]) for h in out["history"])
    assert versions == [("(deleted)", 1), ("Tesla", 0), ("Volvo", 0), ("Volvo", 1)]
    assert out["functions"] == [{"wmi": "1N4", "y": 2021, "year_text": "2012"}]
    assert out["tables"] == ["Vehicle"]
    assert out["many"] == 450  # three pages, fetched with FetchPage tokens
    assert out["bad_statement"] == "BadRequestException"


def test_an_occ_conflict_is_retried_by_pyqldb_and_the_retry_wins(server):
    out = run_pyqldb(server.url, "occ", "occ-ledger")
    assert out == {"attempts": 2, "result": 101, "final": 101}


def test_proofs_from_get_revision_and_get_block_verify_with_pyqldbs_own_hashing(server):
    out = run_pyqldb(server.url, "proofs", "proof-ledger")
    assert out["revision_verifies"] and out["block_verifies"]
    assert not out["tampered_verifies"]
    assert out["revision_data"] == {"title": "proof me"}


def test_a_transaction_past_its_timeout_expires_and_nothing_of_it_commits(tmp_path):
    with ServeProcess(tmp_path / "data", "--transaction-timeout", "1") as running:
        out = run_pyqldb(running.url, "timeout", "slow-ledger", "1.5")
    assert out["error"] == "InvalidSessionException"
    assert "has expired" in out["message"]
    assert out["rows"] == 0


def test_an_expired_idle_session_is_replaced_by_pyqldb(tmp_path):
    with ServeProcess(tmp_path / "data", "--session-timeout", "1") as running:
        assert run_pyqldb(running.url, "idle", "idle-ledger", "1.5") == {"rows": 1}
        session = _client(running, "qldb-session")
        token = session.send_command(StartSession={"LedgerName": "idle-ledger"})["StartSession"]["SessionToken"]
        time.sleep(1.5)
        with pytest.raises(ClientError) as expired:
            session.send_command(SessionToken=token, StartTransaction={})
        assert expired.value.response["Error"]["Code"] == "InvalidSessionException"


# ----------------------------------------------------------------------------------- security and input
def test_unsigned_wrongly_signed_unknown_key_and_skewed_requests_are_refused(server):
    run_pyqldb(server.url, "create_ledger_only", "auth-ledger")
    body = json.dumps({"StartSession": {"LedgerName": "auth-ledger"}}).encode()
    assert _raw(server, body, secret=None) == (
        403, {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})
    status, error = _raw(server, body, secret="not-the-secret")
    assert (status, error["__type"]) == (403, "InvalidSignatureException")
    status, error = _raw(server, body, key_id="AKIDUNKNOWN")
    assert (status, error["__type"]) == (403, "UnrecognizedClientException")
    status, error = _raw(server, body, when=datetime.now(UTC) - timedelta(minutes=6))
    assert (status, error["__type"]) == (403, "InvalidSignatureException") and "expired" in error["message"]
    status, answer = _raw(server, body)
    assert status == 200 and answer["StartSession"]["SessionToken"]


def test_a_request_signed_for_another_body_is_refused(server):
    request = AWSRequest("POST", server.url + "/", data=b'{"StartSession": {"LedgerName": "a"}}',
                         headers={"Content-Type": "application/x-amz-json-1.0",
                                  "X-Amz-Target": "QLDBSession.SendCommand"})
    SigV4Auth(Credentials(KEY_ID, SECRET), "qldb", REGION).add_auth(request)
    forged = urllib.request.Request(server.url + "/", data=b'{"StartSession": {"LedgerName": "b"}}',
                                    method="POST", headers=dict(request.headers))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=30)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["__type"] == "InvalidSignatureException"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"StartSession": "x"}', b"{}",
                                  b'{"StartSession": {}, "EndSession": {}}'])
def test_malformed_requests_are_bad_requests_without_a_stack_trace(server, body):
    status, error = _raw(server, body)
    assert (status, error["__type"]) == (400, "BadRequestException")
    assert "Traceback" not in error["message"]


def test_malformed_ion_parameters_and_a_wrong_commit_digest_are_refused(server):
    run_pyqldb(server.url, "create_ledger_only", "digest-ledger")
    session = _client(server, "qldb-session")
    token = session.send_command(StartSession={"LedgerName": "digest-ledger"})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    with pytest.raises(ClientError) as bad_ion:
        session.send_command(SessionToken=token, ExecuteStatement={
            "TransactionId": txn, "Statement": "SELECT * FROM information_schema.user_tables WHERE name = ?",
            "Parameters": [{"IonBinary": b"\xe0\x01\x00\xea\xff\xff"}]})
    assert bad_ion.value.response["Error"]["Code"] == "BadRequestException"
    statement = "CREATE TABLE T"
    session.send_command(SessionToken=token, ExecuteStatement={"TransactionId": txn, "Statement": statement})
    with pytest.raises(ClientError) as wrong:
        session.send_command(SessionToken=token, CommitTransaction={"TransactionId": txn, "CommitDigest": b"\0" * 32})
    assert wrong.value.response["Error"]["Code"] == "BadRequestException"
    # The same transaction with the digest pyqldb would compute commits, and the server echoes it.
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    session.send_command(SessionToken=token, ExecuteStatement={"TransactionId": txn, "Statement": statement})
    expected = dot(ion_hash(txn), ion_hash(statement))
    done = session.send_command(SessionToken=token, CommitTransaction={"TransactionId": txn,
                                                                        "CommitDigest": expected})
    assert bytes(done["CommitTransaction"]["CommitDigest"]) == expected
    assert set(done["CommitTransaction"]["ConsumedIOs"]) == {"ReadIOs", "WriteIOs"}
    with pytest.raises(ClientError) as ended:
        session.send_command(SessionToken="no-such-session", StartTransaction={})
    assert ended.value.response["Error"]["Code"] == "InvalidSessionException"


def _read(session, token: str, statement: str) -> list:
    """The first page of `statement`'s values, run in a transaction that is then aborted."""
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    page = session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": statement})["ExecuteStatement"]["FirstPage"]
    session.send_command(SessionToken=token, AbortTransaction={})
    return [simpleion.loads(bytes(v["IonBinary"])) for v in page["Values"]]


def test_a_session_sees_only_its_own_ledger_and_names_cannot_leave_the_directory(server, tmp_path):
    run_pyqldb(server.url, "create_ledger_only", "ledger-a")
    run_pyqldb(server.url, "create_ledger_only", "ledger-b")
    session = _client(server, "qldb-session")

    def run(ledger: str, statement: str) -> list:
        token = session.send_command(StartSession={"LedgerName": ledger})["StartSession"]["SessionToken"]
        values = _read(session, token, statement)
        session.send_command(SessionToken=token, EndSession={})
        return values

    run_create = _client(server, "qldb")  # the control plane sees both
    assert {"ledger-a", "ledger-b"} <= {ledger["Name"] for ledger in run_create.list_ledgers()["Ledgers"]}
    token = session.send_command(StartSession={"LedgerName": "ledger-a"})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    statement = "CREATE TABLE OnlyInA"
    session.send_command(SessionToken=token, ExecuteStatement={"TransactionId": txn, "Statement": statement})
    session.send_command(SessionToken=token, CommitTransaction={
        "TransactionId": txn, "CommitDigest": dot(ion_hash(txn), ion_hash(statement))})
    assert [t["name"] for t in run("ledger-a", "SELECT * FROM information_schema.user_tables")] == ["OnlyInA"]
    assert run("ledger-b", "SELECT * FROM information_schema.user_tables") == []
    for name in ("../ledger-a", "ledger-a/../../x", "a" * 33):
        with pytest.raises(ClientError) as refused:
            session.send_command(StartSession={"LedgerName": name})
        assert refused.value.response["Error"]["Code"] in ("BadRequestException", "InvalidParameterException")


def test_a_format_1_ledger_file_dropped_into_dir_is_served_read_and_written_and_stays_format_1(server):
    """A ledger file written before ledger file format 2 (history WITHOUT ROWID) keeps being served unchanged."""
    old = Path(__file__).resolve().parent / "data" / "sidecar-v1" / "ledger.db"  # its PROVENANCE.md
    shutil.copyfile(old, server.data / "ledger.db")  # the ledger's own name is "ledger"
    session = _client(server, "qldb-session")
    token = session.send_command(StartSession={"LedgerName": "ledger"})["StartSession"]["SessionToken"]

    revisions = len(_read(session, token, "SELECT * FROM history(Person)"))
    assert revisions > 0
    _commit(session, token, "INSERT INTO Person {'name': 'served on format 1'}")
    written = _read(session, token, "SELECT p.name FROM Person AS p WHERE p.name = 'served on format 1'")
    assert [row["name"] for row in written] == ["served on format 1"]
    assert len(_read(session, token, "SELECT * FROM history(Person)")) == revisions + 1
    session.send_command(SessionToken=token, EndSession={})
    conn = sqlite3.connect(server.data / "ledger.db")
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0] == 1
        assert "WITHOUT ROWID" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'history'").fetchone()[0]
    finally:
        conn.close()


# ----------------------------------------------------------------------------------- control plane
def test_control_plane_ledgers_protection_and_tags(server):
    qldb = _client(server, "qldb")
    created = qldb.create_ledger(Name="ctl-ledger", PermissionsMode="STANDARD", Tags={"team": "dr"})
    assert created["State"] == "CREATING" and created["DeletionProtection"] is True
    with pytest.raises(ClientError) as exists:
        qldb.create_ledger(Name="ctl-ledger", PermissionsMode="STANDARD")
    assert exists.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    arn = created["Arn"]
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "dr"}
    qldb.tag_resource(ResourceArn=arn, Tags={"env": "test"})
    qldb.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"env": "test"}
    _wait_active(qldb, "ctl-ledger")
    with pytest.raises(ClientError) as protected:
        qldb.delete_ledger(Name="ctl-ledger")
    assert protected.value.response["Error"]["Code"] == "ResourcePreconditionNotMetException"
    assert qldb.describe_ledger(Name="ctl-ledger")["State"] == "ACTIVE"
    assert qldb.update_ledger(Name="ctl-ledger", DeletionProtection=False)["DeletionProtection"] is False
    qldb.delete_ledger(Name="ctl-ledger")
    with pytest.raises(ClientError) as gone:
        qldb.describe_ledger(Name="ctl-ledger")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert (server.data / ".deleted").is_dir()  # moved aside, never erased


def _wait_active(qldb, name: str) -> None:
    for _ in range(200):
        if qldb.describe_ledger(Name=name)["State"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never became ACTIVE")


# ----------------------------------------------------------------------------------- durability
def test_every_acknowledged_commit_survives_sigkill_and_the_journal_verifies(tmp_path):
    data = tmp_path / "data"
    ledger_path = data / "burst.db"
    with Ledger.create(ledger_path, "burst") as ledger:
        ledger.execute("CREATE TABLE Burst")
    first = ServeProcess(data).start()
    client = start_pyqldb(first.url, "burst", "burst", "4")
    acknowledged: list[str] = []
    while len(acknowledged) < 150:
        line = client.stdout.readline()
        assert line, client.stderr.read()
        acknowledged.append(line.strip())
    first.kill()
    rest, _ = client.communicate(timeout=120)
    acknowledged += [line for line in rest.split() if line]
    first.stop()
    with ServeProcess(data) as second:  # the restarted server opens the file the killed one wrote
        session = _client(second, "qldb-session")
        token = session.send_command(StartSession={"LedgerName": "burst"})["StartSession"]["SessionToken"]
        assert token
    with Ledger.open(ledger_path, read_only=True) as ledger:
        stored = {row["metadata"]["id"] for row in ledger.execute("SELECT * FROM _ql_committed_Burst")}
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged commits lost"
        end = datetime.now(UTC) + timedelta(seconds=1)
    store = FileStore(str(tmp_path / "export"))
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
    with Ledger.open(ledger_path, read_only=True) as ledger:
        export_journal(ledger, start=datetime(2000, 1, 1, tzinfo=UTC), end=end, store=store, prefix="",
                       fmt="ion_binary")
    report = verify_location(store)
    assert not report.problems, report.problems
    assert report.revisions >= len(acknowledged)


def test_the_listening_socket_is_tcp_so_responses_are_not_held_by_nagle():
    # asyncio sets TCP_NODELAY only on sockets whose proto is TCP; a plain SOCK_STREAM socket (proto 0)
    # made every request wait ~40 ms for the client's delayed ACK.

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_sessions_past_the_limit_get_limit_exceeded_and_oversized_bodies_are_refused(tmp_path):
    with Ledger.create(tmp_path / "data" / "small.db", "small"):
        pass
    with ServeProcess(tmp_path / "data", "--max-sessions", "2") as running:
        session = _client(running, "qldb-session")
        tokens = [session.send_command(StartSession={"LedgerName": "small"})["StartSession"]["SessionToken"]
                  for _ in range(2)]
        with pytest.raises(ClientError) as limited:
            session.send_command(StartSession={"LedgerName": "small"})
        assert limited.value.response["Error"]["Code"] == "LimitExceededException"
        session.send_command(SessionToken=tokens[0], EndSession={})
        assert session.send_command(StartSession={"LedgerName": "small"})["StartSession"]["SessionToken"]
        # A body over the limit is refused from its Content-Length, before it is read.
        host, port = running.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=30) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: QLDBSession.SendCommand\r\n"
                        b"Content-Length: 9437184\r\n\r\n")
            head = raw.recv(65536).decode()
        assert head.startswith("HTTP/1.1 413") and "BadRequestException" in head


def _self_signed(cert: Path, key: Path) -> None:
    """A certificate for 127.0.0.1 (subjectAltName IP), with `cryptography` (a moto dependency)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _self_signed(cert, key)
    with ServeProcess(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key)) as running:
        assert running.url.startswith("https://")
        qldb = boto3.client("qldb", endpoint_url=running.url, region_name=REGION, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET, verify=str(cert))
        assert qldb.list_ledgers()["Ledgers"] == []
        qldb.close()


def _signed_control(server: ServeProcess, method: str, path: str, body: bytes) -> tuple[int, dict]:
    request = AWSRequest(method, server.url + path, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY_ID, SECRET), "qldb", REGION).add_auth(request)
    prepared = urllib.request.Request(server.url + path, data=body or None, method=method,
                                      headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/ledgers", b"{not json"),
    ("POST", "/ledgers", b'{"Name": 5, "PermissionsMode": "STANDARD"}'),
    ("POST", "/ledgers", b'{"Name": "ok-name", "PermissionsMode": "WHATEVER"}'),
    ("POST", "/ledgers/fuzz/block", b'{"BlockAddress": {"IonText": "{{{"}}'),
    ("POST", "/ledgers/fuzz/block", b'{"BlockAddress": {"IonText": "{strandId:\\"x\\",sequenceNo:1}"}}'),
    ("POST", "/ledgers/fuzz/revision", b'{"BlockAddress": 7, "DocumentId": "x"}'),
    ("POST", "/ledgers/fuzz/journal-s3-exports", b'{"InclusiveStartTime": "yesterday"}'),
    ("GET", "/ledgers/fuzz/journal-s3-exports/..%2F..%2Fetc", b""),
    ("GET", "/ledgers/..%2Fescape", b""),
    ("DELETE", "/tags/not-an-arn", b""),
    ("PUT", "/ledgers", b"{}"),
])
def test_malformed_control_plane_requests_get_aws_errors_not_crashes(server, method, path, body):
    if not (server.data / "fuzz.db").exists():
        with Ledger.create(server.data / "fuzz.db") as ledger:  # a ledger file dropped into DIR is served
            ledger.execute("CREATE TABLE T")
    status, error = _signed_control(server, method, path, body)
    assert 400 <= status < 500, (status, error)
    assert error.get("Message") and "Traceback" not in error["Message"]


# ----------------------------------------------------------------------------------- QLDB's own messages
def _statement_error(session, token: str, statement: str, *parameters: dict) -> dict:
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    with pytest.raises(ClientError) as refused:
        session.send_command(SessionToken=token, ExecuteStatement={
            "TransactionId": txn, "Statement": statement, "Parameters": list(parameters)})
    session.send_command(SessionToken=token, AbortTransaction={})
    return refused.value.response["Error"]


def _commit(session, token: str, *statements: str) -> str:
    """Run `statements` (no parameters) in one transaction and commit it with pyqldb's digest."""
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    digest = ion_hash(txn)
    for statement in statements:
        session.send_command(SessionToken=token, ExecuteStatement={"TransactionId": txn, "Statement": statement})
        digest = dot(digest, ion_hash(statement))
    session.send_command(SessionToken=token, CommitTransaction={"TransactionId": txn, "CommitDigest": digest})
    return txn


def test_statement_session_and_occ_errors_carry_qldbs_own_messages(server):
    run_pyqldb(server.url, "create_ledger_only", "messages-ledger")
    session = _client(server, "qldb-session")
    token = session.send_command(StartSession={"LedgerName": "messages-ledger"})["StartSession"]["SessionToken"]
    _commit(session, token, "CREATE TABLE Car", "INSERT INTO Car {'vin': 'A', 'n': 0}")
    # QLDB's answer to `select * from Vehicles` on a ledger without that table, word for word.
    unknown = _statement_error(session, token, "select * from Vehicles")
    assert unknown == {"Code": "BadRequestException", "Message": "Semantic Error: at line 1, column 15: "
                       "No such variable named 'Vehicles'; No such variable named 'Vehicles'"}
    nested = _statement_error(session, token, "SELECT c.vin\nFROM Car AS c, \"Trucks\" AS t")
    assert nested["Message"].startswith("Semantic Error: at line 2, column 16: No such variable named 'Trucks'")
    syntax = _statement_error(session, token, "SELECT * FORM Car")
    assert syntax["Code"] == "BadRequestException"
    assert syntax["Message"].startswith("Parser Error: at line 1, column 10: ")
    # Two sessions update the same document; the second to commit loses with QLDB's OCC message.
    other = session.send_command(StartSession={"LedgerName": "messages-ledger"})["StartSession"]["SessionToken"]
    update = "UPDATE Car AS c SET c.n = c.n + 1 WHERE c.vin = 'A'"
    first = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    session.send_command(SessionToken=token, ExecuteStatement={"TransactionId": first, "Statement": update})
    _commit(session, other, update)
    with pytest.raises(ClientError) as occ:
        session.send_command(SessionToken=token, CommitTransaction={
            "TransactionId": first, "CommitDigest": dot(ion_hash(first), ion_hash(update))})
    assert occ.value.response["Error"] == {
        "Code": "OccConflictException",
        "Message": "Optimistic concurrency control (OCC) failure encountered while committing the transaction"}
    with pytest.raises(ClientError) as unknown_session:
        session.send_command(SessionToken="not-a-session", StartTransaction={})
    assert unknown_session.value.response["Error"] == {"Code": "InvalidSessionException", "Message": "No such session"}


def test_a_served_ledger_made_read_only_by_another_process_refuses_commits_until_it_is_writable_again(server):
    """StartTransaction re-reads the read-only flag only of a ledger it last saw read-only (a standby waiting for
    `ledgerdr promote`); a writable ledger's commit re-reads it under the write lock once another connection
    has written, so a restore beginning into a served file stops its writes all the same."""
    run_pyqldb(server.url, "create_ledger_only", "flagged-ledger")
    session = _client(server, "qldb-session")
    token = session.send_command(StartSession={"LedgerName": "flagged-ledger"})["StartSession"]["SessionToken"]
    _commit(session, token, "CREATE TABLE Car", "INSERT INTO Car {'vin': 'A'}")
    with Ledger.open(server.data / "flagged-ledger.db") as other:
        other.set_read_only(True)
        with pytest.raises(ClientError) as refused:
            _commit(session, token, "INSERT INTO Car {'vin': 'B'}")
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
        assert "read-only" in refused.value.response["Error"]["Message"]
        other.set_read_only(False)
    _commit(session, token, "INSERT INTO Car {'vin': 'C'}")
    with Ledger.open(server.data / "flagged-ledger.db", read_only=True) as ledger:
        assert sorted(ledger.execute("SELECT VALUE vin FROM Car")) == ["A", "C"]


def test_a_send_command_without_exactly_one_command_is_a_bad_request_naming_them_in_order(tmp_path):
    api = SessionApi(Catalog(tmp_path, "normal"))
    cases = {"none": [{}, {"StartTransaction": None, "Other": {}}],
             "StartTransaction, AbortTransaction": [{"AbortTransaction": {}, "StartTransaction": {}, "SessionToken": "t"}],
             "StartSession, EndSession": [{"EndSession": {}, "StartSession": {"LedgerName": "x"}}]}
    for named, requests in cases.items():
        for request in requests:
            with pytest.raises(AwsError) as refused:
                api.send_command(request)
            assert (refused.value.code, refused.value.message) == (
                "BadRequestException", f"exactly one command must be set in SendCommand, got {named}")


def test_a_parameter_over_128_kib_is_refused_with_the_embedded_drivers_message(server):
    run_pyqldb(server.url, "create_ledger_only", "big-parameter")
    session = _client(server, "qldb-session")
    token = session.send_command(StartSession={"LedgerName": "big-parameter"})["StartSession"]["SessionToken"]
    _commit(session, token, "CREATE TABLE Blob")
    big = simpleion.dumps({"payload": "x" * (128 * 1024)}, binary=True)
    error = _statement_error(session, token, "INSERT INTO Blob ?", {"IonBinary": big})
    assert error == {"Code": "BadRequestException",
                     "Message": f"Parameters[0] is {len(big):,} bytes; the limit is 131,072"}


# ----------------------------------------------------------------------------------- the HTTP stack
def _exchange(url: str, payload: bytes, *, reads: int = 1) -> bytes:
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(payload)
        answer = b""
        while answer.count(b"HTTP/1.1 ") < reads or not answer.endswith(b"}"):
            chunk = raw.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_malformed_http_is_answered_400_and_the_server_keeps_serving(server):
    """Also: pipelining, chunked bodies and `Expect: 100-continue`, which llhttp frames and the loop answers."""
    answer = _exchange(server.url, b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"BadRequestException" in answer
    assert b"Traceback" not in answer
    # Two requests pipelined on one connection, the second with a chunked body: two answers, in order.
    unsigned = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: QLDBSession.SendCommand\r\nContent-Length: 2\r\n"
                b"\r\n{}")
    chunked = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: QLDBSession.SendCommand\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    answer = _exchange(server.url, unsigned + chunked, reads=2)
    assert answer.count(b"HTTP/1.1 403") == 2
    assert answer.count(b'"__type":"MissingAuthenticationTokenException"') == 2
    # A client that waits for `100 Continue` before its body gets it, then the answer.
    host, port = server.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: QLDBSession.SendCommand\r\n"
                    b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        assert raw.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw.sendall(b"{}")
        assert raw.recv(65536).startswith(b"HTTP/1.1 403")
    status, _ = _raw(server, json.dumps({"StartSession": {"LedgerName": "no-such-ledger"}}).encode())
    assert status in (400, 404)  # still answering, with an AWS error


def test_uvicorn_stack_still_serves_pyqldb(tmp_path):
    """`--http httptools` (uvicorn) stays available as the fallback stack and for the benchmark."""
    with ServeProcess(tmp_path / "data", "--http", "httptools") as running:
        out = run_pyqldb(running.url, "occ", "uvicorn-ledger")
    assert out == {"attempts": 2, "result": 101, "final": 101}


def test_sigterm_stops_promptly_with_idle_and_half_sent_requests_open(tmp_path):
    """The threaded stack's stop: connections blocked reading (idle keep-alive, a request cut off mid-body) are
    shut for reading, so SIGTERM ends the server in seconds with exit 0 rather than after their timeouts."""
    running = ServeProcess(tmp_path / "data").start()
    host, port = running.url.split("//")[1].split(":")
    idle = socket.create_connection((host, int(port)), timeout=30)
    half = socket.create_connection((host, int(port)), timeout=30)
    half.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: QLDBSession.SendCommand\r\nContent-Length: 100\r\n"
                 b"\r\n{\"StartSe")
    time.sleep(0.5)  # both are now blocked in the server's recv
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 8
    assert running.proc.returncode == 0
    idle.close()
    half.close()


def test_serve_refuses_a_parameter_that_stalls_amazon_ion_and_keeps_serving(tmp_path):
    """A client's damaged parameter is a BadRequestException, not a server thread lost to a loop."""
    with Ledger.create(tmp_path / "data" / "fuzzed.db", "fuzzed"):
        pass
    with ServeProcess(tmp_path / "data") as running:
        session = _client(running, "qldb-session")
        token = session.send_command(StartSession={"LedgerName": "fuzzed"})["StartSession"]["SessionToken"]
        _commit(session, token, "CREATE TABLE Car")
        for data in STALLS_AMAZON_ION_C:
            error = _statement_error(session, token, "INSERT INTO Car ?", {"IonBinary": data})
            assert error["Code"] == "BadRequestException" and "not a single valid Ion value" in error["Message"]
        _commit(session, token, "INSERT INTO Car {'VIN': 'after'}")  # the same session goes on


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(tmp_path):
    """Plain TCP connections keep their idle timeout in the kernel (SO_RCVTIMEO/SO_SNDTIMEO, no poll per
    recv): a connection that was answered and then sends nothing is closed by the server; TLS connections
    keep Python's timeout (test_tls)."""
    app = ServeApp(Catalog(tmp_path / "data", Durability.FULL), {KEY_ID: SECRET})
    server = ThreadedServer(app, bind("127.0.0.1", 0), idle_seconds=0.5)
    port = server.sock.getsockname()[1]
    serving = threading.Thread(target=server.serve_forever, kwargs={"install_signals": False})
    serving.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: QLDBSession.SendCommand\r\n"
                        b"Content-Length: 2\r\n\r\n{}")
            assert raw.recv(65536).startswith(b"HTTP/1.1 403")
            assert raw.recv(65536) == b""  # closed by the server well before the client's 30 s
    finally:
        server.stop()
        serving.join(30)
    assert not serving.is_alive()


def test_a_statements_document_id_answer_has_the_encoders_bytes():
    """The served `{documentId}` answer of INSERT/UPDATE/DELETE is spliced from a template: the same bytes as
    the encoder's for every id, and anything else still goes through the encoder."""
    from ledgerdr.journal.ids import new_id, time_ordered_id
    from ledgerdr.ledger.driver import ion_binary
    from ledgerdr.serve.session_api import _value_ion

    values = [{"documentId": time_ordered_id()} for _ in range(200)] + [{"documentId": new_id()} for _ in range(200)]
    values += [{"documentId": "é" * 11}, {"documentId": "short"}, {"documentId": "x" * 22, "n": 1}, {"n": 1}, 5]
    for value in values:
        assert _value_ion(value) == ion_binary(value)
        assert simpleion.loads(_value_ion(value)) == value
