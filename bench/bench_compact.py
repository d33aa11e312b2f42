"""Compaction benchmark: restore from a snapshot plus one window against restore from every raw window.

Builds a ledger of N revisions with the real workload spread over W one-minute windows (the ledger
is written under freezegun, one frozen minute per window, as tests/support/flows.py does), backs it up with
the real backup flow into `raw/`, copies that repository to `snap1/` and `snap2/` and compacts every window
but the last there, in snapshot format 1 and format 2 (timed: the nightly job's cost). Then, each in a fresh
child process, one after the other in the same run, restores into a new embedded ledger (a) `raw/` from all
its windows, (b) `snap1/` and (c) `snap2/` from the snapshot plus the last window.

All go through `ledgerdr.restore` end to end (plan, queue, workers, finalize with the state-digest
comparison), so every side runs the same code and must end with the same state digest. The final state
digest costs every side about the same (it re-hashes what the target holds): each child times it again
on the restored ledger with the same split over processes as finalize, and the report gives the ratios
with and without it.

    .venv/bin/python bench/bench_compact.py                       # 100,000 revisions, 10 windows
    .venv/bin/python bench/bench_compact.py --revisions 20000 --windows 5
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.compact import compact
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.targets.digest import (
    DigestPart,
    digest_of_parts,
    digest_part_of_rows,
    digest_part_of_state_rows,
    digests_rows_in_c,
    target_dropped,
)
from ledgerdr.targets.embedded import EmbeddedTarget

OUT = Path(__file__).resolve().parent / "out"
T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=1)
TARGET_RATIO = 5.0
if os.environ.get("BENCH_GC_OFF"):  # --gc-off: set here so that restore's spawned workers (which import
    gc.disable()  # this module as __mp_main__) run without the cyclic collector too


# ------------------------------------------------------------------------------------------ the data set


def ensure_data(revisions: int, windows: int, formats: tuple[int, ...] = (1, 2)) -> Path:
    """The cached data set OUT/snapshot-<N>-<W>[-f<formats>]/ (raw/, snap1/, snap2/); meta.json is written last."""
    tag = "" if formats == (1, 2) else "-f" + "".join(map(str, formats))
    root = OUT / f"snapshot-{revisions}-{windows}{tag}"
    if (root / "meta.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    written = _build_ledger(root / "ledger.db", revisions, windows)
    built = time.perf_counter() - started
    source, raw = EmbeddedSource(root / "ledger.db"), Location(FileStore(root / "raw"), "")
    with freeze_time(T0 + windows * INTERVAL + timedelta(seconds=6)):
        report = run_backup(source, raw, BackupPolicy(interval=INTERVAL))
    source.close()
    if report.failed or len(report.recorded) != windows:
        raise SystemExit(f"backup failed: {report.failed or len(report.recorded)}")
    last_but_one = report.recorded[-2].last_seq
    meta = {
        "written": written,
        "windows": windows,
        "build_seconds": round(built, 1),
        "revisions": sum(w.revisions for w in report.recorded),
        "blocks": sum(w.blocks for w in report.recorded),
        "last_window_revisions": report.recorded[-1].revisions,
        "raw_bytes": sum(o.size for w in report.recorded[:-1] for o in w.objects),
    }
    for version in formats:
        shutil.copytree(root / "raw", root / f"snap{version}")
        snap = Location(FileStore(root / f"snap{version}"), "")
        # real time: its objects are retained from now on
        folded = compact(snap, up_to_seq=last_but_one, format_version=version)
        meta[f"format_{version}"] = {
            "compact_seconds": folded.seconds,
            "snapshot_revisions": folded.revisions,
            "snapshot_objects": folded.objects,
            "snapshot_bytes": folded.bytes_written,
            "blocks_dropped": folded.blocks_without_revisions,
        }
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"generated {meta} in {root}", file=sys.stderr)
    return root


def _build_ledger(path: Path, revisions: int, windows: int) -> int:
    """About revisions/windows revisions per window; every block of window i is stamped in minute i."""
    written, seed = 0, 1
    with Ledger.create(path, durability="normal") as ledger:
        for window in range(windows):
            goal = revisions * (window + 1) // windows
            with freeze_time(T0 + window * INTERVAL + timedelta(seconds=7)):
                while written < goal:
                    stats = run_workload(ledger, max(50, (goal - written) // 4), seed=seed)
                    written, seed = written + stats.documents_written, seed + 1
    return written


# ------------------------------------------------------------------------------------------ child runs


TASKS = {"raw": "raw", "snapshot-1": "snap1", "snapshot-2": "snap2"}


def run(task: str, root: Path, workers: int) -> dict:
    """Restore `raw/` (task "raw") or `snap1/`, `snap2/` into a fresh embedded ledger; then time the final
    state digest again on what was restored."""
    scratch = root / "scratch" / task
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    report = restore(
        str(root / TASKS[task]),
        f"embedded:{scratch / 'restored.db'}",
        RestoreOptions(workers=workers, state_dir=scratch / "state"),
    )
    cpu = _cpu_seconds()  # before the digest is re-timed below
    return {
        "seconds": report.rto_seconds,
        "cpu_seconds": round(cpu, 2),
        "digest_seconds": _digest_seconds(scratch / "restored.db", workers),
        "revisions": report.revisions,
        "units": report.units,
        "digest": report.target_state_digest,
        "verified": report.verdict,
        "problems": report.problems[:3],
        "driver": f"restore, workers={workers}",
    }


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the processes it waited for (the restore's workers and finalize's
    digest processes): what a shared machine's load does not move, unlike the wall-clock time."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def _digest_seconds(path: Path, workers: int) -> float:
    """The target's state digest as finalize computes it: split over `workers` processes when there are (each
    hashing its part's stored rows in C where the extension is built, as `restore.run._finalize`)."""
    started = time.perf_counter()
    processes = max(workers, 1)
    if processes > 1:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.starmap(_digest_part, [(str(path), i, processes) for i in range(processes)])
    else:
        parts = [_digest_part(str(path), 0, 1)]
    target = EmbeddedTarget(path)
    try:
        digest_of_parts(parts, target_dropped(target))
    finally:
        target.close()
    return round(time.perf_counter() - started, 3)


