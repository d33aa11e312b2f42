"""Restore certificate benchmark: what issuing and re-checking a certificate costs beside the restore itself.

Builds a ledger of N revisions in 4 one-minute windows (the workload's transactions, committed under freezegun),
backs it up with the real backup flow into a file repository in each `--formats` format, then, in one run and
one process per format, side by side:

- `restore` into a fresh embedded ledger (workers=0), its RTO;
- the certificate of that restore (`certificate.build_certificate`: the blocks up to the last one read again
  and the ledger digest folded at it), as `restore` issues it;
- the same fold forced chain-only through the Python path (`check_revisions=False`): what the choice in
  `certificate.verify_up_to` is measured against for Ion binary;
- `verify --certificate` (`certificate.check_certificate`: the blocks again, and the journal's state digest
  recomputed from the repository).

    .venv/bin/python bench/bench_certificate.py                   # 20,000 revisions, ION_BINARY and ION_TEXT
    .venv/bin/python bench/bench_certificate.py --revisions 100000 --formats ion_binary

The machine has 2 cores shared with other jobs: compare ratios within one run, not absolute figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.certificate import build_certificate, check_certificate
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.exports import plan_location
from ledgerdr.journal.verify import VerifyReport, verify_objects
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.repository import recorded_exports
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
MINUTES = 4


def backed_up(root: Path, revisions: int, fmt: ExportFormat) -> Location:
    ledger = Ledger.create(root / "ledger.db")
    per_minute = max(1, revisions // (MINUTES * 4))  # the workload writes about 4 revisions a transaction
    for minute in range(MINUTES):
        with freeze_time(T0 + timedelta(minutes=minute, seconds=7)):
            run_workload(ledger, per_minute, seed=minute)
    ledger.close()
    location = Location(FileStore(root / "primary"), "")
    source = EmbeddedSource(root / "ledger.db")
    with freeze_time(T0 + timedelta(minutes=MINUTES, seconds=6)):
        run_backup(source, location, BackupPolicy(interval=timedelta(minutes=1), fmt=fmt))
    source.close()
    return location


def chain_only_python(location: Location, last: int) -> None:
    plan = plan_location(location.store, location.prefix, recorded=recorded_exports(location))
    objects = [o for o in plan.objects if o.first is None or o.first <= last]
    report = VerifyReport()
    verify_objects(location.store.get, objects, report, check_revisions=False, keep=plan.keep(), digest_at=[last])
    assert last in report.digests_at and not report.problems


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def run(fmt: ExportFormat, revisions: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-certificate-"))
    try:
        location = backed_up(root, revisions, fmt)
        rto, report = timed(lambda: restore(location.url, f"embedded:{root / 'restored.db'}",
                                            RestoreOptions(workers=0, state_dir=root / "state")))
        assert report.verdict
        issue, doc = timed(lambda: build_certificate(report, location))
        python, _ = timed(lambda: chain_only_python(location, report.last_seq))
        recheck, check = timed(lambda: check_certificate(doc, location))
        assert not check.problems, check.problems
        print(f"| {fmt.value} | {report.revisions:,} | {report.last_seq + 1:,} | {rto:.2f} | {issue:.2f} "
              f"({issue / rto:.0%}) | {python:.2f} | {recheck:.2f} ({recheck / rto:.2f}×) |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=20_000)
    parser.add_argument("--formats", default="ion_binary,ion_text")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print("| format | revisions | blocks | restore RTO (s) | certificate (s, ÷ RTO) | chain-only Python fold (s) "
          "| verify --certificate (s, ÷ RTO) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.formats.split(","):
        run(ExportFormat.parse(name), args.revisions)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
