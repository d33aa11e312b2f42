"""`ledgerdr serve`: user-space instructions per single-document transaction, counted by valgrind (callgrind), for
the server's request path in-process against the embedded driver. Instruction counts do not move with the
machine's load, where CPU seconds on a shared 2-core machine move by 2× between runs.

What is counted (each as the difference between a run of N×3 transactions and a run of none, so start-up and
imports cancel out):
- server: the three requests of a transaction (StartTransaction, ExecuteStatement with an Ion binary
  parameter, CommitTransaction with its digest) as the threaded stack serves them — framing and SigV4
  verification (the native path when built, else httptools and sigv4.py), JSON, the session API, the ledger,
  the response — minus the client's own work of building and
  signing them (counted alone the same way). No sockets: the kernel's part of a round trip is not included.
- embedded: `LedgerDriver.execute_lambda` running the same INSERT.
Both at durability `normal` (the fsync is kernel time either way, and not counted).

Usage: python bench/bench_serve_instructions.py [--transactions 100] [--base-src PATH]
`--base-src` counts another checkout's server path as well (put first on PYTHONPATH; its C extensions must be
built there). Needs valgrind. Takes a few minutes: valgrind runs Python ~50× slower.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WARM = 200  # transactions before the counted ones, in every mode and count alike


def _raw(command: dict[str, Any]) -> bytes:
    """One request's bytes as bench_serve.py's light client (http.client) sends them."""
    from bench_serve import _signed_headers

    body = json.dumps(command).encode()
    headers = _signed_headers("127.0.0.1:8443", body)
    lines = [b"POST / HTTP/1.1", b"Host: 127.0.0.1:8443", b"Accept-Encoding: identity",
             b"Content-Length: %d" % len(body)]
    lines += [name.encode() + b": " + value.encode() for name, value in headers.items() if name != "host"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _run_server(transactions: int) -> None:
    import orjson
    from amazon.ion import simpleion

    from bench_serve import STATEMENT
    from ledgerdr.journal.hashing import dot, ion_hash
    from ledgerdr.ledger.engine import Ledger
    from ledgerdr.serve import app as app_module
    from ledgerdr.serve import threaded
    from ledgerdr.serve.app import Limits, ServeApp
    from ledgerdr.serve.catalog import Catalog

    data = Path(tempfile.mkdtemp()) / "data"
    with Ledger.create(data / "bench.db") as ledger:
        ledger.execute("CREATE TABLE T")
    app = ServeApp(Catalog(data, "normal"), {"AKIDBENCH": "bench-secret"}, Limits())  # type: ignore[arg-type]

    fast = getattr(threaded, "_fast_answer", None) if getattr(threaded, "_httpfast", None) is not None else None

    def serve(raw: bytes) -> Any:
        if fast is not None:  # the native path (ledgerdr._httpfast), as the threaded stack takes this request
            answer = fast(app, raw)
            assert answer.__class__ is bytes, answer
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), answer
            return orjson.loads(body)
        parser = threaded._Parser(app.limits.max_body)
        parser.http.feed_data(raw)
        request = parser.done[0]
        if hasattr(threaded, "_signed"):
            response = app.handle_request(threaded._signed(request), app_module.new_request_id())
        else:  # a checkout from before handle_request (an A/B base)
            response = app.handle(threaded._scope(request), b"".join(request.body),  # type: ignore[attr-defined]
                                  app_module.new_request_id())
        threaded._render(response, True)
        assert response.status == 200, response.body
        return orjson.loads(response.body)

    token = serve(_raw({"StartSession": {"LedgerName": "bench"}}))["StartSession"]["SessionToken"]
    for n in range(WARM + 3 * transactions):
        txn = serve(_raw({"SessionToken": token, "StartTransaction": {}}))["StartTransaction"]["TransactionId"]
        param = simpleion.dumps({"n": n, "payload": "x" * 64}, binary=True)
        serve(_raw({"SessionToken": token, "ExecuteStatement": {
            "TransactionId": txn, "Statement": STATEMENT,
            "Parameters": [{"IonBinary": base64.b64encode(param).decode()}]}}))
        digest = dot(ion_hash(txn), dot(ion_hash(STATEMENT), ion_hash(simpleion.loads(param))))
        serve(_raw({"SessionToken": token, "CommitTransaction": {
            "TransactionId": txn, "CommitDigest": base64.b64encode(digest).decode()}}))
    app.close()


def _run_client(transactions: int) -> None:
    """The server mode's client-side work alone, with answers of the same shapes."""
    import orjson
    from amazon.ion import simpleion

    from bench_serve import STATEMENT
    from ledgerdr.journal.hashing import dot, ion_hash
    from ledgerdr.journal.ids import time_ordered_id

    token = "t" * 43
    started = orjson.dumps({"StartTransaction": {"TransactionId": time_ordered_id()}})
    answer = orjson.dumps({"ExecuteStatement": {"FirstPage": {"Values": [{"IonBinary": "x" * 40}]}}})
    for n in range(WARM + 3 * transactions):
        _raw({"SessionToken": token, "StartTransaction": {}})
        txn = orjson.loads(started)["StartTransaction"]["TransactionId"]
        param = simpleion.dumps({"n": n, "payload": "x" * 64}, binary=True)
        _raw({"SessionToken": token, "ExecuteStatement": {
            "TransactionId": txn, "Statement": STATEMENT,
            "Parameters": [{"IonBinary": base64.b64encode(param).decode()}]}})
        orjson.loads(answer)
        digest = dot(ion_hash(txn), dot(ion_hash(STATEMENT), ion_hash(simpleion.loads(param))))
        _raw({"SessionToken": token, "CommitTransaction": {
            "TransactionId": txn, "CommitDigest": base64.b64encode(digest).decode()}})
        orjson.loads(answer)


