"""`ledgerdr standby` and `ledgerdr promote`."""

from __future__ import annotations

import time

import click

from ..config import parse_duration
from ..restore.standby import follow_once
from ..restore.standby import promote as promote_flow
from ..stores import open_location
from ..targets import open_target
from .output import emit_json


@click.command()
@click.option("--from", "source", required=True, help="The repository to follow (a directory or s3://).")
@click.option("--to", "target", required=True, help="The standby ledger: embedded:///path/standby.db or postgresql://…")
@click.option("--every", default="2s", show_default=True, help="How often to look for new windows.")
@click.option("--once", is_flag=True, help="Apply what is new, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Print each round as a JSON line.")
def standby(source: str, target: str, every: str, once: bool, as_json: bool) -> None:
    """Follow a repository: apply each new window if it chains onto the last applied block.

    Stops with exit 7 on a gap or a fork, naming the block address. Its position is what the target holds,
    so a killed standby resumes where it was. The standby stays read-only until `ledgerdr promote`.
    """
    location = open_location(source)
    pause = parse_duration(every, "--every").total_seconds()
    while True:
        tgt = open_target(target)
        try:
            report = follow_once(location, tgt)
        finally:
            tgt.close()
        if as_json:
            emit_json(report.to_json())
        else:
            click.echo(f"standby at block {report.position_seq}; {len(report.windows_applied)} windows applied; "
                       f"lag {report.lag_blocks} blocks, {report.lag_seconds}s")
        if once:
            return
        time.sleep(pause)


@click.command()
@click.option("--from", "source", required=True, help="The repository the standby follows.")
@click.option("--to", "target", required=True, help="The standby: embedded:///path/standby.db")
@click.option("--state-dir", default=".ledgerdr-restores", show_default=True, type=click.Path(file_okay=False),
              help="Where the final catch-up restore keeps its state.")
def promote(source: str, target: str, state_dir: str) -> None:
    """Apply the rest, verify the standby against the journal, and open it for writes.

    Writes a write-once incarnation record into the repository: backups of the promoted ledger continue
    the same chain under a new lineage, and an old primary that comes back is refused by the repository.
    """
    incarnation = promote_flow(open_location(source), target, state_dir=state_dir)
    click.echo(f"promoted at block {incarnation.last_seq} ({incarnation.last_block_hash}); new lineage "
               f"{incarnation.lineage}; the ledger is writable")
