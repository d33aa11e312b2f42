"""`ledgerdr verify LOCATION`: check every export under a location as one hash chain."""

from __future__ import annotations

import sys

import click

from ..errors import ExitCode, ObjectNotFound
from ..journal.exports import plan_location, verify_location
from ..record_trust import TrustReport, check_records
from ..repository import recorded_exports
from ..runs import recorded
from ..stores import Location, open_location
from .common import config_option, trusted_key_option, trusted_keys
from .output import emit_json, progress, stderr


@click.command()
@click.argument("location")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (CONTRACTS §6 report).")
@click.option("--export-id", help="Verify only this export.")
@click.option("--strict", is_flag=True, help="Count hashes whose rule QLDB never published, and orphan export "
              "attempts, as problems.")
@click.option("--chain-only", is_flag=True, help="Check block hashes, Merkle roots and links only, not each "
              "revision (fast; what a JSON export can always prove).")
@trusted_key_option
@config_option
@recorded("verify")
def verify(location: str, as_json: bool, export_id: str | None, strict: bool, chain_only: bool,
           trusted: tuple[str, ...], config_path: str) -> None:
    """Verify the exports under LOCATION (a directory, file:// or s3:// URL).

    Checks every object against its manifest, every block hash, entries Merkle root, revision hash,
    transaction-info hash and statement digest, and the chain across all exports (gaps, overlaps,
    broken links). In a ledgerdr repository, every mode (--chain-only too) first checks each object's
    bytes against the sha256 its window record holds, and export attempts no record names (left by a
    killed or failed backup) are listed as orphans, not failures. Exits 0 only when nothing is wrong
    (orphans aside, unless --strict), 4 when verification fails; 3 when there is nothing to verify (a
    missing path or an empty folder), 2 for a file or the file system's root.

    With trusted keys (--trusted-key, or [signing] trusted_keys in the config), every ledgerdr record
    (window records, watermarks, snapshot manifests, incarnations, prune records) must be signed by one
    of them: an unsigned record, another key's, or an altered one is a problem naming the record (exit 4).
    """
    keys = trusted_keys(trusted, config_path)
    loc = open_location(location)
    _refuse_nothing_there(loc)
    recorded = recorded_exports(loc)
    total = len(plan_location(loc.store, loc.prefix, export_id=export_id, recorded=recorded).objects)
    with progress("verifying objects", total, enabled=not as_json) as bar:
        report = verify_location(loc.store, loc.prefix, export_id=export_id, strict=strict,
                                 check_revisions=not chain_only, on_object=lambda ref, blocks: bar.advance(),
                                 recorded=recorded)
    trust = check_records(loc, keys) if keys else None
    if trust is not None:
        report.problems.extend(trust.problems)
    if as_json:
        emit_json({**report.to_json(), **({"signatures": trust.to_json()} if trust else {})})  # unchanged without keys
    else:
        _render(report, trust)
    sys.exit(ExitCode.OK if report.ok and not (strict and report.orphans) else ExitCode.VERIFICATION)


def _refuse_nothing_there(loc: Location) -> None:
    """A mistyped path or an empty folder is a storage problem (exit 3), not a failed verification (4):
    a monitor must tell "the backup is damaged" from "the job points at nothing"."""
    if next(iter(loc.store.list(loc.prefix)), None) is None:
        raise ObjectNotFound(loc.store.url, loc.prefix + "*", "list", f"nothing under {loc.url}: the path does "
                             "not exist or the folder is empty", hint="give the folder or s3:// prefix holding the exports")


def _render(report, trust: TrustReport | None) -> None:
    chain_only = sum(report.revisions_chain_only.values())
    lines = [
        f"exports: {report.exports}   objects: {report.objects}   blocks: {report.blocks}",
        f"revisions: {report.revisions} (fully verified {report.revisions_fully_verified}, chain only {chain_only}"
        + (f": {report.revisions_chain_only}" if chain_only else "") + f")   system entries: {report.system_entries}",
        f"first block: {report.first_address}   tip: {report.tip_address}",
        f"tip hash: {report.tip_hash}",
    ]
    if report.digest:
        lines.append(f"digest at tip: {report.digest}")
    if trust is not None:
        signers = ", ".join(f"{key_id} ({n})" for key_id, n in sorted(trust.signed_by.items())) or "none"
        lines.append(f"records: {trust.records}, signed by trusted keys: {signers}, refused: {len(trust.problems)}")
    click.echo("\n".join(lines))
    for warning in report.warnings[:20]:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if len(report.warnings) > 20:
        stderr.print(f"[yellow]… {len(report.warnings) - 20} more warnings[/]")
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    for orphan in report.orphans:
        age = "age unknown" if orphan["age_seconds"] is None else f"{orphan['age_seconds']:.0f}s old"
        click.echo(f"orphan: {orphan['key']} ({age}): {orphan['reason']}", err=True)
    orphans = f"; {len(report.orphans)} orphan export attempts (not recorded, not verified)" if report.orphans else ""
    click.echo(("verified: OK" if report.ok else f"verified: FAILED ({len(report.problems)} problems)") + orphans)
