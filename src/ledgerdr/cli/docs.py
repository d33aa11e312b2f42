"""docs/cli.md is generated from the commands themselves, so it cannot drift from `--help`.

`python -m ledgerdr.cli.docs > docs/cli.md` rewrites it; tests/test_docs.py fails when it is stale.
"""

from __future__ import annotations

import click

from . import cli
from .exits import render_table


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out = []
    ctx = click.Context(group)  # a bare context: listing commands reads nothing from it
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        out.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix} {name}")
    return out


def render() -> str:
    lines = ["# Command line", "", "Generated from the commands (`python -m ledgerdr.cli.docs > docs/cli.md`).", "",
             "## Exit codes", "", "What each code means is in `ledgerdr --help` and the README; which codes each "
             "command returns, and why (`src/ledgerdr/cli/exits.py`):", "", *render_table(), ""]
    # Each command is rendered under the real root context, so inherited settings (`-h`) show as users see them;
    # its name relative to the root, which already prints "ledgerdr" in the usage line.
    root = cli.make_context("ledgerdr", [], resilient_parsing=True)
    for path, command in _commands(cli, "ledgerdr"):
        with click.Context(command, info_name=path.split(" ", 1)[1], parent=root) as ctx:
            lines += [f"## `{path}`", "", "```text", command.get_help(ctx),
                      "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
