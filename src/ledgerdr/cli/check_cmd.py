"""`ledgerdr check`: preflight every repository before trusting it with backups."""

from __future__ import annotations

import sys

import click

from ..config import Config
from ..errors import ConfigError, ExitCode
from ..signing import TrustedKeys, load_signer, public_key_text
from ..stores import object_lock_refusal, unwrap
from .common import config_option, json_option, load, open_repository
from .output import emit_json


@click.command()
@config_option
@json_option
def check(config_path: str, as_json: bool) -> None:
    """Report, per repository, whether it is reachable and write-once as configured.

    For S3: versioning, Object Lock and its default retention, default encryption and replication; a
    retention shorter than the bucket's lock period is refused. For directories: the folder is usable and
    the file store enforces retention itself; the file system's root, a file, a path that cannot be created
    and a folder holding anything but a ledgerdr repository are refused, as every command refuses them.
    With [signing] set: the signing key loads (its key id and the public key to trust are shown) and
    every trusted key reads. Exits 2 on any error.
    """
    config = load(config_path)
    rows = []
    for repo in config.repositories:
        location = open_repository(repo)
        store = unwrap(location.store)
        if store.properties.name == "s3":
            from ..stores.s3 import check_retention, preflight

            findings = preflight(location.store)
            findings.append(check_retention(location.store, config.backup.retention_days))
            rows += [(repo.name, f.level, f.check, f.message) for f in findings]
        else:
            list(location.store.list(location.prefix))  # raises a clear StoreError when unusable
            findings = None
            rows.append((repo.name, "ok", "store", f"{location.url}: usable; retention enforced by the file store"))
        if repo.require_object_lock:
            refusal = object_lock_refusal(location, repo.name, findings)
            if refusal:
                rows.append((repo.name, "error", "object_lock", refusal))
    rows += _signing_rows(config)
    if as_json:
        emit_json([{"repository": r, "level": lvl, "check": c, "message": m} for r, lvl, c, m in rows])
    else:
        for name, level, what, message in rows:
            click.echo(f"[{name}] {level.upper():5} {what}: {message}")
    sys.exit(ExitCode.USAGE if any(level == "error" for _, level, _, _ in rows) else ExitCode.OK)


def _signing_rows(config: Config) -> list[tuple[str, str, str, str]]:
    """The signing key loads (a file, env:NAME or KMS) and every trusted key reads; what to trust, shown."""
    rows = []
    if config.signing.key:
        try:
            signer = load_signer(config.signing.key)
            rows.append(("signing", "ok", "signing_key", f"{signer.algorithm} key {signer.key_id} signs every record; "
                         f"trust it with --trusted-key {public_key_text(signer.public_key)}"))
        except ConfigError as exc:
            rows.append(("signing", "error", "signing_key", str(exc)))
    for spec in config.signing.trusted_keys:
        try:
            rows.append(("signing", "ok", "trusted_key", f"{spec}: key {next(iter(TrustedKeys.parse([spec]).keys))}"))
        except ConfigError as exc:
            rows.append(("signing", "error", "trusted_key", str(exc)))
    return rows
