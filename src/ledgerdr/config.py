"""`ledgerdr.toml`: read once, validated up front, every problem reported at once with its field.

Defaults work with no cloud at all: an embedded ledger and two directories standing in for two
regions. `ledgerdr init` writes `DEFAULT_CONFIG`, commented, so the file documents itself.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .journal.codecs import ExportFormat

DEFAULT_CONFIG = """\
# ledgerdr configuration. Every duration takes a number and a unit: 500ms, 30s, 15m, 1h, 7d.

[source]
# "embedded": a ledger file on this machine (created if absent). "qldb": Amazon QLDB or any
# QLDB-compatible endpoint (ledger, region, role_arn for the export role, optional endpoint_url).
kind = "embedded"
path = "ledger.db"
ledger = "ledger"

[backup]
# The export interval is the RPO knob: at worst this much (plus `settle`) is not yet exported.
interval = "1h"
# Wait this long after a window ends before exporting it, so that late commits land in it.
settle = "5s"
# ion_binary keeps every Ion type and is a byte copy of the embedded journal; json is lossy.
format = "ion_binary"
# Objects are locked (write-once) for this long; never shorter than a bucket's Object Lock period.
retention_days = 30
# Several due intervals become one bigger window instead of one window each.
merge_due_windows = false

# Repositories: the first is the primary (exports are written there); the others are replicas.
# url: a directory, file:///dir, or s3://bucket/prefix (region, role_arn, endpoint_url, lock_mode,
# sse, kms_key_id apply to s3).
[repositories.primary]
url = "repo-primary"
region = "local-primary"

[repositories.secondary]
url = "repo-secondary"
region = "local-secondary"
"""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float, field_name: str = "duration") -> timedelta:
    if isinstance(text, (int, float)):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{field_name}: {text!r} is not a duration (use e.g. 500ms, 30s, 15m, 1h, 7d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class SourceConfig:
    kind: str = "embedded"
    path: Path | None = None
    ledger: str = "ledger"
    region: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    export_bucket_role_arn: str | None = None


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str
    region: str = "local"
    options: dict[str, Any] = field(default_factory=dict)  # backend settings (role_arn, sse, lock_mode ...)
    require_object_lock: bool = False


@dataclass(frozen=True)
class BackupConfig:
    interval: timedelta = timedelta(hours=1)
    settle: timedelta = timedelta(seconds=5)
    format: ExportFormat = ExportFormat.ION_BINARY
    retention_days: int = 30
    merge_due_windows: bool = False


@dataclass(frozen=True)
class Config:
    source: SourceConfig
    backup: BackupConfig
    repositories: tuple[RepositoryConfig, ...]
    path: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def primary(self) -> RepositoryConfig:
        return self.repositories[0]

    @property
    def replicas(self) -> tuple[RepositoryConfig, ...]:
        return self.repositories[1:]

    def repository(self, name: str) -> RepositoryConfig:
        for repo in self.repositories:
            if repo.name == name:
                return repo
        raise ConfigError(f"no repository named {name!r} (configured: {', '.join(r.name for r in self.repositories)})")


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", hint="run `ledgerdr init` to write one")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, base=path.parent, path=path)


_S3_OPTIONS = {"region", "role_arn", "endpoint_url", "lock_mode", "sse", "kms_key_id"}


def parse_config(raw: dict[str, Any], *, base: Path = Path("."), path: Path | None = None) -> Config:
    """Validate everything, collect every problem, raise one ConfigError listing them all."""
    problems: list[str] = []
    warnings: list[str] = []
    source = _source(raw.get("source", {}), base, problems)
    backup = _backup(raw.get("backup", {}), problems, warnings)
    repositories = _repositories(raw.get("repositories", {}), base, problems)
    for section in sorted(set(raw) - {"source", "backup", "repositories", "serve"}):  # [serve]: serve/keys.py
        problems.append(f"[{section}]: unknown section")
    if problems:
        raise ConfigError("invalid configuration" + (f" in {path}" if path else "") + ":\n  - "
                          + "\n  - ".join(problems))
    return Config(source, backup, repositories, path, tuple(warnings))


def _source(raw: dict[str, Any], base: Path, problems: list[str]) -> SourceConfig:
    kind = raw.get("kind", "embedded")
    if kind not in ("embedded", "qldb"):
        problems.append(f"source.kind: {kind!r} is not 'embedded' or 'qldb'")
    unknown = set(raw) - {"kind", "path", "ledger", "region", "role_arn", "endpoint_url"}
    problems.extend(f"source.{k}: unknown setting" for k in sorted(unknown))
    path = None
    if kind == "embedded":
        path = base / raw.get("path", "ledger.db")
    elif kind == "qldb":
        for required in ("ledger", "region", "role_arn"):
            if not raw.get(required):
                problems.append(f"source.{required}: required when source.kind = 'qldb'")
    return SourceConfig(kind=kind, path=path, ledger=str(raw.get("ledger", "ledger")), region=raw.get("region"),
                        role_arn=raw.get("role_arn"), endpoint_url=raw.get("endpoint_url"))


def _backup(raw: dict[str, Any], problems: list[str], warnings: list[str]) -> BackupConfig:
    values: dict[str, Any] = {}
    for name in ("interval", "settle"):
        if name in raw:
            try:
                values[name] = parse_duration(raw[name], f"backup.{name}")
            except ConfigError as exc:
                problems.append(str(exc))
    interval = values.get("interval", timedelta(hours=1))
    if interval.total_seconds() < 1 or interval.total_seconds() % 1:
        problems.append(f"backup.interval: {raw.get('interval')!r} must be a whole number of seconds, at least 1s")
    if "format" in raw:
        try:
            values["format"] = ExportFormat.parse(raw["format"])
        except ConfigError as exc:
            problems.append(f"backup.format: {exc}")
    if values.get("format") is ExportFormat.JSON:
        warnings.append("backup.format = json loses Ion types: revision data hashes cannot all be re-checked and "
                        "restored values may differ from the originals; prefer ion_binary")
    retention = raw.get("retention_days", 30)
    if not isinstance(retention, int) or retention < 0:
        problems.append(f"backup.retention_days: {retention!r} must be a whole number of days ≥ 0")
    else:
        values["retention_days"] = retention
    if "merge_due_windows" in raw:
        values["merge_due_windows"] = bool(raw["merge_due_windows"])
    unknown = set(raw) - {"interval", "settle", "format", "retention_days", "merge_due_windows"}
    problems.extend(f"backup.{k}: unknown setting" for k in sorted(unknown))
    return BackupConfig(**values)


def _repositories(raw: dict[str, Any], base: Path, problems: list[str]) -> tuple[RepositoryConfig, ...]:
    if not raw:
        problems.append("[repositories]: at least one repository (the primary) is required")
        return ()
    repos = []
    for name, settings in raw.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            problems.append(f"repositories.{name}: names may use letters, digits, '-' and '_' only")
        url = settings.get("url")
        if not url:
            problems.append(f"repositories.{name}.url: required")
            continue
        if "://" not in url:
            url = str((base / url).resolve())
        elif url.startswith("file://"):
            url = "file://" + str((base / url[len("file://"):]).resolve())
        options = {k: v for k, v in settings.items() if k in _S3_OPTIONS and k != "region"}
        unknown = set(settings) - _S3_OPTIONS - {"url", "require_object_lock"}
        problems.extend(f"repositories.{name}.{k}: unknown setting" for k in sorted(unknown))
        repos.append(RepositoryConfig(name, url, settings.get("region", "local"), options,
                                      bool(settings.get("require_object_lock", False))))
    return tuple(repos)
