"""What signing adds per record: `put_record` of a window record into a file repository, unsigned and signed
with an Ed25519 key, side by side; and `sign_document` / `verify_document` alone (canonical encoding, SHA-256,
Ed25519). Records of 1, 10 and 200 export objects (a quiet window, a busy one, a day folded in one window).

    python bench/bench_signing.py [--records N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from ledgerdr.repository import ObjectRecord, WindowRecord, put_record
from ledgerdr.signing import Ed25519Signer, TrustedKeys, canonical_bytes, sign_document, verify_document
from ledgerdr.stores import FileStore, Location


def _record(objects: int) -> WindowRecord:
    objs = tuple(ObjectRecord(f"exports/20260105T100000Z/a{i:04d}/2026/01/05/10/strand.{i}-{i + 9}.ion",
                              10_000 + i, f"{i:064x}") for i in range(objects))
    return WindowRecord("2026-01-05T10:00:00.000Z", "2026-01-05T11:00:00.000Z",
                        {"kind": "embedded", "ledger": "ledger", "strand_id": "strand"}, "export", "exports/x/",
                        "ION_BINARY", 0, 9, "", "h" * 44, 10, 40, objs,
                        {"digest": "d" * 44, "tip_address": "{strandId:\"s\",sequenceNo:9}", "proof": ["p" * 44] * 8},
                        "lineage", "2026-01-05T11:00:06.000Z", "2026-01-05T10:59:59.000Z")


def _per_record(fn, n: int) -> float:
    """Microseconds per call, best of 3."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300)
    args = parser.parse_args()
    signer = Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    trusted = TrustedKeys([signer.public_key])
    print(f"load average {os.getloadavg()[0]:.1f}; µs per record, best of 3 × {args.records}\n")
    print("| objects | record bytes | put_record unsigned | put_record signed | added | sign_document | "
          "verify_document |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for objects in (1, 10, 200):
        print(_row(objects, signer, trusted, args.records))


def _row(objects: int, signer: Ed25519Signer, trusted: TrustedKeys, n: int) -> str:
    doc = asdict(_record(objects))
    signed = sign_document(doc, signer)
    keys = itertools.count()
    with tempfile.TemporaryDirectory() as tmp:
        put = {}
        for name, loc in (("plain", Location(FileStore(Path(tmp) / "plain"), "")),
                          ("signed", Location(FileStore(Path(tmp) / "signed"), "", signer=signer))):
            put[name] = _per_record(lambda _i, loc=loc: put_record(
                loc, f"_ledgerdr/windows/{next(keys):012d}.json", dict(doc)), n)
    sign_us = _per_record(lambda _i: sign_document(doc, signer), n)
    verify_us = _per_record(lambda _i: verify_document(signed, trusted), n)
    return (f"| {objects} | {len(canonical_bytes(signed)):,} | {put['plain']:.0f} | {put['signed']:.0f} | "
            f"{put['signed'] - put['plain']:.0f} | {sign_us:.0f} | {verify_us:.0f} |")

if __name__ == "__main__":
    main()
