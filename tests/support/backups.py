"""A ledger with minutes of history, a ledgerdr.toml, and the CLI run in-process: what the backup,
replication and QLDB-source tests build on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr.cli import cli
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload

MINUTES = 4  # one-minute windows of history in `ledger_with_history`


def recent_base(minutes_back: int = MINUTES + 2) -> datetime:
    """A whole minute `minutes_back` minutes before the real clock: history placed there is closed."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes_back)


def ledger_with_history(path: Path, base: datetime, *, minutes: int = MINUTES, per_minute: int = 4,
                        seed: int = 0) -> Path:
    """A ledger whose blocks fall in `minutes` one-minute windows from `base` (commits at :07)."""
    ledger = Ledger.create(path)
    for minute in range(minutes):
        with freeze_time(base + timedelta(minutes=minute, seconds=7)):
            run_workload(ledger, per_minute, seed=seed + minute)
    ledger.close()
    return path


def due_after(base: datetime, minutes: int = MINUTES) -> datetime:
    """The moment when exactly `minutes` one-minute windows from `base` are due (settle 5 s)."""
    return base + timedelta(minutes=minutes, seconds=6)


def write_config(path: Path, repositories: dict[str, dict], *, source: dict | None = None,
                 retention_days: int = 1, interval: str = "1m") -> Path:
    """A ledgerdr.toml; values are written as JSON scalars, which TOML reads the same way."""
    lines = ["[source]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (source or {"kind": "embedded", "path": "ledger.db"}).items()]
    lines += ["[backup]", f'interval = "{interval}"', f"retention_days = {retention_days}"]
    for name, settings in repositories.items():
        lines.append(f"[repositories.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str):
    """`ledgerdr ARGS` in-process (moto's patching of botocore applies); errors are not re-raised."""
    return CliRunner().invoke(cli, list(args))


def error_line(result) -> str:
    """The one `error: ...` line the CLI prints instead of a stack trace."""
    assert "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line
