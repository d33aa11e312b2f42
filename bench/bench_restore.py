"""Restore benchmark: `ledgerdr restore` into the embedded ledger against the reference's statement replay.

Builds a ledger of N revisions with the real workload, backs it up with the real backup flow (one-hour
windows; the backup runs under freezegun at a "now" after the last window closed, as tests/support/flows.py
does, so no waiting), then measures side by side, each run in a fresh child process on the same
repository: `restore` with workers=0 (in process), workers=2 (processes) and workers=2 on 500-block units,
all end to end (plan, fetch, verify, apply, finalize with the state-digest comparison), and `replay_statements`
(the reference's restore: statement text, `revisions[0].data`, a driver per object). Finally
cProfiles one more workers=0 restore and prints its hot spots. Writes bench/out/restore.md. Each run's CPU
seconds (its own and its worker processes') are reported beside its wall-clock time, with the load average
before and after it: on a shared machine the CPU figures are the ones the load does not move.

`--target postgres` (or `both`) also restores into PostgreSQL side by side: a private cluster started by
the bench exactly as the tests start theirs (tests/support/pg_server.py: initdb in a temporary directory, unix
socket only), but durable (fsync, synchronous_commit and full_page_writes on, as a real replica runs),
with a fresh database per run, and each run's server CPU seconds beside its own (the backends that served it, counted
by the postmaster once they exited). Beside the workers=0 run, the database it restored is dumped (`pg_dump -Fc`,
not timed) and `pg_restore` loads the same rows into a fresh database (`-j 1` and `-j 2`, timed): the
floor a plain PostgreSQL load reaches without verifying anything. `--pg-variants` adds two workers=0 runs
of other apply strategies, to measure the one shipped against them: every history COPY through a staging
table (`INSERT … ON CONFLICT DO NOTHING`), and current state merged unit by unit instead of built at the end.

    .venv/bin/python bench/bench_restore.py                     # 200,000 revisions
    .venv/bin/python bench/bench_restore.py --revisions 20000 --no-profile
    .venv/bin/python bench/bench_restore.py --revisions 50000 --target both
    .venv/bin/python bench/bench_restore.py --revisions 1000000 --runs restore-0,restore-2 --no-profile

The replay's rate uses its statement time only (the reference's ledger already had its tables; the
DDL pass and the comparison with the journal are timed apart), which favours the baseline.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from freezegun import freeze_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' private PostgreSQL server

from bench_verify import grow  # noqa: E402
from ledgerdr.backup import BackupPolicy, run_backup  # noqa: E402
from ledgerdr.ledger.engine import Ledger  # noqa: E402
from ledgerdr.restore import RestoreOptions, restore  # noqa: E402
from ledgerdr.restore import run as run_module  # noqa: E402
from ledgerdr.restore.replay import replay_statements  # noqa: E402
from ledgerdr.sources.embedded import EmbeddedSource  # noqa: E402
from ledgerdr.stores import FileStore, Location  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TARGET_RATE = 50_000  # revisions/s, embedded, end to end including verification
TARGET_RATIO = 10.0  # ledgerdr ÷ replay (issue 18)
TARGET_RTO_1M = 20.0  # seconds for 1,000,000 revisions (issue 18)
TARGET_RATE_PG = 30_000  # revisions/s into PostgreSQL, end to end
# restore-0-python: workers=0 on the pure-Python paths (LEDGERDR_PURE_PYTHON=1), beside the C verifier's
RUNS = ("restore-0", "restore-2", "restore-2-500", "restore-0-python", "replay")
# restore-2-500: two worker processes on units of 500 blocks (issue 18 item 3: both verify, they take turns only on
# the target's write lock), beside one process on the default units (run.UNIT_BLOCKS)
SMALL_UNIT_BLOCKS = 500
PURE_PYTHON_RUNS = ("restore-0-python",)
PG_RUNS = ("pg-0", "pg-2")
PG_VARIANTS = ("pg-0-staged", "pg-0-merged")
PG_RESTORE_JOBS = (1, 2)
# A replica keeps what it commits: the tests' settings (fsync off) would flatter PostgreSQL here.
PG_DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "shared_buffers": "128MB"}


# ------------------------------------------------------------------------------------------ the data set


def ensure_data(revisions: int, interval: timedelta) -> Path:
    """The cached data set OUT/restore-<N>/ (ledger.db, primary/); meta.json is written last."""
    root = OUT / f"restore-{revisions}"
    if (root / "meta.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    with Ledger.create(root / "ledger.db", durability="normal") as ledger:
        written, _ = grow(ledger, revisions, 0, seed=1)
    built = time.perf_counter() - started
    source = EmbeddedSource(root / "ledger.db")
    policy = BackupPolicy(interval=interval)
    # every window up to the current one is due once its end plus the settle time has passed
    with freeze_time(datetime.now(UTC) + interval + policy.settle + timedelta(seconds=1)):
        report = run_backup(source, Location(FileStore(root / "primary"), ""), policy)
    source.close()
    if report.failed or not report.recorded:
        raise SystemExit(f"backup failed: {report.failed}")
    meta = {"written": written, "windows": len(report.recorded), "build_seconds": round(built, 1),
            "backup_seconds": round(time.perf_counter() - started - built, 1),
            "revisions": sum(w.revisions for w in report.recorded), "blocks": sum(w.blocks for w in report.recorded),
            "objects": sum(1 for w in report.recorded for o in w.objects if o.key.endswith(".ion"))}
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"generated {meta} in {root}", file=sys.stderr)
    return root


# ------------------------------------------------------------------------------------------ child runs


def run(task: str, root: Path, pg_url: str | None = None) -> dict:
    """One measurement on a fresh target; returns what the report table needs."""
    scratch = root / "scratch" / task
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    source = str(root / "primary")
    if task == "replay":
        report = replay_statements(source, scratch / "replay.db")
        c = report.comparison
        return {"seconds": report.seconds, "revisions": report.journal_revisions, "ddl_seconds": report.ddl_seconds,
                "compare_seconds": report.compare_seconds, "failed": report.statements_failed,
                "selected": report.statements_selected, "documents": c.target_documents,
                "journal_documents": c.journal_documents, "matching": c.documents_matching,
                "ids_preserved": c.ids_preserved, "identical": c.identical}
    workers = 0 if task in ("restore-0", "restore-0-python", "profile", "pg-0", "pg-profile", *PG_VARIANTS) else 2
    _pg_variant(task)
    options = RestoreOptions(workers=workers, state_dir=scratch / "state")
    if task == "restore-2-500":  # the planner's unit size is no option: the bench sets it for this run
        run_module.split_units = functools.partial(run_module.split_units, blocks=SMALL_UNIT_BLOCKS)
    profiler = cProfile.Profile() if task in ("profile", "pg-profile") else None
    target = pg_url if task.startswith("pg-") else f"embedded:{scratch / 'restored.db'}"
    if profiler:
        profiler.enable()
    report = restore(source, target, options)
    if profiler:
        profiler.disable()
        return {"seconds": report.rto_seconds, "revisions": report.revisions, "profile": _hot_spots(profiler)}
    return {"seconds": report.rto_seconds, "revisions": report.revisions, "verdict": report.verdict,
            "units": report.units}


def _pg_variant(task: str) -> None:
    """In a child process: switch the PostgreSQL target to the apply strategy a variant measures."""
    from functools import partialmethod

    from ledgerdr.targets.postgres import PostgresTarget

    if task == "pg-0-staged":  # every history COPY through the staging table
        PostgresTarget._copy_history = partialmethod(PostgresTarget._copy_history, staged=True)  # type: ignore
    elif task == "pg-0-merged":  # current state merged per unit, never left to finalize
        PostgresTarget._defers_current = lambda self, cur, table: False  # type: ignore


def _hot_spots(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def measure(task: str, root: Path, server=None) -> dict:
    """Run `task` in a fresh child process; a PostgreSQL task gets a fresh database of `server`."""
    load = os.getloadavg()[0]
    if task.startswith("pg-"):
        with server.fresh_database(uri=True) as url:
            before = _server_cpu(server)
            result = _measure([task, str(root), url], root)
            result["server_cpu_seconds"] = round(_server_cpu(server, settle=True) - before, 1)
            if task == "pg-0":
                result["pg_restore"] = pg_restore_beside(server, url, root)
    else:
        result = _measure([task, str(root)], root)
    return {**result, "load": (load, os.getloadavg()[0])}


def _server_cpu(server, *, settle: bool = False) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster's own and its exited children's (the backends
    that served a run, once its connections closed; not the long-lived background writers). `settle`: first wait
    until no client is connected, so that the run's backends have exited and been counted."""
    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    if settle:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for _ in range(100):
                if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                                " AND pid <> pg_backend_pid()").fetchone()[0] == 0:
                    break
                time.sleep(0.05)
        time.sleep(0.2)  # the postmaster reaps an exited backend on SIGCHLD
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime


