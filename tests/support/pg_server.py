"""A private PostgreSQL cluster for the test session: initdb into a temporary directory, listen only on
a unix socket inside it, fsync off, stop and delete it at the end.

The binaries come from PATH or /usr/lib/postgresql/<version>/bin (`scripts/ensure-test-tools.sh`
installs them). When they are missing, `PostgresServer.start` raises `PostgresUnavailable` with what to
do, so a fixture built on it FAILS rather than skips (STYLE §5: never silently skipped). initdb refuses
to run as root, so as root the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

PORT = 5432  # only names the socket file: the socket sits in a private directory, no TCP listener
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
}


class PostgresUnavailable(RuntimeError):
    pass


def find_binaries() -> Path:
    """The directory holding initdb and pg_ctl. Raises PostgresUnavailable when there is none."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: "
        "run scripts/ensure-test-tools.sh (or install the 'postgresql' package) to run these tests"
    )


class PostgresServer:
    """A running private cluster. Use `PostgresServer.running()` as a context manager."""

    def __init__(self, bindir: Path, root: Path, run_as: str | None, settings: dict[str, str] | None = None) -> None:
        self.bindir, self.root, self.run_as = bindir, root, run_as
        self.data = root / "data"
        self.socket_dir = root
        self.settings = {**SETTINGS, **(settings or {})}

    @classmethod
    @contextmanager
    def running(cls, settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
        """Start a cluster; `settings` override `SETTINGS` (the benchmark turns fsync back on)."""
        bindir = find_binaries()
        run_as = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="ledgerdr-pg-"))
        server = cls(bindir, root, run_as, settings)
        try:
            if run_as:
                shutil.chown(root, user=run_as)
            server._initdb()
            server._start()
            yield server
        finally:
            server._stop()
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(command)} failed ({result.returncode}):\n"
                                      f"{result.stdout}{result.stderr}{tail}")

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def _start(self) -> None:
        options = " ".join([f"-k {self.socket_dir}", f"-p {PORT}", *(f"-c {k}={v}" for k, v in self.settings.items())])
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-t", "60", "start")

    def _stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except PostgresUnavailable:
                pass  # the directory is removed next; a stop failure must not hide the test result

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={PORT} user=postgres dbname={dbname}"

    def uri(self, dbname: str = "postgres") -> str:
        """The same connection as a `postgresql://` URI (what `ledgerdr restore --to` takes)."""
        return f"postgresql://postgres@/{quote(dbname)}?host={quote(str(self.socket_dir))}&port={PORT}"

    @contextmanager
    def fresh_database(self, *, uri: bool = False) -> Iterator[str]:
        """A new empty database for one test; yields its DSN (or URI) and drops it afterwards."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.uri(name) if uri else self.dsn(name)
        finally:
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
