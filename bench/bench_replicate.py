"""Replication benchmark: `ledgerdr replicate` (copy, then verify at the destination) against a bare copy of
the same objects, and incremental verification of one new window on top of a large history.

Builds a ledger of N revisions in W one-minute windows (40-document INSERT transactions of the workload's
documents, committed under freezegun at times a few minutes in the past), backs it up with the real backup
flow into a file repository (cached under bench/out/) and, on every run, into a moto S3 bucket with Object
Lock. moto runs as a ThreadedMotoServer on 127.0.0.1 in a child process of its own, so the S3 figures
include HTTP and moto's request handling. Then, in one run, side by side:

- file → file: `replicate` into an empty directory, the same objects copied bare (`shutil.copyfile`, same
  8 threads), and `replicate --verify-only` over a bare copy (the verification share);
- S3 → S3: `replicate` into an empty locked bucket (server-side CopyObject of each recorded version, then
  every object re-read and verified), bare `copy_object` of each recorded version, and bare get + put;
- a larger history (`--history-revisions` in `--history-windows` windows, its own cached data set) plus one
  new window of `--new` revisions: `replicate` onto the replica that already holds and verified the whole
  history, against `replicate` of a repository holding that window alone (file → file);
- on that history (`--recheck-only` measures just this): the re-check every run makes of the copies a
  replica's watermark vouches for — an idle `replicate` round (nothing new: the re-check is all it does) and
  `status` of the replica — against a bare sha256 of the same files (same 8 threads).

    .venv/bin/python bench/bench_replicate.py          # 20,000 revisions in 40 windows; history 100,000 in 200
    .venv/bin/python bench/bench_replicate.py --revisions 200000 --windows 200 --history-revisions 400000

Times are the best of `--repeat` runs (fresh destination each time). The machine has 2 cores shared with
other jobs: compare ratios (each measured within seconds of its baseline), not absolute figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import make_document
from ledgerdr.replicate import ReplicateOptions, replicate
from ledgerdr.repository import WINDOWS, read_windows
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores import FileStore, Location
from ledgerdr.stores.s3 import S3Store

OUT = Path(__file__).resolve().parent / "out"
MiB = 1024 * 1024
PER_TXN = 40  # documents per INSERT transaction
CONCURRENCY = 8  # replicate's default; the bare copies use the same pool size
REGION = "us-east-1"
PREFIX = "dr/"
# a long retention keeps a cached data set usable: the flows refuse a retain-until already in the past
POLICY = BackupPolicy(interval=timedelta(minutes=1), retention=timedelta(days=3650))


# ------------------------------------------------------------------------------------------ the data set


def build_ledger(path: Path, revisions: int, windows: int, new: int, base: datetime) -> int:
    """`revisions` spread over `windows` one-minute windows from `base`, then `new` in the window after;
    the revisions written."""
    rng = random.Random(7)
    serial = 0
    with Ledger.create(path, durability="normal") as ledger, freeze_time(base) as clock:
        ledger.execute("CREATE TABLE items")
        plan = [(w, revisions // windows + (w < revisions % windows)) for w in range(windows)] + [(windows, new)]
        for window, count in plan:
            clock.move_to(base + timedelta(minutes=window, seconds=7))
            for start in range(0, count, PER_TXN):
                docs = [make_document(rng, "items", serial + i) for i in range(min(PER_TXN, count - start))]
                serial += len(docs)
                ledger.execute("INSERT INTO items ?", docs)
    return serial


def due_after(base: datetime, windows: int) -> datetime:
    """The moment when exactly `windows` one-minute windows from `base` are due (settle 5 s)."""
    return base + timedelta(minutes=windows, seconds=6)


def ensure_data(revisions: int, windows: int, new: int) -> Path:
    """OUT/replicate-<N>-<W>-<new>/: ledger.db, history/ (the first W windows backed up), meta.json (last)."""
    root = OUT / f"replicate-{revisions}-{windows}-{new}"
    if (root / "meta.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=windows + 3)
    written = build_ledger(root / "ledger.db", revisions, windows, new, base)
    built = time.perf_counter() - started
    history = Location(FileStore(root / "history"), "")
    source = EmbeddedSource(root / "ledger.db")
    report = run_backup(source, history, POLICY, now=due_after(base, windows))
    source.close()
    if report.failed or len(report.recorded) != windows:
        raise SystemExit(f"backup failed: {report.failed}")
    meta = {"written": written, "base": base.isoformat(), "windows": windows, "build_seconds": round(built, 1),
            "backup_seconds": round(time.perf_counter() - started - built, 1),
            "revisions": sum(w.revisions for w in report.recorded), "blocks": sum(w.blocks for w in report.recorded)}
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"generated {meta} in {root}", file=sys.stderr)
    return root


def append_new_window(root: Path, primary: Location, windows: int) -> None:
    """Back up the one window after the history into `primary` (the real flow, as a later run would)."""
    base = datetime.fromisoformat(json.loads((root / "meta.json").read_text())["base"])
    source = EmbeddedSource(root / "ledger.db")
    report = run_backup(source, primary, POLICY, now=due_after(base, windows + 1))
    source.close()
    if report.failed or len(report.recorded) != 1:
        raise SystemExit(f"backup of the new window failed: {report.failed}")


def object_keys(primary: Location) -> list[str]:
    """Every key replicate copies: each window's recorded objects and the record itself."""
    keys = []
    for window in read_windows(primary).windows:
        keys += [o.key for o in window.objects]
        keys.append(primary.key(WINDOWS + window.key_name))
    return keys


