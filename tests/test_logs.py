"""`--log-format json` / `--log-level`: what `backup` says while it runs, as JSON lines or filtered by level;
without the options, the plain lines as before."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from support.flows import two_region_config

LEDGERDR = str(Path(sys.executable).with_name("ledgerdr"))


def _backup(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([LEDGERDR, *options, "backup", "--config", str(tmp_path / "ledgerdr.toml")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_backup_every_logs_one_json_object_per_line(tmp_path):
    two_region_config(tmp_path)
    backup = subprocess.Popen([LEDGERDR, "--log-format", "json", "backup", "--config", str(tmp_path / "ledgerdr.toml"),
                               "--every", "1s"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline, lines = time.time() + 60, []
        while time.time() < deadline and not any(line.get("event") == "recorded" for line in lines):
            lines.append(json.loads(backup.stderr.readline()))  # every line is one JSON object
    finally:
        backup.terminate()
        backup.wait(timeout=30)
    recorded = next(line for line in lines if line.get("event") == "recorded")
    assert recorded["level"] == "info" and recorded["logger"] == "ledgerdr.backup" and recorded["time"]
    assert recorded["message"] == f"recorded window {recorded['window']}"


def test_log_level_filters_and_no_option_keeps_plain_lines(tmp_path):
    two_region_config(tmp_path)
    quiet = _backup(tmp_path, "--log-level", "warning")
    assert quiet.returncode == 0, quiet.stderr
    assert "recorded window" not in quiet.stderr and "recorded " in quiet.stdout  # the report itself stays
    time.sleep(1.1)  # a new (empty) window is then due: `--once` records it
    plain = _backup(tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "recorded window " in plain.stderr and not plain.stderr.lstrip().startswith("{")
