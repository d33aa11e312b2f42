"""Exit codes as promised (issue 16 items 15 and "Done when"): the per-command table in
`ledgerdr.cli.exits` covers every literal `sys.exit` of each command, and a reader that stops reading
(`ledgerdr status | head`) ends the command quietly."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledgerdr.cli import cli
from ledgerdr.cli.docs import _commands
from ledgerdr.cli.exits import EXIT_BROKEN_PIPE, exits_of
from ledgerdr.errors import EXIT_CODES

LEDGERDR = Path(sys.executable).with_name("ledgerdr")


def _literal_exits(function) -> set[int]:
    """Every integer constant inside the arguments of `sys.exit(...)` calls in `function`'s source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    codes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "sys.exit":
            codes |= {c.value for arg in node.args for c in ast.walk(arg)
                      if isinstance(c, ast.Constant) and type(c.value) is int}
    return codes


@pytest.mark.parametrize("path,command", _commands(cli, "ledgerdr"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_exit_a_command_codes_is_in_its_row(path, command):
    declared = exits_of(path.split(" ", 1)[1])
    if command.callback is not None:
        assert _literal_exits(command.callback) <= set(declared), f"{path} exits with a code its row lacks"
    assert {0, 1, 2} <= set(declared)
    assert set(declared) - {130, EXIT_BROKEN_PIPE} <= set(EXIT_CODES), "a code outside the one table of exit codes"


def _ledger_with_rows(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    subprocess.run([LEDGERDR, "ledger", "create", str(path)], check=True, capture_output=True)
    subprocess.run([LEDGERDR, "ledger", "load", str(path), "--transactions", "200"], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("args", [["ledger", "exec", "{db}", "SELECT * FROM Person"], ["status"], ["--help"]],
                         ids=["ledger exec", "status", "help"])
def test_a_closed_stdout_ends_the_command_quietly(tmp_path, args):
    """`ledgerdr … | head`: the reader is gone before the command writes; no traceback, no "error:" line,
    and never exit 0 (which a `--max-rpo` check cut short would otherwise report)."""
    db = _ledger_with_rows(tmp_path)
    subprocess.run([LEDGERDR, "init"], cwd=tmp_path, check=True, capture_output=True)
    proc = subprocess.Popen([LEDGERDR, *(a.format(db=db) for a in args)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as `head` does once it has its lines
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert stderr == "", stderr
    assert code in (EXIT_BROKEN_PIPE, 1 if args == ["--help"] else EXIT_BROKEN_PIPE), code
