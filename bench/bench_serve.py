"""`ledgerdr serve`: single-document transactions through the real pyqldb driver against the server vs the
embedded driver in-process (same run), then N concurrent sessions driven by a light client at full durability.

The light client is raw keep-alive sockets in several processes (`LightSession`): what repeats is built once per
session (the StartTransaction request whole, the request head, the signing key, the statement's Ion Hash), and
each transaction signs its two bodies that carry the transaction id with a few hashes (no botocore, no
http.client), so that the server and not the client is what is measured; its CPU per transaction is reported
beside the server's. Each session runs
StartTransaction → ExecuteStatement (INSERT one document, an Ion binary parameter) → CommitTransaction with
the commit digest pyqldb would send. Reported: transactions/s, p50/p99 CommitTransaction latency, and the
server's CPU seconds per transaction (from /proc) against the embedded driver's CPU per transaction.

The session rows run once per HTTP stack (`serve --http threads`, the default: a thread per connection; and
`--http httptools`: uvicorn with its httptools parser; `--stacks` may add `h11`), one server after the other in
the same run, so their CPU figures compare side by side.

Usage: python bench/bench_serve.py [--seconds 5] [--sessions 1,4,16,64] [--pyqldb-transactions 300]
                                   [--stacks threads,httptools]
Needs `.venv-pyqldb` (make builds it) for the pyqldb row; skipped with a note when it is missing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from amazon.ion import simpleion

from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.ledger.driver import LedgerDriver
from ledgerdr.ledger.engine import Ledger
from ledgerdr.serve.sigv4 import SignedRequest, canonical_request, signing_key

ROOT = Path(__file__).resolve().parents[1]
PYQLDB_PYTHON = ROOT / ".venv-pyqldb" / "bin" / "python"
KEY_ID, SECRET, REGION = "AKIDBENCH", "bench-secret", "us-east-1"
STATEMENT = "INSERT INTO T ?"


def _signed_headers(host: str, body: bytes) -> dict[str, str]:
    """botocore's SigV4 headers for `body`, built the plain way (bench_serve_instructions.py sends these)."""
    amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"host": host, "x-amz-date": amz_date, "x-amz-target": "QLDBSession.SendCommand",
               "content-type": "application/x-amz-json-1.0"}
    signed = sorted(headers)
    request = SignedRequest("POST", "/", "", {k: [v] for k, v in headers.items()}, body)
    scope = f"{amz_date[:8]}/{REGION}/qldb/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical_request(request, signed)).hexdigest()])
    signature = hmac.new(signing_key(SECRET, amz_date[:8], REGION, "qldb"), to_sign.encode(), hashlib.sha256)
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{scope}, SignedHeaders={';'.join(signed)}, "
                                f"Signature={signature.hexdigest()}")
    return headers


