"""`--log-format json` / `--log-level`: what `backup --every`, `replicate --follow`, `standby` and `serve` say
while they run, every stderr line one JSON object, or filtered by level; without the options, the plain lines
as before."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

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


class _Running:
    """A long-running mode started with `--log-format json`: its stderr read line by line, each line parsed
    as JSON (a line that is not one fails the test), until it is stopped."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen([LEDGERDR, "--log-format", "json", "--log-level", "info", *args], cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        # a thread reads stderr, so that waiting for a line that never comes times out instead of blocking
        self._read: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        for text in self.proc.stderr:
            self._read.put(text)
        self._read.put(None)

    def until(self, found, timeout: float = 60) -> dict:
        """Read lines until one satisfies `found`; that line."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = self._read.get(timeout=left)
            except queue.Empty:
                break
            if text is None:
                break
            self.lines.append(json.loads(text))
            if found(self.lines[-1]):
                return self.lines[-1]
        raise AssertionError(f"not logged within {timeout} s: {self.lines}")

    def stop(self) -> list[dict]:
        """SIGTERM; every line it logged, the shutdown's included (each one JSON object)."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        while (text := self._read.get_nowait() if not self._read.empty() else None) is not None:
            self.lines.append(json.loads(text))
        return self.lines


def _well_formed(line: dict) -> None:
    assert {"time", "level", "logger", "message"} <= set(line), line
    assert line["level"] in ("debug", "info", "warning", "error") and line["time"].endswith("+00:00")


def test_replicate_follow_and_standby_log_their_rounds_as_json(tmp_path):
    config = two_region_config(tmp_path)
    assert _backup(tmp_path).returncode == 0
    follower = _Running(tmp_path, "replicate", "--config", str(config), "--follow", "--every", "1s")
    try:
        rounds = follower.until(lambda line: line.get("event") == "round")
    finally:
        lines = follower.stop()
    assert rounds["logger"] == "ledgerdr.replicate" and rounds["repository"] == "secondary"
    assert rounds["block"] >= 0 and rounds["problems"] == 0
    standby = _Running(tmp_path, "standby", "--from", str(tmp_path / "secondary"), "--to",
                       f"embedded:{tmp_path / 'standby.db'}", "--every", "1s")
    try:
        position = standby.until(lambda line: line.get("event") == "position")
    finally:
        lines += standby.stop()
    applied = [line for line in lines if line.get("event") == "applied"]
    assert applied and all(line["window"] and line["repository"] == str(tmp_path / "secondary") for line in applied)
    assert position["block"] == rounds["block"] and position["lag_blocks"] == 0
    for line in lines:
        _well_formed(line)


@pytest.mark.parametrize("stack", ["threads", "httptools"])
def test_serve_logs_its_records_and_uvicorns_through_the_same_handler(tmp_path, stack):
    server = _Running(tmp_path, "serve", "--data", str(tmp_path / "ledgers"), "--port", "0", "--access-key",
                      "AKIDLOGS:secret", "--http", stack)
    try:
        listening = server.until(lambda line: line.get("event") == "listening")
        if stack != "threads":
            server.until(lambda line: line["logger"].startswith("uvicorn"))  # its start-up, as JSON
        with contextlib.suppress(urllib.error.HTTPError):  # unsigned: refused, and no access log line
            urllib.request.urlopen(urllib.request.Request(listening["url"], data=b"{}"), timeout=30)
    finally:
        lines = server.stop()
    for line in lines:
        _well_formed(line)
    assert listening["logger"] == "ledgerdr.serve"
    if stack == "threads":
        assert any(line["logger"] == "ledgerdr.serve" and line.get("event") == "stopped" for line in lines), lines
    else:  # uvicorn logs its shutdown, then raises the signal it caught again (the process ends on it)
        assert any(line["logger"] == "uvicorn.error" and "shutdown" in line["message"].lower() for line in lines)
    assert not any(line["logger"] == "uvicorn.access" for line in lines)


def test_an_error_under_json_logs_is_one_json_record(tmp_path):
    failed = subprocess.run([LEDGERDR, "--log-format", "json", "standby", "--from", str(tmp_path / "nothing"),
                             "--to", f"embedded:{tmp_path / 's.db'}", "--once", "--every", "nonsense"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    (line,) = [json.loads(text) for text in failed.stderr.splitlines()]
    _well_formed(line)
    assert line["level"] == "error" and line["exit_code"] == 2 and line["kind"] == "ConfigError"
