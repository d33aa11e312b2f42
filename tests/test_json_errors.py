"""Under a command's --json, an error is one JSON object on stderr (message, hint, kind, exit code);
without it, the `error: …` line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from support.flows import backed_up_ledger, ctrl_c_restore, two_region_config

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


def _one_json_object(stderr: str) -> dict:
    """stderr under --json: exactly one JSON object (no usage text, no `error:` line beside it)."""
    [line] = stderr.strip().splitlines()
    return json.loads(line)


def test_usage_errors_under_json_are_json(tmp_path):
    """click's own errors (a missing or malformed option) printed its usage text even under --json."""
    missing = subprocess.run([LEDGERDR, "restore", "--to", f"embedded:{tmp_path / 'r.db'}", "--json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stdout == ""
    error = _one_json_object(missing.stderr)
    assert error["kind"] == "MissingParameter" and error["exit_code"] == 2 and "'--from'" in error["error"]
    malformed = subprocess.run([LEDGERDR, "ledger", "export", "--json", "--format", "xml", "a.db", str(tmp_path)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert malformed.returncode == 2 and _one_json_object(malformed.stderr)["kind"] == "BadParameter"
    plain = subprocess.run([LEDGERDR, "restore", "--to", "embedded:r.db"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert plain.returncode == 2 and "Usage: ledgerdr restore" in plain.stderr  # without --json: click's text


def test_status_failures_under_json_are_json(tmp_path):
    """`status --json` exiting 8 (or 4) wrote its reason as a text line beside the JSON report."""
    config = two_region_config(tmp_path)
    done = subprocess.run([LEDGERDR, "status", "--config", str(config), "--json", "--max-rpo", "1h"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 8, done.stderr
    assert json.loads(done.stdout)["repositories"]  # the report, on stdout
    error = _one_json_object(done.stderr)
    assert error == {"error": "RPO past 1h in: primary, secondary", "hint": None, "kind": "RpoExceeded",
                     "exit_code": 8, "repositories": ["primary", "secondary"]}


def test_ctrl_c_under_json_is_json(tmp_path):
    backed_up_ledger(tmp_path, minutes=2, per_minute=3)
    process = subprocess.Popen([LEDGERDR, "standby", "--from", str(tmp_path / "primary"), "--to",
                                f"embedded:{tmp_path / 's.db'}", "--every", "1s", "--json"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_round = process.stdout.readline()
        assert json.loads(first_round)["position_seq"] is not None
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert _one_json_object(err)["kind"] == "Interrupted"


def test_an_interrupted_restore_under_json_says_how_to_resume_in_json(tmp_path):
    _, primary = backed_up_ledger(tmp_path / "src", minutes=6, per_minute=60)
    state = tmp_path / "state"
    code, out, err = ctrl_c_restore([LEDGERDR, "restore", "--from", primary.store.url, "--to",
                                     f"embedded:{tmp_path / 't.db'}", "--workers", "2", "--state-dir", str(state),
                                     "--json"], state)
    assert code == 130, (out, err)
    error = _one_json_object(err)
    assert error["kind"] == "Interrupted" and error["exit_code"] == 130 and out == ""
    assert f"--resume {error['restore_id']}" in error["hint"] and f"--state-dir {state}" in error["hint"]
