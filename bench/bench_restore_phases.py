"""Where a workers=0 restore's CPU goes, by phase: one `restore` into the embedded ledger of bench_restore.py's cached
data set, in this process, with CPU-time wrappers around the functions that make up its phases (no profiler: cProfile
inflates the Python functions called per block several times over). Phases nest (indented lines are part of the line
above them). Run it with another checkout's `src` first on PYTHONPATH to measure that one; a function that checkout
does not have is left out.

Usage: python bench/bench_restore_phases.py [--revisions 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench_restore import ensure_data
from ledgerdr.ledger import storage
from ledgerdr.restore import RestoreOptions, restore, worker
from ledgerdr.restore import run as run_module
from ledgerdr.targets import embedded

CPU: dict[str, float] = defaultdict(float)
PHASES = (  # (owner, function, label): in the order printed
    (worker, "load_rows", "load_rows: fetch, sha256, C verifier, rows"),
    (embedded.EmbeddedTarget, "apply_rows", "apply_rows: SQLite inserts and commit"),
    (embedded.EmbeddedTarget, "_current_rows", "  current rows merged per unit"),
    (worker, "record_result", "unit result records"),
    (run_module, "_apply_ddl", "finalize: tables and indexes (_apply_ddl)"),
    (embedded.EmbeddedTarget, "finalize", "finalize: target.finalize"),
    (embedded.EmbeddedTarget, "_build_current", "  current rows built from history"),
    (embedded.EmbeddedTarget, "_index_entries", "    index entries"),
    (storage.Storage, "add_index_entries", "  index entries inserted (any caller)"),
    (storage.Storage, "extend_digest_blocks", "  digest accumulator"),
    (embedded.EmbeddedTarget, "_extend_digest", "  digest accumulator: blocks read, folded, stored"),
    (run_module, "digest_of_target", "state digest: the target's side"),
    (run_module, "digest_of_packed_journal", "state digest: the journal's side"),
)


def _timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            CPU[label] += time.process_time() - started
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=200_000)
    args = parser.parse_args()
    root = ensure_data(args.revisions, timedelta(hours=1))
    labels = []
    for owner, name, label in PHASES:
        if hasattr(owner, name):
            setattr(owner, name, _timed(getattr(owner, name), label))
            labels.append(label)
    scratch = Path(tempfile.mkdtemp(prefix="restore-phases-", dir=root))
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    report = restore(str(root / "primary"), f"embedded:{scratch / 'restored.db'}",
                     RestoreOptions(workers=0, state_dir=scratch / "state"))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    shutil.rmtree(scratch)
    print(json.dumps({"src": str(Path(embedded.__file__).parents[1]), "revisions": report.revisions,
                      "verdict": report.verdict, "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
                      "load": [round(load, 1), round(os.getloadavg()[0], 1)]}))
    for label in labels:
        print(f"{CPU[label]:8.2f}  {label}")
    if not report.verdict:
        sys.exit(1)


if __name__ == "__main__":
    main()
