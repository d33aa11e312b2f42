"""`ledgerdr replay`: the reference architecture's statement replay, kept as a baseline to measure against.

`run_replay` is what `ledgerdr restore --mode replay-statements` calls, so both spellings behave alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError, ExitCode
from ..restore.replay import ReplayReport, replay_statements
from .output import emit_json


def target_path(text: str) -> Path:
    """A plain path, or an `embedded:` URL as `restore --to` takes; other targets raise ConfigError."""
    if text.startswith("embedded:"):
        rest = text[len("embedded:"):]
        text = rest[2:] if rest.startswith("//") else rest
    elif "://" in text:
        raise ConfigError(f"statement replay writes to a new embedded ledger only, not {text!r}",
                          hint="give a file path such as ./replayed.db")
    if not text:
        raise ConfigError("--to names no file")
    return Path(text)


def run_replay(source: str, target: str, workers: int, as_json: bool) -> None:
    """Replay, render the report, and exit: 0 if the result equals the journal, 7 if it does not."""
    report = replay_statements(source, target_path(target), workers=workers)
    if as_json:
        emit_json(report.to_json())
    else:
        _render(report)
    same = report.comparison is not None and report.comparison.identical
    sys.exit(ExitCode.OK if same else ExitCode.RESTORE)


@click.command()
@click.option("--from", "source", required=True, help="Repository or raw QLDB export location (dir or s3://).")
@click.option("--to", "target", required=True, help="Path of a new embedded ledger (or embedded:///path); "
                                                      "it must not exist.")
@click.option("--workers", type=int, default=0, show_default=True,
              help="Processes sharing the objects, in no order, like the reference's Lambdas (0: in order, "
                   "in this process).")
@click.option("--json", "as_json", is_flag=True, help="Print the replay report as JSON.")
def replay(source: str, target: str, workers: int, as_json: bool) -> None:
    """Baseline only: restore by replaying statements, as the reference architecture did.

    Executes each INSERT INTO / UPDATE / DELETE statement of the journal as text, with revisions[0]'s
    data as its parameter and a new driver per object, after creating the journal's tables. Then
    compares the result with the verified journal and reports what was lost: failed statements,
    missing and altered documents, new document ids, a different state digest. Not idempotent: the
    target must be new. Exits 7 when the result differs from the journal (it does, by design).
    """
    run_replay(source, target, workers, as_json)


def _render(report: ReplayReport) -> None:
    click.echo(f"replayed {report.objects} objects ({report.drivers_created} drivers), {report.blocks} blocks, "
               f"{report.journal_revisions} revisions in {report.seconds:.1f}s "
               f"({report.revisions_per_second:,.0f} revisions/s; tables created first in {report.ddl_seconds:.1f}s)")
    click.echo(f"statements: {report.statements} in the journal, {report.statements_selected} selected, "
               f"{report.statements_replayed} ran ({report.statements_without_effect} changed nothing), "
               f"{report.statements_failed} failed")
    for reason, count in report.failure_reasons.items():
        click.echo(f"  {count} × {reason}")
    comparison = report.comparison
    if comparison is None:
        return
    click.echo(f"documents: journal {comparison.journal_documents}, replayed {comparison.target_documents}; "
               f"{comparison.documents_matching} equal, {comparison.documents_missing} missing, "
               f"{comparison.documents_extra} not in the journal, {comparison.ids_preserved} kept their id")
    click.echo(f"history: journal {comparison.journal_revisions} revisions, replayed {comparison.target_revisions}")
    click.echo(f"state digest: journal {comparison.journal_state_digest}\n"
               f"              target  {comparison.target_state_digest}")
    verdict = "IDENTICAL" if comparison.identical else "DIFFERS FROM THE JOURNAL (use `ledgerdr restore`)"
    click.echo(f"verdict: {verdict}")
