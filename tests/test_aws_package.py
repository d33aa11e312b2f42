"""`ledgerdr aws package`: the zip imports and runs a handler in a clean virtual environment (no
site-packages, only the zip's contents on the path, as Lambda puts the zip's root there).

The zip is built for this machine's Python and architecture (so that its compiled wheels load here),
through the same code path as for Lambda's: pip with `--platform manylinux2014_x86_64 --only-binary=:all:`.
It needs pip to reach the package index (or its cache) and takes about half a minute: marked slow.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ledgerdr.aws.package import build_zip, dependencies
from ledgerdr.errors import ConfigError
from test_backup_s3 import ledger_with_history, recent_base

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


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64", reason="builds the x86_64 variant, loaded on this machine")
def test_the_zip_runs_a_handler_in_a_clean_venv(tmp_path):
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    report = build_zip(tmp_path / "ledgerdr-lambda.zip", python_version=version, architecture="x86_64")
    assert not report.native  # pure-Python ledgerdr by default
    names = zipfile.ZipFile(report.path).namelist()
    assert "ledgerdr/aws/handlers.py" in names and not any(n.endswith(".so") and n.startswith("ledgerdr/")
                                                            for n in names)
    assert any(n.startswith("botocore/data/qldb/") for n in names)  # QLDB's models, which botocore dropped
    unpacked = tmp_path / "task"
    zipfile.ZipFile(report.path).extractall(unpacked)

    clean = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(clean)], check=True)
    base = recent_base()
    ledger_with_history(tmp_path / "ledger.db", base, minutes=2)
    config = (f'[source]\nkind = "embedded"\npath = "{tmp_path / "ledger.db"}"\n[backup]\ninterval = "1m"\n'
              f'[repositories.primary]\nurl = "{tmp_path / "repo"}"\n')
    done = subprocess.run([str(clean / "bin" / "python"), "-I", "-c", _RUN, str(unpacked)], capture_output=True,
                          text=True, env={"LEDGERDR_CONFIG_TOML": config, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["ok"] and len(result["recorded"]) >= 2
    assert (Path(tmp_path / "repo") / "_ledgerdr" / "windows").is_dir()
