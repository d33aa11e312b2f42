"""Where the cores go during one restore into the embedded ledger: bench_restore.py's child run (`restore-2` by default:
plan → two worker processes → finalize with its pool processes → verdict) with this tree's `src`, its process and every
descendant sampled from /proc every `--interval` seconds (CPU seconds per process, user + system). Prints one line per
bucket with each process's share of a core, and a summary per stretch: the workers' (from the first worker's start to
the last one's end) and finalize's (from then to the run's end), with the core-seconds the run left idle on a machine
of `--cores` cores. A worker's idle time while the other is busy is its wait for the file's write lock (or I/O).

Processes are named by role: `main` (the restore), `w1`, `w2` (workers, by start order; a worker's children are its
own), `p1`, `p2`, … (finalize's pool, by start order).

The restore's own steps are marked too (wall clock from the run's start, and the main process's CPU seconds in
each): planning and the workers (`_run_workers`), finalize's DDL pass, the target's finalize steps (where the tree
has them), the merge of the digest parts.

Usage: python bench/bench_restore_timeline.py [--revisions 1000000] [--task restore-2] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench_restore import ensure_data

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def sample(root_pid: int, names: dict[int, str], counts: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of the run's process tree, by role name (a new process is named on first sight)."""
    out: dict[str, float] = {}
    stack = [(root_pid, "main")]
    while stack:
        pid, parent_role = stack.pop()
        role = names.get(pid)
        if role is None:
            if pid == root_pid:
                role = "main"
            elif parent_role != "main":
                role = parent_role  # a worker's or pool process's own children count as it
            else:
                # spawned children of the restore: workers run `_worker_process`, the pool `Pool` workers; the
                # resource tracker is neither
                cmd = _cmdline(pid)
                if "resource_tracker" in cmd:
                    role = "rt"
                else:
                    kind = "w" if counts.get("pool_seen", 0) == 0 and counts.get("w", 0) < 2 else "p"
                    counts[kind] = counts.get(kind, 0) + 1
                    if kind == "p":
                        counts["pool_seen"] = 1
                    role = f"{kind}{counts[kind]}"
            names[pid] = role
        cpu = _cpu(pid)
        if cpu is not None:
            out[role] = out.get(role, 0.0) + cpu
        stack += [(child, role) for child in _children(pid)]
    return out


MARKED = (  # (module, owner or None, function): timed in the child when the tree has them
    ("ledgerdr.restore.run", None, "_load_or_plan"),
    ("ledgerdr.restore.run", None, "_run_workers"),
    ("ledgerdr.restore.run", None, "_apply_ddl"),
    ("ledgerdr.targets.embedded", "EmbeddedTarget", "_build_current"),
    ("ledgerdr.ledger.storage", "Storage", "ensure_history_key"),  # within _build_current: the key's build
    ("ledgerdr.targets.embedded", "EmbeddedTarget", "_build_index_entries"),
    ("ledgerdr.targets.embedded", "EmbeddedTarget", "_extend_digest"),
    ("ledgerdr.targets.embedded", "EmbeddedTarget", "_make_durable"),
    ("ledgerdr.targets.embedded", "EmbeddedTarget", "finalize"),
    ("ledgerdr.restore.run", None, "digest_of_parts"),
)