def total_bytes(store, keys: list[str]) -> int:
    return sum(store.head(key).size for key in keys)


# ------------------------------------------------------------------------------------------ measurements


def best(runs: int, prepare: Callable[[int], object], run: Callable[[object], object]) -> tuple[float, object]:
    """The best wall time of `runs` calls of run(prepare(i)) (prepare not timed), and the last result."""
    times, result = [], None
    for i in range(runs):
        arg = prepare(i)
        started = time.perf_counter()
        result = run(arg)
        times.append(time.perf_counter() - started)
    return min(times), result


def must_be_ok(report):
    if not report.ok:
        raise SystemExit(f"replicate failed: {[str(p) for p in report.problems[:3]]}")
    return report


def bare_file_copy(src: Path, dst: Path, keys: list[str], *, fsync: bool = False) -> None:
    """Copy `keys` from `src` to `dst` (8 threads); `fsync`: and fsync each copy, the one fsync per object
    that any durable copy pays (replicate's file store pays more: see BENCHMARKS.md)."""
    def one(key: str) -> None:
        target = dst / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / key, target)
        if fsync:
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, keys))


def file_runs(root: Path, scratch: Path, repeat: int) -> dict:
    primary = Location(FileStore(root / "history"), "")
    keys = object_keys(primary)
    size = total_bytes(primary.store, keys)

    def fresh(tag: str) -> Callable[[int], Path]:
        def make(i: int) -> Path:
            path = scratch / f"{tag}-{i}"
            shutil.rmtree(path, ignore_errors=True)
            return path
        return make

    copying, checking = ReplicateOptions("bench", concurrency=CONCURRENCY), ReplicateOptions("bench", verify_only=True)
    rep_s, _ = best(repeat, fresh("file-rep"),
                    lambda d: must_be_ok(replicate(primary, Location(FileStore(d), ""), copying)))
    bare_s, _ = best(repeat, fresh("file-bare"), lambda d: bare_file_copy(root / "history", d, keys))
    synced_s, _ = best(repeat, fresh("file-sync"), lambda d: bare_file_copy(root / "history", d, keys, fsync=True))

    def copied(i: int) -> Path:
        path = fresh("file-ver")(i)
        bare_file_copy(root / "history", path, keys)
        return path

    verify_s, _ = best(repeat, copied, lambda d: must_be_ok(replicate(primary, Location(FileStore(d), ""), checking)))
    return {"objects": len(keys), "bytes": size, "replicate": rep_s, "bare": bare_s, "verify_only": verify_s,
            "bare_fsync": synced_s}


