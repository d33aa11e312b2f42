"""Prometheus metrics (`ledgerdr metrics`): RPO and breaks per repository, standby lag, and the last run of
each flow.

Two sources, both read at scrape time so that any number of processes (a cron `backup --once`, a
`replicate` on another schedule, the `metrics` server) agree without sharing memory:

- the repositories themselves, through status.py (the same RPO, breaks and orphans `status` reports);
- a small record each flow's command writes when it ends (runs.py): exit code, duration and time.

Names and labels follow the Prometheus conventions: base units (`_seconds`), `_timestamp_seconds` for
Unix times, one `repository`/`region` label pair per repository, `flow` per flow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .config import Config
from .errors import LedgerDRError
from .runs import Run, read_runs
from .status import RepositoryStatus, StandbyStatus, repository_status, standby_status
from .stores import Location

BREAK_KINDS = ("gap", "overlap", "fork", "unreadable_record")  # status.py's, each exported even when 0


class LedgerDRCollector(Collector):
    """Everything `ledgerdr metrics` exports, computed at each scrape."""

    def __init__(self, config: Config | None, locations: Sequence[Location], runs: Path,
                 standbys: Sequence[str] = ()) -> None:
        self.config, self.locations, self.runs, self.standbys = config, list(locations), runs, list(standbys)

    def collect(self) -> Iterator[Metric]:
        yield from run_metrics(read_runs(self.runs))
        now = datetime.now(UTC)
        statuses, up = [], []
        for i, (repo, location) in enumerate(zip(self.config.repositories if self.config else (), self.locations,
                                                 strict=True)):
            try:
                statuses.append(repository_status(repo.name, repo.region, location, now=now, primary=(i == 0)))
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