def _marked_child(task: str, root: Path) -> None:
    """In the child: bench_restore.run(task) with MARKED functions printing (label, wall start, wall end, CPU s)
    to stderr as JSON lines."""
    import importlib

    import bench_restore

    origin = time.perf_counter()

    def timed(function, label):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                print("MARK " + json.dumps([label, wall - origin, time.perf_counter() - origin,
                                            time.process_time() - cpu]), file=sys.stderr, flush=True)
        return wrapper

    for module_name, owner_name, name in MARKED:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        if name in vars(owner):
            setattr(owner, name, timed(vars(owner)[name], name))
    print(json.dumps(bench_restore.run(task, root)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=1_000_000)
    parser.add_argument("--task", default="restore-2")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--bucket", type=float, default=1.0, help="seconds per printed line")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--marked-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--show-processes", action="store_true", help="print each process id with its role")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the checkout's src to run")
    args = parser.parse_args()
    if args.marked_child:
        _marked_child(args.marked_child[0], Path(args.marked_child[1]))
        return
    root = ensure_data(args.revisions, timedelta(hours=1))
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve()), "LEDGERDR_PURE_PYTHON": "0"}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--marked-child", args.task, str(root)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    names: dict[int, str] = {}
    counts: dict[str, int] = {}
    samples: list[tuple[float, dict[str, float]]] = []
    latest: dict[str, float] = {}
    while child.poll() is None:
        now = sample(child.pid, names, counts)
        for role, cpu in now.items():  # a process that ended keeps its last reading
            latest[role] = max(cpu, latest.get(role, 0.0))
        samples.append((time.perf_counter() - started, dict(latest)))
        time.sleep(args.interval)
    out, err = child.communicate()
    shutil.rmtree(root / "scratch" / args.task, ignore_errors=True)
    if child.returncode != 0:
        raise SystemExit(err)
    result = json.loads(out.strip().splitlines()[-1])
    if args.show_processes:
        for pid, role in names.items():
            print(pid, role, file=sys.stderr)
    _report(samples, args, result, (load, os.getloadavg()[0]))
    print("\n| step (main process) | from s | to s | wall s | CPU s |\n|---|---:|---:|---:|---:|")
    for line in err.splitlines():
        if line.startswith("MARK "):
            label, start, end, cpu = json.loads(line[5:])
            print(f"| {label} | {start:.1f} | {end:.1f} | {end - start:.1f} | {cpu:.1f} |")


def _alive(samples: list[tuple[float, dict[str, float]]], role: str) -> tuple[float, float] | None:
    """The first and last sample time at which `role` was using CPU."""
    moving = [t for (t, now), (_, before) in zip(samples[1:], samples, strict=False)
              if now.get(role, 0.0) > before.get(role, 0.0)]
    return (moving[0], moving[-1]) if moving else None


def _report(samples: list[tuple[float, dict[str, float]]], args: argparse.Namespace, result: dict,
            load: tuple[float, float]) -> None:
    roles = sorted({r for _, s in samples for r in s if r != "rt"}, key=lambda r: (r != "main", r))
    print(f"{args.task}, {args.revisions:,} revisions: RTO {result['seconds']:.1f} s, verdict {result.get('verdict')}, "
          f"load {load[0]:.1f} → {load[1]:.1f}")
    print("  t s  " + "".join(f"{r:>6}" for r in roles) + "   total (cores busy)")
    previous: dict[str, float] = {}
    edge = args.bucket
    for t, now in samples:
        if t < edge and (t, now) != samples[-1]:
            continue
        shares = [(now.get(r, 0.0) - previous.get(r, 0.0)) / args.bucket for r in roles]
        print(f"{edge:5.1f}  " + "".join(f"{s:6.2f}" for s in shares) + f"   {sum(shares):5.2f}")
        previous, edge = now, edge + args.bucket
    final = samples[-1][1]
    workers = [w for w in (_alive(samples, r) for r in roles if r.startswith("w")) if w]
    end = samples[-1][0]
    if workers:
        first, last = min(w[0] for w in workers), max(w[1] for w in workers)
        stretches = [("before the workers", 0.0, first), ("workers", first, last), ("finalize and verdict", last, end)]
    else:
        stretches = [("whole run", 0.0, end)]
    print("\n| stretch | wall s | CPU s by process | core-seconds idle |")
    print("|---|---:|---|---:|")
    for label, a, b in stretches:
        at_a = _at(samples, a)
        at_b = _at(samples, b)
        used = {r: at_b.get(r, 0.0) - at_a.get(r, 0.0) for r in roles}
        shown = ", ".join(f"{r} {c:.1f}" for r, c in used.items() if c >= 0.05)
        print(f"| {label} | {b - a:.1f} | {shown} | {args.cores * (b - a) - sum(used.values()):.1f} |")
    print(f"\nCPU s in all: {sum(v for r, v in final.items() if r != 'rt'):.1f}")


def _at(samples: list[tuple[float, dict[str, float]]], t: float) -> dict[str, float]:
    for when, now in samples:
        if when >= t:
            return now
    return samples[-1][1]


if __name__ == "__main__":
    main()
