"""What several commands share: the config file, the repositories, the source."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from ..backup import BackupPolicy
from ..config import Config, RepositoryConfig, load_config
from ..errors import ConfigError
from ..logs import note
from ..signing import DeferredSigner, RecordSigner, TrustedKeys, load_signer
from ..stores import Location, open_location

CONFIG_ENV = "LEDGERDR_CONFIG"
DEFAULT_CONFIG_FILE = "ledgerdr.toml"


def chosen_config(explicit: str | None = None, ctx: click.Context | None = None) -> str | None:
    """The config file a command reads: its own `--config`, else the global `ledgerdr --config`, else
    $LEDGERDR_CONFIG, else ./ledgerdr.toml when it exists; None when there is none of these. A file
    named explicitly must exist (`load` says so); only the default one may be absent."""
    ctx = ctx or click.get_current_context(silent=True)
    root_choice = ctx.find_root().params.get("config_path") if ctx is not None else None
    named = explicit or root_choice or os.environ.get(CONFIG_ENV)
    if named:
        return named
    return DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).is_file() else None


config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False), metavar="PATH",
    callback=lambda ctx, _param, value: chosen_config(value, ctx),
    help=f"The configuration file (`ledgerdr init` writes one) [default: the global --config, then ${CONFIG_ENV}, "
         f"then ./{DEFAULT_CONFIG_FILE}].")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")


def load(config_path: str | None) -> Config:
    """The configuration a command needs (from `config_option`). Raises ConfigError when there is none."""
    if config_path is None:
        raise ConfigError(f"config file {DEFAULT_CONFIG_FILE} does not exist",
                          hint=f"run `ledgerdr init` to write one, or name one with --config PATH or {CONFIG_ENV}")
    config = load_config(Path(config_path))
    for warning in config.warnings:  # a log record under --log-format json (stderr is JSON lines only there)
        note(f"warning: {warning}", level=logging.WARNING, event="config_warning")
    return config


def load_optional(config_path: str | None) -> Config | None:
    """The configuration when there is one (for commands that also work on URLs alone)."""
    return None if config_path is None else load(config_path)


def repository_options(repo: RepositoryConfig) -> dict[str, Any]:
    """The store options `open_location` takes for a configured repository."""
    options = dict(repo.options)
    if repo.url.startswith("s3://") and repo.region and repo.region != "local":
        options.setdefault("region", repo.region)
    return options


def open_repository(repo: RepositoryConfig, *, writes: bool = False) -> Location:
    """The repository's location, signing what is written there when `[signing] key` is set. `writes`: load
    the key now, so that a command that writes records fails before its work (an export, a deletion) rather
    than at its first record; otherwise the key loads at the first record signed, and commands that only
    read never need it."""
    location = open_location(repo.url, **repository_options(repo))
    if not repo.signing_key:
        return location
    signer = load_signer(repo.signing_key) if writes else DeferredSigner(repo.signing_key)
    return dataclasses.replace(location, signer=signer)


@dataclass(frozen=True)
class Repository:
    """What a command was pointed at: a configured repository by name, or a location given as it is."""

    name: str
    region: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)  # a configured repository's store options
    configured: RepositoryConfig | None = None

    def open(self) -> Location:
        return open_location(self.url, **self.options)


def resolve_repository(text: str, config: Config | None) -> Repository:
    """A configured repository's name, or a location (a directory, file:// or s3:// URL): a name wins over
    a folder of the same name. Raises ConfigError (exit 2) for a word that is neither, naming it and the
    configured names, so a mistyped name is not taken for an empty folder."""
    names = [r.name for r in config.repositories] if config else []
    if text in names:
        assert config is not None
        repo = config.repository(text)
        return Repository(repo.name, repo.region, repo.url, repository_options(repo), repo)
    if "://" not in text and "/" not in text and not Path(text).exists():
        raise ConfigError(f"no repository named {text!r}" + (f" (configured: {', '.join(names)})" if names else
                                                             " and no configuration file"),
                          hint="pass a configured name, a directory or an s3:// URL")
    return Repository(text, "unknown", text)


def trusted_keys(given: tuple[str, ...], config_path: str | None) -> TrustedKeys:
    """`--trusted-key` values, else the config's `[signing] trusted_keys` when the config file exists."""
    if given:
        return TrustedKeys.parse(given)
    config = load_optional(config_path)
    return TrustedKeys.parse(config.signing.trusted_keys) if config else TrustedKeys()


def record_signer(config: Config | None, explicit: str | None = None) -> RecordSigner | None:
    """The key certificates are signed with: `explicit` (a command's --signing-key), else `[signing] key`."""
    spec = explicit or (config.signing.key if config else None)
    return load_signer(spec) if spec else None


trusted_key_option = click.option(
    "--trusted-key", "trusted", multiple=True, metavar="PUBLIC_KEY",
    help="Accept records signed by this key only (repeatable: a file, or the key in base64 or hex); refuse "
         "unsigned records and any other key's. Default: the config's [signing] trusted_keys.")


def backup_policy(config: Config) -> BackupPolicy:
    b = config.backup
    return BackupPolicy(interval=b.interval, settle=b.settle, fmt=b.format,
                        retention=timedelta(days=b.retention_days), merge_due_windows=b.merge_due_windows)
