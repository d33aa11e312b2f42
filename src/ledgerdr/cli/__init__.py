"""The `ledgerdr` command line: one module per verb, each parse → call the flow → render.

Errors become exit codes through `ledgerdr.errors.exit_code_for` only; a stack trace is shown only
with --debug.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn

import click

from ..errors import EXIT_CODES, ExitCode, LedgerDRError, exit_code_for

# Each verb's module is imported only when that verb runs (or `--help` lists them all): the flows pull
# in the ledger, the Ion codecs and boto3, and a scheduled `backup --once` should not wait for all of it.
_COMMANDS = {
    "init": "backup_cmd",
    "attest": "attest_cmd",
    "backup": "backup_cmd",
    "status": "backup_cmd",
    "info": "info_cmd",
    "check": "check_cmd",
    "replicate": "replicate_cmd",
    "restore": "restore_cmd",
    "worker": "restore_cmd",
    "verify": "verify_cmd",
    "ledger": "ledger_cmd",
    "standby": "standby_cmd",
    "promote": "standby_cmd",
    "detach": "standby_cmd",
    "drill": "drill_cmd",
    "metrics": "metrics_cmd",
    "compact": "compact_cmd",
    "prune": "compact_cmd",
    "replay": "replay_cmd",
    "aws": "aws_cmd",
    "serve": "serve_cmd",
}

_EPILOG = ("Exit codes (which command returns which: docs/cli.md):\n\n"
           + "\n\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items()))


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        return getattr(importlib.import_module(f"{__name__}.{module}"), cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        as_json = "--json" in ctx.args  # the command's own arguments (click consumes them below)
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # a usage error: click prints it, unless a script asked for JSON
            if not as_json:
                raise
            _json_error(exc.format_message(), kind=type(exc).__name__, exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            _stdout_closed()
        except KeyboardInterrupt:
            message = "interrupted: work done so far is kept; run the same command again to resume"
            if as_json:
                _json_error(message, kind="Interrupted", exit_code=ExitCode.INTERRUPTED)
            else:
                click.echo(message, err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as exc:  # the one place errors turn into exit codes
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _report_error(exc, as_json=as_json)
            sys.exit(exit_code_for(exc))


def _report_error(exc: Exception, *, as_json: bool) -> None:
    """On stderr: `error: …`, or under a command's --json one JSON object a script can read; under
    `--log-format json`, one log record like every other line there."""
    import logging

    from ..logs import note, structured

    hint = exc.hint if isinstance(exc, LedgerDRError) else None
    if structured():
        note(f"error: {exc}", level=logging.ERROR, event="error", kind=type(exc).__name__, hint=hint,
             exit_code=int(exit_code_for(exc)))
        return
    if not as_json:
        click.echo(f"error: {exc}", err=True)
        return
    _json_error(Exception.__str__(exc), kind=type(exc).__name__, exit_code=exit_code_for(exc), hint=hint)


def _json_error(message: str, *, kind: str, exit_code: int, hint: str | None = None) -> None:
    from .output import emit_error  # rich: only once there is an error to print

    emit_error(message, kind=kind, exit_code=exit_code, hint=hint)


def _version_message() -> str:
    """`--version` also says which C accelerators this install runs on (see ledgerdr.native)."""
    from .. import native  # two small extension modules, no heavy imports

    built = [name for name, loaded in native.summary().items() if loaded]
    return "%(prog)s %(version)s (C accelerators: " + (", ".join(built) or "none, pure Python") + ")"


@click.group(cls=_Group, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show stack traces on errors.")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="The configuration file every command reads [default: $LEDGERDR_CONFIG, then ./ledgerdr.toml]; "
                   "a command's own --config wins.")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="How long-running modes (backup --every, replicate --follow, standby, serve) log to stderr: "
                   "text lines or one JSON object per line.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              help="The least severe log records shown [default: info once --log-format is given].")
@click.version_option(package_name="ledgerdr", message=_version_message())
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_path: str | None, log_format: str | None,
        log_level: str | None) -> None:
    """Verifiable disaster recovery for QLDB-style ledgers.

    Gap-free exports to write-once storage, verified cross-region copies, exact restores, and DR
    drills that measure RPO and RTO, every step checked against the ledger's own hash chain.
    """
    ctx.ensure_object(dict)["debug"] = debug
    from ..logs import configure  # logging and orjson only

    configure(log_format, log_level)


def _stdout_closed() -> NoReturn:
    """End quietly when stdout's reader went away (`ledgerdr status | head`): no traceback, and no second
    BrokenPipeError when the interpreter flushes stdout at exit (it goes to /dev/null instead). The exit
    code is a SIGPIPE death's (141), so `set -o pipefail` cannot take a cut-short `status` for a pass."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (an embedding caller's stream)
        pass
    sys.exit(ExitCode.BROKEN_PIPE)


def main() -> None:
    try:
        cli(prog_name="ledgerdr")
    except BrokenPipeError:  # while click prints help or usage, outside any command
        _stdout_closed()
