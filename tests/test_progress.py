"""Progress bars: on a terminal (a pseudo-terminal here) `verify` shows its bar with count, rate and ETA;
through a pipe, nothing."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from support.flows import backed_up_ledger

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
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    code, drawn = _on_a_terminal([LEDGERDR, "verify", str(tmp_path / "primary")], tmp_path)
    assert code == 0, drawn
    assert "verifying objects" in drawn and "/s" in drawn  # the bar, its count and its rate
    piped = subprocess.run([LEDGERDR, "verify", str(tmp_path / "primary")], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert piped.returncode == 0 and "verifying objects" not in piped.stderr


def test_ledger_load_draws_its_progress_on_a_terminal(tmp_path):
    subprocess.run([LEDGERDR, "ledger", "create", str(tmp_path / "l.db")], check=True, capture_output=True)
    code, drawn = _on_a_terminal([LEDGERDR, "ledger", "load", str(tmp_path / "l.db"), "--transactions", "300"],
                                 tmp_path)
    assert code == 0, drawn
    assert "loading transactions" in drawn and "/300" in drawn