def incremental_runs(root: Path, scratch: Path, repeat: int, windows: int) -> dict:
    """One new window on top of the history (replica already verified to the end of it) vs that window alone."""
    work = scratch / "incremental"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(root / "history", work / "primary")
    primary = Location(FileStore(work / "primary"), "")
    # the replica that holds and verified the whole history, kept as a template for every repetition
    must_be_ok(replicate(primary, Location(FileStore(work / "replica-history"), ""), ReplicateOptions("bench")))
    history_windows = read_windows(primary).windows
    append_new_window(root, primary, windows)
    new = read_windows(primary).windows[-1]
    alone = work / "alone"
    for key in [o.key for o in new.objects] + [primary.key(WINDOWS + new.key_name)]:
        (alone / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "primary" / key, alone / key)
    alone_primary = Location(FileStore(alone), "")

    def on_history(i: int) -> Location:
        path = work / f"replica-{i}"
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(work / "replica-history", path)
        return Location(FileStore(path), "")

    def empty(i: int) -> Location:
        path = work / f"alone-replica-{i}"
        shutil.rmtree(path, ignore_errors=True)
        return Location(FileStore(path), "")

    inc_s, inc = best(repeat, on_history, lambda r: must_be_ok(replicate(primary, r, ReplicateOptions("bench"))))
    alone_s, one = best(repeat, empty, lambda r: must_be_ok(replicate(alone_primary, r, ReplicateOptions("bench"))))
    assert inc.windows_verified == one.windows_verified == 1, (inc, one)
    return {"history_windows": len(history_windows), "history_revisions": sum(w.revisions for w in history_windows),
            "history_objects": sum(len(w.objects) for w in history_windows), "new_revisions": new.revisions,
            "new_blocks": new.blocks, "on_history": inc_s, "alone": alone_s, "covered": inc.windows_covered}


def recheck_runs(root: Path, scratch: Path, repeat: int) -> dict:
    """An idle replicate round and `status` over a replica that verified the whole history, against hashing
    the same copies bare."""
    from ledgerdr.status import repository_status

    primary = Location(FileStore(root / "history"), "")
    replica_root = scratch / "recheck-replica"
    shutil.rmtree(replica_root, ignore_errors=True)
    replica = Location(FileStore(replica_root), "")
    must_be_ok(replicate(primary, replica, ReplicateOptions("bench")))
    keys = object_keys(primary)

    def bare_hash(_: object) -> None:
        def one(key: str) -> str:
            return hashlib.sha256((replica_root / key).read_bytes()).hexdigest()

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, keys))

    idle_s, idle = best(repeat, lambda i: None,
                        lambda _: must_be_ok(replicate(primary, replica, ReplicateOptions("bench"))))
    assert idle.copied == idle.windows_verified == 0 and idle.rechecked == len(keys), idle
    status_s, status = best(repeat, lambda i: None, lambda _: repository_status(
        "bench", "r", replica, now=datetime.now(UTC), primary=False))
    assert not status.broken and status.pending_windows == 0, status
    bare_s, _ = best(repeat, lambda i: None, bare_hash)
    return {"objects": len(keys), "bytes": total_bytes(primary.store, keys), "idle": idle_s, "status": status_s,
            "bare_hash": bare_s, "windows": len(read_windows(primary).windows)}


def recheck_lines(args: argparse.Namespace, r: dict, load: tuple[tuple, tuple]) -> list[str]:
    return [
        f"Re-check of a replica's copies (`bench/bench_replicate.py --recheck-only --history-revisions "
        f"{args.history_revisions} --history-windows {args.history_windows}`): a replica that holds and verified "
        f"{r['windows']} windows, {r['objects']} objects ({r['bytes'] / MiB:.1f} MiB, window records included), "
        f"file → file; {os.cpu_count()} CPUs shared with other jobs (load average {load[0][0]:.1f} at the start, "
        f"{load[1][0]:.1f} at the end); best of {args.repeat}; {CONCURRENCY} threads.",
        "",
        "| every run re-checks the copies under the watermark | seconds | MiB/s | objects/s | ÷ bare sha256 |",
        "|---|---:|---:|---:|---:|",
        f"| idle `replicate` round (nothing new: the re-check and reading the records) | "
        f"{rate_cells(r['objects'], r['bytes'], r['idle'])} | {r['idle'] / r['bare_hash']:.1f}× |",
        f"| `status` of the replica (records, watermark, re-check of the data objects and manifests) | "
        f"{rate_cells(r['objects'], r['bytes'], r['status'])} | {r['status'] / r['bare_hash']:.1f}× |",
        f"| bare sha256 of the same files | {rate_cells(r['objects'], r['bytes'], r['bare_hash'])} | 1.0× |",
    ]


# ------------------------------------------------------------------------------------------ S3 (moto)


def serve_moto(port_out) -> None:  # a child process: moto's server on a core of its own
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request would swamp stderr

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port_out.put(server.get_host_and_port()[1])
    while True:
        time.sleep(3600)


def s3_client(endpoint: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="bench",
                        aws_secret_access_key="bench")


def make_bucket(client, name: str) -> Location:
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Location(S3Store(name, client=client, region=REGION), PREFIX)


