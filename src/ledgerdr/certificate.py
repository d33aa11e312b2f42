"""The restore certificate: what exactly was restored, from what, and that it matches the ledger.

Every verified restore and promote writes one (docs/format.md, "Restore certificate"): the restore id, the
source repository and lineage, the block range, the ledger digest at the last block with its proof from the
blocks, the target's state digest, RTO, verdict, tool version and times. `verify --certificate` re-checks
each claim offline against the repository (`check_certificate`), and against a digest held outside it.

Every certificate is written by `write_certificate` and read by `read_certificate`, and passes through
`seal` / `check_seal` on the way: the one place where record signing (issue 21, item 5) plugs in.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from . import __version__, native
from .digests import LedgerDigest, check_digest, parse_address
from .errors import ConfigError, ExitCode, LedgerDRError, VerificationError
from .journal.codecs import ExportFormat
from .journal.exports import plan_location
from .journal.model import BlockAddress
from .journal.proofs import fold_proof
from .journal.verify import VerifyReport, verify_objects
from .repository import iso_ms, read_windows, recorded_exports, utcnow
from .signing import RecordSigner, SignatureError, TrustedKeys, sign_document, verify_document
from .stores import Location
from .targets import embedded_path

KIND = "ledgerdr-restore-certificate"
FORMAT_VERSION = 1
SUFFIX = ".certificate.json"


def default_path(target_url: str, state_dir: Path, restore_id: str) -> Path:
    """Where a certificate goes when `--certificate` is not given: beside an embedded target's ledger file
    (`<file>.certificate.json`), else (PostgreSQL) in the restore's state folder."""
    path = embedded_path(target_url)
    if path is not None:
        return path.with_name(path.name + SUFFIX)
    return state_dir / restore_id / "certificate.json"


# ------------------------------------------------------------------------------------------ the blocks


def verify_up_to(location: Location, last_seq: int, digest_at: Collection[int]) -> VerifyReport:
    """Verification of the location's blocks from its first one through the object holding `last_seq`
    (block hashes, entries Merkle roots, links; each recorded object against its sha256), keeping the ledger
    digest at each block of `digest_at` (`report.digests_at`). Objects after it are not read.

    Chain-only, except when every object is Ion binary and the C verifier is built: it then checks every
    revision too, in a fraction of the time the chain-only Python path takes to read the same objects
    (bench/bench_certificate.py: 0.31 s against 1.83 s for 18,310 revisions; BENCHMARKS.md)."""
    plan = plan_location(location.store, location.prefix, recorded=recorded_exports(location))
    report = VerifyReport(exports=len(plan.exports))
    objects = [o for o in plan.objects if o.first is None or o.first <= last_seq]
    in_c = native.journal is not None and all(o.fmt is ExportFormat.ION_BINARY for o in objects)
    verify_objects(location.store.get, objects, report, check_revisions=in_c, keep=plan.keep(), digest_at=digest_at)
    return report


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def first_block(location: Location, report: VerifyReport) -> int | None:
    """The first block the restored state stands for: the first one the window records hold (a snapshot
    stands for the blocks a prune deleted), else, for raw exports, the first one verified."""
    recorded = next((w.first_seq for w in read_windows(location).windows if w.first_seq is not None), None)
    if recorded is not None:
        return recorded
    return parse_address(report.first_address).sequence_no if report.first_address else None


def lineage_at(location: Location, seq: int) -> str | None:
    """The lineage of the window record holding block `seq` (None: raw exports, no record holds it)."""
    windows = read_windows(location).windows
    return next((w.lineage for w in windows if w.last_seq is not None and w.last_seq >= seq), None)


# ------------------------------------------------------------------------------------------ building


