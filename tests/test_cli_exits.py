"""Exit codes as promised (issue 16 items 15 and "Done when", issue 17 item 5): every `sys.exit` in the
command line and every code a Lambda handler returns is named by `ExitCode` (no literal numbers), the
per-command table in `ledgerdr.cli.exits` covers every `sys.exit` of each command, and a reader that stops
reading (`ledgerdr status | head`) ends the command quietly."""

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
from ledgerdr.cli.exits import exits_of
from ledgerdr.errors import EXIT_CODES, ExitCode

LEDGERDR = Path(sys.executable).with_name("ledgerdr")


SRC = Path(__file__).resolve().parents[1] / "src" / "ledgerdr"


def _exit_arguments(tree: ast.AST) -> list[ast.expr]:
    return [arg for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == "sys.exit"
            for arg in node.args]


def _literal_exits(function) -> set[ExitCode]:
    """Every `ExitCode.NAME` inside the arguments of `sys.exit(...)` calls in `function`'s source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {ExitCode[node.attr] for arg in _exit_arguments(tree) for node in ast.walk(arg)
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "ExitCode"}


def _number_literals(within: list[ast.expr]) -> list[str]:
    return [ast.unparse(expr) for expr in within for node in ast.walk(expr)
            if isinstance(node, ast.Constant) and type(node.value) is int]


@pytest.mark.parametrize("path", sorted(SRC.glob("cli/*.py")) + sorted(SRC.glob("aws/*.py")), ids=lambda p: p.name)
def test_exit_codes_are_named_never_numbered(path):
    """`sys.exit(4)` or `{"exit_code": 4}` would bypass the one table: every code is an `ExitCode` member."""
    tree = ast.parse(path.read_text())
    results = [node.values[i] for node in ast.walk(tree) if isinstance(node, ast.Dict)
               for i, key in enumerate(node.keys) if isinstance(key, ast.Constant) and key.value == "exit_code"]
    returns = [node.value for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and
               node.name == "exit_code" for node in ast.walk(node) if isinstance(node, ast.Return) and node.value]
    assert _number_literals(_exit_arguments(tree) + results + returns) == []


def test_each_error_class_carries_its_exit_code():
    from ledgerdr import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.LedgerDRError)]
    assert all(isinstance(c.exit_code, ExitCode) for c in classes)
    assert errors.QueueError.exit_code == ExitCode.STORAGE and errors.RestoreError.exit_code == ExitCode.RESTORE
    assert [int(code) for code in EXIT_CODES] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 130, 141]  # a contract: never renumber


@pytest.mark.parametrize("path,command", _commands(cli, "ledgerdr"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_exit_a_command_codes_is_in_its_row(path, command):
    declared = exits_of(path.split(" ", 1)[1])
    if command.callback is not None:
        assert _literal_exits(command.callback) <= set(declared), f"{path} exits with a code its row lacks"
    assert {0, 1, 2} <= set(declared)
    assert set(declared) <= set(EXIT_CODES), "a code outside the one table of exit codes"


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
    assert code in (ExitCode.BROKEN_PIPE, 1 if args == ["--help"] else ExitCode.BROKEN_PIPE), code
