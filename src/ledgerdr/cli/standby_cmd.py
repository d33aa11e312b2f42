"""`ledgerdr standby` and `ledgerdr promote`."""

from __future__ import annotations

import dataclasses
import logging
import signal
from dataclasses import asdict
from pathlib import Path

import click
import orjson

from ..certificate import issue_certificate
from ..config import parse_duration
from ..logs import log_event
from ..queues.notify import open_notifications
from ..record_trust import refuse_untrusted
from ..restore.run import RestoreReport
from ..restore.standby import FollowReport, StandbyOptions, run_standby
from ..restore.standby import detach as detach_flow
from ..restore.standby import promote as promote_flow
from ..signing import load_signer
from ..targets import open_target
from .common import config_option, load_optional, record_signer, resolve_repository, trusted_keys
from .output import RoundProgress


@click.command()
@click.option("--from", "source", required=True,
              help="The repository to follow: a configured repository's name, a directory or s3:// URL.")
@click.option("--to", "target", required=True, help="The standby ledger: embedded:///path/standby.db or postgresql://…")
@click.option("--notify", "notify", metavar="QUEUE_URL",
              help="Wake on messages in this queue (sqlite:///q.db?name=N, or an SQS queue URL fed by S3 event "
                   "notifications); without it, poll.")
@click.option("--every", default="2s", show_default=True, help="Without --notify: how often to look for new windows.")
@click.option("--relist-every", default="1m", show_default=True,
              help="With --notify: look at least this often anyway, in case a message was lost.")
@click.option("--once", is_flag=True, help="Apply what is new, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Print each round as a JSON line.")
@click.option("--metrics-port", type=int, help="Unless --once: serve the standby's lag (the metrics command's "
              "ledgerdr_standby_* gauges) on 127.0.0.1 at this port while following (0: any free port, printed).")
@config_option
def standby(source: str, target: str, notify: str | None, every: str, relist_every: str, once: bool,
            as_json: bool, metrics_port: int | None, config_path: str | None) -> None:
    """Follow a repository: apply each new window if it chains onto the last applied block.

    An empty standby starts from the newest verified snapshot. Stops with exit 7 on a gap or a fork,
    naming the block address. Its position is kept in the target, so a killed standby resumes where it
    was; `ledgerdr status --standby TARGET` shows its lag. The standby stays read-only until
    `ledgerdr promote`.
    """
    location = resolve_repository(source, load_optional(config_path)).open()
    options = StandbyOptions(every=parse_duration(every, "--every").total_seconds(),
                             relist_every=parse_duration(relist_every, "--relist-every").total_seconds(), once=once)
    notifications = open_notifications(notify) if notify else None
    stopping: list[int] = []
    # SIGTERM ends the current round cleanly (a SIGKILL is survived too: the position is durable).
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    if metrics_port is not None:
        from .metrics_cmd import serve_while_running  # prometheus_client: only for the long-running mode

        serve_while_running(metrics_port, running=not once, needs="not with --once", standbys=(target,))
    tgt = open_target(target)
    bar = RoundProgress("standby catching up (blocks)", enabled=not as_json)

    def on_round(report: FollowReport) -> None:
        bar.end_round()
        _render(report, as_json)
        _log(report, source)

    try:
        run_standby(location, tgt, options, notifications=notifications, on_round=on_round,
                    should_stop=lambda: bool(stopping), on_progress=bar.report)
    finally:
        bar.end_round()
        tgt.close()
        if notifications is not None:
            notifications.close()


def _render(report: FollowReport, as_json: bool) -> None:
    if as_json:  # one line per round, so a supervisor or a benchmark can read rounds as they happen
        click.echo(orjson.dumps(report.to_json()).decode())
        return
    if report.snapshot_last_seq is not None:
        click.echo(f"started from the snapshot at block {report.snapshot_last_seq}")
    if report.windows_applied or not report.notices:
        click.echo(f"standby at block {report.position_seq}; {len(report.windows_applied)} windows applied; "
                   f"lag {report.lag_blocks} blocks, {report.lag_seconds}s")


