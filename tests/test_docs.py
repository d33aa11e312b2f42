"""The docs stay true: every command has help text, is in the README, and docs/cli.md is current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ledgerdr.cli import cli
from ledgerdr.cli.docs import _commands

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path,command", _commands(cli, "ledgerdr"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_and_is_in_the_readme(path, command):
    assert (command.help or "").strip(), f"{path} has no help text"
    top = path.split()[1]
    assert f"ledgerdr {top}" in (ROOT / "README.md").read_text(), f"{path} is missing from README.md"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help or param.is_flag and param.name in ("help",), f"{path} {param.opts} has no help"


def test_cli_reference_is_current():
    # A fresh process: click caches each command's help option, so commands other tests ran would render differently.
    env = {**os.environ, "COLUMNS": "100"}
    rendered = subprocess.run([sys.executable, "-m", "ledgerdr.cli.docs"], env=env, capture_output=True, text=True,
                              check=True).stdout
    assert (ROOT / "docs" / "cli.md").read_text() == rendered, "run: python -m ledgerdr.cli.docs > docs/cli.md"


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block


def test_cli_reference_usage_lines_name_each_command_once():
    text = (ROOT / "docs" / "cli.md").read_text()
    for path, usage in re.findall(r"^## `(ledgerdr[^`]*)`\n\n```text\nUsage: ([^\n]*)", text, re.M):
        assert usage.startswith(path + " "), f"{path}: usage line reads {usage!r}"
    assert text.count("Usage: ") == len(_commands(cli, "ledgerdr"))


def test_cli_reference_lists_each_commands_exit_codes():
    from ledgerdr.cli.exits import COMMAND_EXITS

    text = (ROOT / "docs" / "cli.md").read_text()
    assert sorted(COMMAND_EXITS) == sorted(path.split(" ", 1)[1] for path, _ in _commands(cli, "ledgerdr"))
    for command in COMMAND_EXITS:
        assert f"| `ledgerdr {command}` |" in text