def build_certificate(report: Any, location: Location, *, operation: str = "restore",
                      promotion: dict[str, Any] | None = None) -> dict[str, Any]:
    """The certificate of a verified restore (`restore.run.RestoreReport`) from `location`. Reads the blocks up
    to the last restored one again, chain-only, to fold the ledger digest at it. Raises ConfigError for an
    unverified restore (none is certified), VerificationError when those blocks no longer verify."""
    if not report.verdict or report.last_seq is None:
        raise ConfigError(f"restore {report.restore_id} is not verified: no certificate is issued for it")
    finished = utcnow()  # the restore's end: before the blocks are read again for the digest
    last = report.last_seq
    evidence = verify_up_to(location, last, [last])
    if evidence.problems:
        raise VerificationError(f"the blocks up to {last} under {location.url} no longer verify; no certificate "
                                f"issued: {evidence.problems[0]}", evidence.problems)
    strand = parse_address(evidence.first_address).strand_id if evidence.first_address else None
    captured = evidence.digests_at.get(last)
    doc: dict[str, Any] = {
        "kind": KIND, "format_version": FORMAT_VERSION, "operation": operation,
        "restore_id": report.restore_id, "strategy": report.strategy,
        "source": {"repository": location.url, "lineage": lineage_at(location, last), "strand_id": strand},
        "target": {"url": _absolute(report.target), "state_digest": report.target_state_digest,
                   "state_digest_version": report.state_digest_version},
        "journal_state_digest": report.journal_state_digest,
        "block_range": {"first": first_block(location, evidence), "last": last, "last_block_hash": report.last_block_hash,
                        "last_block_time": _ms_time(report.last_block_time_ms)},
        "snapshot_last_seq": report.snapshot_last_seq,
        "lost_blocks": [list(span) for span in report.lost_blocks],
        "ledger_digest": None, "ledger_digest_unavailable": None,
        "counts": {"units": report.units, "revisions": report.revisions, "tables": report.tables},
        "rto_seconds": report.rto_seconds, "verdict": "verified", "promotion": promotion,
        "tool": {"name": "ledgerdr", "version": __version__},
        "started_at": iso_ms(finished - timedelta(seconds=report.rto_seconds)),
        "finished_at": iso_ms(finished), "issued_at": iso_ms(utcnow()),
    }
    if captured is None or strand is None:
        doc["ledger_digest_unavailable"] = (f"the repository's blocks do not run from block 0 to block {last} "
                                            f"(they start at {evidence.first_address}): no digest to fold")
    else:
        digest, _, proof = captured
        doc["ledger_digest"] = {"digest": _b64(digest), "tip_address": str(BlockAddress(strand, last)),
                                "proof": [_b64(h) for h in proof]}
    return doc


def _absolute(target_url: str) -> str:
    """An embedded target's URL with an absolute path: the certificate is read from anywhere."""
    path = embedded_path(target_url)
    return target_url if path is None else f"embedded://{path.resolve()}"