def _log(report: FollowReport, source: str) -> None:
    """One log line per window applied, and the position after them (a quiet round only beats in the target)."""
    for window in report.windows_applied:
        log_event(f"applied window {window}", logger="ledgerdr.standby", event="applied", repository=source,
                  window=window)
    if report.windows_applied or report.snapshot_last_seq is not None:
        log_event(f"standby at block {report.position_seq}; lag {report.lag_blocks} blocks",
                  logger="ledgerdr.standby", event="position", repository=source, block=report.position_seq,
                  lag_blocks=report.lag_blocks, lag_seconds=report.lag_seconds, snapshot=report.snapshot_last_seq)
    if report.finalize_deferred is not None:  # a warning: it shows without the logging options
        log_event(f"{report.finalize_deferred}; tried again in the next round", logger="ledgerdr.standby",
                  level=logging.WARNING, event="checkpoint_deferred", repository=source)


@click.command()
@click.option("--from", "source", required=True,
              help="The repository the standby follows: a configured repository's name, a directory or s3:// URL.")
@click.option("--to", "target", required=True, help="The standby: embedded:///path/standby.db")
@click.option("--state-dir", default=".ledgerdr-restores", show_default=True, type=click.Path(file_okay=False),
              help="Where the final catch-up restore keeps its state.")
@click.option("--certificate", "certificate", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the promote certificate here [default: <standby file>.certificate.json].")
@click.option("--signing-key", metavar="KEY", help="Sign the incarnation record with this key, as [signing] key "
              "takes it (a file, env:NAME or kms:KEY): needed where records are checked against trusted keys.")
@click.option("--trusted-key", "trusted", multiple=True, metavar="PUBLIC_KEY",
              help="Refuse (exit 7, promoting nothing) when any record of the repository is not signed by one of "
                   "these keys (repeatable: a file, or the key in base64 or hex).")
@config_option
def promote(source: str, target: str, state_dir: str, certificate: Path | None, signing_key: str | None,
            trusted: tuple[str, ...], config_path: str | None) -> None:
    """Apply the rest, verify the standby against the journal, and open it for writes.

    Writes a write-once incarnation record into the repository: backups of the promoted ledger continue
    the same chain under a new lineage, and an old primary that comes back is refused by the repository
    (its `backup` exits 6). Writes a certificate of the verified catch-up and the promotion (`ledgerdr
    verify --certificate FILE` re-checks it). Exits 7, recording nothing, when the standby does not verify or cannot take
    writes. To open a test or drill restore for writes without fencing production, use `ledgerdr detach`.
    """
    config = load_optional(config_path)
    repository = resolve_repository(source, config)
    location = repository.open()
    if signing_key:  # loaded before anything is applied: a bad key fails the command before the promotion
        location = dataclasses.replace(location, signer=load_signer(signing_key))
    trusted_by = trusted_keys(trusted, config_path)
    if trusted_by:
        refuse_untrusted(location, trusted_by)
    verified: list[RestoreReport] = []
    incarnation = promote_flow(location, target, state_dir=state_dir, source_options=repository.options,
                               on_verified=verified.append)
    click.echo(f"promoted at block {incarnation.last_seq} ({incarnation.last_block_hash}); new lineage "
               f"{incarnation.lineage}; the ledger is writable")
    written = issue_certificate(verified[0], location, target, path=certificate, state_dir=Path(state_dir),
                                operation="promote", promotion=asdict(incarnation),
                                signer=record_signer(config, signing_key))
    click.echo(f"certificate: {written}")


@click.command()
@click.option("--to", "target", required=True, help="The restored ledger: embedded:///path/restored.db")
def detach(target: str) -> None:
    """Open a restored ledger for writes as a detached copy, under a new lineage of its own.

    Unlike `promote`, writes nothing into any repository: production is not fenced and keeps backing up,
    and no repository accepts this copy's backups as the production chain's (exit 6). For test and drill
    restores that must take writes. Exits 7 for a target that cannot take writes (PostgreSQL is a
    queryable replica).
    """
    lineage = detach_flow(target)
    click.echo(f"detached: {target} is writable under its own lineage {lineage}; no repository was changed")
