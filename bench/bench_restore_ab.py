"""Restore A/B: `ledgerdr restore` into the embedded ledger by this checkout against another checkout's `src`,
measured interleaved round after round on bench_restore.py's cached data set, so that both meet the same load.
On the shared 2-core machine one run after another moves by up to 2× with the other jobs; the CPU seconds (the
run's process and its worker processes, `getrusage` of the waited-for children) move far less than the wall clock.

Each run is bench_restore.py's own child (`--child restore-0` / `restore-2`: a fresh process, a fresh target,
plan → verify → apply → finalize → state-digest comparison, the verdict checked), with the tree's `src` first on
PYTHONPATH; the base tree's C extensions must be built there (e.g. copied from this checkout's src when the base
changed none). The order of the two trees alternates by round. Prints one line per run, a table of medians and
one of the rounds' ratios (this ÷ base, paired by round).

`--target postgres` restores into PostgreSQL instead (bench_restore.py's durable private cluster, a fresh database
per run, tasks pg-0 / pg-2), adds each run's server CPU seconds (the backends that served it), and after every
round's pg-0 runs `pg_restore -j 1` and `-j 2` of the database that run restored (pg_dump -Fc not timed), so the
floor of a plain load is measured beside both trees in the same run.

Usage: python bench/bench_restore_ab.py --base-src PATH [--revisions 200000] [--runs restore-0,restore-2]
       [--rounds 3] [--target postgres]
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

from bench_restore import _postgres, _server_cpu, ensure_data, pg_restore_beside

ROOT = Path(__file__).resolve().parents[1]
BENCH_RESTORE = Path(__file__).resolve().parent / "bench_restore.py"
RUNS = "restore-0,restore-2"


def measure(task: str, root: Path, src: Path, server=None, pg_restore: bool = False) -> dict:
    """One bench_restore.py child run of `task` with `src` first on the path: RTO, CPU seconds, load before/after;
    a PostgreSQL task (pg-…) on a fresh database of `server`, with the server's CPU seconds, and `pg_restore` of
    what it restored beside it when asked."""
    if not task.startswith("pg-"):
        return _measure(task, root, src, [])
    with server.fresh_database(uri=True) as url:
        before = _server_cpu(server)
        result = _measure(task, root, src, [url])
        result["server_cpu"] = _server_cpu(server, settle=True) - before
        if pg_restore:
            result["pg_restore"] = pg_restore_beside(server, url, root)
    return result


def _measure(task: str, root: Path, src: Path, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "LEDGERDR_PURE_PYTHON": "0"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(BENCH_RESTORE), "--child", task, str(root), *extra],
                          capture_output=True, text=True, env=env)
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
    parser.add_argument("--runs", default=RUNS, help="bench_restore.py child tasks, comma-separated (--target postgres:"
                        " pg-0,pg-2 unless given)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", choices=("embedded", "postgres"), default="embedded",
                        help="postgres: pg-… tasks into a private durable cluster, pg_restore beside each round")
    args = parser.parse_args()
    root = ensure_data(args.revisions, timedelta(hours=1))
    meta = json.loads((root / "meta.json").read_text())
    trees = [("base", args.base_src.resolve()), ("this", ROOT / "src")]
    postgres = args.target == "postgres"
    tasks = args.runs.split(",") if args.runs != RUNS or not postgres else ["pg-0", "pg-2"]
    results: dict[tuple[str, str], list[dict]] = {}
    with _postgres(postgres) as server:
        for round_no in range(args.rounds):
            for name, src in trees if round_no % 2 == 0 else trees[::-1]:
                for task in tasks:
                    beside = postgres and task == "pg-0" and name == "this"
                    r = measure(task, root, src, server, beside)
                    results.setdefault((name, task), []).append(r)
                    server_cpu = f" + {r['server_cpu']:.1f} server" if "server_cpu" in r else ""
                    print(f"round {round_no + 1} {name} {task}: {r['seconds']:.1f} s, {r['cpu']:.1f}{server_cpu} CPU s, "
                          f"load {r['load'][0]} → {r['load'][1]}", file=sys.stderr, flush=True)
                    for jobs, p in r.get("pg_restore", {}).items():
                        if jobs != "dump_bytes":
                            results.setdefault(("pg_restore", f"-j {jobs}"), []).append(
                                {"seconds": p["seconds"], "load": tuple(round(x, 1) for x in p["load"])})
                            print(f"round {round_no + 1} pg_restore -j {jobs}: {p['seconds']:.1f} s", file=sys.stderr,
                                  flush=True)
    revisions = meta["revisions"]
    print(f"{revisions:,} revisions, {meta['blocks']:,} blocks; medians of {args.rounds} interleaved rounds\n")
    print("| tree | run | seconds (RTO) | revisions/s | CPU s (client + server) | revisions per CPU s "
          "| load avg before → after (all) |")
    print("|---|---|---:|---:|---:|---:|---|")
    rows = [(name, task) for task in tasks for name, _ in trees] + sorted(k for k in results if k[0] == "pg_restore")
    for name, task in rows:
        runs = results[(name, task)]
        seconds = statistics.median(r["seconds"] for r in runs)
        loads = ", ".join(f"{r['load'][0]}→{r['load'][1]}" for r in runs)
        if name == "pg_restore":
            print(f"| pg_restore | {task} | {seconds:.1f} | {revisions / seconds:,.0f} | — | — | {loads} |")
            continue
        cpu = statistics.median(r["cpu"] + r.get("server_cpu", 0.0) for r in runs)
        split = (f"{statistics.median(r['cpu'] for r in runs):.1f} + {statistics.median(r['server_cpu'] for r in runs):.1f}"
                 if postgres else f"{cpu:.1f}")
        print(f"| {name} | {task} | {seconds:.1f} | {revisions / seconds:,.0f} | {split} | {revisions / cpu:,.0f} "
              f"| {loads} |")
    _print_pairs(results, tasks)


def _print_pairs(results: dict[tuple[str, str], list[dict]], tasks: list[str]) -> None:
    """Each round's this ÷ base, wall and CPU: on a machine whose speed drifts between rounds, the pairs (run minutes
    apart) say more than the two medians, and how many pairs agree says how sure the change is."""
    print("\n| run | this ÷ base, seconds: median (min–max) | CPU s: median (min–max) | rounds this was faster |")
    print("|---|---:|---:|---:|")
    for task in tasks:
        pairs = list(zip(results[("base", task)], results[("this", task)], strict=True))
        wall = [this["seconds"] / base["seconds"] for base, this in pairs]
        cpu = [(this["cpu"] + this.get("server_cpu", 0.0)) / (base["cpu"] + base.get("server_cpu", 0.0))
               for base, this in pairs]
        print(f"| {task} | {statistics.median(wall):.3f} ({min(wall):.2f}–{max(wall):.2f}) "
              f"| {statistics.median(cpu):.3f} ({min(cpu):.2f}–{max(cpu):.2f}) "
              f"| {sum(ratio < 1 for ratio in wall)} of {len(pairs)} |")


if __name__ == "__main__":
    main()