def _ms_time(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(datetime.fromtimestamp(ms / 1000, tz=UTC))


# ------------------------------------------------------------------------------------------ signing


def seal(doc: dict[str, Any], signer: RecordSigner | None = None) -> dict[str, Any]:
    """Every certificate passes through here just before it is written: signed with the record key when one
    is configured (`[signing] key`), as the repository's records are; unsigned otherwise."""
    return sign_document(doc, signer) if signer is not None else doc


def check_seal(doc: dict[str, Any], trusted: TrustedKeys | None = None) -> list[CertificateProblem]:
    """With trusted keys, the certificate must be signed by one of them over exactly what it holds; each
    refusal is a CertificateProblem on the field `signature`. Without trusted keys an unsigned certificate
    is checked by its contents alone (`check_certificate`)."""
    if not trusted:
        return []
    try:
        verify_document(doc, trusted)
    except SignatureError as refused:
        return [CertificateProblem("signature", f"{refused.kind}: {refused}")]
    return []


def certificate_bytes(doc: dict[str, Any], signer: RecordSigner | None = None) -> bytes:
    """`doc`, sealed, as stored: JSON, keys sorted."""
    return orjson.dumps(seal(doc, signer), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_certificate(doc: dict[str, Any], path: Path, *, signer: RecordSigner | None = None) -> Path:
    """Write `doc`, sealed, as `path` (JSON, keys sorted): to a temporary name, then renamed, so a reader
    sees a whole certificate or none. A certificate of an earlier restore into the same target is replaced:
    it describes what the target held before this restore."""
    data = certificate_bytes(doc, signer)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
    return path


def read_certificate(path: Path) -> dict[str, Any]:
    """The certificate at `path`; ConfigError (exit 2) when it is not one this ledgerdr reads."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the certificate {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ConfigError(f"{path} is not a ledgerdr restore certificate (kind {KIND!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"certificate {path} has format_version {doc.get('format_version')!r}; this ledgerdr "
                          f"reads {FORMAT_VERSION}")
    return doc


# ------------------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class CertificateProblem:
    field: str  # the certificate's field that does not hold, dotted (block_range.last, ledger_digest.digest…)
    detail: str
    exit_code: ExitCode = ExitCode.VERIFICATION

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


@dataclass
class CertificateCheck:
    certificate: str
    repository: str
    checked: list[str] = field(default_factory=list)  # the fields found to hold
    problems: list[CertificateProblem] = field(default_factory=list)
    external: dict[str, Any] | None = None  # the outside digest's check (digests.DigestCheck.to_json)
    target_state_digest: str | None = None  # recomputed from the live target (--check-target)

    @property
    def exit_code(self) -> ExitCode:
        return max((p.exit_code for p in self.problems), default=ExitCode.OK,
                   key=lambda code: (code == ExitCode.VERIFICATION, code))

    def to_json(self) -> dict[str, Any]:
        return {"certificate": self.certificate, "repository": self.repository, "ok": not self.problems,
                "checked": self.checked, "external_digest": self.external,
                "target_state_digest": self.target_state_digest,
                "problems": [{"field": p.field, "detail": p.detail, "exit_code": int(p.exit_code)}
                             for p in self.problems]}


def check_certificate(doc: dict[str, Any], location: Location, *, name: str = "certificate",
                      external: LedgerDigest | None = None, check_target: bool = False,
                      trusted: TrustedKeys | None = None) -> CertificateCheck:
    """Re-check every claim of `doc` against the repository at `location`: the block range and the last
    block's hash, the ledger digest folded again from the blocks (and its proof from the last block's hash),
    strand and lineage, and the journal's state digest recomputed from the blocks (which the target's must
    equal); with `external`, that the repository's blocks fold to it too and that it covers the certificate's
    last block; with `check_target`, the live target's state digest. Never raises on a failed claim: each is
    a CertificateProblem naming the field."""
    check = CertificateCheck(name, location.url)
    check.problems += check_seal(doc, trusted)
    if doc.get("verdict") != "verified":
        check.problems.append(CertificateProblem("verdict", f"is {doc.get('verdict')!r}, not 'verified'"))
    span = doc.get("block_range") or {}
    last = span.get("last")
    if not isinstance(last, int) or last < 0:
        check.problems.append(CertificateProblem("block_range.last", f"{last!r} is not a block sequence number"))
        return check
    asked = {last} | ({external.tip.sequence_no} if external else set())
    evidence = verify_up_to(location, max(asked), asked)
    check.problems += [CertificateProblem("repository", str(p)) for p in evidence.problems]
    _check_blocks(doc, location, evidence, last, check)
    _check_lineage(doc, location, evidence, last, check)
    _check_state(doc, location, last, check)
    if external is not None:
        _check_external(external, evidence, last, check)
    if check_target:
        _check_live_target(doc, check)
    return check


def _claim(check: CertificateCheck, name: str, claimed: Any, actual: Any, detail: str,
           code: ExitCode = ExitCode.VERIFICATION) -> None:
    if claimed == actual:
        check.checked.append(name)
    else:
        check.problems.append(CertificateProblem(name, f"says {claimed!r}, {detail} {actual!r}", code))


def _check_blocks(doc: dict[str, Any], location: Location, evidence: VerifyReport, last: int,
                  check: CertificateCheck) -> None:
    span = doc["block_range"]
    captured = evidence.digests_at.get(last)
    if captured is None:
        tip = evidence.tip_address or "no block"
        problem = (f"the repository's chain does not run from block 0 to block {last} (it holds "
                   f"{evidence.first_address} .. {tip}): the block and the digest at it cannot be checked")
        check.problems.append(CertificateProblem("block_range.last", problem, ExitCode.RESTORE))
        return
    digest, block_hash, _ = captured
    _claim(check, "block_range.first", span.get("first"), first_block(location, evidence),
           "the repository's first block is")
    _claim(check, "block_range.last_block_hash", span.get("last_block_hash"), _b64(block_hash),
           f"the repository's block {last} (block_range.last) has hash")
    ledger = doc.get("ledger_digest") or {}
    _claim(check, "ledger_digest.digest", ledger.get("digest"), _b64(digest),
           f"the ledger digest at block {last} folded from the repository's blocks is")
    strand = parse_address(evidence.first_address).strand_id if evidence.first_address else None
    _claim(check, "ledger_digest.tip_address", ledger.get("tip_address"), str(BlockAddress(strand or "", last)),
           "the last block's address is")
    try:
        folded = _b64(fold_proof(base64.b64decode(span.get("last_block_hash") or ""),
                                 [base64.b64decode(h) for h in ledger.get("proof") or []]))
    except (ValueError, TypeError):
        folded = None
    _claim(check, "ledger_digest.proof", ledger.get("digest"), folded,
           "the proof folded from block_range.last_block_hash gives")


def _check_lineage(doc: dict[str, Any], location: Location, evidence: VerifyReport, last: int,
                   check: CertificateCheck) -> None:
    source = doc.get("source") or {}
    strand = parse_address(evidence.first_address).strand_id if evidence.first_address else None
    _claim(check, "source.strand_id", source.get("strand_id"), strand, "the repository's blocks are strand")
    _claim(check, "source.lineage", source.get("lineage"), lineage_at(location, last),
           f"the repository's window record holding block {last} has lineage")


def _check_state(doc: dict[str, Any], location: Location, last: int, check: CertificateCheck) -> None:
    """The journal's state digest of blocks ..last, recomputed from the repository; the certificate's journal
    and target state digests must both equal it (a verified restore found them equal)."""
    try:
        recomputed = journal_state_digest(location, last)
    except LedgerDRError as exc:
        check.problems.append(CertificateProblem("journal_state_digest", f"cannot be recomputed from the "
                                                 f"repository: {exc}", exc.exit_code))
        return
    what = f"the state digest of the journal's blocks up to {last} (block_range.last) is"
    _claim(check, "journal_state_digest", doc.get("journal_state_digest"), recomputed, what)
    _claim(check, "target.state_digest", (doc.get("target") or {}).get("state_digest"), recomputed, what)


def journal_state_digest(location: Location, last: int) -> str:
    """CONTRACTS §8's state digest of the repository's journal up to block `last`, planned as `restore
    --until-block last` plans it (from the newest snapshot before it, whose parts are verified by their
    revision hashes and tip hash), each unit fetched and verified as a restore worker does it (the C
    verifier's rows where it reads the unit, restore/rows.py; else restore/units.py). Raises what planning
    and verification raise."""
    from .restore.plan import plan_restore
    from .restore.rows import load_rows
    from .restore.run import split_units
    from .restore.units import journal_leaves, load_unit, read_journal_leaves, result_of
    from .targets.ddl import DdlState
    from .targets.digest import PackedJournal, digest_of_packed_journal

    plan = plan_restore(location, until_block=last)
    journals: list[PackedJournal] = []
    redactions: list = []
    events: list = []
    for unit in split_units(plan.units):
        rows = load_rows(location.store, unit)
        if rows is not None:
            result, leaves = rows.result(), rows.leaves()
        else:
            content = load_unit(location.store, unit)
            result, leaves = result_of(content), journal_leaves(content)
        journal, unit_redactions = read_journal_leaves(leaves, unit)
        journals.append(journal)
        redactions += unit_redactions
        events += result.ddl_events()
    return digest_of_packed_journal(journals, redactions, DdlState().apply_all(events).dropped()).digest


def _check_external(external: LedgerDigest, evidence: VerifyReport, last: int, check: CertificateCheck) -> None:
    outcome = check_digest(evidence, external)
    check.external = outcome.to_json()
    if outcome.problem is not None:
        check.problems.append(CertificateProblem("--digest", outcome.detail, outcome.exit_code))
    elif external.tip.sequence_no < last:
        check.problems.append(CertificateProblem("--digest", f"the digest covers blocks up to "
                                                 f"{external.tip.sequence_no}, before the certificate's last "
                                                 f"block {last}: it cannot vouch for blocks after it",
                                                 ExitCode.RESTORE))
    else:
        check.checked.append("--digest")


def _check_live_target(doc: dict[str, Any], check: CertificateCheck) -> None:
    """The target's state digest now, recomputed from what it stores. A promoted ledger that took writes since
    differs, and says so; a target that cannot be opened is a storage problem."""
    from .targets import open_target
    from .targets.digest import digest_of_target

    target_doc = doc.get("target") or {}
    url = str(target_doc.get("url"))
    path = embedded_path(url)
    if path is not None and not path.is_file():  # opening it would create an empty ledger
        check.problems.append(CertificateProblem("target.url", f"no ledger at {path}", ExitCode.STORAGE))
        return
    try:
        target = open_target(url)
        try:
            check.target_state_digest = digest_of_target(target).digest
        finally:
            target.close()
    except LedgerDRError as exc:
        check.problems.append(CertificateProblem("target.url", f"cannot be opened: {exc}", ExitCode.STORAGE))
        return
    _claim(check, "target (live)", target_doc.get("state_digest"), check.target_state_digest,
           "the target's state digest, recomputed now, is")


def issue_certificate(report: Any, location: Location, target_url: str, *, path: Path | None, state_dir: Path,
                      operation: str = "restore", promotion: dict[str, Any] | None = None,
                      signer: RecordSigner | None = None) -> Path:
    """Build and write the certificate of a verified restore or promote; returns where it was written
    (`path`, else `default_path`)."""
    doc = build_certificate(report, location, operation=operation, promotion=promotion)
    return write_certificate(doc, path or default_path(target_url, state_dir, report.restore_id), signer=signer)
