"""The embedded ledger's readers and writers of `history` in ledger file format 1 (history WITHOUT ROWID, keyed by
table, document, version) against format 2 (a rowid table with a unique index on that key): the same rows in two
files, read the ways the engine, a restore's finalize and the state digest read them, and written by commits. CPU seconds of this process, interleaved round by
round (format 1, then 2, then 1, …), median of the rounds; each reader on a fresh connection (SQLite's own page cache
cold, the operating system's warm: both files are read once before the first round).

The rows: the first `--revisions` revisions, by block, of bench_restore.py's cached data set's source ledger
(`ledger.db`, made by `ensure_data`), inserted in block order, as a restore's units or a live ledger's commits append
them; current rows and blocks as the ledger holds them, no indexes (a lookup by an indexed field reads `documents`).

Readers:
- current build: finalize's current rows of a bulk-loaded table from its history (`embedded._NEWEST_ROWS`), all
  tables, in a transaction rolled back, with the restore target's 64 MiB page cache;
- state digest: `digest_of_state_rows` of the file, one part (the C digest over `iter_state_rows`, whose reads are
  mapped), and the two parts of a two-process digest read one after the other (`iter_state_rows(i, 2)`, rows only);
- Storage.history: every table's history rows in key order (`Storage.history`, what `history()` reads);
- history() full: PartiQL `SELECT * FROM history(T)` of the first table (PartiQL's evaluation dominates: one table);
- history() one doc: PartiQL `SELECT * FROM history(T) AS h WHERE h.metadata.id = ?` for two documents (it reads
  and evaluates the table's whole history);
- point reads: `Storage.history_in_block` (a redaction's lookup) and a history row by its key, `--points` each;
- document reads: PartiQL `SELECT * FROM T BY i WHERE i = ?` (reads `documents`: the control, unchanged);
- commits: `--commits` single-document transactions on the file (durability normal), updates of random live
  documents (a history row at a random key) and inserts of new documents (time-ordered ids: at the key's end); the
  two files take the same writes, so they stay alike from round to round.

Usage: python bench/bench_history_layout.py [--revisions 200000] [--rounds 5] [--points 20000] [--commits 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench_restore import ensure_data
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.storage import FORMAT_VERSIONS, Storage, connect
from ledgerdr.targets import embedded
from ledgerdr.targets.digest import digest_of_state_rows
from ledgerdr.targets.embedded import EmbeddedTarget

_COLUMNS = "table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq, data_hash"
_DOCUMENT_COLUMNS = "table_id, doc_id, version, data, hash, tx_time_ms, tx_id, block_seq"


def build(source: Path, path: Path, format_version: int, revisions: int) -> None:
    """A ledger file of `format_version` holding the source's first `revisions` revisions by block."""
    src = sqlite3.connect(f"file:{source}?immutable=1", uri=True)
    seq = src.execute("SELECT block_seq FROM history ORDER BY block_seq LIMIT 1 OFFSET ?", (revisions,)).fetchone()
    last = seq[0] if seq else 1 << 62
    meta = {k: v for k, v in src.execute("SELECT key, value FROM meta") if k not in ("format_version", "secure_delete")}
    src.close()
    storage = Storage.create(path, durability="normal", meta=meta, format_version=format_version)
    conn = storage.conn
    conn.execute("ATTACH ? AS src", (f"file:{source}?immutable=1",))
    with storage.write_transaction():
        conn.execute("INSERT INTO tables SELECT * FROM src.tables")
        conn.execute(f"INSERT INTO history ({_COLUMNS}) SELECT {_COLUMNS} FROM src.history WHERE block_seq < ? "
                     "ORDER BY block_seq, doc_id, version", (last,))
        conn.execute("INSERT INTO blocks SELECT * FROM src.blocks WHERE seq < ?", (last,))
        # the digest accumulator over the blocks kept, so that the file takes commits (the source's covers them all)
        hashes = [h for (h,) in conn.execute("SELECT block_hash FROM blocks ORDER BY seq")]
        storage.extend_digest_blocks([], 0, hashes)
        for (table_id,) in conn.execute("SELECT table_id FROM tables").fetchall():
            conn.execute(f"INSERT INTO documents ({_DOCUMENT_COLUMNS}) SELECT {_DOCUMENT_COLUMNS} "
                         f"{embedded._NEWEST_ROWS}", (table_id,))
    conn.execute("DETACH src")
    storage.close()


def cpu(function: Callable[[], object]) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def current_build(path: Path) -> None:
    conn = connect(path, durability="normal")
    conn.execute("PRAGMA cache_size=-65536")  # as the restore target's connection (EmbeddedTarget)
    conn.execute("BEGIN IMMEDIATE")
    for (table_id,) in conn.execute("SELECT table_id FROM tables").fetchall():
        conn.execute("DELETE FROM documents WHERE table_id = ?", (table_id,))
        conn.execute(f"INSERT INTO documents ({_DOCUMENT_COLUMNS}) SELECT {_DOCUMENT_COLUMNS} {embedded._NEWEST_ROWS}",
                     (table_id,))
    conn.execute("ROLLBACK")
    conn.close()


def state_digest(path: Path) -> str:
    target = EmbeddedTarget(path)
    try:
        return digest_of_state_rows(target.iter_state_rows(), {}).digest
    finally:
        target.close()


def state_rows_two_parts(path: Path) -> int:
    target = EmbeddedTarget(path)
    try:
        return sum(len(batch.rows) for part in range(2) for batch in target.iter_state_rows(part, 2))
    finally:
        target.close()


