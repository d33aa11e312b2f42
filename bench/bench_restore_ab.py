"""Restore A/B: `ledgerdr restore` into the embedded ledger by this checkout against another checkout's `src`,
measured interleaved round after round on bench_restore.py's cached data set, so that both meet the same load.
On the shared 2-core machine one run after another moves by up to 2× with the other jobs; the CPU seconds (the
run's process and its worker processes, `getrusage` of the waited-for children) move far less than the wall clock.

Each run is bench_restore.py's own child (`--child restore-0` / `restore-2`: a fresh process, a fresh target,
plan → verify → apply → finalize → state-digest comparison, the verdict checked), with the tree's `src` first on
PYTHONPATH; the base tree's C extensions must be built there (e.g. copied from this checkout's src when the base
changed none). The order of the two trees alternates by round. Prints one line per run and a table of medians.

Usage: python bench/bench_restore_ab.py --base-src PATH [--revisions 200000] [--runs restore-0,restore-2]
       [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from bench_restore import ensure_data

ROOT = Path(__file__).resolve().parents[1]
BENCH_RESTORE = Path(__file__).resolve().parent / "bench_restore.py"


def measure(task: str, root: Path, src: Path) -> dict:
    """One bench_restore.py child run of `task` with `src` first on the path: RTO, CPU seconds, load before/after."""
    env = {**os.environ, "PYTHONPATH": str(src), "LEDGERDR_PURE_PYTHON": "0"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(BENCH_RESTORE), "--child", task, str(root)], capture_output=True,
                          text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(root / "scratch" / task, ignore_errors=True)  # the child's target and state (as bench_restore's)
    if done.returncode != 0:
        raise SystemExit(f"{task} with {src} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["verdict"]:
        raise SystemExit(f"{task} with {src}: NOT VERIFIED")
    return {**result, "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "load": (round(load, 1), round(os.getloadavg()[0], 1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-src", type=Path, required=True, help="the other checkout's src directory")
    parser.add_argument("--revisions", type=int, default=200_000)
    parser.add_argument("--runs", default="restore-0,restore-2", help="bench_restore.py child tasks, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = ensure_data(args.revisions, timedelta(hours=1))
    meta = json.loads((root / "meta.json").read_text())
    trees = [("base", args.base_src.resolve()), ("this", ROOT / "src")]
    tasks = args.runs.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    for round_no in range(args.rounds):
        for name, src in trees if round_no % 2 == 0 else trees[::-1]:
            for task in tasks:
                r = measure(task, root, src)
                results.setdefault((name, task), []).append(r)
                print(f"round {round_no + 1} {name} {task}: {r['seconds']:.1f} s, {r['cpu']:.1f} CPU s, "
                      f"load {r['load'][0]} → {r['load'][1]}", file=sys.stderr, flush=True)
    revisions = meta["revisions"]
    print(f"{revisions:,} revisions, {meta['blocks']:,} blocks; medians of {args.rounds} interleaved rounds\n")
    print("| tree | run | seconds (RTO) | revisions/s | CPU s | revisions per CPU s | load avg before → after (all) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for task in tasks:
        for name, _ in trees:
            runs = results[(name, task)]
            seconds = statistics.median(r["seconds"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            loads = ", ".join(f"{r['load'][0]}→{r['load'][1]}" for r in runs)
            print(f"| {name} | {task} | {seconds:.1f} | {revisions / seconds:,.0f} | {cpu:.1f} | {revisions / cpu:,.0f} "
                  f"| {loads} |")


if __name__ == "__main__":
    main()
