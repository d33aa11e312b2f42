"""`ledgerdr compact` and `ledgerdr prune`: the nightly snapshot, and retention of what it replaces."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from ..compact import CompactReport
from ..compact import compact as compact_flow
from ..prune import PruneReport, keys_in_use
from ..prune import prune as prune_flow
from .common import config_option, json_option, load, open_repository
from .output import emit_json, progress

repository_option = click.option(
    "--repository",
    "repository",
    default=None,
    help="The configured repository to work on. Default: the primary.",
)


@click.command()
@config_option
@repository_option
@click.option(
    "--up-to-seq",
    type=int,
    default=None,
    help="Fold only windows ending at or before this block. Default: up to the newest window.",
)
@json_option
def compact(config_path: str, repository: str | None, up_to_seq: int | None, as_json: bool) -> None:
    """Fold verified windows into a snapshot (full history, DDL, redactions applied) with its manifest.

    Every object read is verified; only new objects are written, the manifest last. Builds on the
    newest snapshot, never past a gap. Running it again with nothing new does nothing. Exits 4 when
    an object or the chain does not verify (nothing is written then).
    """
    config = load(config_path)
    repo = config.repository(repository) if repository else config.primary
    with progress("compacting: objects read", None, enabled=not as_json) as bar:
        report = compact_flow(
            open_repository(repo, writes=True),
            up_to_seq=up_to_seq,
            retention=timedelta(days=config.backup.retention_days),
            on_progress=lambda done, total: bar.update(completed=done, total=total),
        )
    _render_compact(report, as_json)


def _render_compact(report: CompactReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    if report.nothing_to_do:
        click.echo(f"nothing to do: {report.nothing_to_do}")
        return
    if report.already_compacted:
        click.echo(f"snapshot {report.last_seq} already exists ({report.manifest_key}); nothing written")
        return
    base = f" on top of snapshot {report.base_snapshot}" if report.base_snapshot is not None else ""
    click.echo(
        f"snapshot of blocks {report.first_seq}..{report.last_seq}{base}: {len(report.windows_folded)} new "
        f"windows, {report.revisions} revisions of {report.documents} documents ({report.live_documents} "
        f"live), {report.objects} objects, {report.bytes_written} bytes; tip {report.tip_hash}; "
        f"{report.blocks_without_revisions} read-only or DDL-only blocks dropped; "
        f"{report.redactions_applied} redactions applied; {report.seconds}s"
    )
    if report.stopped_before:
        click.echo(f"stopped early: {report.stopped_before}", err=True)


@click.command()
@config_option
@repository_option
@click.option("--confirm", is_flag=True, help="Delete. Without it, a dry run lists what would go and why.")
@click.option(
    "--keep-after-seq", type=int, default=None, help="Never delete windows reaching past this block."
)
@click.option(
    "--restore-state",
    "state_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A local restore state folder whose planned restores still need their objects (repeatable). "
    "Default: ./.ledgerdr-restores when it exists.",
)
@json_option
def prune(
    config_path: str,
    repository: str | None,
    confirm: bool,
    keep_after_seq: int | None,
    state_dirs: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Delete raw exports that the newest verified snapshot covers and whose retention has ended.

    Dry run by default. Verifies the whole snapshot first; never deletes window records, watermarks,
    snapshots, objects under retention or in use by a restore. Exits 4 when the snapshot does not verify.
    """
    config = load(config_path)
    repo = config.repository(repository) if repository else config.primary
    folders = state_dirs or tuple(p for p in (Path(".ledgerdr-restores"),) if p.is_dir())
    in_use = set().union(*(keys_in_use(folder) for folder in folders)) if folders else set()
    report = prune_flow(open_repository(repo, writes=confirm), keep_after_seq=keep_after_seq, confirm=confirm, in_use=in_use)
    _render_prune(report, as_json)


def _render_prune(report: PruneReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.to_json())
        return
    if report.snapshot_last_seq is None:
        click.echo(f"nothing to do: {report.nothing_to_do}")
        return
    click.echo(
        f"snapshot {report.snapshot_last_seq} verified ({report.snapshot_revisions_verified} revisions); "
        f"{report.windows_not_covered} windows not covered"
    )
    for item in report.items:
        click.echo(f"{item.action:7} {item.key} (blocks {item.first_seq}..{item.last_seq}): {item.reason}")
    verb = "would delete" if report.dry_run else "deleted"
    click.echo(
        f"{verb} {len(report.deletable)} objects"
        + ("" if report.dry_run else f", {report.bytes_freed} bytes; record {report.record_key}")
        + ("; run again with --confirm to delete" if report.dry_run and report.deletable else "")
    )
