"""Prometheus metrics (`ledgerdr metrics`): RPO and breaks per repository, standby lag, the last run of
each flow, restore progress and dead letters.

All read at scrape time so that any number of processes (a cron `backup --once`, a `replicate` on another
schedule, a restore and its workers, the `metrics` server) agree without sharing memory:

- the repositories themselves, through status.py (the same RPO, breaks and orphans `status` reports);
- a small record each flow's command writes when it ends (runs.py): exit code, duration and time;
- restore state folders (restore/progress.py): plan, run record, unit results and the restore's queue;
- work queues named by URL (an SQS restore queue fed to `ledgerdr worker`s): their counts and dead letters.

Names and labels follow the Prometheus conventions: base units (`_seconds`), `_timestamp_seconds` for
Unix times, one `repository`/`region` label pair per repository, `flow` per flow, `restore_id`/`target`
per restore, `queue` per queue. `_total` is left to counters, so a restore's planned amounts are
`_planned`, not `_total` (they are gauges: a resumed restore's plan is read again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .config import Config
from .copies import CheckedCopies
from .errors import LedgerDRError
from .queues import open_queue
from .replicate import copy_damage
from .restore.progress import RestoreProgress, restore_progress
from .runs import Run, read_runs
from .status import RepositoryStatus, StandbyStatus, repository_status, standby_status
from .stores import Location

BREAK_KINDS = ("gap", "overlap", "fork", "unreadable_record")  # status.py's, each exported even when 0


class LedgerDRCollector(Collector):
    """Everything `ledgerdr metrics` exports, computed at each scrape."""

    def __init__(self, config: Config | None, locations: Sequence[Location], runs: Path,
                 standbys: Sequence[str] = (), *, restores: Sequence[Path] = (), queues: Sequence[str] = (),
                 rehash_every: float = 0.0) -> None:
        """`rehash_every` > 0: a replica copy found intact is hashed again only when its stamp changed or its
        hash is older than that many seconds (`copies.CheckedCopies`); 0: at every scrape, as `status`."""
        self.config, self.locations, self.runs, self.standbys = config, list(locations), runs, list(standbys)
        self.restores, self.queues = list(restores), list(queues)
        self.damage = CheckedCopies(rehash_every).damage if rehash_every > 0 else copy_damage

    def collect(self) -> Iterator[Metric]:
        yield from run_metrics(read_runs(self.runs))
        yield from restore_metrics([p for folder in self.restores for p in restore_progress(folder)])
        yield from queue_metrics(self.queues)
        now = datetime.now(UTC)
        statuses, up = [], []
        for i, (repo, location) in enumerate(zip(self.config.repositories if self.config else (), self.locations,
                                                 strict=True)):
            try:
                statuses.append(repository_status(repo.name, repo.region, location, now=now, primary=(i == 0),
                                                  damage=self.damage))
                up.append((repo.name, repo.region, 1))
            except LedgerDRError:  # unreachable: said by ledgerdr_repository_up, the rest is left out
                up.append((repo.name, repo.region, 0))
        yield _gauge("ledgerdr_repository_up", "1 when the repository could be read at this scrape",
                     ["repository", "region"], [((n, r), v) for n, r, v in up])
        yield from repository_metrics(statuses)
        known = {location.url: location for location in self.locations}
        default = self.locations[0].url if self.locations else None
        yield from standby_metrics([standby_status(url, now=now, default_source=default, known=known)
                                    for url in self.standbys])


def run_metrics(runs: Sequence[Run]) -> Iterator[Metric]:
    labels = ["flow"]
    yield _gauge("ledgerdr_last_run_success", "1 when the flow's last run exited 0", labels,
                 [((r.flow,), int(r.exit_code == 0)) for r in runs])
    yield _gauge("ledgerdr_last_run_exit_code", "The exit code of the flow's last run", labels,
                 [((r.flow,), r.exit_code) for r in runs])
    yield _gauge("ledgerdr_last_run_duration_seconds", "How long the flow's last run took", labels,
                 [((r.flow,), r.duration_seconds) for r in runs])
    yield _gauge("ledgerdr_last_run_timestamp_seconds", "When the flow's last run ended (Unix time)", labels,
                 [((r.flow,), r.finished_at) for r in runs])
    yield _gauge("ledgerdr_last_success_timestamp_seconds", "When a run of the flow last exited 0 (Unix time)",
                 labels, [((r.flow,), r.last_success_at) for r in runs if r.last_success_at is not None])


def repository_metrics(statuses: Sequence[RepositoryStatus]) -> Iterator[Metric]:
    labels = ["repository", "region"]

    def per(value: Callable[[RepositoryStatus], float | None]) -> list[tuple[tuple[str, ...], float]]:
        return [((s.name, s.region), v) for s in statuses if (v := value(s)) is not None]

    yield _gauge("ledgerdr_rpo_seconds", "Now minus the end of the newest verified window, counted up to the "
                 "first break (absent while nothing is verified)", labels, per(lambda s: s.rpo_seconds))
    yield _gauge("ledgerdr_newest_verified_block", "Sequence number of the newest verified block", labels,
                 per(lambda s: s.last_seq))
    yield _gauge("ledgerdr_windows_pending", "Recorded windows not verified (yet) in this repository", labels,
                 per(lambda s: s.pending_windows))
    yield _gauge("ledgerdr_orphans", "Export attempts no window record names (primary only)", labels,
                 per(lambda s: len(s.orphans)))
    yield _gauge("ledgerdr_damaged_copies", "A replica's copies that are missing or altered", labels,
                 per(lambda s: len(s.damaged)))
    yield _gauge("ledgerdr_breaks", "Breaks in the window records, by kind (gap, overlap, fork, unreadable record)",
                 [*labels, "kind"], [((s.name, s.region, kind), sum(b["kind"] == kind for b in s.breaks))
                                     for s in statuses for kind in BREAK_KINDS])


def standby_metrics(standbys: Sequence[StandbyStatus]) -> Iterator[Metric]:
    labels = ["target"]
    yield _gauge("ledgerdr_standby_up", "1 when the standby's position could be read and it is following",
                 labels, [((s.target,), int(s.error is None and s.state == "following")) for s in standbys])
    yield _gauge("ledgerdr_standby_lag_seconds", "How long the oldest window the standby has not applied has "
                 "been recorded (0 when caught up)", labels,
                 [((s.target,), s.lag_seconds) for s in standbys if s.lag_seconds is not None])
    yield _gauge("ledgerdr_standby_lag_blocks", "The repository's newest block minus the standby's last applied",
                 labels, [((s.target,), s.lag_blocks) for s in standbys if s.lag_blocks is not None])


# Each restore's gauges: (name, help, value); a value of None leaves the restore's sample out.
_RESTORE_GAUGES: tuple[tuple[str, str, Callable[[RestoreProgress], float | None]], ...] = (
    ("in_progress", "1 from the restore's start until it ends (an interrupted or killed restore stays 1 until "
     "resumed)", lambda r: int(r.in_progress)),
    ("start_timestamp_seconds", "When the restore first started (Unix time; RTO counts from here)",
     lambda r: r.started_at),
    ("units_planned", "Work units in the restore's plan", lambda r: r.units_planned),
    ("units_applied", "Planned units applied and recorded so far", lambda r: r.units_applied),
    ("blocks_planned", "Blocks the restore's plan covers", lambda r: r.blocks_planned),
    ("blocks_applied", "Blocks of the applied units", lambda r: r.blocks_applied),
    ("revisions_applied", "Revisions of the applied units", lambda r: r.revisions_applied),
    ("dead_letters", "Units of the restore's newest run its queue gave up on (each leaves the restore unverified "
     "until resumed)", lambda r: r.dead_letters),
)


def restore_metrics(restores: Sequence[RestoreProgress]) -> Iterator[Metric]:
    for name, documentation, value in _RESTORE_GAUGES:
        yield _gauge(f"ledgerdr_restore_{name}", documentation, ["restore_id", "target"],
                     [((r.restore_id, r.target), v) for r in restores if (v := value(r)) is not None])


def queue_metrics(urls: Sequence[str]) -> Iterator[Metric]:
    """Counts of each queue, opened at each scrape (SQS's are approximate, as SQS reports them)."""
    up, counts = [], []
    for url in urls:
        try:
            queue = open_queue(url)
            try:
                counts.append((url, queue.counts()))
            finally:
                queue.close()
            up.append(((url,), 1))
        except LedgerDRError:
            up.append(((url,), 0))
    yield _gauge("ledgerdr_queue_up", "1 when the queue's counts could be read at this scrape", ["queue"], up)
    yield _gauge("ledgerdr_queue_messages", "Messages waiting (visible) or being worked on (in_flight)",
                 ["queue", "state"], [sample for url, c in counts
                                      for sample in (((url, "visible"), c.visible), ((url, "in_flight"), c.in_flight))])
    yield _gauge("ledgerdr_queue_dead_letters", "Messages the queue gave up on after their last attempt",
                 ["queue"], [((url,), c.dead) for url, c in counts])


def _gauge(name: str, documentation: str, labels: list[str],
           samples: Sequence[tuple[tuple[str, ...], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), float(value))
    return family


def registry_for(collector: LedgerDRCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
