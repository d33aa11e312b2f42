"""Target state digest benchmark: finalize's `digest_of_target` alone, on restored targets, this checkout against another.

Restores the bench_restore data set (bench/out/restore-N/, built by `bench_restore.py --revisions N` if missing) once
into a private PostgreSQL cluster (durable settings, as bench_restore.py starts it) and once into an embedded ledger,
then computes the target's state digest (`targets.digest.digest_of_target`: `iter_state_rows` into the C digest, one
process) on each, several times, each time in a fresh child process: with this checkout's `src/`, and, with
`--against SRC`, alternately with another checkout's (e.g. a worktree of an earlier commit, its C extensions built in
place), so that both read the very same stored rows side by side. Every run must give the same digest.

Each run reports its wall-clock seconds, the CPU seconds of the client process, and for PostgreSQL the CPU seconds of
the server: its backend's (read from /proc while the connection is open) plus those of every server process that
exited meanwhile (the postmaster's children: parallel query workers). On a shared machine the CPU figures are the
ones the load does not move; the load average is given before and after each run. Writes bench/out/state-digest.md.

    .venv/bin/python bench/bench_state_digest.py --revisions 200000 --against ../base/src
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
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' private PostgreSQL server

OUT = Path(__file__).resolve().parent / "out"
SRC = Path(__file__).resolve().parents[1] / "src"
KINDS = ("postgres", "embedded")


def _ticks(pid: int) -> tuple[float, float]:
    """(own, waited-for children's) CPU seconds of process `pid` (/proc/PID/stat utime+stime, cutime+cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def child(kind: str, url: str, postmaster: int) -> dict:
    """One digest of the target at `url`, in this process (the `src/` on PYTHONPATH decides which code)."""
    from ledgerdr import native
    from ledgerdr.targets import open_target
    from ledgerdr.targets.digest import digest_of_target

    target = open_target(url)
    try:
        backend = target._conn.info.backend_pid if kind == "postgres" else None  # type: ignore[attr-defined]
        server_before = (_ticks(backend)[0], _ticks(postmaster)[1]) if backend else (0.0, 0.0)
        cpu_before = time.process_time()
        started = time.perf_counter()
        digest = digest_of_target(target)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        server_after = (_ticks(backend)[0], _ticks(postmaster)[1]) if backend else (0.0, 0.0)
    finally:
        target.close()
    return {"digest": digest.digest, "revisions": digest.revisions, "seconds": seconds, "client_cpu": cpu,
            "server_cpu": sum(server_after) - sum(server_before), "c": native.statedigest is not None}


def restored(kind: str, root: Path, server) -> str:
    """A target of `kind` holding the data set, restored with this checkout (not timed); its URL."""
    from ledgerdr.restore import RestoreOptions, restore

    scratch = root / "scratch" / f"state-digest-{kind}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if kind == "postgres":
        url = server.uri(f"digest_{os.getpid()}")
        with __import__("psycopg").connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE digest_{os.getpid()}")
    else:
        url = f"embedded:{scratch / 'restored.db'}"
    report = restore(str(root / "primary"), url, RestoreOptions(workers=2, state_dir=scratch / "state"))
    if not report.verdict:
        raise SystemExit(f"the {kind} restore did not verify: {report.problems[:3]}")
    return url


def measure(kind: str, url: str, src: Path, postmaster: int) -> dict:
    """`child` in a fresh process with `src` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(src), "LEDGERDR_PURE_PYTHON": "0"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, __file__, "--child", kind, url, str(postmaster)], capture_output=True,
                          text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} digest with {src} failed:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # with start-up
    result["load"] = (round(load, 2), round(os.getloadavg()[0], 2))
    return result


def report(runs: dict[tuple[str, str], list[dict]], meta: dict, revisions: int, names: dict[str, str]) -> list[str]:
    lines = [
        f"Target state digest (`bench/bench_state_digest.py --revisions {revisions}`): finalize's `digest_of_target` "
        f"on targets holding the same {meta['revisions']:,} revisions, each run in a fresh process, the checkouts "
        f"alternating; {os.cpu_count()} CPUs shared with other work. Medians of {len(next(iter(runs.values())))} "
        "runs each; every run gave the same digest.",
        "",
        "| target | code | seconds | client CPU s | server CPU s | client + server CPU s | runs (s) | "
        "load avg (1 min) before → after |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for (kind, code), results in runs.items():
        med = {key: statistics.median(r[key] for r in results) for key in ("seconds", "client_cpu", "server_cpu")}
        loads = ", ".join(f"{r['load'][0]:.1f} → {r['load'][1]:.1f}" for r in results)
        each = ", ".join(f"{r['seconds']:.2f}" for r in results)
        lines.append(f"| {kind} | {names[code]} | {med['seconds']:.2f} | {med['client_cpu']:.2f} | "
                     f"{med['server_cpu']:.2f} | {med['client_cpu'] + med['server_cpu']:.2f} | "
                     f"{each} | {loads} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=200_000, help="revisions in bench_restore's data set")
    parser.add_argument("--against", type=Path, help="another checkout's src/ to measure alternately beside this one")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target and checkout")
    parser.add_argument("--targets", default=",".join(KINDS), help="comma-separated: postgres, embedded")
    parser.add_argument("--child", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]))))
        return
    from bench_restore import PG_DURABLE, ensure_data
    from support.pg_server import PostgresServer

    root = ensure_data(args.revisions, timedelta(seconds=3600))
    meta = json.loads((root / "meta.json").read_text())
    codes = {"this": SRC, **({"against": args.against.resolve()} if args.against else {})}
    # named by commit only: a machine path has no place in the report
    names = {"this": f"this checkout ({_commit(SRC)})",
             "against": f"--against ({_commit(args.against.resolve())})" if args.against else ""}
    kinds = [k for k in KINDS if k in args.targets.split(",")]
    runs: dict[tuple[str, str], list[dict]] = {(kind, code): [] for kind in kinds for code in codes}
    with PostgresServer.running(PG_DURABLE) as server:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        urls = {kind: restored(kind, root, server) for kind in kinds}
        for round_ in range(args.repeat):
            for kind in kinds:
                for code, src in (codes.items() if round_ % 2 == 0 else reversed(codes.items())):
                    result = measure(kind, urls[kind], src, postmaster)
                    runs[kind, code].append(result)
                    print(f"{kind} {code}: {result}", file=sys.stderr, flush=True)
    digests = {r["digest"] for results in runs.values() for r in results}
    if len(digests) != 1 or not all(r["c"] for results in runs.values() for r in results):
        raise SystemExit(f"the runs disagree: {len(digests)} digests, or one ran without the C digest")
    text = "\n".join(report(runs, meta, args.revisions, names)) + "\n"
    print(text)
    (OUT / "state-digest.md").write_text(text)


def _commit(src: Path) -> str:
    done = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" + changes" if dirty else "")


if __name__ == "__main__":
    main()
