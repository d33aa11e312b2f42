"""`ledgerdr init`, `ledgerdr backup` and `ledgerdr status`."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..backup import backup_now, run_backup
from ..config import DEFAULT_CONFIG, parse_duration
from ..durable import newest_durable_digest, render_durable
from ..errors import ConfigError, ExitCode, QueueError
from ..logs import log_event, note
from ..queues.notify import open_notifications, window_recorded_message
from ..runs import note_run, recorded
from ..sources import open_source
from ..status import repository_status, standby_status
from .common import (
    DEFAULT_CONFIG_FILE,
    backup_policy,
    chosen_config,
    config_option,
    json_option,
    load,
    open_repository,
)
from .output import emit_error, emit_json


@click.command()
@click.option("--path", "config_path", type=click.Path(dir_okay=False), metavar="PATH",
              help=f"Where to write the config file [default: the global --config, then $LEDGERDR_CONFIG, then "
                   f"./{DEFAULT_CONFIG_FILE}].")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(config_path: str | None, force: bool) -> None:
    """Write a commented config whose defaults work at once, with no cloud.

    An embedded ledger (created on first use) and two directories standing in for two regions:
    `ledgerdr init && ledgerdr backup --once` works in an empty folder.
    """
    path = Path(chosen_config(config_path) or DEFAULT_CONFIG_FILE)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; use --force to overwrite it")
    path.write_text(DEFAULT_CONFIG)
    click.echo(f"wrote {path}; next: `ledgerdr backup --once`, then `ledgerdr status`")


@click.command()
@config_option
@click.option("--once", "mode", flag_value="once", default=True,
              help="Export everything committed up to now − settle, then exit (default).")
@click.option("--due-only", is_flag=True,
              help="Export only whole intervals that are due (for a scheduler that runs `--once` each interval).")
@click.option("--every", "every", help="Keep running, exporting each interval when due (e.g. 30s, 5m: how often "
              "to check).")
@click.option("--notify", metavar="QUEUE_URL",
              help="After recording windows, tell this queue (a standby's `--notify`; sqlite:///q.db?name=N or SQS).")
@click.option("--metrics-port", type=int, help="With --every: serve the metrics command's registry on 127.0.0.1 at this port "
              "while running (0: any free port, printed); each cycle counts as a backup run.")
@json_option
@recorded("backup")
def backup(config_path: str, mode: str, due_only: bool, every: str | None, notify: str | None,
           metrics_port: int | None, as_json: bool) -> None:
    """Export the source's new windows, verify them, and record them in the primary repository.

    Windows are contiguous by construction: each starts where the last recorded one ended, and ends at
    the next interval boundary; a window is due `settle` after it ends. `--once` (on demand) also
    records the partial window up to now − settle, so everything committed until then is backed up
    whatever the interval; the schedule goes on from its end. With nothing to export, exits 0 and
    names the next due time.
    """
    config = load(config_path)
    source = open_source(config.source)
    location = open_repository(config.primary, writes=True)
    policy = backup_policy(config)
    pause = parse_duration(every, "--every").total_seconds() if every else None
    notifications = open_notifications(notify) if notify else None
    if metrics_port is not None:
        from .metrics_cmd import serve_while_running  # prometheus_client: only for the long-running mode

        serve_while_running(metrics_port, running=pause is not None, needs="pass --every", config_path=config_path)

    def on_window(what: str, name: str) -> None:
        note(f"{what} window {name}", logger="ledgerdr.backup", event=what, window=name,
             repository=config.primary.name)
        if what == "recorded" and notifications is not None:  # on AWS, S3 event notifications do this instead
            try:
                notifications.publish(window_recorded_message(location.url, [name]))
            except QueueError as exc:  # the window is recorded; a standby's periodic re-list finds it
                note(f"warning: could not notify {notify}: {exc}", logger="ledgerdr.backup", level=logging.WARNING,
                     event="notify_failed", window=name, repository=config.primary.name)

    while True:
        started = time.time()
        if pause is None and not due_only:
            report = backup_now(source, location, policy, on_window=on_window, sleep=_settle)
        else:
            report = run_backup(source, location, policy, on_window=on_window)
        _render(report, as_json)
        if report.failed:
            sys.exit(ExitCode.VERIFICATION)
        if pause is None:
            return
        newest = next((w.last_seq for w in reversed(report.recorded) if w.last_seq is not None), None)
        log_event(f"cycle: {len(report.recorded)} windows recorded", logger="ledgerdr.backup", event="cycle",
                  repository=config.primary.name, windows=len(report.recorded), block=newest)
        note_run("backup", ExitCode.OK, started)  # each cycle is a run (the last: when it ends)
        time.sleep(pause)


def _settle(seconds: float) -> None:
    if seconds >= 1:
        note(f"waiting {seconds:.0f}s (settle) so that every commit up to now is in the export",
             logger="ledgerdr.backup", event="settle", seconds=seconds)
    time.sleep(seconds)


def _render(report, as_json: bool) -> None:
    if as_json:
        emit_json({"recorded": [w.window_start for w in report.recorded], "already_recorded": report.already_recorded,
                   "failed": [{"window_start": s, "reason": r} for s, r in report.failed],
                   "next_due": report.next_due.isoformat() if report.next_due else None})
        return
    for w in report.recorded:
        blocks = f"blocks {w.first_seq}..{w.last_seq}" if w.last_seq is not None else "no blocks"
        click.echo(f"recorded {w.window_start} → {w.window_end}: {blocks}, {w.revisions} revisions, "
                   f"{len(w.objects)} objects")
    for start, reason in report.failed:
        note(f"FAILED window {start}: {reason}", logger="ledgerdr.backup", level=logging.ERROR, event="failed",
             window=start)
    if report.nothing_due:
        click.echo(f"nothing due; the next window is due at {report.next_due.isoformat()}" if report.next_due
                   else "nothing due: the ledger has no commits yet")


@click.command()
@config_option
@json_option
@click.option("--max-rpo", help="Exit 8 when any repository's RPO is past this (e.g. 2h): for cron and alerts.")
@click.option("--strict", is_flag=True, help="Also exit 4 when the primary holds orphan export attempts.")
@click.option("--standby", "standbys", multiple=True, metavar="TARGET_URL",
              help="Also show this warm standby's position and lag (repeatable), read from the target itself.")
def status(config_path: str, as_json: bool, max_rpo: str | None, strict: bool, standbys: tuple[str, ...]) -> None:
    """Windows, newest verified block, tip hash, lineage, RPO and breaks of every repository; lag of standbys.

    Also the newest durable digest: the newest window's ledger digest whose record is held intact (verified)
    in repositories in at least two regions, or that there is none yet.

    The newest verified block and the RPO count only up to a repository's first break. Exits 4 when any
    repository has a gap, an overlap, a fork, an unreadable record or (a replica) a missing or altered
    copy, naming each; 8 when nothing is broken but an RPO is past --max-rpo; 0 otherwise. Orphan export
    attempts (left by failed runs, named by no record) are counted, not failures, unless --strict.
    """
    config = load(config_path)
    now = datetime.now(UTC)
    limit = parse_duration(max_rpo, "--max-rpo") if max_rpo else None
    locations = [open_repository(repo) for repo in config.repositories]
    statuses = [repository_status(repo.name, repo.region, location, now=now,
                                  primary=(i == 0), primary_name=config.primary.name)
                for i, (repo, location) in enumerate(zip(config.repositories, locations, strict=True))]
    known = {location.url: location for location in locations}
    followers = [standby_status(url, now=now, default_source=locations[0].url, known=known) for url in standbys]
    durable = newest_durable_digest(statuses)
    if as_json:
        emit_json({"now": now.isoformat(), "repositories": [s.to_json() for s in statuses],
                   "durable_digest": durable.to_json() if durable else None,
                   "standbys": [f.to_json() for f in followers]})
    else:
        for s in statuses:
            click.echo(s.render())
        click.echo(render_durable(durable))
        for f in followers:
            click.echo(f.render())
    broken = [s.name for s in statuses if s.broken or (strict and s.orphans)]
    if broken:
        _say_why("broken: " + ", ".join(broken) + " (see above)", "RepositoryBroken", ExitCode.VERIFICATION,
                 as_json, repositories=broken)
        sys.exit(ExitCode.VERIFICATION)
    late = [s.name for s in statuses if s.rpo_seconds is None
            or (limit is not None and s.rpo_seconds > limit.total_seconds())]
    if limit is not None and late:
        _say_why(f"RPO past {max_rpo} in: " + ", ".join(late), "RpoExceeded", ExitCode.RPO_EXCEEDED, as_json,
                 repositories=late)
        sys.exit(ExitCode.RPO_EXCEEDED)


def _say_why(message: str, kind: str, code: ExitCode, as_json: bool, **details: Any) -> None:
    """Why the command exits `code`, on stderr: one JSON object under --json (the report is on stdout)."""
    if as_json:
        emit_error(message, kind=kind, exit_code=code, **details)
    else:
        click.echo(message, err=True)
