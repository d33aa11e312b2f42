"""Benchmark of the embedded ledger against a bare SQLite loop on the same data and durability.

Measures single-document transactions/s, documents/s in 40-document transactions, and export
revisions/s (ION_BINARY and ION_TEXT), and prints a Markdown table with each figure's ratio to bare
SQLite. Run from the repository root:

    .venv/bin/python bench/bench_ledger.py --transactions 2000 --batches 200 --durability normal
    .venv/bin/python bench/bench_ledger.py --profile          # adds a cProfile summary per phase
    LEDGERDR_PURE_PYTHON=1 .venv/bin/python bench/bench_ledger.py   # without the C accelerators
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from amazon.ion import simpleion

from ledgerdr import native
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.ledger.driver import LedgerDriver
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.ledger.workload import make_document
from ledgerdr.stores.file import FileStore

TARGETS = {"single": 3_000, "batch": 50_000, "export": 100_000}


def timed(fn: Callable[[], int], profile: bool, label: str) -> tuple[float, int]:
    """(seconds, units) for fn(); with `profile`, print the 12 costliest functions."""
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    units = fn()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print(f"\n### profile: {label}\n```\n{out.getvalue()}```")
    return elapsed, units


class Bare:
    """The baseline: one SQLite table, the same WAL mode, synchronous level and commit pattern."""

    def __init__(self, path: Path, durability: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={durability.upper()}")
        self.conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")

    def insert(self, batches: list[list[bytes]]) -> int:
        for batch in batches:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT INTO docs (data) VALUES (?)", [(d,) for d in batch])
            self.conn.execute("COMMIT")
        return sum(len(b) for b in batches)

    def scan(self) -> int:
        return sum(1 for (data,) in self.conn.execute("SELECT data FROM docs") if data)


def documents(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_document(rng, "Bench", i) for i in range(count)]


def ledger_inserts(driver: LedgerDriver, batches: list[list[dict]]) -> int:
    for batch in batches:
        param = batch[0] if len(batch) == 1 else batch
        driver.execute_lambda(lambda txn, p=param: txn.execute_statement("INSERT INTO Bench ?", p))
    return sum(len(b) for b in batches)


def export_rate(ledger: Ledger, root: Path, fmt: ExportFormat, profile: bool) -> tuple[float, int]:
    time.sleep(0.002)
    end = datetime.now(UTC)

    def run() -> int:
        result = export_journal(
            ledger,
            start=datetime(2000, 1, 1, tzinfo=UTC),
            end=end,
            store=FileStore(root),
            prefix=fmt.value.lower(),
            fmt=fmt,
        )
        return result.revisions

    return timed(run, profile, f"export {fmt.value}")


def run(args: argparse.Namespace) -> list[tuple[str, int, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        single = [[d] for d in documents(args.transactions, 1)]
        batch = [documents(40, 100 + i) for i in range(args.batches)]
        encoded = lambda groups: [[simpleion.dumps(d, binary=True) for d in g] for g in groups]  # noqa: E731
        bare = Bare(tmp_path / "bare.db", args.durability)
        single_bytes, batch_bytes = encoded(single), encoded(batch)  # the bare loop stores ready bytes
        bare_single = timed(lambda: bare.insert(single_bytes), False, "")
        bare_batch = timed(lambda: bare.insert(batch_bytes), False, "")
        bare_scan = timed(bare.scan, False, "")

        with Ledger.create(tmp_path / "ledger.db", durability=args.durability) as ledger:
            driver = LedgerDriver(ledger)
            ledger.execute("CREATE TABLE Bench")
            ledger.execute("CREATE INDEX ON Bench (key)")
            ledger_single = timed(
                lambda: ledger_inserts(driver, single), args.profile, "single-document txns"
            )
            ledger_batch = timed(lambda: ledger_inserts(driver, batch), args.profile, "40-document txns")
            rows.append(
                ("single-document transactions/s", TARGETS["single"], rate(ledger_single), rate(bare_single))
            )
            rows.append(
                (
                    "documents/s in 40-document transactions",
                    TARGETS["batch"],
                    rate(ledger_batch),
                    rate(bare_batch),
                )
            )
            for fmt in (ExportFormat.ION_BINARY, ExportFormat.ION_TEXT):
                exported = export_rate(ledger, tmp_path / "exports", fmt, args.profile)
                rows.append(
                    (f"export revisions/s ({fmt.value})", TARGETS["export"], rate(exported), rate(bare_scan))
                )
    return rows


def rate(measure: tuple[float, int]) -> float:
    seconds, units = measure
    return units / seconds if seconds else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=2000, help="single-document transactions")
    parser.add_argument("--batches", type=int, default=200, help="40-document transactions")
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary per phase")
    args = parser.parse_args()
    rows = run(args)
    print(
        f"\n{args.transactions} single-document and {args.batches} 40-document transactions, "
        f"durability={args.durability}, {os.cpu_count()} CPUs, C accelerators {native.summary()}\n"
    )
    print("| measure | target | ledgerdr | bare SQLite | ledgerdr / bare |")
    print("|---|---:|---:|---:|---:|")
    for name, target, measured, baseline in rows:
        mark = "" if measured >= target else " (below target)"
        print(
            f"| {name} | {target:,} | {measured:,.0f}{mark} | {baseline:,.0f} | {measured / baseline:.3f} |"
        )


if __name__ == "__main__":
    main()
