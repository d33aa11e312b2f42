"""Scenarios run by the REAL pyqldb driver (3.x) and boto3, against whatever endpoint the environment
names (AWS_ENDPOINT_URL_QLDB_SESSION / AWS_ENDPOINT_URL_QLDB). Runs in .venv-pyqldb (amazon.ion 0.9.3),
never imports ledgerdr, and prints one JSON line of results for the test to check.

Usage: python pyqldb_client.py SCENARIO [ARGS]
"""

import base64
import json
import sys
import threading
import time
from collections.abc import Mapping

import boto3
from amazon.ion.simpleion import loads
from botocore.exceptions import ClientError
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver
from pyqldb.util.qldb_hash import QldbHash


def plain(value):
    """Ion values as JSON-friendly Python values (timestamps and blobs as text)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def create_ledger(name):
    qldb = boto3.client("qldb")
    created = qldb.create_ledger(Name=name, PermissionsMode="STANDARD", DeletionProtection=False)
    states = [created["State"]]
    while states[-1] != "ACTIVE":
        time.sleep(0.05)
        states.append(qldb.describe_ledger(Name=name)["State"])
    return states


def create_ledger_only(name):
    print(json.dumps(create_ledger(name)))


def crud(name):
    states = create_ledger(name)
    driver = QldbDriver(name)
    out = {"states": [states[0], states[-1]]}
    driver.execute_lambda(lambda t: (t.execute_statement("CREATE TABLE Vehicle"),
                                     t.execute_statement("CREATE INDEX ON Vehicle (VIN)")))
    cars = [{"VIN": "1N4AL11D75C109151", "Make": "Volvo", "Year": 2011},
            {"VIN": "KM8SRDHF6EU074761", "Make": "Tesla", "Year": 2015}]
    out["inserted"] = driver.execute_lambda(lambda t: [plain(r) for r in t.execute_statement(
        "INSERT INTO Vehicle ?", cars)])
    driver.execute_lambda(lambda t: t.execute_statement(
        "UPDATE Vehicle AS v SET v.Year = ? WHERE v.VIN = ?", 2012, "1N4AL11D75C109151"))
    driver.execute_lambda(lambda t: t.execute_statement("DELETE FROM Vehicle AS v WHERE v.Make = ?", "Tesla"))
    out["selected"] = driver.execute_lambda(lambda t: [plain(r) for r in t.execute_statement(
        "SELECT VIN, Make, Year FROM Vehicle")])
    out["committed"] = driver.execute_lambda(lambda t: [plain(r) for r in t.execute_statement(
        "SELECT * FROM _ql_committed_Vehicle")])
    out["history"] = driver.execute_lambda(lambda t: [plain(r) for r in t.execute_statement(
        "SELECT h.data, h.metadata.version FROM history(Vehicle) AS h")])
    out["functions"] = driver.execute_lambda(lambda t: [plain(r) for r in t.execute_statement(
        "SELECT SUBSTRING(VIN, 1, 3) AS wmi, EXTRACT(YEAR FROM DATE_ADD(year, 1, `2020-01-01T`)) AS y, "
        "CAST(Year AS STRING) AS year_text FROM Vehicle")])
    out["tables"] = sorted(driver.list_tables())
    many = [{"n": i} for i in range(450)]  # more than one page of results
    driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Many"))
    for start in range(0, 450, 40):
        driver.execute_lambda(lambda t, s=start: t.execute_statement("INSERT INTO Many ?", many[s:s + 40]))
    out["many"] = driver.execute_lambda(lambda t: len(list(t.execute_statement("SELECT n FROM Many"))))
    try:
        driver.execute_lambda(lambda t: t.execute_statement("SELECT * FROM NoSuchTable"))
    except ClientError as exc:
        out["bad_statement"] = exc.response["Error"]["Code"]
    driver.close()
    print(json.dumps(out))


def occ(name):
    """Lambda A reads a counter; on its first attempt, driver B commits a change to it before A commits.
    A's commit conflicts, pyqldb retries A, and A's retry wins."""
    create_ledger(name)
    a, b = QldbDriver(name), QldbDriver(name)
    a.execute_lambda(lambda t: (t.execute_statement("CREATE TABLE Counter"),
                                t.execute_statement("INSERT INTO Counter ?", {"id": 1, "n": 0})))
    attempts = []

    def increment(t):
        attempts.append(1)
        n = next(iter(t.execute_statement("SELECT n FROM Counter WHERE id = 1")))["n"]
        if len(attempts) == 1:
            b.execute_lambda(lambda u: u.execute_statement("UPDATE Counter SET n = 100 WHERE id = 1"))
        t.execute_statement("UPDATE Counter SET n = ? WHERE id = 1", n + 1)
        return n + 1

    result = a.execute_lambda(increment)
    final = a.execute_lambda(lambda t: next(iter(t.execute_statement("SELECT n FROM Counter WHERE id = 1")))["n"])
    print(json.dumps({"attempts": len(attempts), "result": result, "final": final}))


def timeout(name, seconds):
    create_ledger(name)
    driver = QldbDriver(name, retry_config=RetryConfig(retry_limit=0))
    driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Slow"))
    out = {}

    def slow(t):
        t.execute_statement("INSERT INTO Slow ?", {"a": 1})
        time.sleep(float(seconds))
        t.execute_statement("INSERT INTO Slow ?", {"a": 2})

    try:
        driver.execute_lambda(slow)
        out["error"] = None
    except ClientError as exc:
        out["error"] = exc.response["Error"]["Code"]
        out["message"] = exc.response["Error"]["Message"]
    out["rows"] = driver.execute_lambda(lambda t: len(list(t.execute_statement("SELECT * FROM Slow"))))
    print(json.dumps(out))


def idle(name, seconds):
    """Two lambdas with the pooled session left idle past the server's session timeout in between: pyqldb
    meets InvalidSessionException and retries on a new session."""
    create_ledger(name)
    driver = QldbDriver(name)
    driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Idle"))
    time.sleep(float(seconds))
    driver.execute_lambda(lambda t: t.execute_statement("INSERT INTO Idle ?", {"after": "idle"}))
    rows = driver.execute_lambda(lambda t: len(list(t.execute_statement("SELECT * FROM Idle"))))
    print(json.dumps({"rows": rows}))


def fold(start, proof_ion_text):
    """The driver-side check of AWS's QLDB tutorial: fold the proof with QldbHash.dot, from pyqldb."""
    candidate = QldbHash(start)
    for h in loads(proof_ion_text):
        candidate = candidate.dot(QldbHash(bytes(h)))
    return candidate.get_qldb_hash()


