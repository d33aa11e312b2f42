"""Fixtures shared by several test modules: a private PostgreSQL server (tests/support/pg_server.py)."""

from __future__ import annotations

import pytest

from support.pg_server import PostgresServer


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster per test process. Fails (never skips) when PostgreSQL is missing."""
    with PostgresServer.running() as server:
        yield server


@pytest.fixture
def pg_dsn(postgres_server):
    """A fresh empty database, as a libpq keyword DSN."""
    with postgres_server.fresh_database() as dsn:
        yield dsn


@pytest.fixture
def pg_url(postgres_server):
    """A fresh empty database, as the `postgresql://` URI the CLI takes."""
    with postgres_server.fresh_database(uri=True) as url:
        yield url


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path, monkeypatch):
    """The flows' commands record their last run (ledgerdr/runs.py) under $LEDGERDR_RUNS_DIR: keep it in the
    test's own folder, never in the checkout (subprocesses inherit it)."""
    monkeypatch.setenv("LEDGERDR_RUNS_DIR", str(tmp_path / ".ledgerdr-runs"))
