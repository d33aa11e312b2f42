"""`ledgerdr aws package`: the zip imports and runs a handler in a clean virtual environment (no
site-packages, only the zip's contents on the path, as Lambda puts the zip's root there).

The zip is built for this machine's Python and architecture (so that its compiled wheels load here),
through the same code path as for Lambda's: pip with `--platform manylinux2014_x86_64 --only-binary=:all:`.
It needs pip to reach the package index (or its cache) and takes about half a minute: marked slow.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ledgerdr.aws.package import build_zip, dependencies
from ledgerdr.errors import ConfigError
from support.backups import ledger_with_history, recent_base

_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ledgerdr.aws import handlers
import ledgerdr, amazon.ion, orjson
assert ledgerdr.__file__.startswith(sys.argv[1]), ledgerdr.__file__
print("RESULT " + json.dumps(handlers.backup({"ledgerdr": "backup"}, None)))
"""


def test_unknown_runtime_or_architecture_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="3.9"):
        build_zip(tmp_path / "x.zip", python_version="3.9")
    with pytest.raises(ConfigError, match="sparc"):
        build_zip(tmp_path / "x.zip", architecture="sparc")
    assert any(dep.startswith("amazon.ion") for dep in dependencies())


def _run_in_clean_venv(tmp_path: Path, unpacked: Path, code: str) -> dict:
    """Run `code` (which prints `RESULT <json>`) in a fresh venv with only `unpacked` on the path, as the
    backup handler's Lambda: an embedded ledger with history and a directory repository."""
    clean = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(clean)], check=True)
    ledger_with_history(tmp_path / "ledger.db", recent_base(), minutes=2)
    config = (f'[source]\nkind = "embedded"\npath = "{tmp_path / "ledger.db"}"\n[backup]\ninterval = "1m"\n'
              f'[repositories.primary]\nurl = "{tmp_path / "repo"}"\n')
    done = subprocess.run([str(clean / "bin" / "python"), "-I", "-c", code, str(unpacked)], capture_output=True,
                          text=True, env={"LEDGERDR_CONFIG_TOML": config, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def _local_runtime() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64", reason="builds the x86_64 variant, loaded on this machine")
def test_the_zip_runs_a_handler_in_a_clean_venv(tmp_path):
    report = build_zip(tmp_path / "ledgerdr-lambda.zip", python_version=_local_runtime(), architecture="x86_64")
    assert not report.native  # pure-Python ledgerdr by default
    names = zipfile.ZipFile(report.path).namelist()
    assert "ledgerdr/aws/handlers.py" in names and not any(n.endswith(".so") and n.startswith("ledgerdr/")
                                                            for n in names)
    assert any(n.startswith("botocore/data/qldb/") for n in names)  # QLDB's models, which botocore dropped
    unpacked = tmp_path / "task"
    zipfile.ZipFile(report.path).extractall(unpacked)
    result = _run_in_clean_venv(tmp_path, unpacked, _RUN)
    assert result["ok"] and len(result["recorded"]) >= 2
    assert (Path(tmp_path / "repo") / "_ledgerdr" / "windows").is_dir()


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64", reason="builds the x86_64 variant, loaded on this machine")
def test_a_ledgerdr_wheel_brings_the_c_accelerators(tmp_path):
    """The documented way to get the accelerators in: a ledgerdr wheel built for the runtime (here this
    machine's Python, built by `pip wheel`, so tagged linux_x86_64), passed with --ledgerdr-wheel."""
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # setuptools builds in the tree it is given: never in the repository's
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(root / name, source / name)
    shutil.copytree(root / "src", source / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("ledgerdr-*.whl")
    report = build_zip(tmp_path / "native.zip", python_version=_local_runtime(), ledgerdr_wheel=wheel)
    assert report.native
    unpacked = tmp_path / "task"
    zipfile.ZipFile(report.path).extractall(unpacked)
    code = _RUN.replace('print("RESULT "', 'from ledgerdr import native\nassert all(native.summary().values())\n'
                                          'print("RESULT "')
    assert _run_in_clean_venv(tmp_path, unpacked, code)["ok"]
