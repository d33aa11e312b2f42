"""Benchmark of export verification against the bare cost of parsing the same files.

Generates a ledger with the real workload (cached under bench/out/), exports it in ION_TEXT, ION_BINARY
and JSON at two sizes (a time window ending after `--small` revisions, and the whole ledger), then runs
every measurement in a fresh child process: the bare parse (`simpleion.loads(data, single_value=False)`
per data object for Ion, `orjson.loads` per line for JSON; for Ion also a streamed parse with
`parse_eagerly=False`), full and chain verification (`check_revisions=False`; for JSON both the fused
chain path, `chain`, and the block-by-block path it replaces, `chain-general`, side by side; for Ion binary
full verification by the C verifier, `full`, and by the Python path alone, `full-python`). Each child
reports its best time (of up to 3 runs when one run is under 5 s) and its peak RSS, read from
/proc/self/status VmHWM: `ru_maxrss` of a child spawned by a large parent starts at the parent's RSS on
Linux (exec records the vforked parent's high-water mark). `--rounds N` repeats the whole set round-robin.

    .venv/bin/python bench/bench_verify.py                    # 200,000 revisions, memory also at 50,000
    # generating the data takes ~20 s for 100,000 revisions, ~25 min for 1,000,000 (measured), then it is cached
    .venv/bin/python bench/bench_verify.py --revisions 20000 --small 5000
    .venv/bin/python bench/bench_verify.py --formats json --rounds 3   # only JSON, best of 3 rounds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from amazon.ion import simpleion

from ledgerdr.errors import ConfigError
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.exports import plan_location, verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.ledger.workload import run_workload
from ledgerdr.stores.file import FileStore

OUT = Path(__file__).resolve().parent / "out"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MiB = 1024 * 1024
# (format, mode) measured, and the limit on verify time ÷ parse time where there is one.
RUNS = [("ION_TEXT", "full"), ("ION_BINARY", "full"), ("ION_BINARY", "full-python"), ("JSON", "full"),
        ("JSON", "chain-general"), ("JSON", "chain")]
TARGETS = {("ION_TEXT", "full"): 3.0, ("JSON", "chain"): 2.0}
RATE_TARGETS = {("ION_BINARY", "full"): 100_000}  # revisions/s, one process (issue 18)
FLAT = 1.25  # "memory stays flat": peak RSS at the large size at most this multiple of the small one


# ------------------------------------------------------------------------------------- the data set


def grow(ledger: Ledger, target: int, written: int, seed: int) -> tuple[int, int]:
    """Run workload chunks until `target` revisions are written; (revisions written, next seed)."""
    per_txn = 3.5  # a low first guess (the workload writes ~3.8), refined from the stats
    while written < target:
        transactions = max(200, math.ceil((target - written) / per_txn))
        stats = run_workload(ledger, transactions, seed=seed)
        per_txn = max(1.0, stats.documents_written / stats.transactions)
        written += stats.documents_written
        seed += 1
    return written, seed


def export_all(ledger: Ledger, end: datetime, root: Path) -> int:
    """Export [epoch, end) in every format to root/<FORMAT>/; the revisions in the window."""
    counts = set()
    for fmt in ExportFormat:
        result = export_journal(
            ledger, start=EPOCH, end=end, store=FileStore(root / fmt.value), prefix="x/", fmt=fmt
        )
        counts.add(result.revisions)
    assert len(counts) == 1, f"formats disagree on the window's revisions: {counts}"
    return counts.pop()


def ensure_data(revisions: int, small: int) -> dict[str, Path]:
    """The cached data set: {"small": dir, "large": dir}, each holding one export per format.

    `meta.json` is written last, so an interrupted generation is thrown away and redone."""
    root = OUT / f"verify-{revisions}-{small}"
    dirs = {"small": root / "small", "large": root / "large"}
    if (root / "meta.json").exists():
        return dirs
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    with Ledger.create(root / "ledger.db", durability="normal") as ledger:
        written, seed = grow(ledger, small, 0, seed=1)
        time.sleep(0.01)  # the window's end must fall strictly after the last small-phase block
        mark = datetime.now(UTC)
        written, _ = grow(ledger, revisions, written, seed)
        time.sleep(0.01)
        meta = {"written": written, "small": export_all(ledger, mark, dirs["small"])}
        meta["large"] = export_all(ledger, datetime.now(UTC), dirs["large"])
    meta["seconds"] = round(time.perf_counter() - started, 1)
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"generated {meta} in {root}", file=sys.stderr)
    return dirs


# ------------------------------------------------------------------------------- child measurements


def parse_only(store: FileStore, fmt: ExportFormat, stream: bool) -> int:
    """Read and parse every data object, doing nothing else; the values parsed. `stream` (Ion): parse
    one top-level value at a time (`parse_eagerly=False`) instead of building the object's list."""
    values = 0
    for obj in plan_location(store, "").objects:
        data = store.get(obj.resolved_key)
        if fmt is ExportFormat.JSON:
            values += sum(1 for line in data.splitlines() if orjson.loads(line))
        elif stream:
            values += sum(1 for _ in simpleion.loads(data, single_value=False, parse_eagerly=False))
        else:
            values += len(simpleion.loads(data, single_value=False))
    return values


