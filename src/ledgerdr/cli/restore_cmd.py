"""`ledgerdr restore` and `ledgerdr worker`."""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ..errors import ConfigError, ExitCode
from ..queues import open_queue
from ..restore import RestoreOptions
from ..restore import restore as restore_flow
from ..restore.run import RestoreInterrupted
from ..restore.worker import WorkerSpec, run_worker
from .common import (
    config_option,
    load_optional,
    record_signer,
    resolve_repository,
    trusted_key_option,
    trusted_keys,
)
from .output import emit_error, emit_json, progress
from .replay_cmd import run_replay


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--until {text!r} is not an ISO-8601 time (e.g. 2026-11-23T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.option("--from", "source", required=True,
              help="A configured repository's name, or a repository or raw QLDB export location (dir or s3://).")
@click.option("--to", "target", required=True, help="embedded:///path/ledger.db, embedded:rel.db or postgresql://…")
@click.option("--until", help="Restore transactions committed before this time (ISO-8601, UTC if no offset).")
@click.option("--until-block", type=int, help="Restore up to and including this block sequence number.")
@click.option("--allow-gaps", is_flag=True, help="Restore across missing blocks and report exactly what is lost.")
@click.option("--workers", type=int, help="Worker processes (default: one per core; 0: in this process).")
@click.option("--resume", "resume", help="Continue the restore with this id (from its state folder).")
@click.option("--state-dir", default=".ledgerdr-restores", show_default=True, type=click.Path(file_okay=False),
              help="Where the restore keeps its plan, queue and unit results (for --resume).")
@click.option("--strategy", type=click.Choice(["backup-restore", "intermediate"]), default="backup-restore",
              show_default=True, help="intermediate: the target already holds an earlier part (pilot light).")
@click.option("--mode", type=click.Choice(["state", "replay-statements"]), default="state", show_default=True,
              help="replay-statements: the reference architecture's lossy statement replay, as a baseline only "
                   "(same as `ledgerdr replay`).")
@click.option("--force", is_flag=True,
              help="Restore into a writable ledger (it becomes a read-only restore target) or one holding blocks "
                   "newer than the backup, saying so; never into another lineage or the configured source.")
@click.option("--certificate", "certificate", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the restore certificate here [default: beside an embedded target's file as "
                   "<file>.certificate.json; for PostgreSQL, <state-dir>/<restore id>/certificate.json].")
@trusted_key_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the restore report as JSON.")
@click.option("--metrics-port", type=int, help="Serve the progress and dead letters of the restores in --state-dir "
              "(the metrics command's ledgerdr_restore_* gauges) on 127.0.0.1 at this port while restoring (0: any "
              "free port, printed).")
def restore(source: str, target: str, until: str | None, until_block: int | None, allow_gaps: bool,
            workers: int | None, resume: str | None, state_dir: str, strategy: str, mode: str, force: bool,
            certificate: Path | None, trusted: tuple[str, ...], config_path: str | None, as_json: bool,
            metrics_port: int | None) -> None:
    """Restore a ledger from its exports, verified end to end.

    Plans one work unit per data object, applies them with a pool of workers (state-based and
    idempotent: any order, any re-delivery), then compares a state digest of the target with the one
    computed from the journal. Running the same command again, or with --resume, continues an
    interrupted restore under the same id (RTO counted from its first start).

    A target that holds other data (a live ledger, another lineage, blocks newer than the backup, the
    configured source) is refused before anything is written. A verified restore writes a certificate
    (`ledgerdr verify --certificate FILE` re-checks it; docs/format.md). Exits 0 only on a verified restore; 2 on
    a usage error (e.g. --until with --until-block, or a point outside the restore points `ledgerdr
    info` shows); 3 on a storage error; 7 when the restore is refused (gap, fork, damaged record or
    object, target holding other data, a record not signed by a trusted key when --trusted-key or
    [signing] trusted_keys is given) or ends unverified; 130 when interrupted.
    """
    config = load_optional(config_path)
    repository = resolve_repository(source, config)
    if mode == "replay-statements":
        _refuse_with_replay(until=until, until_block=until_block, resume=resume, strategy=strategy,
                            trusted_key=trusted or None)
        run_replay(repository.url, target, workers or 0, as_json)
    if until is not None and until_block is not None:
        raise ConfigError("--until and --until-block both give the restore's end: pass one of them")
    options = RestoreOptions(until=_when(until), until_block=until_block, allow_gaps=allow_gaps, workers=workers,
                             state_dir=Path(state_dir), resume=resume, strategy=strategy, force=force,
                             protected=(str(config.source.path),) if config and config.source.path else (),
                             source_options=repository.options, trusted=trusted_keys(trusted, config_path))
    if metrics_port is not None:
        from .metrics_cmd import serve_while_running  # prometheus_client: only when asked for

        serve_while_running(metrics_port, restores=(state_dir,))
    try:
        with progress("restoring units", None, enabled=not as_json) as bar:
            report = restore_flow(repository.url, target, options,
                                  on_progress=lambda done, total, n: bar.update(completed=done, total=total))
    except RestoreInterrupted as stop:
        command = shlex.join(["ledgerdr", "restore", "--from", source, "--to", target, "--resume", stop.restore_id,
                              "--state-dir", state_dir])
        message = f"interrupted: restore {stop.restore_id} stopped; what it applied is kept"
        if as_json:
            emit_error(message, kind="Interrupted", exit_code=ExitCode.INTERRUPTED, hint=f"resume with: {command}",
                       restore_id=stop.restore_id)
        else:
            click.echo(f"{message}.\nresume with: {command}\n(running the same command again resumes it too)",
                       err=True)
        sys.exit(ExitCode.INTERRUPTED)
    written = None
    if report.verdict:  # a certificate vouches for a verified restore only
        from ..certificate import issue_certificate

        written = issue_certificate(report, repository.open(), target, path=certificate, state_dir=Path(state_dir),
                                    signer=record_signer(config))
    if as_json:
        emit_json({**report.to_json(), "certificate": str(written) if written else None})
    else:
        _render(report)
        if written:
            click.echo(f"certificate: {written}")
    sys.exit(ExitCode.OK if report.verdict else ExitCode.RESTORE)


def _refuse_with_replay(**given: object) -> None:
    """Statement replay has no plan, position or cut-off: say so rather than ignore an option."""
    defaults = {"strategy": "backup-restore"}
    used = [name for name, value in given.items() if value not in (None, defaults.get(name))]
    if used:
        raise ConfigError(f"--mode replay-statements does not take --{used[0].replace('_', '-')}",
                          hint="the baseline replays every export in full into a new ledger")


def _render(report) -> None:
    click.echo(f"restore {report.restore_id}: {report.units_applied}/{report.units} units, {report.revisions} "
               f"revisions, {report.tables} tables, up to block {report.last_seq}")
    click.echo(f"state digest: journal {report.journal_state_digest}\n              target  {report.target_state_digest}")
    if report.type_lost:
        click.echo(f"{report.type_lost} revisions lost Ion types (JSON export), e.g. {report.type_lost_examples[:3]}")
    for start, end in report.lost_blocks:
        click.echo(f"LOST: blocks {start}..{end} are in no export", err=True)
    for dead in report.dead_letters:
        click.echo(f"dead letter: {dead['unit']} after {dead['attempts']} attempts: {dead['reason']}", err=True)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    verdict = "VERIFIED" if report.verdict else \
        f"NOT VERIFIED (continue with --resume {report.restore_id})" if report.resumable else "NOT VERIFIED"
    resumed = ", resumed: counted from its first start" if report.resumed else ""
    click.echo(f"RTO {report.rto_seconds:.1f}s{resumed}; verdict: {verdict}")


@click.command()
@click.option("--queue", "queue_url", required=True, help="sqlite:///path.db?name=… or an SQS queue URL.")
@click.option("--from", "source", required=True,
              help="Where the units' objects are: a configured repository's name, a directory or s3:// URL.")
@click.option("--to", "target", required=True, help="The restore target URL.")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False),
              help="The restore's state folder (unit results are recorded there).")
