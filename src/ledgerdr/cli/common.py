"""What several commands share: the config file, the repositories, the source."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import click

from ..backup import BackupPolicy
from ..config import Config, RepositoryConfig, load_config
from ..signing import DeferredSigner, TrustedKeys, load_signer
from ..stores import Location, open_location

config_option = click.option(
    "--config", "-c", "config_path", default="ledgerdr.toml", show_default=True, type=click.Path(dir_okay=False),
    help="The configuration file (`ledgerdr init` writes one).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")


def load(config_path: str) -> Config:
    config = load_config(Path(config_path))
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    return config


def open_repository(repo: RepositoryConfig, *, writes: bool = False) -> Location:
    """The repository's location, signing what is written there when `[signing] key` is set. `writes`: load
    the key now, so that a command that writes records fails before its work (an export, a deletion) rather
    than at its first record; otherwise the key loads at the first record signed, and commands that only
    read never need it."""
    options = dict(repo.options)
    if repo.url.startswith("s3://") and repo.region and repo.region != "local":
        options.setdefault("region", repo.region)
    location = open_location(repo.url, **options)
    if not repo.signing_key:
        return location
    signer = load_signer(repo.signing_key) if writes else DeferredSigner(repo.signing_key)
    return dataclasses.replace(location, signer=signer)


def trusted_keys(given: tuple[str, ...], config_path: str) -> TrustedKeys:
    """`--trusted-key` values, else the config's `[signing] trusted_keys` when the config file exists."""
    if given:
        return TrustedKeys.parse(given)
    if not Path(config_path).is_file():
        return TrustedKeys()
    return TrustedKeys.parse(load_config(Path(config_path)).signing.trusted_keys)  # its warnings: said elsewhere


trusted_key_option = click.option(
    "--trusted-key", "trusted", multiple=True, metavar="PUBLIC_KEY",
    help="Accept records signed by this key only (repeatable: a file, or the key in base64 or hex); refuse "
         "unsigned records and any other key's. Default: the config's [signing] trusted_keys.")


def backup_policy(config: Config) -> BackupPolicy:
    b = config.backup
    return BackupPolicy(interval=b.interval, settle=b.settle, fmt=b.format,
                        retention=timedelta(days=b.retention_days), merge_due_windows=b.merge_due_windows)
