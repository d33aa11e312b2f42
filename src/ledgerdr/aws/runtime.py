"""What every Lambda handler shares: its settings from the environment, JSON log lines, CloudWatch
embedded-metric-format (EMF) lines, and the one mapping of errors to results (errors.exit_code_for).

Settings (environment variables; the templates set them):
- `LEDGERDR_CONFIG_TOML` — the text of `ledgerdr.toml` (required);
- `LEDGERDR_REPOSITORY` — the repository this function works on (default: the primary for backup and
  compact, the first replica for the others);
- `LEDGERDR_STATE_URL` — where a restore keeps its plans and unit results (`s3://work-bucket/restores/`);
- `LEDGERDR_WORK_QUEUE_URL` — the SQS queue of restore work units; `LEDGERDR_MAX_ATTEMPTS` its deliveries
  before the dead-letter queue (the template's maxReceiveCount);
- `LEDGERDR_TARGET_URL`, `LEDGERDR_STANDBY_URL`, `LEDGERDR_DRILL_TARGET_URL` — the restore, standby and
  drill targets;
- `LEDGERDR_METRICS_NAMESPACE` (default `ledgerdr`), `LEDGERDR_REPLICATION_GRACE` (default `15m`: how long a
  recorded window's objects may still be on their way through S3 replication before they count as missing).
Plus the standard ones (`AWS_REGION`, credentials), which boto3 reads itself.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from ..config import Config, RepositoryConfig, parse_config, parse_duration
from ..errors import EXIT_CODES, ConfigError, ExitCode, LedgerDRError, exit_code_for

CONFIG_ENV = "LEDGERDR_CONFIG_TOML"
DEFAULT_NAMESPACE = "ledgerdr"


class HandlerFailed(LedgerDRError):
    """Raised by a handler whose result is not a success, so that Lambda counts an error (its Errors
    metric, the schedule's retry policy, an on-demand caller's FunctionError). `result` is the structured
    result, also the exception's message as JSON."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(orjson.dumps(result).decode())
        self.result = result
        self.exit_code = ExitCode(result.get("exit_code", ExitCode.UNEXPECTED))


@dataclass(frozen=True)
class Settings:
    config: Config
    env: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Raises ConfigError naming the variable when the configuration is missing or invalid."""
        env = os.environ if env is None else env
        text = env.get(CONFIG_ENV)
        if not text:
            raise ConfigError(f"{CONFIG_ENV} is not set", hint="set it to the text of ledgerdr.toml")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{CONFIG_ENV}: not valid TOML: {exc}") from None
        # Relative paths in the config resolve under the one writable folder a Lambda has.
        base = Path(env.get("LEDGERDR_WORKDIR") or tempfile.gettempdir())
        return cls(parse_config(raw, base=base), env)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.env.get(name) or default

    def require(self, name: str) -> str:
        value = self.env.get(name)
        if not value:
            raise ConfigError(f"environment variable {name} is not set")
        return value

    def repository(self, *, default_primary: bool) -> RepositoryConfig:
        name = self.env.get("LEDGERDR_REPOSITORY")
        if name:
            return self.config.repository(name)
        if default_primary or not self.config.replicas:
            return self.config.primary
        return self.config.replicas[0]

    @property
    def namespace(self) -> str:
        return self.env.get("LEDGERDR_METRICS_NAMESPACE") or DEFAULT_NAMESPACE

    @property
    def replication_grace(self) -> timedelta:
        return parse_duration(self.env.get("LEDGERDR_REPLICATION_GRACE") or "15m", "LEDGERDR_REPLICATION_GRACE")

    @property
    def max_attempts(self) -> int:
        raw = self.env.get("LEDGERDR_MAX_ATTEMPTS") or "3"
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"LEDGERDR_MAX_ATTEMPTS: {raw!r} is not a positive whole number")
        return int(raw)


def log(record: dict[str, Any], stream: Any = None) -> None:
    """One JSON line on stdout (CloudWatch Logs keeps each line as one event; Logs Insights parses it)."""
    (stream or sys.stdout).write(orjson.dumps(record, default=str).decode() + "\n")
    (stream or sys.stdout).flush()


def emit_metrics(namespace: str, dimensions: dict[str, str], metrics: dict[str, tuple[float, str]]) -> dict:
    """One CloudWatch embedded-metric-format line: CloudWatch turns it into metrics without an API call
    (so a handler needs no cloudwatch:PutMetricData permission). `metrics`: name → (value, unit)."""
    record: dict[str, Any] = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": namespace, "Dimensions": [sorted(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()]}]},
        **dimensions, **{name: value for name, (value, _) in metrics.items()}}
    log(record)
    return record


def run_handler(name: str, event: Any, body: Callable[[Any, Settings], dict[str, Any]]) -> dict[str, Any]:
    """Run `body(event, settings)`, log its result as one JSON line, and return it; map any error to a
    result through errors.exit_code_for (the one table) and raise HandlerFailed with it."""
    started = time.monotonic()
    try:
        settings = Settings.from_env()
        result = body(event, settings)
    except Exception as exc:  # every error becomes a structured result with the table's exit code
        result = error_result(exc)
    return finish(name, result, started)


def error_result(exc: BaseException) -> dict[str, Any]:
    code = exit_code_for(exc)
    return {"exit_code": code, "error": str(exc), "error_type": type(exc).__name__, "meaning": EXIT_CODES.get(code, "")}


def finish(name: str, result: dict[str, Any], started: float) -> dict[str, Any]:
    """Log the result as one JSON line; return it, or raise HandlerFailed when it is not a success."""
    result = {"handler": name, "ok": result.get("exit_code", ExitCode.OK) == ExitCode.OK,
              "exit_code": result.get("exit_code", ExitCode.OK),
              **{k: v for k, v in result.items() if k != "exit_code"},
              "seconds": round(time.monotonic() - started, 3)}
    log({"level": "info" if result["ok"] else "error", **result})
    if not result["ok"]:
        raise HandlerFailed(result)
    return result
