"""`ledgerdr serve`, one session: what a transaction costs beyond its instructions — context switches and loopback
TCP segments per transaction for the server and for the embedded driver, and the server's request path timed
hot (the same request over and over) against interleaved with the client's work (as a served session runs it).

- Context switches: `perf stat -e context-switches` attached to the server process after its warm-up (needs
  `perf`; the row is left out without it), against the embedded driver's own switches (getrusage, in-process).
- Segments: the machine's TCP InSegs over the run (/proc/net/snmp), per transaction: both directions on loopback,
  so other traffic on the machine shows up in it too.
- The floor: a bare Python ping-pong over loopback TCP (a forked client sends 1,000 bytes, the serving side answers
  300), the serving side's user and system CPU per round trip (getrusage).
- Hot against interleaved: `_httpfast.session_body` (framing and SigV4 in C) and `ServeApp.session_result` (the
  session API) for a StartTransaction, in-process without sockets, first in a tight loop, then inside whole
  transactions whose requests are built and signed between them as bench_serve.py's light client does.

The light client's requests were once sent as http.client sends them (head, then body: the server often woke on
the head alone); a `--coalesce-rounds` mode measured head and body in one send against that (BENCHMARKS.md: within
the noise). bench_serve.py's client now sends each request whole, so the mode had nothing left to compare.

Usage: python bench/bench_serve_wakeups.py [--seconds 3] [--transactions 1500]
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import orjson
from amazon.ion import simpleion

from bench_serve import KEY_ID, SECRET, STATEMENT, light_run
from bench_serve_instructions import _raw
from ledgerdr import native
from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.ledger.driver import LedgerDriver
from ledgerdr.ledger.engine import Ledger
from ledgerdr.serve.app import Limits, ServeApp
from ledgerdr.serve.catalog import Catalog


def _segments() -> int:
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:], strict=True))["InSegs"])


def _server_row(seconds: float, data: Path) -> dict[str, float]:
    with Ledger.create(data / "bench.db") as ledger:
        ledger.execute("CREATE TABLE T")
    server = subprocess.Popen([str(Path(sys.executable).parent / "ledgerdr"), "serve", "--data", str(data),
                               "--port", "0", "--access-key", f"{KEY_ID}:{SECRET}"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split("listening on ")[1].split()[0]
        host, port = url.split("//")[1].split(":")
        light_run(host, int(port), server.pid, 1, 0.5)  # warm
        out = data / "perf.txt"
        perf = None
        if shutil.which("perf"):
            perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "context-switches", "-o", str(out),
                                     "-p", str(server.pid)], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        segments = _segments()
        row = light_run(host, int(port), server.pid, 1, seconds)
        result = {"transactions": row["transactions"], "cpu_ms": row["server_cpu_ms_per_txn"],
                  "segments": (_segments() - segments) / row["transactions"]}
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
            switches = [line.split(",")[0] for line in out.read_text().splitlines() if "context-switches" in line]
            result["switches"] = int(switches[0]) / row["transactions"]
        return result
    finally:
        server.terminate()
        server.wait()


def _embedded_switches(path: Path, transactions: int) -> float:
    with Ledger.create(path) as ledger:
        ledger.execute("CREATE TABLE T")
    with LedgerDriver(path) as driver:
        for n in range(100):
            driver.execute_lambda(lambda t, n=n: t.execute_statement(STATEMENT, {"n": n, "payload": "x" * 64}))
        before = resource.getrusage(resource.RUSAGE_THREAD)
        for n in range(transactions):
            driver.execute_lambda(lambda t, n=n: t.execute_statement(STATEMENT, {"n": n, "payload": "x" * 64}))
        after = resource.getrusage(resource.RUSAGE_THREAD)
    return (after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw) / transactions


def _ping_pong(round_trips: int = 5000) -> tuple[float, float]:
    """The serving side's (user, system) µs per round trip of a bare request/answer over loopback TCP."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:  # the client: send, wait for the answer, again
        client = socket.create_connection(("127.0.0.1", port))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(round_trips):
            client.sendall(b"x" * 1000)
            client.recv(65536)
        os._exit(0)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(round_trips):
        conn.recv(65536)
        conn.sendall(b"y" * 300)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.waitpid(child, 0)
    conn.close()
    listener.close()
    return ((after.ru_utime - before.ru_utime) / round_trips * 1e6,
            (after.ru_stime - before.ru_stime) / round_trips * 1e6)


