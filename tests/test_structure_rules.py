"""Flows are written against the declared interfaces (issue 17): they read a capability as data and never
probe a target, store or queue with `hasattr`/`getattr`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ledgerdr"

# What a probed backend looks like in the code: a variable or attribute named after one, or a store unwrapped
# from its decorators. `self` is not matched: a backend may read its own attributes.
_BACKEND = re.compile(r"\b(target|tgt|store|queue|dst|dest|destination|location|source|src)\b|\bunwrap\(")


def probes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, source) of every `hasattr(x, ...)` / `getattr(x, ...)` whose `x` names a backend."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr") and node.args
                and _BACKEND.search(ast.unparse(node.args[0]))):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_rule_finds_a_probe() -> None:
    tree = ast.parse("def f(target, location):\n"
                     "    if hasattr(target, 'finalize'): pass\n"
                     "    return getattr(unwrap(location.store), 'bucket', None), getattr(self, 'x', 1)\n")
    assert [line for line, _ in probes(tree)] == [2, 3]


def test_no_flow_probes_a_target_store_or_queue() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in probes(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == [], "declare the method or capability on the interface instead:\n" + "\n".join(offenders)