def _run_embedded(transactions: int) -> None:
    from bench_serve import STATEMENT
    from ledgerdr.ledger.driver import LedgerDriver
    from ledgerdr.ledger.engine import Ledger

    path = Path(tempfile.mkdtemp()) / "embedded.db"
    with Ledger.create(path) as ledger:
        ledger.execute("CREATE TABLE T")
    with LedgerDriver(path, durability="normal") as driver:
        for n in range(WARM + 3 * transactions):
            driver.execute_lambda(lambda t, n=n: t.execute_statement(STATEMENT, {"n": n, "payload": "x" * 64}))


MODES = {"server": _run_server, "client": _run_client, "embedded": _run_embedded}


def _count(mode: str, transactions: int, src: Path, out_dir: Path) -> int:
    """Instructions callgrind counted for one run of `mode` from the checkout at `src`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT / "bench")]))
    out = out_dir / f"callgrind.{mode}.{transactions}.{abs(hash(src))}"
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                           __file__, "--mode", mode, "--transactions", str(transactions)],
                          env=env, capture_output=True, text=True, check=True)
    return int(re.findall(r"Collected : (\d+)", done.stderr)[-1])


def _per_transaction(mode: str, transactions: int, src: Path, out_dir: Path) -> float:
    return (_count(mode, transactions, src, out_dir) - _count(mode, 0, src, out_dir)) / (3 * transactions)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=100)
    parser.add_argument("--base-src", type=Path)
    parser.add_argument("--mode", choices=sorted(MODES), help=argparse.SUPPRESS)  # one counted run (internal)
    args = parser.parse_args()
    if args.mode:
        MODES[args.mode](args.transactions)
        return 0
    trees = {"this": ROOT / "src"} | ({"base": args.base_src.resolve()} if args.base_src else {})
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        embedded = _per_transaction("embedded", args.transactions, ROOT / "src", Path(tmp))
        rows = {name: (_per_transaction("server", args.transactions, src, Path(tmp)),
                       _per_transaction("client", args.transactions, src, Path(tmp))) for name, src in trees.items()}
    load = os.getloadavg()
    print(f"load average at the start {load_before[0]:.2f}, at the end {load[0]:.2f} (instruction counts do not "
          f"depend on it); {args.transactions}×3 transactions per count\n")
    print(f"embedded driver: {embedded:,.0f} instructions per transaction\n")
    print("| server path | instructions per transaction | ÷ embedded |\n|---|---:|---:|")
    for name, (server, client) in rows.items():
        print(f"| {name} | {server - client:,.0f} | {(server - client) / embedded:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
