"""`ledgerdr serve` A/B: server CPU per transaction of this checkout against another checkout's `src`, with the
embedded driver's CPU per transaction (each also split into user and system time), measured interleaved round
after round so that both servers meet the same load. On a shared 2-core machine one bench_serve.py run after another moves by up to 2× with the other
jobs; interleaved rounds and medians make a change of 10% visible.

Each round: the embedded driver (300 single-document transactions, in this process), then for each session
count both servers one after the other (their order alternating by round) under bench_serve.py's light client,
then the embedded driver again. Both servers run from this checkout's virtualenv; `--base-src` is put first on
the base server's PYTHONPATH (its C extensions must be built there, e.g. copied from this checkout's src).

Usage: python bench/bench_serve_ab.py --base-src PATH [--sessions 1,16] [--seconds 3] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_serve import KEY_ID, SECRET, STATEMENT, light_run
from ledgerdr.ledger.driver import LedgerDriver
from ledgerdr.ledger.engine import Ledger

ROOT = Path(__file__).resolve().parents[1]


def _start(data: Path, src: Path) -> tuple[subprocess.Popen, str, int]:
    env = dict(os.environ, PYTHONPATH=str(src))
    # the ledger is created by the tree that serves it: an older tree does not open a newer ledger file format
    subprocess.run([sys.executable, "-c", "import sys; from ledgerdr.ledger.engine import Ledger; "
                    "ledger = Ledger.create(sys.argv[1]); ledger.execute('CREATE TABLE T'); ledger.close()",
                    str(data / "bench.db")], env=env, check=True)
    server = subprocess.Popen([str(Path(sys.executable).parent / "ledgerdr"), "serve", "--data", str(data),
                               "--port", "0", "--access-key", f"{KEY_ID}:{SECRET}"], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert server.stdout is not None
    url = server.stdout.readline().split("listening on ")[1].split()[0]
    host, port = url.split("//")[1].split(":")
    light_run(host, int(port), server.pid, 1, 0.5)  # warm: imports, caches, the first session
    return server, host, int(port)


def _embedded_ms(driver: LedgerDriver, transactions: int = 300, split: list[tuple[float, float]] | None = None) -> float:
    """CPU ms per transaction of the embedded driver in this process; appends (user, system) ms to `split`."""
    before, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    for n in range(transactions):
        driver.execute_lambda(lambda t, n=n: t.execute_statement(STATEMENT, {"n": n, "payload": "x" * 64}))
    after = resource.getrusage(resource.RUSAGE_SELF)
    if split is not None:
        split.append((1000 * (after.ru_utime - before.ru_utime) / transactions,
                      1000 * (after.ru_stime - before.ru_stime) / transactions))
    return 1000 * (time.process_time() - cpu) / transactions


def _user_system(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds so far (/proc; clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-src", type=Path, required=True, help="the other checkout's src directory")
    parser.add_argument("--sessions", default="1,16")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    trees = {"base": args.base_src.resolve(), "this": ROOT / "src"}
    sessions = [int(n) for n in args.sessions.split(",")]
    cpu: dict[tuple[str, int], list[float]] = {}
    tps: dict[tuple[str, int], list[float]] = {}
    embedded: list[float] = []
    embedded_split: list[tuple[float, float]] = []
    split: dict[tuple[str, int], list[tuple[float, float]]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        with Ledger.create(Path(tmp) / "embedded.db") as ledger:
            ledger.execute("CREATE TABLE T")
        servers = {name: _start(Path(tmp) / name, src) for name, src in trees.items()}
        try:
            with LedgerDriver(Path(tmp) / "embedded.db") as driver:
                _embedded_ms(driver, 100)
                for round_no in range(args.rounds):
                    embedded.append(_embedded_ms(driver, split=embedded_split))
                    order = list(trees) if round_no % 2 == 0 else list(trees)[::-1]
                    for n in sessions:
                        for name in order:
                            server, host, port = servers[name]
                            user, system = _user_system(server.pid)
                            row = light_run(host, port, server.pid, n, args.seconds)
                            user_after, system_after = _user_system(server.pid)
                            count = max(1, row["transactions"])
                            cpu.setdefault((name, n), []).append(row["server_cpu_ms_per_txn"])
                            tps.setdefault((name, n), []).append(row["tps"])
                            split.setdefault((name, n), []).append(
                                (1000 * (user_after - user) / count, 1000 * (system_after - system) / count))
                    embedded.append(_embedded_ms(driver, split=embedded_split))
        finally:
            for server, _, _ in servers.values():
                server.terminate()
                server.wait()
    load = os.getloadavg()
    inproc = statistics.median(embedded)
    print(f"load average at the start {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, at the end "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.rounds} rounds, {args.seconds:g} s per row; "
          f"durability full\n")
    print(f"embedded driver, in-process: median {inproc:.3f} CPU ms per transaction "
          f"({len(embedded)} runs of 300, {min(embedded):.3f}–{max(embedded):.3f}); user {_median(embedded_split, 0):.3f}, "
          f"system {_median(embedded_split, 1):.3f} (medians)\n")
    print("| server | sessions | transactions/s (median) | server CPU ms/txn (median) | min–max | ÷ in-process CPU "
          "| user / system ms/txn (medians) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in sessions:
        for name in trees:
            mine = cpu[(name, n)]
            median = statistics.median(mine)
            print(f"| {name} | {n} | {statistics.median(tps[(name, n)]):,.0f} | {median:.3f} "
                  f"| {min(mine):.3f}–{max(mine):.3f} | {median / inproc:.2f} "
                  f"| {_median(split[(name, n)], 0):.3f} / {_median(split[(name, n)], 1):.3f} |")
    return 0


def _median(pairs: list[tuple[float, float]], index: int) -> float:
    return statistics.median(pair[index] for pair in pairs)


if __name__ == "__main__":
    sys.exit(main())
