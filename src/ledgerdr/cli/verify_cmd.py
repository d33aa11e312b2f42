"""`ledgerdr verify LOCATION`: check every export under a location as one hash chain; `--digest` against a
ledger digest held outside it; `--certificate` a restore certificate's claims."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError, ExitCode, ObjectNotFound
from ..journal.exports import plan_location, verify_location
from ..record_trust import TrustReport, check_records
from ..repository import recorded_exports
from ..runs import recorded
from ..stores import Location
from .common import config_option, load_optional, resolve_repository, trusted_key_option, trusted_keys
from .output import emit_json, progress, stderr


@click.command()
@click.argument("location", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (CONTRACTS §6 report).")
@click.option("--export-id", help="Verify only this export.")
@click.option("--strict", is_flag=True, help="Count hashes whose rule QLDB never published, and orphan export "
              "attempts, as problems.")
@click.option("--chain-only", is_flag=True, help="Check block hashes, Merkle roots and links only, not each "
              "revision (fast; what a JSON export can always prove).")
@click.option("--digest", "digest", metavar="DIGEST",
              help="Also prove the chain reaches a block whose ledger digest is DIGEST, held outside the "
                   "repository: QLDB's GetDigest output (JSON or Ion, inline or a file), the console's saved "
                   "digest file, `ledgerdr ledger digest FILE --json`, or the bare base64 digest with "
                   "--digest-tip-address.")
@click.option("--digest-tip-address", metavar="ADDRESS",
              help="With a bare base64 --digest: the block it covers up to, as QLDB prints it "
                   "({strandId:\"…\",sequenceNo:N}).")
@click.option("--certificate", "certificate", type=click.Path(dir_okay=False, path_type=Path),
              help="Re-check this restore certificate against the repository (LOCATION, or the one it names) "
                   "instead of verifying every export; with --digest, against that digest too.")
@click.option("--check-target", is_flag=True,
              help="With --certificate: also recompute the restored target's state digest now (it must be "
                   "reachable; a promoted ledger that took writes since differs).")
@trusted_key_option
@config_option
@recorded("verify")
def verify(location: str | None, as_json: bool, export_id: str | None, strict: bool, chain_only: bool,
           digest: str | None, digest_tip_address: str | None, certificate: Path | None,
           check_target: bool, trusted: tuple[str, ...], config_path: str | None) -> None:
    """Verify the exports under LOCATION (a configured repository's name, a directory, file:// or s3:// URL).

    Checks every object against its manifest, every block hash, entries Merkle root, revision hash,
    transaction-info hash and statement digest, and the chain across all exports (gaps, overlaps,
    broken links). In a ledgerdr repository, every mode (--chain-only too) first checks each object's
    bytes against the sha256 its window record holds, and export attempts no record names (left by a
    killed or failed backup) are listed as orphans, not failures. Exits 0 only when nothing is wrong
    (orphans aside, unless --strict), 4 when verification fails; 3 when there is nothing to verify (a
    missing path or an empty folder), 2 for a file, the file system's root, or a bare name that is no
    configured repository and no folder.

    With --digest, the ledger digest at the digest's tip block is folded again from the blocks (the Merkle
    root over the block hashes 0..tip) and must equal it: exit 4 naming the block when it does not, 7 when
    the repository does not reach that block (or does not hold the blocks from 0), 2 for a digest that
    cannot be read. With --certificate, each claim of a restore certificate (block range, last block hash,
    ledger digest and proof, strand, lineage, state digest) is checked against the repository: exit 4
    naming the field that does not hold, 7 when the repository or the digest cannot prove it.

    With trusted keys (--trusted-key, or [signing] trusted_keys in the config), every ledgerdr record
    (window records, watermarks, snapshot manifests, incarnations, prune records) must be signed by one
    of them: an unsigned record, another key's, or an altered one is a problem naming the record (exit 4).
    """
    from ..digests import parse_digest

    external = parse_digest(digest, digest_tip_address) if digest is not None else None
    if digest is None and digest_tip_address is not None:
        raise ConfigError("--digest-tip-address goes with a bare base64 --digest")
    if certificate is not None:
        unused = [name for name, given in (("--export-id", export_id), ("--strict", strict),
                                            ("--chain-only", chain_only)) if given]
        if unused:
            raise ConfigError(f"{unused[0]} does not go with --certificate (it checks the blocks the certificate "
                              "names, and their state digest)")
        _verify_certificate(certificate, location, external, check_target, as_json, config_path, trusted)
    if check_target:
        raise ConfigError("--check-target goes with --certificate")
    if location is None:
        raise ConfigError("give the LOCATION to verify (or --certificate FILE)")
    keys = trusted_keys(trusted, config_path)
    loc = resolve_repository(location, load_optional(config_path)).open()
    _refuse_nothing_there(loc)
    recorded = recorded_exports(loc)
    total = len(plan_location(loc.store, loc.prefix, export_id=export_id, recorded=recorded).objects)
    with progress("verifying objects", total, enabled=not as_json) as bar:
        report = verify_location(loc.store, loc.prefix, export_id=export_id, strict=strict,
                                 check_revisions=not chain_only, on_object=lambda ref, blocks: bar.advance(),
                                 recorded=recorded, digest_at=[external.tip.sequence_no] if external else ())
    trust = check_records(loc, keys) if keys else None
    if trust is not None:
        report.problems.extend(trust.problems)
    failed = not report.ok or (strict and report.orphans)
    code = ExitCode.VERIFICATION if failed else ExitCode.OK
    checked = None
    if external is not None:
        from ..digests import check_digest

        checked = check_digest(report, external)
        code = code or checked.exit_code
    if as_json:
        emit_json({**report.to_json(), **({"external_digest": checked.to_json()} if checked else {}),
                   **({"signatures": trust.to_json()} if trust else {})})  # unchanged without keys or a digest
    else:
        _render(report, trust)
        if checked is not None and external is not None:
            click.echo(f"digest {external.text} at {external.tip}: "
                       + ("MATCHES" if checked.outcome == "match" else f"NOT PROVEN ({checked.outcome})")
                       + f": {checked.detail}", err=checked.outcome != "match")
    sys.exit(code)


def _verify_certificate(path: Path, location: str | None, external, check_target: bool, as_json: bool,
                        config_path: str | None, trusted: tuple[str, ...]) -> None:
    from ..certificate import check_certificate, read_certificate

    doc = read_certificate(path)
    where = location or (doc.get("source") or {}).get("repository")
    if not where:
        raise ConfigError(f"certificate {path} names no repository: give LOCATION")
    loc = resolve_repository(where, load_optional(config_path)).open()
    _refuse_nothing_there(loc)
    check = check_certificate(doc, loc, name=str(path), external=external, check_target=check_target,
                              trusted=trusted_keys(trusted, config_path))
    if as_json:
        emit_json(check.to_json())
    else:
        click.echo(f"certificate {path}: restore {doc.get('restore_id')} from {loc.url}, blocks "
                   f"{(doc.get('block_range') or {}).get('first')}..{(doc.get('block_range') or {}).get('last')}")
        click.echo(f"held: {', '.join(check.checked) or 'nothing'}")
        for problem in check.problems:
            click.echo(f"problem: {problem}", err=True)
        click.echo("certificate: " + ("OK" if not check.problems else f"REFUSED ({len(check.problems)} problems)"))
    sys.exit(check.exit_code)


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