def pg_restore_beside(server, url: str, root: Path) -> dict[int, dict]:
    """`pg_dump -Fc` of the database at `url` (not timed), then `pg_restore -j N` of it into a fresh database,
    timed, for each N in PG_RESTORE_JOBS."""
    dump = root / "scratch" / "restored.dump"
    dump.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(server.bindir / "pg_dump"), "-Fc", "-f", str(dump), url], check=True)
    out = {}
    for jobs in PG_RESTORE_JOBS:
        with server.fresh_database(uri=True) as target:
            load = os.getloadavg()[0]
            started = time.perf_counter()
            subprocess.run([str(server.bindir / "pg_restore"), "-j", str(jobs), "-d", target, str(dump)], check=True)
            out[jobs] = {"seconds": time.perf_counter() - started, "load": (load, os.getloadavg()[0])}
    out_size = dump.stat().st_size
    dump.unlink()
    return {**out, "dump_bytes": out_size}


def _measure(args: list[str], root: Path) -> dict:
    task = args[0]
    env = {**os.environ, "LEDGERDR_PURE_PYTHON": "1" if task in PURE_PYTHON_RUNS else "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{task} failed:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # CPU time of the run and every process it waited for (workers): what the run cost, whatever the load
    result["cpu_seconds"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    result["load"] = (round(load, 1), round(os.getloadavg()[0], 1))
    shutil.rmtree(root / "scratch" / task, ignore_errors=True)
    return result


# ------------------------------------------------------------------------------------------ the report


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def report_lines(meta: dict, results: dict[str, dict], revisions_arg: int, target: str = "embedded") -> list[str]:
    restores = any(task in results for task in ("restore-0", "restore-2", "restore-2-500"))
    lines = embedded_lines(meta, results, revisions_arg) if restores and "replay" in results else []
    if "pg-0" in results:
        lines += ([""] if lines else []) + postgres_lines(meta, results, revisions_arg, target)
    return lines


def embedded_lines(meta: dict, results: dict[str, dict], revisions_arg: int) -> list[str]:
    rate = {task: r["revisions"] / r["seconds"] for task, r in results.items()}
    replay = results["replay"]
    best = max(rate[t] for t in ("restore-0", "restore-2", "restore-2-500") if t in rate)
    ratio = best / rate["replay"]
    lines = [
        f"Restore into the embedded ledger (`bench/bench_restore.py --revisions {revisions_arg}`): "
        f"{meta['revisions']:,} revisions, {meta['blocks']:,} blocks, {meta['objects']} data objects in "
        f"{meta['windows']} window(s), ION_BINARY; {os.cpu_count()} CPUs; each run in a fresh process.",
        "",
        "| mode | seconds | revisions/s | ÷ replay | CPU s (all processes) | rev per CPU s | ÷ replay (CPU) | "
        "load avg (1 min) before / after | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    cpu_rate = {task: r["revisions"] / r["cpu_seconds"] for task, r in results.items() if r.get("cpu_seconds")}
    for task, label in (("restore-0", "ledgerdr restore, workers=0"), ("restore-2", "ledgerdr restore, workers=2"),
                        ("restore-2-500", f"ledgerdr restore, workers=2, {SMALL_UNIT_BLOCKS}-block units"),
                        ("restore-0-python", "ledgerdr restore, workers=0, pure Python (no C accelerators)")):
        if task not in results:
            continue
        r = results[task]
        lines.append(f"| {label} | {r['seconds']:.1f} (RTO) | {rate[task]:,.0f} | {rate[task] / rate['replay']:.1f}× "
                     f"| {_cpu(r, cpu_rate, task)} | {r['load'][0]:.2f} / {r['load'][1]:.2f} "
                     f"| {'verified, state digest equal' if r['verdict'] else 'NOT VERIFIED'} |")
    lines += [
        f"| replay-statements (reference) | {replay['seconds']:.1f} | {rate['replay']:,.0f} | 1.0× | "
        f"{_cpu(replay, cpu_rate, 'replay')} | {replay['load'][0]:.2f} / {replay['load'][1]:.2f} | "
        f"{replay['failed']:,} of {replay['selected']:,} statements failed; {replay['documents']:,} of "
        f"{replay['journal_documents']:,} documents, {replay['matching']:,} equal, {replay['ids_preserved']} "
        f"ids kept; digest {'equal' if replay['identical'] else 'differs'} |",
        "",
        f"Replay excludes its DDL pass ({replay['ddl_seconds']:.1f} s) and its comparison with the journal "
        f"({replay['compare_seconds']:.1f} s); the restores' RTO includes planning, verification of every "
        "object before it is applied (once: finalize builds the journal's side of the state digest from the "
        "digest leaves the workers recorded) and the state-digest comparison, which re-hashes every revision "
        "the target stores from its stored bytes.",
        "",
    ]
    rto_1m = min(results[t]["seconds"] for t in ("restore-0", "restore-2", "restore-2-500")
                 if t in results) * 1_000_000 / meta["revisions"]
    lines += [
        f"- embedded ≥ {TARGET_RATE:,} revisions/s end to end: best {best:,.0f} {mark(best >= TARGET_RATE)}",
        f"- ≥ {TARGET_RATIO:.0f}× the replay baseline: {ratio:.1f}× {mark(ratio >= TARGET_RATIO)}",
        f"- RTO for 1,000,000 revisions < {TARGET_RTO_1M:.0f} s: {rto_1m:,.0f} s, "
        f"{how_reached(meta['revisions'])} {mark(rto_1m < TARGET_RTO_1M)}",
    ]
    return lines


def _cpu(r: dict, cpu_rate: dict, task: str) -> str:
    """CPU seconds, revisions per CPU second and its ratio to the replay's: the figures the load does not move."""
    if task not in cpu_rate:
        return "— | — | —"
    ratio = f"{cpu_rate[task] / cpu_rate['replay']:.1f}×" if "replay" in cpu_rate else "—"
    return f"{r['cpu_seconds']:.1f} | {cpu_rate[task]:,.0f} | {ratio}"


def how_reached(revisions: int) -> str:
    """How a figure for 1,000,000 revisions was obtained from a run over `revisions`."""
    if revisions >= 1_000_000:
        return f"measured ({revisions:,} revisions, scaled to 1,000,000)"
    return f"a linear extrapolation from {revisions:,} revisions (not measured)"


def postgres_lines(meta: dict, results: dict[str, dict], revisions_arg: int, target: str) -> list[str]:
    rate = {task: r["revisions"] / r["seconds"] for task, r in results.items()}
    best = max(rate["pg-0"], rate["pg-2"])
    ratio = best / rate["replay"]
    lines = [
        f"Restore into PostgreSQL (`bench/bench_restore.py --revisions {revisions_arg} --target {target}`): the "
        f"same {meta['revisions']:,} revisions; a private PostgreSQL {results['pg-0'].get('server', '')} cluster "
        "on a unix socket, durable settings (fsync, synchronous_commit on), a fresh database per run; client, "
        "workers and server share the same CPUs. `pg_restore` loads the database the workers=0 run restored "
        "(`pg_dump -Fc`, not timed) into a fresh database right after that run.",
        "",
        "| mode | seconds | revisions/s | ÷ replay | client CPU s | server CPU s | load avg (1 min) before → after "
        "| result |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    labels = (("pg-0", "ledgerdr restore → postgres, workers=0"), ("pg-2", "ledgerdr restore → postgres, workers=2"),
              ("pg-0-staged", "variant: workers=0, every history COPY through a staging table"),
              ("pg-0-merged", "variant: workers=0, current state merged per unit"))
    for task, label in labels:
        if task not in results:
            continue
        r = results[task]
        lines.append(f"| {label} | {r['seconds']:.1f} (RTO) | {rate[task]:,.0f} | {rate[task] / rate['replay']:.1f}× "
                     f"| {r.get('cpu_seconds', '—')} | {r.get('server_cpu_seconds', '—')} "
                     f"| {_load(r)} | {'verified, state digest equal' if r['verdict'] else 'NOT VERIFIED'} |")
    restores = {jobs: r for jobs, r in results["pg-0"]["pg_restore"].items() if jobs != "dump_bytes"}
    for jobs, r in restores.items():
        pg_rate = meta["revisions"] / r["seconds"]
        lines.append(f"| pg_restore -j {jobs} of the same rows | {r['seconds']:.1f} | {pg_rate:,.0f} | "
                     f"{pg_rate / rate['replay']:.1f}× | — | — | {_load(r)} | loaded, nothing verified |")
    lines.append(f"| replay-statements (reference) | {results['replay']['seconds']:.1f} | {rate['replay']:,.0f} "
                 f"| 1.0× | {results['replay'].get('cpu_seconds', '—')} | — | {_load(results['replay'])} | (as above) |")
    rto_1m = min(results["pg-0"]["seconds"], results["pg-2"]["seconds"]) * 1_000_000 / meta["revisions"]
    pg_best = max(meta["revisions"] / r["seconds"] for r in restores.values())
    lines += [
        "",
        f"- PostgreSQL ≥ {TARGET_RATE_PG:,} revisions/s end to end: best {best:,.0f} {mark(best >= TARGET_RATE_PG)}",
        f"- ≥ pg_restore of the same rows (best of -j {'/'.join(map(str, restores))}: {pg_best:,.0f} rev/s): "
        f"{best / pg_best:.2f}× {mark(best >= pg_best)}",
        f"- ÷ the replay baseline: {ratio:.1f}×",
        f"- 1,000,000 revisions take {rto_1m:,.0f} s, {how_reached(meta['revisions'])}",
    ]
    return lines


def _load(result: dict) -> str:
    before, after = result.get("load", (0.0, 0.0))
    return f"{before:.1f} → {after:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=200_000, help="revisions in the generated ledger")
    parser.add_argument("--interval", type=int, default=3600, help="backup window, seconds")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument("--target", choices=("embedded", "postgres", "both"), default="embedded",
                        help="restore into the embedded ledger, PostgreSQL (a private server), or both side by side")
    parser.add_argument("--runs", default=",".join(RUNS),
                        help=f"comma-separated embedded runs (of {', '.join(RUNS)}; replay always runs)")
    parser.add_argument("--pg-variants", action="store_true",
                        help="also run the PostgreSQL apply strategies not shipped (staged COPY, per-unit merge)")
    parser.add_argument("--child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child[0], Path(args.child[1]), *args.child[2:])))
        return
    root = ensure_data(args.revisions, timedelta(seconds=args.interval))
    meta = json.loads((root / "meta.json").read_text())
    started = time.perf_counter()
    embedded, postgres = args.target in ("embedded", "both"), args.target in ("postgres", "both")
    chosen = [t for t in RUNS if t in args.runs.split(",") or t == "replay"]
    tasks = [*(chosen if embedded else ("replay",)), *(PG_RUNS if postgres else ()),
             *(PG_VARIANTS if postgres and args.pg_variants else ())]
    with _postgres(postgres) as server:
        results = {}
        # side by side: embedded and PostgreSQL runs alternate, so load from other work hits both alike
        for task in _interleaved(tasks):
            results[task] = measure(task, root, server)
            if server is not None and task.startswith("pg-"):
                results[task]["server"] = server.version
            print(f"{task}: {results[task]}", file=sys.stderr, flush=True)
        text = "\n".join(report_lines(meta, results, args.revisions, args.target)) + "\n"
        print(text)
        (OUT / "restore.md").write_text(text)
        if not args.no_profile:
            for task, name in (("profile", "restore-profile.txt"), ("pg-profile", "restore-postgres-profile.txt")):
                if (task == "profile" and embedded) or (task == "pg-profile" and postgres):
                    profile = measure(task, root, server)["profile"]
                    (OUT / name).write_text(profile)
                    print(profile)
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _interleaved(tasks: list[str]) -> list[str]:
    embedded = [t for t in tasks if not t.startswith("pg-")]
    postgres = [t for t in tasks if t.startswith("pg-")]
    out = []
    for i in range(max(len(embedded), len(postgres))):
        out += embedded[i:i + 1] + postgres[i:i + 1]
    return out


@contextmanager
def _postgres(wanted: bool):
    if not wanted:
        yield None
        return
    from support.pg_server import PostgresServer

    with PostgresServer.running(PG_DURABLE) as server:
        with psycopg.connect(server.dsn()) as conn:
            server.version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        yield server


if __name__ == "__main__":
    main()
