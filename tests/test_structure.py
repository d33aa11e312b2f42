"""The repository stands alone: a clone with nothing beside it must pass `make test`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What reaching outside the repository looks like: climbing past the repository root, or naming the
# sibling folder that developers happen to have beside their clone.
_OUTSIDE = re.compile(r"parents\[[2-9]\]|\.\./shared|/ \"shared\"|/shared/samples")


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
