"""What several commands share: the config file, the repositories, the source."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import click

from ..backup import BackupPolicy
from ..config import Config, RepositoryConfig, load_config
from ..logs import note
from ..stores import Location, open_location

config_option = click.option(
    "--config", "-c", "config_path", default="ledgerdr.toml", show_default=True, type=click.Path(dir_okay=False),
    help="The configuration file (`ledgerdr init` writes one).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")


def load(config_path: str) -> Config:
    config = load_config(Path(config_path))
    for warning in config.warnings:  # a log record under --log-format json (stderr is JSON lines only there)
        note(f"warning: {warning}", level=logging.WARNING, event="config_warning")
    return config


def open_repository(repo: RepositoryConfig) -> Location:
    options = dict(repo.options)
    if repo.url.startswith("s3://") and repo.region and repo.region != "local":
        options.setdefault("region", repo.region)
    return open_location(repo.url, **options)


def backup_policy(config: Config) -> BackupPolicy:
    b = config.backup
    return BackupPolicy(interval=b.interval, settle=b.settle, fmt=b.format,
                        retention=timedelta(days=b.retention_days), merge_due_windows=b.merge_due_windows)
