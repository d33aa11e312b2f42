"""The C accelerators: CI must really build them, and LEDGERDR_PURE_PYTHON must really turn them off.

Their results are checked against the pure-Python reference in test_ionhash_native.py and
test_iontext_native.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI promises a C compiler")
def test_ci_builds_every_accelerator() -> None:
    # setup.py marks the extensions optional so an install never fails for want of a compiler;
    # on CI that would silently measure and test the Python paths only.
    assert all(_importable(f"ledgerdr._{name}") for name in ("ionhash", "iontext", "journal", "statedigest", "pgcopy", "httpfast"))


def _summary_with(env_value: str | None) -> dict[str, bool]:
    env = dict(os.environ)
    env.pop("LEDGERDR_PURE_PYTHON", None)
    if env_value is not None:
        env["LEDGERDR_PURE_PYTHON"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", "import json, ledgerdr.native as n; print(json.dumps(n.summary()))"],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def test_pure_python_switch_turns_every_accelerator_off() -> None:
    assert _summary_with("1") == {"ionhash": False, "iontext": False, "journal": False, "statedigest": False, "pgcopy": False,
                                            "httpfast": False}


def test_accelerators_load_when_built() -> None:
    built = {name: _importable(f"ledgerdr._{name}") for name in ("ionhash", "iontext", "journal", "statedigest", "pgcopy", "httpfast")}
    assert _summary_with(None) == built
    assert _summary_with("0") == built


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_version_says_which_accelerators_run() -> None:
    env = dict(os.environ, LEDGERDR_PURE_PYTHON="1")
    out = subprocess.run(
        [str(Path(sys.executable).with_name("ledgerdr")), "--version"], env=env, capture_output=True, text=True,
        check=True,
    )
    assert "C accelerators: none, pure Python" in out.stdout
