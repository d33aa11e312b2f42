"""Under a command's --json, an error is one JSON object on stderr (message, hint, kind, exit code);
without it, the `error: …` line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.flows import backed_up_ledger

LEDGERDR = str(Path(sys.executable).with_name("ledgerdr"))


def _restore(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([LEDGERDR, "restore", "--from", str(tmp_path / "primary"), "--to",
                           f"embedded:{tmp_path / 'r.db'}", "--until-block", "999", *extra], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_errors_under_json_are_json(tmp_path):
    backed_up_ledger(tmp_path, minutes=2, per_minute=3)
    as_json = _restore(tmp_path, "--json")
    assert as_json.returncode == 2 and as_json.stdout == ""
    error = json.loads(as_json.stderr)
    assert error["kind"] == "ConfigError" and error["exit_code"] == 2
    assert error["error"].startswith("--until-block 999 is past the newest block") and "ledgerdr info" in error["hint"]
    plain = _restore(tmp_path)
    assert plain.returncode == 2 and plain.stderr.startswith("error: --until-block 999")


def test_metrics_textfile_that_cannot_be_written_is_a_storage_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = subprocess.run([LEDGERDR, "metrics", "--textfile", str(tmp_path / "a-file" / "x.prom")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and f"{tmp_path / 'a-file' / 'x.prom'}" in done.stderr, done.stderr