def s3_runs(root: Path, endpoint: str, repeat: int, windows: int) -> dict:
    client = s3_client(endpoint)
    primary = make_bucket(client, "bench-primary")
    base = datetime.fromisoformat(json.loads((root / "meta.json").read_text())["base"])
    source = EmbeddedSource(root / "ledger.db")
    started = time.perf_counter()
    report = run_backup(source, primary, POLICY, now=due_after(base, windows))
    source.close()
    if report.failed or len(report.recorded) != windows:
        raise SystemExit(f"backup into S3 failed: {report.failed}")
    backup_s = time.perf_counter() - started
    recorded = [(o.key, o.version_id) for w in read_windows(primary).windows for o in w.objects]
    recorded += [(primary.key(WINDOWS + w.key_name), None) for w in read_windows(primary).windows]
    size = total_bytes(primary.store, [k for k, _ in recorded])
    counter = iter(range(10_000))

    def bucket(tag: str) -> Callable[[int], Location]:
        return lambda i: make_bucket(client, f"bench-{tag}-{next(counter)}")

    copying = ReplicateOptions("bench", concurrency=CONCURRENCY)
    rep_s, _ = best(repeat, bucket("rep"), lambda r: must_be_ok(replicate(primary, r, copying)))

    def bare_copy(dest: Location) -> None:
        def one(item: tuple[str, str | None]) -> None:
            key, version = item
            source = {"Bucket": "bench-primary", "Key": key, **({"VersionId": version} if version else {})}
            client.copy_object(Bucket=dest.store.bucket, Key=key, CopySource=source)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, recorded))

    def bare_get_put(dest: Location) -> None:
        def one(item: tuple[str, str | None]) -> None:
            key, version = item
            body = client.get_object(Bucket="bench-primary", Key=key,
                                     **({"VersionId": version} if version else {}))["Body"].read()
            client.put_object(Bucket=dest.store.bucket, Key=key, Body=body,
                              ChecksumSHA256=_b64(hashlib.sha256(body).digest()))

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(one, recorded))

    copy_s, _ = best(repeat, bucket("copy"), bare_copy)
    get_put_s, _ = best(repeat, bucket("getput"), bare_get_put)
    return {"objects": len(recorded), "bytes": size, "replicate": rep_s, "bare_copy": copy_s,
            "bare_get_put": get_put_s, "backup": backup_s}


def _b64(digest: bytes) -> str:
    import base64

    return base64.b64encode(digest).decode()


# ------------------------------------------------------------------------------------------ the report


def rate_cells(objects: int, size: int, seconds: float) -> str:
    return f"{seconds:.3f} | {size / MiB / seconds:.1f} | {objects / seconds:,.0f}"


def report_lines(args, meta: dict, f: dict, s: dict, inc: dict, load: tuple[tuple, tuple]) -> list[str]:
    lines = [
        f"Replication (`bench/bench_replicate.py --revisions {args.revisions} --windows {args.windows} "
        f"--new {args.new}`): {meta['revisions']:,} revisions, {meta['blocks']:,} blocks in {meta['windows']} "
        f"one-minute windows, ION_BINARY, {f['objects']} objects ({f['bytes'] / MiB:.1f} MiB) including the window "
        f"records; {os.cpu_count()} CPUs shared with other jobs (load average {load[0][0]:.1f} at the start, "
        f"{load[1][0]:.1f} at the end); best of {args.repeat}; {CONCURRENCY} threads for every copy.",
        "",
        "| copy | seconds | MiB/s | objects/s | ÷ bare copy (time) |",
        "|---|---:|---:|---:|---:|",
        f"| file → file: `replicate` (copy + verify) | {rate_cells(f['objects'], f['bytes'], f['replicate'])} | "
        f"{f['replicate'] / f['bare']:.1f}× |",
        f"| file → file: `replicate --verify-only` over a bare copy | "
        f"{rate_cells(f['objects'], f['bytes'], f['verify_only'])} | {f['verify_only'] / f['bare']:.1f}× |",
        f"| file → file: bare `shutil.copyfile` | {rate_cells(f['objects'], f['bytes'], f['bare'])} | 1.0× |",
        f"| file → file: bare `shutil.copyfile` + one fsync per copy | "
        f"{rate_cells(f['objects'], f['bytes'], f['bare_fsync'])} | {f['bare_fsync'] / f['bare']:.1f}× |",
        f"| S3 → S3 (moto server): `replicate` (server-side copy + verify) | "
        f"{rate_cells(s['objects'], s['bytes'], s['replicate'])} | {s['replicate'] / s['bare_copy']:.1f}× |",
        f"| S3 → S3 (moto server): bare `copy_object` of each recorded version | "
        f"{rate_cells(s['objects'], s['bytes'], s['bare_copy'])} | 1.0× |",
        f"| S3 → S3 (moto server): bare `get_object` + `put_object` | "
        f"{rate_cells(s['objects'], s['bytes'], s['bare_get_put'])} | {s['bare_get_put'] / s['bare_copy']:.1f}× |",
        "",
        *incremental_lines(args, inc),
        "",
        f"The S3 primary was filled by the real backup flow through the moto server in {s['backup']:.1f} s. "
        "Absolute times move with the other jobs on this machine; each ratio compares runs made within seconds "
        "of each other.",
    ]
    return lines


