"""The DR drill: backup → replicate → disaster → recover with each strategy → verify, measured.

On the embedded default it builds everything in a work folder: a ledger in the "primary region",
one repository per region, a workload committing while backups and replication run on a short
interval. Then the primary region is lost (its folder is renamed away, so nothing can read it),
and each strategy recovers from the second region alone:

- backup-restore: a cold restore into a new ledger;
- intermediate (pilot light): a ledger preloaded before the disaster, topped up after it;
- warm-standby: a ledger kept current while the primary ran, caught up after it.

Each is verified (restore state digest = journal state digest; the restored journal's digest = the
source's digest at the same block) and opened for writes as a detached copy (its own lineage,
nothing written into the repository: a drill never fences production). RPO is what the second region did not
have when the primary was lost; RTO is the time from the disaster to a verified, writable ledger.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .backup import BackupPolicy, run_backup
from .certificate import issue_certificate
from .errors import ConfigError, RestoreError
from .journal.hashing import merkle_root
from .ledger.engine import Ledger
from .ledger.workload import run_workload
from .replicate import ReplicateOptions, replicate
from .restore import RestoreOptions, restore
from .restore.standby import detach
from .sources.embedded import EmbeddedSource
from .stores import Location, open_location

STRATEGIES = ("backup-restore", "intermediate", "warm-standby")
# Written into a work folder the drill creates (or finds empty); only a folder holding it is reused.
MARKER = ".ledgerdr-drill"
# Everything a drill writes into its work folder; a later drill removes these and nothing else.
_OWN_ENTRIES = ("region-a", "region-a.lost", "region-b", "restore-state", "report.json")


@dataclass(frozen=True)
class DrillSettings:
    workdir: Path
    duration: float = 12.0  # seconds of workload before the disaster
    interval: timedelta = timedelta(seconds=2)
    settle: timedelta = timedelta(milliseconds=300)
    transactions_per_second: float = 150.0
    strategies: tuple[str, ...] = STRATEGIES
    seed: int = 7


@dataclass
class Event:
    at: float  # seconds since the drill started
    kind: str  # export | watermark | disaster | restore-start | restore-done | preload
    detail: str


@dataclass
class StrategyResult:
    strategy: str
    rpo_seconds: float | None
    transactions_lost: int
    rto_seconds: float
    revisions_restored: int
    last_block: int | None
    journal_state_digest: str | None
    target_state_digest: str | None
    ledger_digest_matches_source: bool
    writable: bool
    verdict: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class DrillReport:
    started_at: str
    workdir: str
    interval_seconds: float
    source_blocks: int
    source_transactions: int
    disaster_at: float
    replica_watermark_block: int | None
    results: list[StrategyResult] = field(default_factory=list)
    timeline: list[Event] = field(default_factory=list)
    last_commit_at: float | None = None  # the source's last commit, in seconds since the drill started

    @property
    def verdict(self) -> bool:
        return bool(self.results) and all(r.verdict for r in self.results)

    def to_json(self) -> dict:
        out = asdict(self)
        out["verdict"] = self.verdict
        return out


class _Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.started_at = datetime.now(UTC)  # the drill's start (the report's "Started"), not the disaster's
        self.events: list[Event] = []

    def mark(self, kind: str, detail: str) -> None:
        self.events.append(Event(round(time.monotonic() - self.start, 3), kind, detail))


def run_drill(settings: DrillSettings, *, say: Callable[[str], None] = lambda s: None) -> DrillReport:
    work = settings.workdir
    prepare_workdir(work)
    primary_dir, secondary_dir = work / "region-a", work / "region-b"
    ledger_path = primary_dir / "ledger.db"
    primary_dir.mkdir(parents=True)
    clock = _Clock()
    primary = open_location(str(primary_dir / "repo"))  # two directories stand for two regions
    secondary = open_location(str(secondary_dir / "repo"))
    policy = BackupPolicy(interval=settings.interval, settle=settings.settle)
    Ledger.create(ledger_path, name="drill").close()

    say(f"workload for {settings.duration:.0f}s with backups every {settings.interval.total_seconds():.0f}s")
    stop = threading.Event()
    writer = threading.Thread(target=_workload, args=(ledger_path, settings, stop), daemon=True)
    writer.start()
    standby = work / "region-b" / "standby.db" if "warm-standby" in settings.strategies else None
    pilot = work / "region-b" / "pilot.db" if "intermediate" in settings.strategies else None
    state_dir = work / "restore-state"
    source = EmbeddedSource(ledger_path)
    deadline = time.monotonic() + settings.duration
    preloaded = False
    while time.monotonic() < deadline:
        _round(source, primary, secondary, policy, clock)
        if standby is not None and _follow(secondary, standby, state_dir):
            clock.mark("standby", "standby applied the newest verified windows")
        if pilot is not None and not preloaded and time.monotonic() > deadline - settings.duration / 2:
            preloaded = _follow(secondary, pilot, state_dir)
            if preloaded:
                clock.mark("preload", "pilot light preloaded up to the newest verified window")
        time.sleep(0.5)
    stop.set()
    writer.join()
    _round(source, primary, secondary, policy, clock)  # the last scheduled run before the disaster
    source.close()

    truth = Ledger.open(ledger_path)
    hashes = [row.block_hash for row in truth.iter_blocks()]
    last = truth.last_block()
    tip_time = last.ts_ms / 1000 if last is not None else None
    truth.close()
    lost_region = primary_dir.with_name("region-a.lost")
    primary_dir.rename(lost_region)  # the primary region is gone: nothing below reads it
    disaster = datetime.now(UTC).timestamp()
    clock.mark("disaster", "region-a lost: ledger and primary repository unreachable")
    say("disaster: region-a lost; recovering from region-b")

    from .repository import read_watermarks

    marks = read_watermarks(secondary, "secondary")
    report = DrillReport(clock.started_at.isoformat(timespec="seconds"), str(work),
                         settings.interval.total_seconds(), len(hashes), len(hashes), clock.events[-1].at, marks[-1].last_seq if marks else None)
    if tip_time is not None:
        report.last_commit_at = round(tip_time - clock.started_at.timestamp(), 3)
    for strategy in settings.strategies:
        target = {"backup-restore": work / "region-b" / "cold.db", "intermediate": pilot,
                  "warm-standby": standby}[strategy]
        assert target is not None  # pilot and standby exist when their strategy is asked for
        say(f"recovering with {strategy}")
        report.results.append(_recover(strategy, secondary, target, state_dir, hashes, tip_time, disaster, clock))
    report.timeline = clock.events
    shutil.move(str(lost_region), str(primary_dir))  # put the lost region back for inspection
    return report


def prepare_workdir(work: Path) -> None:
    """Make `work` ready for a drill without deleting anything a drill did not create.

    A missing or empty folder gets the drill's marker. A folder with the marker is a previous drill's:
    only the entries a drill writes (`_OWN_ENTRIES`) are removed, anything else put there is kept. Any
    other non-empty folder (`--workdir .` or `~`, a typo) is refused with ConfigError before anything
    is written, as is a path that is not a folder."""
    if work.exists() and not work.is_dir():
        raise ConfigError(f"drill work folder {work} exists and is not a folder")
    if work.is_dir() and any(work.iterdir()) and not (work / MARKER).is_file():
        raise ConfigError(f"drill work folder {work} is not empty and was not made by a drill (no {MARKER} "
                          f"in it): refusing to use it, nothing was changed",
                          hint="pass --workdir with a new or empty folder")
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("made by `ledgerdr drill`; a later drill replaces the drill's own files here\n")
    for name in _OWN_ENTRIES:
        entry = work / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()


def _follow(secondary: Location, target: Path, state_dir: Path) -> bool:
    """Apply what region B has verified so far to a standing target; False while it has nothing."""
    try:
        restore(secondary.store.url, f"embedded:{target}", RestoreOptions(workers=0, state_dir=state_dir))
    except RestoreError:
        return False
    return True


def _workload(path: Path, settings: DrillSettings, stop: threading.Event) -> None:
    ledger = Ledger.open(path)
    batch, seed = max(1, int(settings.transactions_per_second / 10)), settings.seed
    try:
        while not stop.is_set():
            run_workload(ledger, batch, seed=seed)
            seed += 1
            time.sleep(0.1)
    finally:
        ledger.close()


def _round(source: EmbeddedSource, primary: Location, secondary: Location, policy: BackupPolicy,
           clock: _Clock) -> None:
    backup = run_backup(source, primary, policy)
    for window in backup.recorded:
        clock.mark("export", f"window {window.window_start} blocks {window.first_seq}..{window.last_seq}")
    if backup.recorded:
        replicated = replicate(primary, secondary, ReplicateOptions("secondary"))
        if replicated.watermark:
            clock.mark("watermark", f"region-b verified to block {replicated.watermark.last_seq}")


def _recover(strategy: str, secondary: Location, target: Path, state_dir: Path, hashes: list[bytes],
             tip_time: float | None, disaster: float, clock: _Clock) -> StrategyResult:
    started = time.monotonic()
    clock.mark("restore-start", strategy)
    result = restore(secondary.store.url, f"embedded:{target}",
                     RestoreOptions(workers=0, state_dir=state_dir,
                                    strategy="intermediate" if strategy == "intermediate" else "backup-restore"))
    if result.verdict:  # every verified restore leaves its certificate, the drill's too (<target>.certificate.json)
        issue_certificate(result, secondary, f"embedded:{target}", path=None, state_dir=state_dir)
    ledger = Ledger.open(target)
    matches = result.last_seq is not None and \
        ledger.get_digest()["digest"] == merkle_root(hashes[: result.last_seq + 1])
    source_lineage = ledger.lineage
    ledger.close()
    # Writable as a *detached* copy (a lineage of its own, nothing written into the repository): a drill
    # must never fence production, nor can its copy's backups pass for the production chain.
    detach(f"embedded:{target}")
    ledger = Ledger.open(target)
    writable = not ledger.read_only and ledger.lineage != source_lineage
    ledger.close()
    rto = time.monotonic() - started
    clock.mark("restore-done", f"{strategy}: verified and writable at block {result.last_seq}")
    lost = len(hashes) - (result.last_seq + 1 if result.last_seq is not None else 0)
    restored_time = result.last_block_time_ms / 1000 if result.last_block_time_ms else None
    rpo = None if restored_time is None or tip_time is None else max(0.0, round(tip_time - restored_time, 3))
    problems = list(result.problems) + ([] if matches else ["restored journal digest differs from the source's"])
    return StrategyResult(strategy, rpo, lost, round(rto, 3), result.revisions, result.last_seq,
                          result.journal_state_digest, result.target_state_digest, matches, writable,
                          result.verdict and matches and writable, problems)
