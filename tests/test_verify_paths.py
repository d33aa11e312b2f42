"""`ledgerdr verify` given something that is not a set of exports (issue 16 item 15): a missing path or an
empty folder is a storage error (3), a plain file or the file system's root a usage error (2), never
"verification failed" (4); and nothing is written there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LEDGERDR = Path(sys.executable).with_name("ledgerdr")


def _made(folder: Path, what: str) -> Path:
    if what == "root":
        return Path("/")
    path = folder / what
    if what == "empty":
        path.mkdir()
    elif what == "f.ion":
        path.write_text("x")
    return path


@pytest.mark.parametrize("what,code,says", [
    ("missing", 3, "the path does not exist or the folder is empty"),
    ("empty", 3, "the path does not exist or the folder is empty"),
    ("f.ion", 2, "is a file, not a directory"),
    ("root", 2, "root of the file system"),
])
def test_verify_of_nothing_is_not_a_verification_failure(tmp_path, what, code, says):
    target = _made(tmp_path, what)
    done = subprocess.run([LEDGERDR, "verify", str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    assert says in done.stderr
    assert not (tmp_path / "missing").exists()
