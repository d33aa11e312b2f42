"""Progress bars: on a terminal (a pseudo-terminal here) `verify`, `ledger load`, a standby's catch-up,
`compact` and `replicate` show their bar with count, rate and ETA; through a pipe, or under
`--log-format json`, nothing."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from ledgerdr.compact import compact
from ledgerdr.repository import read_windows
from ledgerdr.restore.plan import units_of_window
from ledgerdr.restore.standby import follow_once
from ledgerdr.stores import open_location
from ledgerdr.targets import open_target
from support.flows import back_up_one_more_minute, backed_up_ledger, two_region_config

LEDGERDR = str(Path(sys.executable).with_name("ledgerdr"))


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; its exit code and everything it drew there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=follower,
                            env={**os.environ, "COLUMNS": "160", "TERM": "xterm"})
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process ended
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return proc.wait(timeout=120), drawn.decode(errors="replace")


def test_verify_draws_a_progress_bar_with_rate_on_a_terminal_only(tmp_path):
    backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    code, drawn = _on_a_terminal([LEDGERDR, "verify", str(tmp_path / "primary")], tmp_path)
    assert code == 0, drawn
    assert "verifying objects" in drawn and "/s" in drawn  # the bar, its count and its rate
    assert _drew_a_bar(drawn, "verifying objects", 3), drawn  # the data objects: one per minute
    code, drawn = _on_a_terminal([LEDGERDR, "restore", "--from", str(tmp_path / "primary"), "--to",
                                  f"embedded:{tmp_path / 'restored.db'}", "--workers", "0"], tmp_path)
    assert code == 0, drawn
    assert _drew_a_bar(drawn, "restoring units", 3), drawn  # one unit per minute's data object
    piped = subprocess.run([LEDGERDR, "verify", str(tmp_path / "primary")], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert piped.returncode == 0 and "verifying objects" not in piped.stderr


def test_ledger_load_draws_its_progress_on_a_terminal(tmp_path):
    subprocess.run([LEDGERDR, "ledger", "create", str(tmp_path / "l.db")], check=True, capture_output=True)
    code, drawn = _on_a_terminal([LEDGERDR, "ledger", "load", str(tmp_path / "l.db"), "--transactions", "300"],
                                 tmp_path)
    assert code == 0, drawn
    assert "loading transactions" in drawn and "/300" in drawn


def _drew_a_bar(drawn: str, description: str, total: int) -> bool:
    """The bar's description and, on one line, its count out of the known total, the time elapsed and a
    time remaining (h:mm:ss; it reads -:--:-- while the total is unknown)."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    return description in plain and re.search(rf"\d+/{total}\b[^\r\n]*?\d+:\d\d:\d\d\s+\d+:\d\d:\d\d", plain) is not None


def _piped(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_standby_catch_up_draws_its_progress_on_a_terminal_only(tmp_path):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    blocks = max(int(key.rsplit("-", 1)[1].split(".")[0]) for key in (i.key for i in location.store.list(""))
                 if key.endswith(".ion")) + 1
    standby = ["standby", "--from", str(tmp_path / "primary"), "--once"]
    code, drawn = _on_a_terminal([LEDGERDR, *standby, "--to", f"embedded:{tmp_path / 'a.db'}"], tmp_path)
    assert code == 0, drawn
    assert _drew_a_bar(drawn, "standby catching up (blocks)", blocks), drawn
    piped = _piped([LEDGERDR, *standby, "--to", f"embedded:{tmp_path / 'b.db'}"], tmp_path)
    assert piped.returncode == 0 and "standby at block" in piped.stdout and "catching up" not in piped.stderr
    code, drawn = _on_a_terminal([LEDGERDR, "--log-format", "json", *standby, "--to",
                                  f"embedded:{tmp_path / 'c.db'}"], tmp_path)
    assert code == 0 and "catching up" not in drawn, drawn  # stderr is the log pipeline's there, terminal or not


def test_compact_and_replicate_draw_their_progress_on_a_terminal_only(tmp_path):
    config = two_region_config(tmp_path)
    assert _piped([LEDGERDR, "backup", "--config", str(config)], tmp_path).returncode == 0
    windows = read_windows(open_location(str(tmp_path / "primary"))).windows
    code, drawn = _on_a_terminal([LEDGERDR, "replicate", "--config", str(config)], tmp_path)
    assert code == 0, drawn
    copies = sum(len(w.objects) + 1 for w in windows)  # every object a record names, and the record
    assert _drew_a_bar(drawn, "replicating to secondary (objects)", copies), drawn
    code, drawn = _on_a_terminal([LEDGERDR, "compact", "--config", str(config)], tmp_path)
    assert code == 0, drawn
    assert _drew_a_bar(drawn, "compacting: objects read", sum(len(units_of_window(w)) for w in windows)), drawn
    piped = _piped([LEDGERDR, "compact", "--config", str(config), "--repository", "secondary"], tmp_path)
    assert piped.returncode == 0 and "snapshot of blocks" in piped.stdout and piped.stderr == ""


def test_a_standby_counts_its_catch_up_from_a_snapshot_to_the_newest_block(tmp_path):
    ledger_path, location = backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    assert compact(location).manifest_key
    back_up_one_more_minute(ledger_path, location, 3)  # a window after the snapshot
    target = open_target(f"embedded:{tmp_path / 'standby.db'}")
    told: list[tuple[int, int]] = []
    try:
        report = follow_once(location, target, on_progress=lambda done, total: told.append((done, total)))
    finally:
        target.close()
    assert report.snapshot_last_seq is not None and report.windows_applied
    total = report.position_seq + 1  # every block: the snapshot's share, then the window's
    assert told[0] == (0, total) and told[-1] == (total, total)
    assert [done for done, _ in told] == sorted(done for done, _ in told) and len(told) >= 3