@click.option("--follow", is_flag=True, help="Keep waiting for units instead of exiting when the queue is empty.")
@click.option("--visibility-timeout", default=300.0, show_default=True,
              help="Seconds a received unit stays hidden; if this worker dies, it reappears after that.")
@click.option("--metrics-port", type=int, help="Serve the queue's counts and dead letters (the metrics command's "
              "ledgerdr_queue_* gauges) on 127.0.0.1 at this port while working (0: any free port, printed).")
@config_option
def worker(queue_url: str, source: str, target: str, state_dir: str, follow: bool, visibility_timeout: float,
           metrics_port: int | None, config_path: str | None) -> None:
    """A restore worker: receive units, verify them, apply them, ack. Run any number, anywhere."""
    repository = resolve_repository(source, load_optional(config_path))
    if metrics_port is not None:
        from .metrics_cmd import serve_while_running  # prometheus_client: only when asked for

        serve_while_running(metrics_port, queues=(queue_url,))
    queue = open_queue(queue_url)
    try:
        stats = run_worker(queue, WorkerSpec(repository.url, target, state_dir, visibility_timeout=visibility_timeout,
                                             source_options=repository.options),
                           exit_when_idle=not follow)
    finally:
        queue.close()
    click.echo(f"applied {stats.applied} units, {stats.failed} failures released for retry")
