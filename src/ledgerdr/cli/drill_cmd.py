"""`ledgerdr drill`: the end-to-end DR exercise, measured."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..drill import STRATEGIES, DrillSettings, run_drill
from ..drill_html import render_html
from ..errors import ExitCode
from .output import emit_json


@click.command()
@click.option("--strategy", type=click.Choice([*STRATEGIES, "all"]), default="all", show_default=True,
              help="Which recovery strategy to drill.")
@click.option("--workdir", default="ledgerdr-drill", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the drill's ledger, regions and report: new, empty, or one a drill made "
                   "(its own files are replaced; anything else is refused, exit 2).")
@click.option("--duration", default=12.0, show_default=True, help="Seconds of workload before the disaster.")
@click.option("--interval", default=2.0, show_default=True, help="Export interval in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a self-contained HTML page.")
@click.option("--history", "history_dir", type=click.Path(file_okay=False),
              help="Keep this drill's JSON report in this folder and chart RPO/RTO over every drill kept there "
                   "(history.html).")
def drill(strategy: str, workdir: str, duration: float, interval: float, as_json: bool, html_path: str | None,
          history_dir: str | None) -> None:
    """Back up a live ledger, replicate it, lose the primary region, recover with each strategy.

    On the embedded default: a ledger with a running workload, exports every INTERVAL seconds into
    region A, verified copies into region B; then region A is lost and each strategy (cold restore,
    pilot light, warm standby) recovers from region B alone. Reports RPO (data lost) and RTO (time to a
    verified, writable ledger) for each. Writes report.json into the work folder; exits 0 only when every
    strategy verified, 4 when one did not, 2 when --workdir is a non-empty folder that no drill made (it
    is left untouched: a drill deletes only what a drill created).
    """
    from datetime import timedelta

    settings = DrillSettings(Path(workdir), duration=duration, interval=timedelta(seconds=interval),
                             strategies=STRATEGIES if strategy == "all" else (strategy,))
    report = run_drill(settings, say=lambda line: click.echo(f"» {line}", err=True))
    data = report.to_json()
    import orjson

    (Path(workdir) / "report.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    if html_path:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        Path(html_path).write_text(render_html(report))
    if history_dir:
        _keep_history(Path(history_dir), data)
    if as_json:
        emit_json(data)
    else:
        for r in report.results:
            click.echo(f"{r.strategy:15} RPO {r.rpo_seconds}s ({r.transactions_lost} transactions lost)  "
                       f"RTO {r.rto_seconds:.2f}s  revisions {r.revisions_restored}  "
                       f"{'VERIFIED' if r.verdict else 'FAILED: ' + '; '.join(r.problems)}")
        click.echo(f"report: {Path(workdir) / 'report.json'}" + (f" and {html_path}" if html_path else ""))
    sys.exit(ExitCode.OK if report.verdict else ExitCode.VERIFICATION)


def _keep_history(directory: Path, data: dict) -> None:
    from ..drill_history import keep_report, load_history, render_history

    kept = keep_report(directory, data)
    drills, unreadable = load_history(directory)
    (directory / "history.html").write_text(render_history(drills, unreadable))
    click.echo(f"kept {kept}; {len(drills)} drills charted in {directory / 'history.html'}", err=True)