def run_task(task: str, fmt: ExportFormat, store: FileStore) -> int:
    if task in ("parse", "stream"):
        return parse_only(store, fmt, stream=task == "stream")
    report = verify_location(store, "", check_revisions=task in ("full", "full-python"),
                             fuse_json=task != "chain-general", use_native=task != "full-python")
    if not report.ok:  # a benchmark of a failing verification would measure nothing useful
        raise SystemExit(f"verification failed: {[str(p) for p in report.problems[:3]]}")
    return report.revisions


def peak_rss() -> int:
    """This process's peak resident set, in bytes (VmHWM: its own address space only)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(task: str, fmt: str, store_dir: str) -> None:
    """Entry point of one measurement: prints {seconds, units, rss, base_rss} as JSON."""
    store, base = FileStore(store_dir), peak_rss()
    best, units = math.inf, 0
    for _ in range(3):
        start = time.perf_counter()
        units = run_task(task, ExportFormat(fmt), store)
        best = min(best, time.perf_counter() - start)
        if best >= 5:
            break
    print(json.dumps({"seconds": best, "units": units, "rss": peak_rss(), "base_rss": base}))


def measure(task: str, fmt: str, root: Path) -> dict:
    args = [sys.executable, __file__, "--child", task, fmt, str(root / fmt)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{task} {fmt} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- the report


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def mib(size: int) -> str:
    return f"{size / MiB:,.0f} MiB"


def collect(dirs: dict[str, Path], runs: list[tuple[str, str]],
            rounds: int = 1) -> dict[tuple[str, str, str], dict]:
    """Every measurement, keyed (size, format, task); each format's parse runs just before its verifies.

    With several rounds every measurement is repeated round-robin and its best time kept (peak RSS: the
    highest), so on a machine doing other work each task gets the same chances of a quiet moment."""
    results: dict[tuple[str, str, str], dict] = {}

    def keep_best(key: tuple[str, str, str], measured: dict) -> None:
        earlier = results.get(key)
        if earlier is not None:
            measured = {**min(earlier, measured, key=lambda m: m["seconds"]),
                        "rss": max(earlier["rss"], measured["rss"])}
        results[key] = measured

    for _ in range(rounds):
        parsed = set()
        for fmt, mode in runs:
            for task in ("parse", "stream") if fmt != "JSON" else ("parse",):
                if (fmt, task) not in parsed:
                    parsed.add((fmt, task))
                    keep_best(("large", fmt, task), measure(task, fmt, dirs["large"]))
            for size in ("large", "small"):
                keep_best((size, fmt, mode), measure(mode, fmt, dirs[size]))
    return results


def throughput_table(results: dict[tuple[str, str, str], dict], runs: list[tuple[str, str]]) -> list[str]:
    lines = [
        "| format | mode | revisions | parse (rev/s) | verify (rev/s) | verify ÷ parse | target "
        "| streamed parse (rev/s) | verify ÷ streamed parse |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for fmt, mode in runs:
        parsed, verified = results["large", fmt, "parse"], results["large", fmt, mode]
        revs, ratio = verified["units"], verified["seconds"] / parsed["seconds"]
        limit, rate = TARGETS.get((fmt, mode)), RATE_TARGETS.get((fmt, mode))
        target = f"≤ {limit:.0f}× {mark(ratio <= limit)}" if limit else "—"
        if rate:
            target = f"≥ {rate:,} rev/s {mark(revs / verified['seconds'] >= rate)}"
        lines.append(
            f"| {fmt} | {mode} | {revs:,} | {revs / parsed['seconds']:,.0f} | "
            f"{revs / verified['seconds']:,.0f} | {ratio:.2f}× | {target} | {streamed(results, fmt, verified)}"
        )
    return lines


def streamed(results: dict[tuple[str, str, str], dict], fmt: str, verified: dict) -> str:
    """The streamed-parse columns (Ion only: a JSON reader always parses line by line)."""
    stream = results.get(("large", fmt, "stream"))
    if stream is None:
        return "— | — |"
    return f"{verified['units'] / stream['seconds']:,.0f} | {verified['seconds'] / stream['seconds']:.2f}× |"


def memory_table(results: dict[tuple[str, str, str], dict], runs: list[tuple[str, str]]) -> list[str]:
    lines = [
        "| format | mode | RSS after imports | revisions | peak RSS | revisions | peak RSS | growth "
        f"| target (≤ {FLAT}×) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for fmt, mode in runs:
        small, large = results["small", fmt, mode], results["large", fmt, mode]
        growth = large["rss"] / small["rss"]
        lines.append(
            f"| {fmt} | {mode} | {mib(large['base_rss'])} | {small['units']:,} | {mib(small['rss'])} | "
            f"{large['units']:,} | {mib(large['rss'])} | {growth:.2f}× | {mark(growth <= FLAT)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revisions", type=int, default=200_000, help="revisions in the large export")
    parser.add_argument("--small", type=int, default=50_000, help="revisions in the small export (memory)")
    parser.add_argument("--formats", default="ion_text,ion_binary,json",
                        help="comma-separated formats to measure (default: all three)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every measurement round-robin and keep the best (a busy machine)")
    parser.add_argument("--child", nargs=3, metavar=("TASK", "FORMAT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if not 0 < args.small < args.revisions:
        parser.error("--small must be positive and below --revisions")
    try:
        formats = {ExportFormat.parse(name.strip()).value for name in args.formats.split(",")}
    except ConfigError as exc:
        parser.error(str(exc))
    runs = [(fmt, mode) for fmt, mode in RUNS if fmt in formats]
    subset = "" if len(formats) == len(ExportFormat) else f" --formats {','.join(sorted(formats)).lower()}"
    subset += f" --rounds {args.rounds}" if args.rounds > 1 else ""
    dirs = ensure_data(args.revisions, args.small)
    started = time.perf_counter()
    results = collect(dirs, runs, max(1, args.rounds))
    lines = [
        f"Verification of a generated export (`bench/bench_verify.py --revisions {args.revisions} "
        f"--small {args.small}{subset}`), {os.cpu_count()} CPUs, each measurement in a fresh process.",
        "",
        *throughput_table(results, runs),
        "",
        "Peak RSS of one verification at two export sizes:",
        "",
        *memory_table(results, runs),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    # a subset gets its own file, so it never overwrites the full table
    every = len(formats) == len(ExportFormat)
    (OUT / ("verify.md" if every else f"verify-{'-'.join(sorted(formats)).lower()}.md")).write_text(text)
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