def _hot_and_interleaved(data: Path, transactions: int) -> dict[str, float]:
    """µs per StartTransaction of session_body and session_result: hot, and inside whole signed transactions."""
    assert native.httpfast is not None, "needs ledgerdr._httpfast"
    session_body = native.httpfast.session_body
    with Ledger.create(data / "bench.db") as ledger:
        ledger.execute("CREATE TABLE T")
    app = ServeApp(Catalog(data, "normal"), {"AKIDBENCH": "bench-secret"}, Limits())  # type: ignore[arg-type]
    spent = {"body": 0, "result": 0}

    def serve(raw: bytes, timed: bool = False) -> dict:
        started = time.perf_counter_ns()
        body = session_body(raw, app.limits.max_body, app.keys)
        framed = time.perf_counter_ns()
        result = app.session_result(body, "bench")
        if timed:
            spent["body"] += framed - started
            spent["result"] += time.perf_counter_ns() - framed
        assert isinstance(result, dict), result
        return result

    token = serve(_raw({"StartSession": {"LedgerName": "bench"}}))["StartSession"]["SessionToken"]

    def transaction(n: int, timed: bool) -> None:
        txn = serve(_raw({"SessionToken": token, "StartTransaction": {}}), timed)["StartTransaction"]["TransactionId"]
        param = simpleion.dumps({"n": n, "payload": "x" * 64}, binary=True)
        serve(_raw({"SessionToken": token, "ExecuteStatement": {"TransactionId": txn, "Statement": STATEMENT,
                    "Parameters": [{"IonBinary": base64.b64encode(param).decode()}]}}))
        digest = dot(ion_hash(txn), dot(ion_hash(STATEMENT), ion_hash(simpleion.loads(param))))
        serve(_raw({"SessionToken": token, "CommitTransaction": {
            "TransactionId": txn, "CommitDigest": base64.b64encode(digest).decode()}}))

    for n in range(300):
        transaction(n, False)
    for n in range(transactions):
        transaction(n, True)
    interleaved = {name: ns / transactions / 1000 for name, ns in spent.items()}
    start = _raw({"SessionToken": token, "StartTransaction": {}})
    body = orjson.dumps({"SessionToken": token, "StartTransaction": {}})
    hot_body = min(timeit.repeat(lambda: session_body(start, app.limits.max_body, app.keys), number=5000, repeat=5))
    hot_result = min(timeit.repeat(lambda: app.session_result(body, "bench"), number=5000, repeat=5))
    app.close()
    return {"body_hot": hot_body / 5000 * 1e6, "result_hot": hot_result / 5000 * 1e6,
            "body_interleaved": interleaved["body"], "result_interleaved": interleaved["result"]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--transactions", type=int, default=1500)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server = _server_row(args.seconds, Path(tmp) / "served")
        embedded = _embedded_switches(Path(tmp) / "embedded.db", args.transactions)
        timings = _hot_and_interleaved(Path(tmp) / "timed", args.transactions)
    ping_user, ping_system = _ping_pong()
    load = os.getloadavg()
    print(f"load average at the start {load_before[0]:.2f}, at the end {load[0]:.2f}; durability full (timings: "
          f"normal, no sockets)\n")
    switches = f"{server['switches']:.2f}" if "switches" in server else "(no perf)"
    print(f"server, one session: {server['transactions']} transactions, {server['cpu_ms']:.3f} CPU ms each, "
          f"{switches} context switches and {server['segments']:.2f} TCP segments per transaction")
    print(f"embedded driver: {embedded:.2f} context switches per transaction")
    print(f"bare loopback ping-pong, the serving side: {ping_user:.1f} µs user + {ping_system:.1f} µs system per "
          "round trip\n")
    print("| StartTransaction, µs | hot loop | interleaved with the client's work |\n|---|---:|---:|")
    print(f"| `_httpfast.session_body` | {timings['body_hot']:.2f} | {timings['body_interleaved']:.2f} |")
    print(f"| `ServeApp.session_result` | {timings['result_hot']:.2f} | {timings['result_interleaved']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
