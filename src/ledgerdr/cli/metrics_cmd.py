"""`ledgerdr metrics`: Prometheus metrics on 127.0.0.1, or a file for node exporter's textfile collector."""

from __future__ import annotations

import time
from pathlib import Path

import click
from prometheus_client import start_http_server, write_to_textfile

from ..config import parse_duration
from ..errors import ConfigError, StoreError
from ..logs import note
from ..metrics import LedgerDRCollector, registry_for
from ..runs import runs_dir
from .common import config_option, load_optional, open_repository

DEFAULT_PORT = 9599
DEFAULT_RESTORE_STATE = ".ledgerdr-restores"  # `restore --state-dir`'s default
DEFAULT_REHASH = "1h"  # a server scraped every 15 s would otherwise read every replica copy 240 times an hour


@click.command()
@config_option
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True,
              help="Serve /metrics on 127.0.0.1 at this port (0: any free port, printed).")
@click.option("--textfile", type=click.Path(dir_okay=False),
              help="Write the metrics once to this file (atomically, for node exporter's textfile collector) "
                   "and exit.")
@click.option("--standby", "standbys", multiple=True, metavar="TARGET_URL",
              help="Also export this warm standby's lag (repeatable).")
@click.option("--runs-dir", "runs_dir_path", type=click.Path(file_okay=False),
              help="Where the flows record their last run [default: $LEDGERDR_RUNS_DIR or .ledgerdr-runs].")
@click.option("--restore-state", "restore_states", multiple=True, type=click.Path(file_okay=False),
              help="Also export the progress and dead letters of the restores planned in this state folder "
                   "(`restore --state-dir`; repeatable) [default: .ledgerdr-restores when it exists].")
@click.option("--queue", "queues", multiple=True, metavar="QUEUE_URL",
              help="Also export this work queue's counts and dead letters (e.g. the SQS queue `ledgerdr worker`s "
                   "read; repeatable).")
@click.option("--rehash-every", default=DEFAULT_REHASH, show_default=True, metavar="DURATION",
              help="While serving: hash a replica copy found intact again only when the storage shows it changed "
                   "(size, time stamps, ETag) or this long after its last hash (0: at every scrape, as `status`).")
def metrics(config_path: str, port: int, textfile: str | None, standbys: tuple[str, ...],
            runs_dir_path: str | None, restore_states: tuple[str, ...], queues: tuple[str, ...],
            rehash_every: str) -> None:
    """Prometheus metrics: RPO, breaks, orphans and damaged copies per repository, standby lag, the
    result, duration and time of the last backup, replicate and verify, restore progress and dead letters.

    Computed at each scrape from the repositories (as `status` does), from the record each flow's
    command leaves when it ends, from restore state folders and from work queues. Serves on 127.0.0.1
    until stopped, or writes --textfile once. Exits 0; 2 for a bad configuration; 3 when --textfile
    cannot be written.
    """
    restores = restore_states or tuple(d for d in (DEFAULT_RESTORE_STATE,) if Path(d).is_dir())
    collector = collector_for(config_path, standbys, runs_dir_path, restores=restores, queues=queues,
                              rehash_every=parse_duration(rehash_every, "--rehash-every").total_seconds())
    if textfile is not None:
        try:
            write_to_textfile(textfile, registry_for(collector))
        except OSError as exc:
            raise StoreError("file", textfile, "write", f"cannot write the metrics: {exc}") from None
        return
    serve_metrics(collector, port)
    while True:
        time.sleep(3600)


def serve_metrics(collector: LedgerDRCollector, port: int) -> None:
    """Serve the metrics on 127.0.0.1 from a daemon thread (it ends with the process); say where."""
    try:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry_for(collector))
    except OSError as exc:  # the port is taken (or not ours to take): a usage problem, exit 2
        raise ConfigError(f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror or exc}",
                          hint="pick another port, or 0 for any free one") from None
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    note(f"serving metrics on {url} (Ctrl-C stops)", logger="ledgerdr.metrics", event="serving_metrics", url=url)


def serve_while_running(port: int, *, running: bool = True, needs: str = "", config_path: str | None = None,
                        standbys: tuple[str, ...] = (), restores: tuple[str, ...] = (),
                        queues: tuple[str, ...] = ()) -> None:
    """`--metrics-port` of a long-running mode: the same registry as `ledgerdr metrics`, while it runs."""
    if not running:
        raise ConfigError(f"--metrics-port serves metrics while the command keeps running: {needs}",
                          hint="for a scheduled run, run `ledgerdr metrics` beside it")
    rehash = parse_duration(DEFAULT_REHASH, "--rehash-every").total_seconds()
    serve_metrics(collector_for(config_path, standbys, restores=restores, queues=queues, rehash_every=rehash), port)


def collector_for(config_path: str | None, standbys: tuple[str, ...] = (), runs: str | None = None, *,
                  restores: tuple[str, ...] = (), queues: tuple[str, ...] = (),
                  rehash_every: float = 0.0) -> LedgerDRCollector:
    """The collector for a configuration (when the file exists: without one, only the flows' runs, the
    standbys, restores and queues)."""
    config = load_optional(config_path)
    locations = [open_repository(repo) for repo in config.repositories] if config else []
    return LedgerDRCollector(config, locations, runs_dir(runs), standbys, restores=[Path(d) for d in restores],
                             queues=queues, rehash_every=rehash_every)
