"""`ledgerdr attest`: vouch, with the signing key, for records written before signing was turned on."""

from __future__ import annotations

import click

from ..record_trust import attest_unsigned
from .common import config_option, json_option, load, open_repository
from .compact_cmd import repository_option
from .output import emit_json


@click.command()
@config_option
@repository_option
@click.option("--confirm", is_flag=True, help="Write the attestation (default: list what it would vouch for).")
@json_option
def attest(config_path: str, repository: str | None, confirm: bool, as_json: bool) -> None:
    """Vouch, with the signing key, for the records written before signing was turned on.

    Records are never rewritten, so those written before [signing] key was set stay unsigned, and a
    verify or restore with trusted keys refuses them. Check the repository first (`ledgerdr verify LOCATION`):
    attest writes one signed record listing each unsigned record's key and the sha256 of its bytes, and
    from then on such a record is accepted while its bytes stay the same. Dry run by default; exits 2
    without a signing key.
    """
    config = load(config_path)
    repo = config.repository(repository) if repository else config.primary
    report = attest_unsigned(open_repository(repo, writes=True), confirm=confirm)
    if as_json:
        emit_json({"unsigned": report.unsigned, "attestation": report.key, "key_id": report.key_id})
        return
    for key in report.unsigned:
        click.echo(f"unsigned: {key}")
    if not report.unsigned:
        click.echo("nothing to attest: every record is signed")
    elif report.key:
        click.echo(f"attested {len(report.unsigned)} records with key {report.key_id}: {report.key}")
    else:
        click.echo(f"would attest {len(report.unsigned)} records with key {report.key_id}; run again with --confirm")
