"""`ledgerdr ledger …`: create, query, load, digest and export an embedded ledger.

Each command parses its arguments, calls the library (`ledgerdr.ledger`), and renders the result;
errors propagate to the top-level group, which maps them to exit codes.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import click
from amazon.ion import simpleion
from amazon.ion.exceptions import IonException

from ..errors import ConfigError
from ..journal.codecs import ExportFormat
from ..ledger.driver import LedgerDriver
from ..ledger.engine import Ledger
from ..ledger.exporter import export_journal, result_summary
from ..ledger.workload import run_workload
from ..stores.file import FileStore
from .output import emit_json, progress

_path_argument = click.argument("path", type=click.Path(dir_okay=False))
_durability_option = click.option(
    "--durability",
    type=click.Choice(["full", "normal"]),
    default="full",
    show_default=True,
    help="full: fsync every commit; normal: faster, the last commits may be lost on power failure.",
)


def _ion_text(value: object) -> str:
    return simpleion.dumps(value, binary=False, omit_version_marker=True)


def _parse_time(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{what} {text!r} is not an ISO 8601 time (e.g. 2024-05-01T13:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@click.group()
def ledger() -> None:
    """An embedded, QLDB-compatible ledger on one SQLite file (no cloud needed)."""


@ledger.command()
@_path_argument
@click.option("--name", help="Ledger name (default: the file name without its extension).")
@_durability_option
def create(path: str, name: str | None, durability: str) -> None:
    """Create a new, empty ledger file at PATH."""
    with Ledger.create(path, name, durability=durability) as created:
        click.echo(f"created ledger {created.name!r} at {path} (strand {created.strand_id})")


@ledger.command("exec")
@_path_argument
@click.argument("statement")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="ION",
    help="A value for the next `?`, in Ion text (e.g. '{name: \"Ann\", age: 40}'). Repeatable.",
)
@_durability_option
def exec_(path: str, statement: str, params: tuple[str, ...], durability: str) -> None:
    """Run one PartiQL STATEMENT in its own transaction; print each result as Ion text, one per line."""
    values = []
    for text in params:
        try:
            values.append(simpleion.loads(text))
        except (IonException, ValueError) as exc:
            raise ConfigError(f"--param {text!r} is not Ion text: {exc}") from None
    with Ledger.open(path, durability=durability) as opened:
        for result in opened.execute(statement, *values):
            click.echo(_ion_text(result))


@ledger.command()
@_path_argument
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def digest(path: str, as_json: bool) -> None:
    """Print the ledger digest (base64) and its tip address, as QLDB's GetDigest does."""
    with Ledger.open(path, read_only=True) as opened:
        result = opened.get_digest()
    encoded = base64.b64encode(result["digest"]).decode()
    tip = result["digestTipAddress"]
    if as_json:
        emit_json({"digest": encoded, "digest_tip_address": tip})
    else:
        click.echo(f"digest: {encoded}")
        click.echo(f"tip: {_ion_text(tip)}")


@ledger.command()
@_path_argument
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to write the export into (a file store root).",
)
@click.option("--prefix", default="", help="Key prefix inside the directory.")
@click.option("--start", help="Inclusive window start, ISO 8601 UTC (default: the ledger's first block).")
@click.option("--end", help="Exclusive window end, ISO 8601 UTC (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ion_text", "ion_binary", "json"], case_sensitive=False),
    default="ion_text",
    show_default=True,
    help="QLDB's export format (ion_text is QLDB's default).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export(
    path: str, directory: str, prefix: str, start: str | None, end: str | None, fmt: str, as_json: bool
) -> None:
    """Export the journal blocks committed in [START, END) in QLDB's export layout."""
    with Ledger.open(path, read_only=True) as opened:
        end_time = _parse_time(end, "end") or _now_ms()
        start_time = _parse_time(start, "start") or _default_start(opened, end_time)
        result = export_journal(
            opened,
            start=start_time,
            end=end_time,
            store=FileStore(directory),
            prefix=prefix,
            fmt=ExportFormat.parse(fmt),
        )
    summary = result_summary(result)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"export {result.export_id}")
    click.echo(f"window: {summary['window_start']} .. {summary['window_end']}   format: {summary['format']}")
    blocks = "no blocks" if result.first_seq is None else f"blocks {result.first_seq}..{result.last_seq}"
    click.echo(
        f"{blocks} ({result.blocks} blocks, {result.revisions} revisions) in {len(result.objects)} objects, "
        f"{summary['bytes']:,} bytes"
    )
    click.echo(f"completed manifest: {result.completed_key}")


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _default_start(opened: Ledger, end: datetime) -> datetime:
    first = opened.first_block_time()
    if first is None:
        return end.replace(year=end.year - 1)  # an empty ledger: any earlier start gives an empty window
    return first.replace(microsecond=0)


@ledger.command()
@_path_argument
@click.option(
    "--transactions", "-n", type=click.IntRange(min=1), required=True, help="How many transactions."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same workload)."
)
@click.option("--tables", type=click.IntRange(1, 20), default=3, show_default=True,
              help="How many tables the workload spreads its documents over.")
@_durability_option
def load(path: str, transactions: int, seed: int, tables: int, durability: str) -> None:
    """Run a realistic workload (DDL, inserts, updates, deletes, selects) against PATH."""
    with LedgerDriver(path, durability=durability) as driver, \
            progress("loading transactions", transactions) as bar:
        stats = run_workload(driver, transactions, seed=seed, tables=tables, on_step=bar.advance)
        blocks = driver.ledger.block_count
    click.echo(
        f"{stats.transactions} transactions: {stats.inserted} inserted, {stats.updated} updated, "
        f"{stats.deleted} deleted, {stats.selects} read-only; {stats.occ_retries} OCC retries; "
        f"ledger now has {blocks} blocks"
    )