def storage_history(path: Path) -> int:
    with Ledger.open(path, read_only=True) as ledger:
        return sum(1 for t in ledger.tables() for _ in ledger.storage.history(t.table_id))


def history_full(path: Path) -> int:
    with Ledger.open(path, read_only=True) as ledger:
        return len(ledger.execute(f"SELECT * FROM history({ledger.tables()[0].name})"))


def history_one(path: Path, docs: list[tuple[str, str]]) -> int:
    with Ledger.open(path, read_only=True) as ledger:
        names = {t.table_id: t.name for t in ledger.tables()}
        return sum(len(ledger.execute(f"SELECT * FROM history({names[t]}) AS h WHERE h.metadata.id = ?", d))
                   for t, d in docs)


def points_in_block(path: Path, keys: list[tuple[str, str, int, int]]) -> int:
    with Ledger.open(path, read_only=True) as ledger:
        return sum(ledger.storage.history_in_block(t, d, seq) is not None for t, d, _, seq in keys)


def points_by_key(path: Path, keys: list[tuple[str, str, int, int]]) -> int:
    conn = connect(path, durability="normal")
    found = sum(conn.execute("SELECT data, hash FROM history WHERE table_id = ? AND doc_id = ? AND version = ?",
                             (t, d, v)).fetchone() is not None for t, d, v, _ in keys)
    conn.close()
    return found


def document_reads(path: Path, docs: list[tuple[str, str]]) -> int:
    with Ledger.open(path, read_only=True) as ledger:
        names = {t.table_id: t.name for t in ledger.tables()}
        return sum(len(ledger.execute(f"SELECT * FROM {names[t]} BY i WHERE i = ?", d)) for t, d in docs)


def updates(path: Path, docs: list[tuple[str, str]], round_: int) -> int:
    with Ledger.open(path, durability="normal") as ledger:
        names = {t.table_id: t.name for t in ledger.tables()}
        for n, (t, d) in enumerate(docs):
            ledger.execute(f"UPDATE {names[t]} AS x BY i SET x.bench = ? WHERE i = ?", f"{round_}-{n}", d)
    return len(docs)


def inserts(path: Path, count: int, round_: int) -> int:
    with Ledger.open(path, durability="normal") as ledger:
        name = ledger.tables()[0].name
        for n in range(count):
            ledger.execute(f"INSERT INTO {name} ?", {"bench": f"{round_}-{n}", "pad": "x" * 200})
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=200_000)
    parser.add_argument("--source-revisions", type=int, default=1_000_000, help="bench_restore.py's data set")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=1000)
    args = parser.parse_args()
    source = ensure_data(args.source_revisions, timedelta(hours=1)) / "ledger.db"
    scratch = Path(tempfile.mkdtemp(prefix="history-layout-", dir=source.parent))
    paths = {v: scratch / f"format-{v}.db" for v in FORMAT_VERSIONS}
    for version, path in paths.items():
        build(source, path, version, args.revisions)
    conn = connect(paths[1])
    rng = random.Random(1)
    keys = rng.sample(conn.execute("SELECT table_id, doc_id, version, block_seq FROM history").fetchall(), args.points)
    docs = [(t, d) for t, d, _, _ in rng.sample(keys, 2)]
    live = rng.sample(conn.execute("SELECT table_id, doc_id FROM documents").fetchall(), min(args.points, 5000))
    updated = rng.sample(live, min(len(live), args.commits))
    rows = conn.execute("SELECT count(*) FROM history").fetchone()[0]
    conn.close()
    readers: dict[str, Callable[[Path], object]] = {
        "current build (finalize)": current_build,
        "state digest, 1 part": state_digest,
        "state rows, 2 parts": state_rows_two_parts,
        "Storage.history, all tables": storage_history,
        "history() full, one table": history_full,
        "history() one doc ×2": lambda p: history_one(p, docs),
        f"history_in_block ×{len(keys)}": lambda p: points_in_block(p, keys),
        f"history by key ×{len(keys)}": lambda p: points_by_key(p, keys),
        f"document reads ×{len(live)}": lambda p: document_reads(p, live),
    }
    for path in paths.values():  # the OS cache warm for both, results equal
        results = [reader(path) for reader in readers.values()]
    assert len({state_digest(p) for p in paths.values()}) == 1
    writers: dict[str, Callable[[Path, int], object]] = {
        f"commits: updates ×{len(updated)}": lambda p, r: updates(p, updated, r),
        f"commits: inserts ×{args.commits}": lambda p, r: inserts(p, args.commits, r),
    }
    times: dict[str, dict[int, list[float]]] = {name: {v: [] for v in paths} for name in [*readers, *writers]}
    load = os.getloadavg()[0]
    for round_ in range(args.rounds):
        order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
        for name, reader in readers.items():
            for version in order:
                times[name][version].append(cpu(lambda: reader(paths[version])))  # noqa: B023
        for name, writer in writers.items():
            for version in order:
                times[name][version].append(cpu(lambda: writer(paths[version], round_)))  # noqa: B023
    print(json.dumps({"rows": rows, "rounds": args.rounds, "load": [round(load, 1), round(os.getloadavg()[0], 1)],
                      "bytes": {v: p.stat().st_size for v, p in paths.items()}, "results": results}))
    print("| reader | format 1: CPU s | format 2: CPU s | change |")
    print("|---|---:|---:|---:|")
    for name, by in times.items():
        one, two = statistics.median(by[1]), statistics.median(by[2])
        print(f"| {name} | {one:.3f} | {two:.3f} | {(two / one - 1) * 100:+.0f}% |")
    for path in paths.values():
        path.unlink()
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()


if __name__ == "__main__":
    main()
