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
from .common import config_option, load, trusted_key_option, trusted_keys
from .output import emit_json, progress
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
@click.option("--from", "source", required=True, help="Repository or raw QLDB export location (dir or s3://).")
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
@trusted_key_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the restore report as JSON.")
def restore(source: str, target: str, until: str | None, until_block: int | None, allow_gaps: bool,
            workers: int | None, resume: str | None, state_dir: str, strategy: str, mode: str, force: bool,
            trusted: tuple[str, ...], config_path: str, as_json: bool) -> None:
    """Restore a ledger from its exports, verified end to end.

    Plans one work unit per data object, applies them with a pool of workers (state-based and
    idempotent: any order, any re-delivery), then compares a state digest of the target with the one
    computed from the journal. Running the same command again, or with --resume, continues an
    interrupted restore under the same id (RTO counted from its first start).

    A target that holds other data (a live ledger, another lineage, blocks newer than the backup, the
    configured source) is refused before anything is written. Exits 0 only on a verified restore; 2 on
    a usage error (e.g. --until with --until-block, or a point outside the restore points `ledgerdr
    info` shows); 3 on a storage error; 7 when the restore is refused (gap, fork, damaged record or
    object, target holding other data, a record not signed by a trusted key when --trusted-key or
    [signing] trusted_keys is given) or ends unverified; 130 when interrupted.
    """
    if mode == "replay-statements":
        _refuse_with_replay(until=until, until_block=until_block, resume=resume, strategy=strategy,
                            trusted_key=trusted or None)
        run_replay(source, target, workers or 0, as_json)
    if until is not None and until_block is not None:
        raise ConfigError("--until and --until-block both give the restore's end: pass one of them")
    options = RestoreOptions(until=_when(until), until_block=until_block, allow_gaps=allow_gaps, workers=workers,
                             state_dir=Path(state_dir), resume=resume, strategy=strategy, force=force,
                             protected=_configured_source(config_path), trusted=trusted_keys(trusted, config_path))
    try:
        with progress("restoring units", None, enabled=not as_json) as bar:
            report = restore_flow(source, target, options,
                                  on_progress=lambda done, total, n: bar.update(completed=done, total=total))
    except RestoreInterrupted as stop:
        command = ["ledgerdr", "restore", "--from", source, "--to", target, "--resume", stop.restore_id,
                   "--state-dir", state_dir]
        click.echo(f"interrupted: restore {stop.restore_id} stopped; what it applied is kept.\n"
                   f"resume with: {shlex.join(command)}\n(running the same command again resumes it too)", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    if as_json:
        emit_json(report.to_json())
    else:
        _render(report)
    sys.exit(ExitCode.OK if report.verdict else ExitCode.RESTORE)


def _configured_source(config_path: str) -> tuple[str, ...]:
    """The configured source ledger's file, when a configuration exists (a restore never writes there)."""
    if not Path(config_path).is_file():
        return ()
    config = load(config_path)
    return (str(config.source.path),) if config.source.path else ()


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
@click.option("--from", "source", required=True, help="Where the units' objects are.")
@click.option("--to", "target", required=True, help="The restore target URL.")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False),
              help="The restore's state folder (unit results are recorded there).")
@click.option("--follow", is_flag=True, help="Keep waiting for units instead of exiting when the queue is empty.")
@click.option("--visibility-timeout", default=300.0, show_default=True,
              help="Seconds a received unit stays hidden; if this worker dies, it reappears after that.")
def worker(queue_url: str, source: str, target: str, state_dir: str, follow: bool, visibility_timeout: float) -> None:
    """A restore worker: receive units, verify them, apply them, ack. Run any number, anywhere."""
    queue = open_queue(queue_url)
    try:
        stats = run_worker(queue, WorkerSpec(source, target, state_dir, visibility_timeout=visibility_timeout),
                           exit_when_idle=not follow)
    finally:
        queue.close()
    click.echo(f"applied {stats.applied} units, {stats.failed} failures released for retry")
