"""`ledgerdr serve` in a subprocess on 127.0.0.1, and the real pyqldb driver in its own venv.

`ServeProcess` starts the server on a free port, waits for its "listening on" line, and stops it on
exit (SIGTERM, or SIGKILL for crash tests). `run_pyqldb` runs tests/support/pyqldb_client.py with the venv
that `make` builds for pyqldb (.venv-pyqldb), redirected to the server only by botocore's endpoint
environment variables, exactly as an existing application would be.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the repository
PYQLDB_PYTHON = ROOT / ".venv-pyqldb" / "bin" / "python"
CLIENT = Path(__file__).resolve().parent / "pyqldb_client.py"
KEY_ID, SECRET = "AKIDSERVETEST", "serve-test-secret"
REGION = "us-east-1"


class ServeProcess:
    def __init__(self, data: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data, self.extra, self.env = data, extra, env or {}
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ServeProcess:
        command = [str(Path(sys.executable).parent / "ledgerdr"), "serve", "--data", str(self.data),
                   "--port", "0", "--access-key", f"{KEY_ID}:{SECRET}", *self.extra]
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        self.log = tempfile.NamedTemporaryFile(prefix="serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, **self.env})
        line = self._first_line(timeout=60)  # "" if the server exits (or stays silent) instead
        if "listening on" not in line:
            raise RuntimeError(f"serve did not start: {line!r} {self.stop()}")
        self.url = line.split("listening on ")[1].split()[0]
        return self

    def _first_line(self, timeout: float) -> str:
        """The server's first line of output, waiting at most `timeout` seconds: a server that hangs before
        it listens must fail the test, not stall the run."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> str:
        """SIGTERM and wait; returns what the server wrote to stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()
        path = Path(self.log.name)
        text = path.read_text() if path.exists() else ""
        path.unlink(missing_ok=True)
        return text

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def client_env(url: str, **extra: str) -> dict[str, str]:
    """What an application's environment needs to reach `serve` instead of AWS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_QLDB=url, AWS_ENDPOINT_URL_QLDB_SESSION=url, AWS_ACCESS_KEY_ID=KEY_ID,
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION=REGION, **extra)
    return env


def run_pyqldb(url: str, scenario: str, *args: str, timeout: float = 120, **env: str) -> Any:
    """Run one scenario of pyqldb_client.py under the real pyqldb; returns the JSON it prints."""
    done = subprocess.run([str(PYQLDB_PYTHON), str(CLIENT), scenario, *args], env=client_env(url, **env),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"pyqldb scenario {scenario} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_pyqldb(url: str, scenario: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(PYQLDB_PYTHON), str(CLIENT), scenario, *args], env=client_env(url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
