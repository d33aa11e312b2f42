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


# The flows, and the backend modules they must not import (they open backends through `open_store`,
# `open_location`, `open_queue`, `open_target`, and read capabilities from the interfaces).
FLOWS = ["backup.py", "replicate.py", "restore", "compact.py", "prune.py", "snapshots.py", "status.py", "drill.py"]
BACKENDS = {"ledgerdr.stores.file", "ledgerdr.stores.s3", "ledgerdr.queues.sqlite", "ledgerdr.queues.sqs",
            "ledgerdr.targets.embedded", "ledgerdr.targets.postgres", "ledgerdr.targets.postgres_state",
            "ledgerdr.targets.postgres_streams",
            "ledgerdr.sources.qldb"}

# Named exceptions, each a module whose job is one backend: the statement-replay baseline replays statements
# into the embedded ledger (that is what it measures), and the drill runs its own world, an embedded ledger
# with a live workload (`sources.embedded`, not listed above, is that ledger's source).
ALLOWED = {("ledgerdr.restore.replay", "ledgerdr.targets.embedded")}
# a backend class counts wherever it is imported from (packages re-export them: `from ..stores import FileStore`)
_BACKEND_OF = {"FileStore": "ledgerdr.stores.file", "S3Store": "ledgerdr.stores.s3",
               "SqliteQueue": "ledgerdr.queues.sqlite", "SqsQueue": "ledgerdr.queues.sqs",
               "EmbeddedTarget": "ledgerdr.targets.embedded", "PostgresTarget": "ledgerdr.targets.postgres",
               "QldbSource": "ledgerdr.sources.qldb"}


def _imports(path: Path) -> set[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = module.split(".")[: len(module.split(".")) - node.level] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.update({name, *(f"{name}.{alias.name}" for alias in node.names)})
            found.update(_BACKEND_OF[alias.name] for alias in node.names if alias.name in _BACKEND_OF)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_flow_imports_a_backend() -> None:
    offenders = []
    for entry in FLOWS:
        for path in sorted((PACKAGE / entry).rglob("*.py")) if (PACKAGE / entry).is_dir() else [PACKAGE / entry]:
            module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
            offenders += [f"{module} imports {b}" for b in sorted(_imports(path) & BACKENDS)
                          if (module, b) not in ALLOWED]
    assert offenders == []