def incremental_lines(args: argparse.Namespace, inc: dict) -> list[str]:
    return [
        f"Incremental (`--history-revisions {args.history_revisions} --history-windows {args.history_windows}`): "
        f"one new window ({inc['new_revisions']:,} revisions, {inc['new_blocks']:,} blocks) on top of a "
        f"history of {inc['history_windows']} windows ({inc['history_revisions']:,} revisions, "
        f"{inc['history_objects']} recorded objects) that the replica already holds and verified, against a "
        f"repository holding that window alone (file → file, copy + verify, best of {args.repeat}):",
        "",
        "| replicate one new window | seconds | ÷ alone |",
        "|---|---:|---:|",
        f"| on top of the history ({inc['covered']} windows under the watermark: records read, copies "
        f"re-checked) | "
        f"{inc['on_history']:.3f} | "
        f"{inc['on_history'] / inc['alone']:.2f}× |",
        f"| alone | {inc['alone']:.3f} | 1.00× |",
    ]


def measure_incremental(args: argparse.Namespace) -> dict:
    large = ensure_data(args.history_revisions, args.history_windows, args.new)
    incremental = incremental_runs(large, large / "scratch", args.repeat, args.history_windows)
    shutil.rmtree(large / "scratch", ignore_errors=True)
    print(f"incremental: {incremental}", file=sys.stderr, flush=True)
    return incremental


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=20_000, help="revisions in the history")
    parser.add_argument("--windows", type=int, default=40, help="one-minute windows the history spans")
    parser.add_argument("--history-revisions", type=int, default=100_000,
                        help="revisions in the history under the one new window")
    parser.add_argument("--history-windows", type=int, default=200, help="one-minute windows that history spans")
    parser.add_argument("--new", type=int, default=500, help="revisions in the one new window")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the best is reported)")
    parser.add_argument("--incremental-only", action="store_true",
                        help="measure only one new window on top of the history (writes replicate-incremental.md)")
    parser.add_argument("--recheck-only", action="store_true",
                        help="measure only the re-check of a replica's copies (writes replicate-recheck.md)")
    args = parser.parse_args()
    if args.recheck_only:
        load = os.getloadavg()
        large = ensure_data(args.history_revisions, args.history_windows, args.new)
        measured = recheck_runs(large, large / "scratch", args.repeat)
        shutil.rmtree(large / "scratch", ignore_errors=True)
        text = "\n".join(recheck_lines(args, measured, (load, os.getloadavg()))) + "\n"
        print(text)
        (OUT / "replicate-recheck.md").write_text(text)
        return
    if args.incremental_only:
        text = "\n".join(incremental_lines(args, measure_incremental(args))) + "\n"
        print(text)
        (OUT / "replicate-incremental.md").write_text(text)
        return
    load_start = os.getloadavg()
    root = ensure_data(args.revisions, args.windows, args.new)
    meta = json.loads((root / "meta.json").read_text())
    scratch = root / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.perf_counter()
    files = file_runs(root, scratch, args.repeat)
    print(f"file: {files}", file=sys.stderr, flush=True)
    ports: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve_moto, args=(ports,), daemon=True)
    server.start()
    try:
        s3 = s3_runs(root, f"http://127.0.0.1:{ports.get(timeout=60)}", args.repeat, args.windows)
    finally:
        server.terminate()
        server.join()
    print(f"s3: {s3}", file=sys.stderr, flush=True)
    incremental = measure_incremental(args)
    shutil.rmtree(scratch, ignore_errors=True)
    text = "\n".join(report_lines(args, meta, files, s3, incremental, (load_start, os.getloadavg()))) + "\n"
    print(text)
    (OUT / "replicate.md").write_text(text)
    print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
