"""PostgreSQL apply strategies side by side, in CPU time per revision: what the client and the server spend.

On a shared machine wall-clock rates move with other jobs; the CPU time a process spends moves much less. This
bench loads the restore bench's data set (bench_restore.py's cache), reads every unit the C verifier turns into
rows once (not timed), then applies the same rows into a fresh database per strategy, in turn, and counts the
client's CPU time and the PostgreSQL backend's (from /proc), per revision:

- shipped: each table's binary COPY straight into history; current state built once by finalize;
- staged: every COPY through the temporary table and `INSERT … ON CONFLICT DO NOTHING` (the re-delivery path);
- merged: COPY straight into history, current state merged unit by unit (as for a standby or incremental apply).

`finalize` (the build of the current state) and the state digest's read of the target are counted apart.

    .venv/bin/python bench/bench_pg_apply.py --revisions 200000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' private PostgreSQL server

from bench_restore import OUT, PG_DURABLE, ensure_data  # noqa: E402
from ledgerdr.restore import plan_restore  # noqa: E402
from ledgerdr.restore.rows import RowUnit, load_rows  # noqa: E402
from ledgerdr.restore.run import split_units  # noqa: E402
from ledgerdr.stores import open_location  # noqa: E402
from ledgerdr.targets.digest import digest_of_target  # noqa: E402
from ledgerdr.targets.postgres import PostgresTarget  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (the PostgreSQL backend serving a connection)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Staged(PostgresTarget):
    """Every history COPY through the staging table."""

    def _copy_history(self, cur, table, data, *, staged=False):  # type: ignore[no-untyped-def]
        return super()._copy_history(cur, table, data, staged=True)


class Merged(PostgresTarget):
    """Current state merged unit by unit, never left to finalize."""

    def _defers_current(self, cur, table):  # type: ignore[no-untyped-def]
        return False


TARGETS = {"shipped": PostgresTarget, "staged": Staged, "merged": Merged}


def measure(server, strategy: str, units: list[RowUnit]) -> dict[str, float]:
    revisions = sum(len(u.rows) for u in units)
    out: dict[str, float] = {"load": os.getloadavg()[0]}
    with server.fresh_database() as dsn:
        target = TARGETS[strategy](dsn)
        pid = target._conn.info.backend_pid
        target.open_lineage(units[0].strand_id or "", "bench")
        for step in ("apply", "finalize", "digest"):
            client, backend, wall = time.process_time(), backend_cpu(pid), time.perf_counter()
            if step == "apply":
                for u in units:
                    target.apply_rows(u.unit.unit_id, list(u.tables.values()), u.rows, u.blocks, u.last_block)
            elif step == "finalize":
                target.finalize()
            else:
                digest_of_target(target)
            out[f"{step} client"] = (time.process_time() - client) / revisions * 1e6
            out[f"{step} server"] = (backend_cpu(pid) - backend) / revisions * 1e6
            out[f"{step} wall"] = (time.perf_counter() - wall) / revisions * 1e6
        target.close()
    out["load after"] = os.getloadavg()[0]
    return out


def report(results: dict[str, list[dict[str, float]]], revisions_arg: int, revisions: int, units: int, of: int,
           rounds: int) -> list[str]:
    lines = [
        f"PostgreSQL apply strategies (`bench/bench_pg_apply.py --revisions {revisions_arg} --rounds {rounds}`): "
        f"{revisions:,} revisions in {units} units the C verifier turned into rows (of {of}), applied in one "
        "process into a fresh database each; durable settings; rounds interleaved; median µs per revision of CPU "
        "time, the client's and the PostgreSQL backend's (total: apply, finalize and the digest's read, client and "
        "server; the digest's own hashing is most of the client's share).",
        "",
        "| strategy | apply client | apply server | finalize server | digest read: server | total CPU | apply wall "
        "| load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for strategy, runs in results.items():
        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        total = sum(median(f"{s} {w}") for s in ("apply", "finalize", "digest") for w in ("client", "server"))
        lines.append(f"| {strategy} | {median('apply client'):.1f} | {median('apply server'):.1f} | "
                     f"{median('finalize server'):.1f} | {median('digest server'):.1f} | {total:.1f} | "
                     f"{median('apply wall'):.1f} | {min(r['load'] for r in runs):.1f}–"
                     f"{max(r['load after'] for r in runs):.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=200_000, help="the restore bench's data set to use")
    parser.add_argument("--rounds", type=int, default=2, help="each strategy this many times, interleaved")
    args = parser.parse_args()
    root = ensure_data(args.revisions, timedelta(hours=1))
    source = open_location(str(root / "primary"))
    loaded = [load_rows(source.store, u) for u in split_units(plan_restore(source).units)]
    units = [u for u in loaded if u is not None]
    revisions = sum(len(u.rows) for u in units)
    from support.pg_server import PostgresServer

    results: dict[str, list[dict[str, float]]] = {s: [] for s in TARGETS}
    with PostgresServer.running(PG_DURABLE) as server:
        for _ in range(args.rounds):
            for strategy in TARGETS:
                results[strategy].append(measure(server, strategy, units))
                print(strategy, results[strategy][-1], file=sys.stderr, flush=True)
    lines = report(results, args.revisions, revisions, len(units), len(loaded), args.rounds)
    text = "\n".join(lines) + "\n"
    print(text)
    (OUT / "pg-apply.md").write_text(text)


if __name__ == "__main__":
    main()