def _digest_part(path: str, index: int, count: int) -> DigestPart:
    target = EmbeddedTarget(path)
    try:
        if digests_rows_in_c(target):
            return digest_part_of_state_rows(target.iter_state_rows(index, count))
        return digest_part_of_rows(target.iter_state_part(index, count, decode=False))
    finally:
        target.close()


def measure(task: str, root: Path, workers: int) -> dict:
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, __file__, "--child", task, str(root), str(workers)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{task} failed:\n{done.stderr}")
    shutil.rmtree(root / "scratch" / task, ignore_errors=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = (load_before, os.getloadavg()[0])
    return result


# ------------------------------------------------------------------------------------------ the report


def row(label: str, result: dict, raw: dict) -> str:
    rate = result["revisions"] / result["seconds"]
    bare = result["seconds"] - result["digest_seconds"]
    cells = (label, str(result["units"]), f"{result['revisions']:,}", f"{result['seconds']:.1f}",
             f"{rate:,.0f}", f"{result['digest_seconds']:.1f}", f"{raw['seconds'] / result['seconds']:.2f}×",
             f"{(raw['seconds'] - raw['digest_seconds']) / bare:.2f}×", f"{result['cpu_seconds']:.1f}",
             f"{raw['cpu_seconds'] / result['cpu_seconds']:.2f}×",
             f"{result['load'][0]:.2f} → {result['load'][1]:.2f}")
    return "| " + " | ".join(cells) + " |"


def report_lines(meta: dict, results: dict[str, dict], args: argparse.Namespace) -> list[str]:
    raw, snap = results["raw"], results["snapshot-2"]
    ratio = raw["seconds"] / snap["seconds"]
    same = len({r["digest"] for r in results.values()}) == 1 and all(r["verified"] for r in results.values())
    gc_note = "; garbage collector disabled in both (--gc-off)" if args.gc_off else ""
    lines = [
        f"Restore from a snapshot plus one window vs from every raw window (`bench/bench_compact.py "
        f"--revisions {args.revisions} --windows {args.windows}`): {meta['revisions']:,} revisions, "
        f"{meta['blocks']:,} blocks in {meta['windows']} one-minute windows, ION_BINARY; "
        f"{os.cpu_count()} CPUs; {raw['driver']}; each restore in a fresh process into a new embedded "
        f"ledger, one after the other in one run{gc_note}. \"digest\" is the final state digest re-timed on "
        "the restored ledger (same split as finalize); \"without digest\" subtracts it from both sides; \"CPU s\" is "
        "the restore's own CPU seconds and its processes' (not the re-timed digest).",
        "",
        "| restore from | units | revisions | seconds | revisions/s | digest s | speed-up | speed-up without "
        "digest | CPU s | CPU speed-up | load avg (1 min) before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        row(f"all {meta['windows']} raw windows", raw, raw),
    ]
    for version in args.formats:
        info = meta[f"format_{version}"]
        lines.append(row(f"snapshot format {version} ({info['snapshot_objects']} objects) + last window "
                         f"({meta['last_window_revisions']:,} revisions)", results[f"snapshot-{version}"], raw))
    lines += [
        "",
        f"- format 2 speed-up {ratio:.2f}× (target ≥ {TARGET_RATIO:.0f}×) {'✓' if ratio >= TARGET_RATIO else '✗'}; "
        f"state digests {'equal, all verified' if same else 'DIFFER or unverified'}",
    ]
    for version in args.formats:
        info = meta[f"format_{version}"]
        rate = info["snapshot_revisions"] / info["compact_seconds"] if info["compact_seconds"] else 0
        lines.append(
            f"- compaction of {meta['windows'] - 1} windows in format {version}: {info['compact_seconds']:.1f} s "
            f"({rate:,.0f} revisions/s); snapshot {info['snapshot_bytes'] / 2**20:,.1f} MiB vs "
            f"{meta['raw_bytes'] / 2**20:,.1f} MiB of raw exports; {info['blocks_dropped']:,} read-only or "
            "DDL-only blocks dropped")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revisions", type=int, default=100_000, help="revisions in the generated ledger")
    parser.add_argument("--windows", type=int, default=10, help="one-minute windows (the last stays raw)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="restore workers (wired mode)"
    )
    parser.add_argument(
        "--gc-off",
        action="store_true",
        help="experiment: run both restores with the cyclic garbage collector disabled",
    )
    parser.add_argument(
        "--formats",
        type=lambda text: tuple(sorted({int(v) for v in text.split(",")})),
        default=(1, 2),
        help="snapshot formats to compact and restore (e.g. 2: skips format 1's slow compaction)",
    )
    parser.add_argument("--child", nargs=3, metavar=("TASK", "DIR", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child[0], Path(args.child[1]), int(args.child[2]))))
        return
    if args.gc_off:
        os.environ["BENCH_GC_OFF"] = "1"  # inherited by the children and by restore's worker processes
    if args.windows < 2:
        parser.error("--windows must be at least 2")
    if 2 not in args.formats or not set(args.formats) <= {1, 2}:
        parser.error("--formats must include 2 (the format the target is measured on), and only 1 and 2")
    root = ensure_data(args.revisions, args.windows, args.formats)
    meta = json.loads((root / "meta.json").read_text())
    results = {}
    for task in ["raw", *(f"snapshot-{version}" for version in args.formats)]:
        results[task] = measure(task, root, args.workers)
        print(f"{task}: {results[task]}", file=sys.stderr, flush=True)
    text = "\n".join(report_lines(meta, results, args)) + "\n"
    print(text)
    (OUT / "compact.md").write_text(text)


if __name__ == "__main__":
    main()