class LightSession:
    """One QLDB session over a raw keep-alive socket, costing the client as little as a signed request can.

    What is the same on every request is built once per session: the request head's fixed headers, the
    StartTransaction request whole (body and signature), the derived signing key, and the Ion Hash of the
    statement with its parameter (every transaction inserts the same document bytes, so the parameter is
    encoded and hashed once). Per transaction the client signs the two bodies that carry the transaction id
    (one SHA-256 of the body, one of the canonical request, one HMAC) and computes the commit digest from the
    transaction id's Ion Hash. Responses are read by Content-Length; only StartTransaction's is decoded. The
    first request of each kind is also signed the reference way (`serve.sigv4.canonical_request`), and the
    two must agree, so a faster signer cannot drift from what the server verifies."""

    _TARGET = "QLDBSession.SendCommand"
    _TYPE = "application/x-amz-json-1.0"

    def __init__(self, host: str, port: int, ledger: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as urllib3 (botocore) does
        self.buffer = b""
        self.host = f"{host}:{port}"
        self.amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")  # a session lasts seconds: within 5 minutes
        self.scope = f"{self.amz_date[:8]}/{REGION}/qldb/aws4_request"
        self.key = signing_key(SECRET, self.amz_date[:8], REGION, "qldb")
        self.canonical_head = (f"POST\n/\n\ncontent-type:{self._TYPE}\nhost:{self.host}\nx-amz-date:{self.amz_date}\n"
                               f"x-amz-target:{self._TARGET}\n\ncontent-type;host;x-amz-date;x-amz-target\n").encode()
        self.head = (f"POST / HTTP/1.1\r\nHost: {self.host}\r\nX-Amz-Date: {self.amz_date}\r\n"
                     f"X-Amz-Target: {self._TARGET}\r\nContent-Type: {self._TYPE}\r\n"
                     f"Authorization: AWS4-HMAC-SHA256 Credential={KEY_ID}/{self.scope}, "
                     f"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=").encode()
        self.checked = False
        start = json.loads(self.send(json.dumps({"StartSession": {"LedgerName": ledger}}).encode()))
        self.token = start["StartSession"]["SessionToken"]
        self.start_request = self.request(json.dumps({"SessionToken": self.token, "StartTransaction": {}}).encode())
        param = simpleion.dumps({"n": 0, "payload": "x" * 64}, binary=True)
        self.statement_hash = dot(ion_hash(STATEMENT), ion_hash(simpleion.loads(param)))
        self.execute_body = (json.dumps({"SessionToken": self.token, "ExecuteStatement": {
            "TransactionId": "TXN", "Statement": STATEMENT,
            "Parameters": [{"IonBinary": base64.b64encode(param).decode()}]}})).encode().split(b"TXN")
        self.commit_body = json.dumps({"SessionToken": self.token, "CommitTransaction": {
            "TransactionId": "TXN", "CommitDigest": "DIGEST"}}).encode()

    def request(self, body: bytes) -> bytes:
        """The whole request for `body`: head, signature, Content-Length, body."""
        canonical = self.canonical_head + hashlib.sha256(body).hexdigest().encode()
        if not self.checked:  # once per session: the fast canonical request is the reference one
            reference = canonical_request(SignedRequest("POST", "/", "", {
                "content-type": [self._TYPE], "host": [self.host], "x-amz-date": [self.amz_date],
                "x-amz-target": [self._TARGET]}, body), ["content-type", "host", "x-amz-date", "x-amz-target"])
            if reference != canonical:
                raise AssertionError(f"the light client's canonical request differs:\n{canonical!r}\n{reference!r}")
            self.checked = True
        to_sign = (f"AWS4-HMAC-SHA256\n{self.amz_date}\n{self.scope}\n"
                   f"{hashlib.sha256(canonical).hexdigest()}").encode()
        signature = hmac.new(self.key, to_sign, hashlib.sha256).hexdigest().encode()
        return b"%s%s\r\nContent-Length: %d\r\n\r\n%s" % (self.head, signature, len(body), body)

    def send(self, body: bytes, whole: bytes | None = None) -> bytes:
        """Send one request (`whole`, or `body` signed now); the response body once its status is 200."""
        self.sock.sendall(whole or self.request(body))
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        while len(self.buffer) < length:
            self._recv()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(payload)
        return payload

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def transaction(self, n: int) -> float:
        """One single-document transaction; returns the CommitTransaction round trip in seconds."""
        started = json.loads(self.send(b"", self.start_request))
        txn = started["StartTransaction"]["TransactionId"]
        self.send(txn.encode().join(self.execute_body))
        digest = base64.b64encode(dot(ion_hash(txn), self.statement_hash))
        body = self.commit_body.replace(b"TXN", txn.encode(), 1).replace(b"DIGEST", digest, 1)
        began = time.perf_counter()
        self.send(body)
        return time.perf_counter() - began


def _client_process(host: str, port: int, sessions: int, seconds: float, out: multiprocessing.Queue) -> None:
    import threading

    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        session = LightSession(host, port, "bench")
        mine = []
        n = 0
        while time.monotonic() < deadline:
            mine.append(session.transaction(n))
            n += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(latencies)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def light_run(host: str, port: int, pid: int, sessions: int, seconds: float) -> dict:
    processes = min(sessions, 4)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    shares = [sessions // processes + (1 if i < sessions % processes else 0) for i in range(processes)]
    cpu_before = _cpu_seconds(pid)
    clients_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    workers = [multiprocessing.Process(target=_client_process, args=(host, port, share, seconds, queue))
               for share in shares]
    for w in workers:
        w.start()
    latencies = sorted(x for _ in workers for x in queue.get())
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(pid) - cpu_before
    clients = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client processes, joined above
    client_cpu = (clients.ru_utime + clients.ru_stime) - (clients_before.ru_utime + clients_before.ru_stime)
    return {"sessions": sessions, "transactions": len(latencies), "tps": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "server_cpu_ms_per_txn": 1000 * cpu / max(1, len(latencies)),
            "client_cpu_ms_per_txn": 1000 * client_cpu / max(1, len(latencies))}


def embedded_run(path: Path, transactions: int, rounds: int = 3) -> dict:
    """The embedded driver in this process: best of `rounds` (the shared machine's noise only ever adds)."""
    with Ledger.create(path) as ledger:
        ledger.execute("CREATE TABLE T")
    best = {"tps": 0.0, "cpu_ms_per_txn": float("inf")}
    with LedgerDriver(path) as driver:
        for _ in range(rounds):
            cpu, started = time.process_time(), time.perf_counter()
            for n in range(transactions):
                driver.execute_lambda(lambda t, n=n: t.execute_statement(STATEMENT, {"n": n, "payload": "x" * 64}))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            best = {"tps": max(best["tps"], transactions / elapsed),
                    "cpu_ms_per_txn": min(best["cpu_ms_per_txn"], 1000 * cpu / transactions)}
    return best


def fsync_floor(path: Path, commits: int) -> float:
    """Commits/s of a bare one-row SQLite insert per transaction, WAL with synchronous=FULL (the ledger's full
    durability): what one session could reach if the ledger cost nothing but its fsync."""
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (n INTEGER, v TEXT)")
    started = time.perf_counter()
    for n in range(commits):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (?, ?)", (n, "x" * 64))
        conn.execute("COMMIT")
    rate = commits / (time.perf_counter() - started)
    conn.close()
    return rate


def pyqldb_run(url: str, transactions: int) -> dict | None:
    if not PYQLDB_PYTHON.exists():
        return None
    script = ("import sys,time,json\nfrom pyqldb.driver.qldb_driver import QldbDriver\n"
              "d=QldbDriver('bench');n=int(sys.argv[1]);t=time.perf_counter()\n"
              "for i in range(n): d.execute_lambda(lambda x: x.execute_statement('INSERT INTO T ?', "
              "{'n': i, 'payload': 'x'*64}))\n"
              "print(json.dumps({'tps': n/(time.perf_counter()-t)}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_QLDB_SESSION=url, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_DEFAULT_REGION=REGION)
    done = subprocess.run([str(PYQLDB_PYTHON), "-c", script, str(transactions)], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sessions", default="1,4,16,64")
    parser.add_argument("--pyqldb-transactions", type=int, default=300)
    parser.add_argument("--stacks", default="threads,httptools", help="serve --http values to compare")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        embedded = embedded_run(Path(tmp) / "embedded.db", args.pyqldb_transactions)
        floor = fsync_floor(Path(tmp) / "floor.db", args.pyqldb_transactions)
        through_pyqldb: dict[str, dict | None] = {}
        rows: dict[str, list[dict]] = {}
        for http in args.stacks.split(","):
            data = Path(tmp) / f"data-{http}"
            with Ledger.create(data / "bench.db") as ledger:
                ledger.execute("CREATE TABLE T")
            server = subprocess.Popen([str(Path(sys.executable).parent / "ledgerdr"), "serve", "--data", str(data),
                                       "--port", "0", "--access-key", f"{KEY_ID}:{SECRET}", "--http", http],
                                      stdout=subprocess.PIPE, text=True)
            try:
                url = server.stdout.readline().split("listening on ")[1].split()[0]
                host, port = url.split("//")[1].split(":")
                through_pyqldb[http] = pyqldb_run(url, args.pyqldb_transactions)
                rows[http] = [light_run(host, int(port), server.pid, int(n), args.seconds)
                              for n in args.sessions.split(",")]
            finally:
                server.terminate()
                server.wait()
    load = os.getloadavg()
    print(f"load average at the start {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, at the end "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; durability full\n")
    print("| path | transactions/s | CPU ms per transaction |\n|---|---:|---:|")
    print(f"| fsync floor: bare SQLite, one-row transactions | {floor:,.0f} | — |")
    print(f"| embedded driver, in-process (best of 3) | {embedded['tps']:,.0f} | {embedded['cpu_ms_per_txn']:.2f} |")
    for http, measured_pyqldb in through_pyqldb.items():
        if measured_pyqldb:
            print(f"| pyqldb → serve --http {http} (one session) | {measured_pyqldb['tps']:,.0f} | — |")
        else:
            print(f"| pyqldb → serve --http {http} | not run: .venv-pyqldb missing (make builds it) | — |")
    print("\n| HTTP stack | sessions | transactions | transactions/s | × 1 session | ÷ fsync floor | p50 commit ms "
          "| p99 commit ms | server CPU ms/txn | ÷ in-process CPU | client CPU ms/txn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for http, measured in rows.items():
        for row in measured:
            print(f"| {http} | {row['sessions']} | {row['transactions']:,} | {row['tps']:,.0f} "
                  f"| {row['tps'] / measured[0]['tps']:.2f} | {row['tps'] / floor:.2f} | {row['p50_ms']:.1f} "
                  f"| {row['p99_ms']:.1f} "
                  f"| {row['server_cpu_ms_per_txn']:.2f} | {row['server_cpu_ms_per_txn'] / embedded['cpu_ms_per_txn']:.1f} "
                  f"| {row['client_cpu_ms_per_txn']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
