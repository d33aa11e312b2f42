"""`ledgerdr replicate`: copy to every replica repository, verify there, advance its watermark."""

from __future__ import annotations

import logging
import sys
import time

import click

from ..config import RepositoryConfig, parse_duration
from ..errors import ConfigError, ExitCode
from ..logs import log_event, note
from ..replicate import ReplicateOptions, ReplicateReport, refuse_unfit_replica
from ..replicate import replicate as replicate_flow
from ..repository import RecordCache
from ..runs import note_run, recorded
from ..stores import Location
from .common import config_option, json_option, load, open_repository
from .output import emit_json, progress


@click.command()
@config_option
@click.option("--repository", "names", multiple=True, help="Only this replica (repeatable). Default: all.")
@click.option("--verify-only", is_flag=True, help="Copy and repair nothing (S3 replication copies); only verify "
              "and mark. Exits 4 on any missing or damaged copy.")
@click.option("--follow", is_flag=True, help="Keep running: replicate again every --every.")
@click.option("--every", default="30s", show_default=True, help="Pause between rounds with --follow.")
@click.option("--concurrency", default=8, show_default=True, help="Objects copied at once.")
@click.option("--metrics-port", type=int, help="With --follow: serve the metrics command's registry on 127.0.0.1 "
              "at this port while running (0: any free port, printed); each round counts as a replicate run.")
@json_option
@recorded("replicate")
def replicate(config_path: str, names: tuple[str, ...], verify_only: bool, follow: bool, every: str,
              concurrency: int, metrics_port: int | None, as_json: bool) -> None:
    """Copy every recorded window's objects a replica lacks, then verify the replica's chain.

    Skips objects already there with the same checksum, so an interrupted run resumes. Every run also
    hashes again each replica copy its watermark vouches for: a lost or damaged copy is copied again
    from the primary and named ("repaired"). Exits 4, naming the key, when any replica has a missing,
    altered or conflicting object it cannot repair (its watermark does not move past it).
    Exits 2, copying nothing, when a replica's prefix differs from the primary's or it lacks the Object
    Lock its `require_object_lock` asks for (the check `ledgerdr check` makes).
    """
    config = load(config_path)
    primary = open_repository(config.primary)
    replicas = [config.repository(n) for n in names] if names else list(config.replicas)
    pause = parse_duration(every, "--every").total_seconds()
    options = {repo.name: ReplicateOptions.for_replica(repo, config, verify_only=verify_only, concurrency=concurrency)
               for repo in replicas}
    locations = {repo.name: open_repository(repo, writes=True) for repo in replicas}
    _refuse_unfit(primary, replicas, locations)
    # with --follow, each round fetches only the records and watermarks that are new since the last one
    caches = {repo.name: RecordCache() for repo in replicas}
    if metrics_port is not None:
        from .metrics_cmd import serve_while_running  # prometheus_client: only for the long-running mode

        serve_while_running(metrics_port, running=follow, needs="pass --follow", config_path=config_path)
    while True:
        started = time.time()
        reports = []
        for repo in replicas:
            with progress(f"replicating to {repo.name} (objects)", None, enabled=not as_json) as bar:
                reports.append(replicate_flow(primary, locations[repo.name], options[repo.name],
                                              on_object=lambda key: bar.advance(), cache=caches[repo.name],
                                              on_total=lambda n: bar.update(total=n)))
        _render(reports, as_json)
        if follow:
            _log(reports)
        if not follow:
            sys.exit(ExitCode.OK if all(r.ok for r in reports) else ExitCode.VERIFICATION)
        note_run("replicate", ExitCode.OK if all(r.ok for r in reports) else ExitCode.VERIFICATION, started)  # a round
        time.sleep(pause)


def _refuse_unfit(primary: Location, replicas: list[RepositoryConfig], locations: dict[str, Location]) -> None:
    """Every unfit replica named at once, before any is copied to (the flow checks its own again)."""
    refused: list[ConfigError] = []
    for repo in replicas:
        try:
            refuse_unfit_replica(primary, locations[repo.name], repo.name,
                                 require_object_lock=repo.require_object_lock)
        except ConfigError as exc:
            refused.append(exc)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        raise ConfigError("\n  - ".join(["refusing to replicate:", *map(str, refused)]))


def _log(reports: list[ReplicateReport]) -> None:
    """A follower's round, for a log pipeline (stdout has the same for people)."""
    for r in reports:
        log_event(f"replicated to {r.repository}: copied {r.copied}, verified to block "
                  f"{r.watermark.last_seq if r.watermark else None}", logger="ledgerdr.replicate", event="round",
                  repository=r.repository, block=r.watermark.last_seq if r.watermark else None, copied=r.copied,
                  skipped=r.skipped, rechecked=r.rechecked, repaired=len(r.repaired), problems=len(r.problems),
                  level=logging.WARNING if r.problems else logging.INFO)


def _render(reports, as_json: bool) -> None:
    if as_json:
        emit_json([{"repository": r.repository, "copied": r.copied, "skipped": r.skipped,
                    "windows_covered": r.windows_covered, "rechecked": r.rechecked,
                    "repaired": [{"key": k, "was": was} for k, was in r.repaired],
                    "bytes_copied": r.bytes_copied, "windows_verified": r.windows_verified,
                    "watermark": r.watermark.__dict__ if r.watermark else None,
                    "problems": [p.__dict__ for p in r.problems]} for r in reports])
        return
    for r in reports:
        mark = f"verified to block {r.watermark.last_seq}" if r.watermark else "nothing verified yet"
        click.echo(f"[{r.repository}] copied {r.copied} ({r.bytes_copied} bytes), skipped {r.skipped}, "
                   f"{r.windows_verified} new windows verified ({r.windows_covered} verified before, "
                   f"{r.rechecked} copies re-checked); {mark}")
        for key, was in r.repaired:
            click.echo(f"[{r.repository}] repaired {key}: the copy was {was}; copied again from the primary")
        for p in r.problems:
            note(f"problem: {p}", logger="ledgerdr.replicate", level=logging.WARNING, event="problem",
                 repository=r.repository, key=p.key, block=p.block_address, kind=p.kind)