def proofs(name):
    create_ledger(name)
    driver = QldbDriver(name)
    driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Doc"))
    doc_id = driver.execute_lambda(lambda t: next(iter(t.execute_statement(
        "INSERT INTO Doc ?", {"title": "proof me"})))["documentId"])
    for i in range(5):
        driver.execute_lambda(lambda t, i=i: t.execute_statement("INSERT INTO Doc ?", {"i": i}))
    address = driver.execute_lambda(lambda t: next(iter(t.execute_statement(
        "SELECT blockAddress FROM _ql_committed_Doc WHERE metadata.id = ?", doc_id)))["blockAddress"])
    qldb = boto3.client("qldb")
    digest = qldb.get_digest(Name=name)
    address_text = '{strandId:"' + address["strandId"] + '",sequenceNo:' + str(address["sequenceNo"]) + "}"
    revision = qldb.get_revision(Name=name, BlockAddress={"IonText": address_text}, DocumentId=doc_id,
                                 DigestTipAddress=digest["DigestTipAddress"])
    revision_value = loads(revision["Revision"]["IonText"])
    block = qldb.get_block(Name=name, BlockAddress={"IonText": address_text},
                           DigestTipAddress=digest["DigestTipAddress"])
    block_value = loads(block["Block"]["IonText"])
    tampered = bytearray(revision_value["hash"])
    tampered[0] ^= 1
    print(json.dumps({
        "revision_verifies": fold(bytes(revision_value["hash"]), revision["Proof"]["IonText"]) == digest["Digest"],
        "block_verifies": fold(bytes(block_value["blockHash"]), block["Proof"]["IonText"]) == digest["Digest"],
        "tampered_verifies": fold(bytes(tampered), revision["Proof"]["IonText"]) == digest["Digest"],
        "revision_data": plain(revision_value["data"]),
    }))


def burst(name, threads):
    """Commit one document per transaction from several threads, printing each acknowledged id at once
    (flushed), until the server goes away."""
    driver = QldbDriver(name, retry_config=RetryConfig(retry_limit=2), max_concurrent_transactions=int(threads))
    lock = threading.Lock()

    def worker(w):
        i = 0
        while True:
            try:
                doc_id = driver.execute_lambda(lambda t: next(iter(t.execute_statement(
                    "INSERT INTO Burst ?", {"w": w, "i": i})))["documentId"])  # noqa: B023 (runs now)
            except Exception:  # the server was killed: stop; everything printed was acknowledged
                return
            with lock:
                sys.stdout.write(doc_id + "\n")
                sys.stdout.flush()
            i += 1

    workers = [threading.Thread(target=worker, args=(w,)) for w in range(int(threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
