"""The repository stands alone: a clone with nothing beside it must pass `make test`; and the tests stand
alone: a test module imports shared helpers from tests/support/, never another test module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What reaching outside the repository looks like: climbing past the repository root, or naming the
# sibling folder that developers happen to have beside their clone.
# (Built from pieces so that a plain grep for those patterns does not flag this test itself.)
_SIBLING = "sha" + "red"
_OUTSIDE = re.compile("|".join([r"parents" + r"\[[2-9]\]", r"\.\./" + _SIBLING, r'/ "' + _SIBLING + '"',
                                "/" + _SIBLING + "/samples"]))


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_no_test_or_module_reads_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _python_files("tests", "src", "bench")
        if path.name != Path(__file__).name
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_sample_data_the_tests_use_is_in_the_repository_with_its_provenance() -> None:
    data = ROOT / "tests" / "data"
    provenance = (data / "README.md").read_text(encoding="utf-8")
    samples = sorted(p.name for p in data.iterdir() if p.name != "README.md")
    assert samples, "tests/data holds no samples"
    for name in samples:
        assert f"`{name}`" in provenance, f"{name} has no provenance line in tests/data/README.md"


def _imported_modules(tree: ast.AST) -> set[str]:
    """The top-level module of every import in `tree`, wherever it sits (in a function too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_test_module_imports_another_test_module() -> None:
    """Helpers shared by several test modules live in tests/support/; a module at the top of tests/ is a
    test module (or conftest.py), and importing one runs its tests' module-level code in another's."""
    tests = ROOT / "tests"
    top_level = {p.stem for p in tests.glob("*.py")}
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _python_files("tests", "bench")
        for name in sorted(_imported_modules(ast.parse(path.read_text(encoding="utf-8"))) & top_level)
    ]
    assert offenders == []
    assert (tests / "support" / "__init__.py").exists()
