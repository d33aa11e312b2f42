"""The `ledgerdr` command line: one module per verb, each parse → call the flow → render.

Errors become exit codes through `ledgerdr.errors.exit_code_for` only; a stack trace is shown only
with --debug.
"""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_CODES, exit_code_for
from . import (
    backup_cmd,
    check_cmd,
    compact_cmd,
    drill_cmd,
    ledger_cmd,
    replay_cmd,
    replicate_cmd,
    restore_cmd,
    standby_cmd,
    verify_cmd,
)

_EPILOG = "Exit codes:\n\n" + "\n\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted: work done so far is kept; run the same command again to resume", err=True)
            sys.exit(130)
        except Exception as exc:  # the one place errors turn into exit codes
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code_for(exc))


@click.group(cls=_Group, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show stack traces on errors.")
@click.version_option(package_name="ledgerdr")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Verifiable disaster recovery for QLDB-style ledgers.

    Gap-free exports to write-once storage, verified cross-region copies, exact restores, and DR
    drills that measure RPO and RTO, every step checked against the ledger's own hash chain.
    """
    ctx.ensure_object(dict)["debug"] = debug


cli.add_command(backup_cmd.init)
cli.add_command(backup_cmd.backup)
cli.add_command(backup_cmd.status)
cli.add_command(check_cmd.check)
cli.add_command(replicate_cmd.replicate)
cli.add_command(restore_cmd.restore)
cli.add_command(restore_cmd.worker)
cli.add_command(verify_cmd.verify)
cli.add_command(ledger_cmd.ledger)
cli.add_command(standby_cmd.standby)
cli.add_command(standby_cmd.promote)
cli.add_command(drill_cmd.drill)
cli.add_command(compact_cmd.compact)
cli.add_command(compact_cmd.prune)
cli.add_command(replay_cmd.replay)


def main() -> None:
    cli(prog_name="ledgerdr")
