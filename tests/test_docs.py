"""The docs stay true: every command has help text, is in the README, and docs/cli.md is current."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from ledgerdr.cli import cli
from ledgerdr.cli.docs import _commands, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path,command", _commands(cli, "ledgerdr"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_and_is_in_the_readme(path, command):
    assert (command.help or "").strip(), f"{path} has no help text"
    top = path.split()[1]
    assert f"ledgerdr {top}" in (ROOT / "README.md").read_text(), f"{path} is missing from README.md"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help or param.is_flag and param.name in ("help",), f"{path} {param.opts} has no help"


def test_cli_reference_is_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    os.environ["COLUMNS"] = "100"
    assert (ROOT / "docs" / "cli.md").read_text() == render(), "run: python -m ledgerdr.cli.docs > docs/cli.md"


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
