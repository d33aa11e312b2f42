"""Warm standby lag: from a window record written to that window applied on the standby.

Real processes, as in production on one host: a writer process commits to an embedded ledger without
pause, `ledgerdr backup --every 0.2s` records 1 s windows (settle 300 ms) into a directory repository,
and `ledgerdr standby --json` follows it into an embedded standby, woken either by notifications
(`backup --notify` → sqlite queue → `standby --notify`) or by polling (`--every`). The lag of a window
is `applied_at` (the standby's JSON line for the round that committed it) minus the modification time
of its window record file (the moment it was written). Both clocks are this machine's.

    .venv/bin/python bench/bench_standby.py                      # 60 windows per mode
    .venv/bin/python bench/bench_standby.py --windows 20 --modes notify
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.repository import WINDOWS, parse_iso, read_windows
from ledgerdr.stores import FileStore, Location

OUT = Path(__file__).resolve().parent / "out"
LEDGERDR = str(Path(sys.executable).with_name("ledgerdr"))
TARGET_P95 = 2.0  # seconds, from the issue
# mode → the standby's wake-up options
MODES = {
    "notify": lambda queue: ["--notify", queue, "--relist-every", "1m"],
    "poll-1s": lambda queue: ["--every", "1s"],
    "poll-2s": lambda queue: ["--every", "2s"],  # the default
}
CONFIG = """[source]
path = "ledger.db"
[backup]
interval = "1s"
settle = "300ms"
[repositories.primary]
url = "primary"
"""


def writer(path: str) -> None:
    """Child process: commit small transactions until SIGTERM (a steady live ledger)."""
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    with Ledger.open(Path(path)) as ledger:
        seed = 1
        while not stopping:
            run_workload(ledger, 2, seed=seed)
            seed += 1
            time.sleep(0.05)


def run_mode(mode: str, windows: int, root: Path) -> dict:
    """One live run; returns the per-window lags (seconds) and what the machine was doing."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "ledgerdr.toml").write_text(CONFIG)
    with Ledger.create(root / "ledger.db") as ledger:
        run_workload(ledger, 1, seed=0)  # tables exist before the writer and the backup start
    queue = f"sqlite:///{root / 'notify.db'}?name=standby"
    notify = ["--notify", queue] if mode == "notify" else []
    processes = {
        "writer": subprocess.Popen([sys.executable, __file__, "--child-writer", str(root / "ledger.db")]),
        "backup": subprocess.Popen([LEDGERDR, "backup", "-c", str(root / "ledgerdr.toml"), "--every", "0.2s",
                                    *notify], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    standby_out = (root / "standby.jsonl").open("w")
    processes["standby"] = subprocess.Popen(
        [LEDGERDR, "standby", "--from", str(root / "primary"), "--to", f"embedded:{root / 'standby.db'}", "--json",
         *MODES[mode](queue)], stdout=standby_out, stderr=subprocess.DEVNULL)
    repo = Location(FileStore(root / "primary"), "")
    loads = []
    started = time.monotonic()
    try:
        while sum(1 for w in read_windows(repo).windows if w.last_seq is not None) < windows:
            if time.monotonic() - started > windows * 10 + 60:
                raise SystemExit(f"{mode}: the backup recorded too few windows in time")
            loads.append(os.getloadavg()[0])
            time.sleep(1)
        for name in ("writer", "backup"):
            processes[name].send_signal(signal.SIGTERM)
            processes[name].wait(30)
        recorded = [w for w in read_windows(repo).windows if w.last_seq is not None]
        deadline = time.monotonic() + 60
        while _applied_through(root / "standby.jsonl") != recorded[-1].last_seq:
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode}: the standby did not catch up")
            time.sleep(0.2)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        standby_out.close()
    applied = {}
    for line in (root / "standby.jsonl").read_text().splitlines():
        report = orjson.loads(line)
        applied.update(zip(report["windows_applied"], report["applied_at"], strict=True))
    lags = []
    for window in recorded:
        written = (root / "primary" / WINDOWS / window.key_name).stat().st_mtime
        lags.append(parse_iso(applied[window.window_start]).timestamp() - written)
    return {"lags": lags, "load": statistics.mean(loads) if loads else 0.0,
            "blocks": sum(w.blocks for w in recorded)}


def _applied_through(jsonl: Path) -> int | None:
    lines = jsonl.read_text().splitlines() if jsonl.exists() else []
    return orjson.loads(lines[-1])["position_seq"] if lines else None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]  # nearest rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=60, help="windows with blocks to measure per mode")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--child-writer", metavar="LEDGER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_writer:
        writer(args.child_writer)
        return
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    lines = [
        f"Standby lag from window record written to window applied (`bench/bench_standby.py --windows "
        f"{args.windows}`), {os.cpu_count()} CPUs; writer, backup and standby are separate processes; 1 s "
        "windows, settle 300 ms, backup every 0.2 s.",
        "",
        "| wake-up | windows | blocks | median lag | p95 lag | max lag | target p95 ≤ 2 s | load avg (1 min) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for mode in modes:
        result = run_mode(mode, args.windows, OUT / "standby-run" / mode)
        lags = result["lags"]
        p95 = percentile(lags, 0.95)
        lines.append(
            f"| {mode} | {len(lags)} | {result['blocks']:,} | {statistics.median(lags):.3f} s | {p95:.3f} s | "
            f"{max(lags):.3f} s | {'✓' if p95 <= TARGET_P95 else '✗'} | {result['load']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / "standby.md").write_text(text)
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
