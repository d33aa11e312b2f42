"""Benchmark of the embedded ledger against a bare SQLite loop on the same data and durability.

Measures single-document transactions/s, documents/s in 40-document transactions, and export
revisions/s (ION_BINARY and ION_TEXT), and prints a Markdown table with each figure's ratio to bare
SQLite (one table, one row per document) and, for writes, to the ledger's own rows written alone (its
schema, the rows a commit writes, prepared in advance): the SQLite floor under the ledger's write path. Run from the repository root:

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
from ledgerdr.ledger.storage import _SCHEMA, connect
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


class LedgerRows:
    """The embedded ledger's own SQLite rows and nothing else: its schema and connection settings, and per
    transaction the rows a commit writes (a block holding the documents, then per document a history, a
    documents and an index row; the table's change counter, one Merkle node, the digest accumulator),
    all prepared before timing. The floor the ledger's write path stands on: what is left above it is
    parsing, encoding and hashing."""

    def __init__(self, path: Path, durability: str) -> None:
        self.conn = connect(path, durability=durability)
        self.conn.executescript(_SCHEMA)
        self.conn.execute("INSERT INTO tables VALUES ('T', 'Bench', 'ACTIVE', 0, 0)")
        self.next_seq = 0

    def insert(self, batches: list[list[bytes]]) -> int:
        rng = random.Random(7)
        prepared = []
        for seq, batch in enumerate(batches, self.next_seq):
            block_hash = rng.randbytes(32)
            ids = [f"{seq:012d}{i:010d}" for i in range(len(batch))]  # time-ordered, like the ledger's ids
            documents = [
                ("T", doc_id, 0, data, block_hash, seq, "tx", seq)
                for doc_id, data in zip(ids, batch, strict=True)
            ]
            keys = [("I", rng.randbytes(13), doc_id) for doc_id in ids]
            envelope = rng.randbytes(300 + 150 * len(batch))  # metadata, hashes, transaction info
            prepared.append((seq, b"".join(batch) + envelope, block_hash, documents, keys))
        self.next_seq += len(batches)
        conn = self.conn
        for seq, block, block_hash, documents, keys in prepared:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)", (seq, block, block_hash, seq, len(documents))
            )
            conn.executemany(
                "INSERT INTO history (table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                documents,
            )
            conn.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", documents)
            conn.executemany("INSERT OR IGNORE INTO index_entries VALUES (?, ?, ?)", keys)
            conn.execute("UPDATE tables SET change_counter = change_counter + 1 WHERE table_id = 'T'")
            conn.execute("INSERT INTO merkle_nodes VALUES (0, ?, ?)", (seq, block_hash))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('digest_stack', ?)", (block_hash,))
            conn.execute("COMMIT")
        return sum(len(b) for b in batches)


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


def run(args: argparse.Namespace) -> list[tuple[str, int, float, float, float | None]]:
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
        rows_alone = LedgerRows(tmp_path / "rows.db", args.durability)
        rows_single = timed(lambda: rows_alone.insert(single_bytes), False, "")
        rows_batch = timed(lambda: rows_alone.insert(batch_bytes), False, "")

        with Ledger.create(tmp_path / "ledger.db", durability=args.durability) as ledger:
            driver = LedgerDriver(ledger)
            ledger.execute("CREATE TABLE Bench")
            ledger.execute("CREATE INDEX ON Bench (key)")
            ledger_single = timed(
                lambda: ledger_inserts(driver, single), args.profile, "single-document txns"
            )
            ledger_batch = timed(lambda: ledger_inserts(driver, batch), args.profile, "40-document txns")
            rows.append(
                (
                    "single-document transactions/s",
                    TARGETS["single"],
                    rate(ledger_single),
                    rate(bare_single),
                    rate(rows_single),
                )
            )
            rows.append(
                (
                    "documents/s in 40-document transactions",
                    TARGETS["batch"],
                    rate(ledger_batch),
                    rate(bare_batch),
                    rate(rows_batch),
                )
            )
            for fmt in (ExportFormat.ION_BINARY, ExportFormat.ION_TEXT):
                exported = export_rate(ledger, tmp_path / "exports", fmt, args.profile)
                rows.append(
                    (
                        f"export revisions/s ({fmt.value})",
                        TARGETS["export"],
                        rate(exported),
                        rate(bare_scan),
                        None,
                    )
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
    print(
        "| measure | target | ledgerdr | bare SQLite | ledgerdr / bare | ledger's rows alone | ledgerdr / rows |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, target, measured, baseline, floor in rows:
        mark = "" if measured >= target else " (below target)"
        versus_rows = "— | —" if floor is None else f"{floor:,.0f} | {measured / floor:.3f}"
        print(
            f"| {name} | {target:,} | {measured:,.0f}{mark} | {baseline:,.0f} | {measured / baseline:.3f} "
            f"| {versus_rows} |"
        )


if __name__ == "__main__":
    main()
