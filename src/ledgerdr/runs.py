"""The last run of each flow (backup, replicate, verify): how it ended, how long it took, when.

Each flow's command is decorated with `recorded`; when it ends, however it ends, one JSON file per flow
under the runs folder (`.ledgerdr-runs/` in the current folder, like the default config, or
`$LEDGERDR_RUNS_DIR`) is replaced. `ledgerdr metrics` reads them at each scrape (metrics.py), so a cron
`backup --once` and the metrics server share no memory. Kept apart from metrics.py so that a scheduled
backup does not import prometheus_client.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .errors import exit_code_for

RUNS_ENV = "LEDGERDR_RUNS_DIR"
DEFAULT_RUNS_DIR = ".ledgerdr-runs"

F = TypeVar("F", bound=Callable[..., Any])


def runs_dir(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get(RUNS_ENV) or DEFAULT_RUNS_DIR)


@dataclass(frozen=True)
class Run:
    """How a flow's last run ended (Unix times, so that they export as `_timestamp_seconds` unchanged)."""

    flow: str
    exit_code: int
    started_at: float
    finished_at: float
    last_success_at: float | None

    @property
    def duration_seconds(self) -> float:
        return self.finished_at - self.started_at


def record_run(directory: Path, flow: str, exit_code: int, started_at: float, finished_at: float) -> Run:
    """Replace the flow's record (written to a temporary file, then renamed: a scrape never reads half)."""
    previous = {r.flow: r for r in read_runs(directory)}.get(flow)
    last_success = finished_at if exit_code == 0 else (previous.last_success_at if previous else None)
    run = Run(flow, exit_code, started_at, finished_at, last_success)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{flow}.{os.getpid()}.tmp"
    temporary.write_bytes(orjson.dumps(asdict(run)))
    os.replace(temporary, directory / f"{flow}.json")
    return run


def read_runs(directory: Path) -> list[Run]:
    """Every flow's last run; a record that cannot be read is left out (the next run replaces it)."""
    runs = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            runs.append(Run(**orjson.loads(path.read_bytes())))
        except (OSError, ValueError, TypeError):
            continue
    return runs


def recorded(flow: str) -> Callable[[F], F]:
    """Decorate a command's function: when it ends, however it ends, record its exit code and duration."""
    def decorate(function: F) -> F:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            started, code = time.time(), 1
            try:
                result = function(*args, **kwargs)
                code = 0
                return result
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
                raise
            except KeyboardInterrupt:
                code = 130
                raise
            except Exception as exc:
                code = exit_code_for(exc)
                raise
            finally:
                note_run(flow, code, started)
        return run  # type: ignore[return-value]
    return decorate


def note_run(flow: str, exit_code: int, started_at: float) -> None:
    """Record a run that ends now under `runs_dir()`; a folder that cannot be written is no failure of the flow."""
    try:
        record_run(runs_dir(), flow, exit_code, started_at, time.time())
    except OSError:
        pass
