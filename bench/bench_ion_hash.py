"""Benchmark: ledgerdr's Ion Hash against the `ionhash` package on the same parsed revisions.

Builds N realistic QLDB revisions (metadata struct + data struct with strings, decimals, timestamps, a
nested struct, a list and a blob) as Ion text, parses them with amazon.ion (C extension), then times, in the
same run and on the same values:

- parsing the Ion text (for scale: full verification must cost at most 3x parsing);
- `ledgerdr.journal.hashing.ion_hash(metadata)` + `ion_hash(data)` per revision;
- the same two hashes with `ionhash` 1.2.1 (`value.ion_hash('SHA256')`, via tests/support/ionhash_shim.py).

Each timing is the best of `--repeat` runs. Prints a Markdown table row. Checks that both give equal hashes.

    python bench/bench_ion_hash.py [--revisions 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import random
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from ledgerdr.journal.hashing import ion_hash

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import ionhash_shim  # noqa: E402  (needs the tests directory on sys.path)

_BASE62 = string.ascii_letters + string.digits


def _id(rng: random.Random) -> str:
    return "".join(rng.choices(_BASE62, k=22))


def _timestamp(rng: random.Random) -> str:
    return (
        f"20{rng.randint(19, 24)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"
    )


def revision_text(rng: random.Random, sequence_no: int) -> str:
    """One revision as QLDB writes it in an export, with a vehicle-registration-like document."""
    blob = base64.b64encode(rng.randbytes(48)).decode()
    words = " ".join(rng.choices(["Main", "Street", "Seattle", "WA", "Suite", "North", "1719", "98109"], k=5))
    return (
        f'{{blockAddress:{{strandId:"{_id(rng)}",sequenceNo:{sequence_no}}},'
        f"hash:{{{{{base64.b64encode(rng.randbytes(32)).decode()}}}}},"
        f'data:{{VIN:"{_id(rng)[:17]}",LicensePlateNumber:"{_id(rng)[:7]}",State:"WA",City:"Seattle",'
        f"PendingPenaltyTicketAmount:{rng.randint(0, 99999) / 100:.2f},ValidFromDate:{_timestamp(rng)[:10]},"
        f'ValidToDate:{_timestamp(rng)},Owners:{{PrimaryOwner:{{PersonId:"{_id(rng)}"}},'
        f'SecondaryOwners:[{{PersonId:"{_id(rng)}"}}],Address:"{words}"}},'
        f"Mileage:{rng.randint(0, 300000)},Photo:{{{{{blob}}}}}}},"
        f'metadata:{{id:"{_id(rng)}",version:{rng.randint(0, 20)},txTime:{_timestamp(rng)},txId:"{_id(rng)}"}}}}'
    )


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revisions", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random(20240601)
    text = "\n".join(revision_text(rng, n) for n in range(args.revisions))
    parse_s, revisions = best_of(args.repeat, lambda: simpleion.loads(text, single_value=False))
    pairs = [(r["metadata"], r["data"]) for r in revisions]

    ours_s, ours = best_of(args.repeat, lambda: [(ion_hash(m), ion_hash(d)) for m, d in pairs])
    ref = ionhash_shim.reference_ion_hash
    theirs_s, theirs = best_of(args.repeat, lambda: [(ref(m), ref(d)) for m, d in pairs])
    if ours != theirs:
        raise SystemExit("ledgerdr and ionhash disagree on some revision: benchmark invalid")

    n = len(pairs)
    print(
        "| revisions | parse (rev/s) | ledgerdr ion_hash (rev/s) | ionhash 1.2.1 (rev/s) | speed-up | hash ÷ parse |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {n:,} | {n / parse_s:,.0f} | {n / ours_s:,.0f} | {n / theirs_s:,.0f} "
        f"| {theirs_s / ours_s:.1f}x | {ours_s / parse_s:.2f} |"
    )


if __name__ == "__main__":
    main()
