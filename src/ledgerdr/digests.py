"""Ledger digests held outside a repository: reading them, and checking a repository's blocks against one.

QLDB users kept digests outside the ledger (`GetDigest`, saved from the console or the CLI) to prove later
that the journal was not rewritten. `verify --digest` and `verify --certificate --digest` take such a digest
and prove that the repository's chain reaches a block whose ledger digest (the Merkle root over the block
hashes 0..tip, journal/proofs.py) equals it.

Accepted forms (`parse_digest`), inline or in a file named by the argument:
- QLDB's GetDigest response as JSON (`aws qldb get-digest`): `{"Digest": "<base64>", "DigestTipAddress":
  {"IonText": "{strandId:\\"…\\",sequenceNo:N}"}}`, or as Ion (the digest may then be a blob);
- the file the QLDB console saves: `{"digest": "<base64>", "digestTipAddress": "{strandId:…,sequenceNo:N}", …}`;
- `ledgerdr ledger digest FILE --json`: `{"digest": "<base64>", "digest_tip_address": {"strandId": …, "sequenceNo": N}}`;
- the base64 digest alone, with the tip address given apart (`--digest-tip-address`, QLDB's Ion text).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from .errors import ConfigError, ExitCode
from .journal.model import BlockAddress
from .journal.verify import Problem, VerifyReport

DIGEST_BYTES = 32


@dataclass(frozen=True)
class LedgerDigest:
    """A ledger digest and the address of the block it covers up to (QLDB's `DigestTipAddress`)."""

    digest: bytes
    tip: BlockAddress

    @property
    def text(self) -> str:
        return base64.b64encode(self.digest).decode()

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.text, "tip_address": str(self.tip), "tip_block": self.tip.sequence_no}


def parse_address(text: Any, what: str = "digest tip address") -> BlockAddress:
    """A block address from QLDB's Ion text (`{strandId:"…",sequenceNo:N}`), an `{"IonText": …}` holder or a
    struct. Raises ConfigError naming `what`."""
    try:
        if isinstance(text, Mapping) and len(text) == 1 and _key(next(iter(text))) == "iontext":
            text = next(iter(text.values()))
        value = simpleion.loads(text) if isinstance(text, str) else text
        return BlockAddress.from_ion(value)
    except Exception as exc:  # amazon.ion and the address reader raise several types on bad input
        raise ConfigError(f"the {what} {text!r} is not a block address ({exc})",
                          hint='QLDB prints it as {strandId:"…",sequenceNo:N}') from None


def parse_digest(value: str, tip_address: str | None = None) -> LedgerDigest:
    """The digest `value` gives (one of the forms in this module's docstring, or a file holding one), with
    `tip_address` when `value` is the base64 digest alone. Raises ConfigError (exit 2) saying what is wrong."""
    text = _read_if_file(value).strip()
    if text.startswith(("{", "$ion")):
        fields = _fields(text)
        digest, tip = fields.get("digest"), fields.get("digesttipaddress")
        if tip_address is not None:
            raise ConfigError("--digest-tip-address is for a bare base64 digest; this digest names its own tip")
    else:
        digest, tip = text, tip_address
    if tip is None:
        raise ConfigError("the digest has no tip address: a ledger digest covers the blocks up to one block",
                          hint="pass QLDB's GetDigest output (it holds both), or --digest-tip-address "
                               "'{strandId:\"…\",sequenceNo:N}'")
    return LedgerDigest(_digest_bytes(digest), parse_address(tip))


def _read_if_file(value: str) -> str:
    if value.lstrip().startswith(("{", "$ion")) or len(value) > 1024:
        return value
    path = Path(value)
    try:
        return path.read_text() if path.is_file() else value
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the digest file {path}: {exc}") from None


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def _fields(text: str) -> dict[str, Any]:
    try:
        value = simpleion.loads(text)
    except Exception as exc:  # the Ion reader raises several types on bad input
        raise ConfigError(f"the digest is neither JSON nor Ion ({exc})") from None
    if not isinstance(value, Mapping):
        raise ConfigError("the digest must be a structure with Digest and DigestTipAddress")
    return {_key(str(name)): field for name, field in value.items()}


def _digest_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        try:
            raw = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"the digest {value!r} is not base64") from None
    if len(raw) != DIGEST_BYTES:
        raise ConfigError(f"the digest has {len(raw)} bytes, a ledger digest has {DIGEST_BYTES} (SHA-256)")
    return raw


@dataclass(frozen=True)
class DigestCheck:
    """How a repository's blocks compare with a digest held outside it (`check_digest`)."""

    external: LedgerDigest
    outcome: str  # match | mismatch | beyond_tip | unreachable
    detail: str
    recomputed: str | None = None  # base64 digest at the tip block, from the repository's blocks

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == "match":
            return ExitCode.OK
        return ExitCode.VERIFICATION if self.outcome == "mismatch" else ExitCode.RESTORE

    @property
    def problem(self) -> Problem | None:
        if self.outcome == "match":
            return None
        return Problem(f"digest_{self.outcome}", None, str(self.external.tip), self.detail)

    def to_json(self) -> dict[str, Any]:
        return {**self.external.to_json(), "outcome": self.outcome, "detail": self.detail,
                "recomputed": self.recomputed}


def check_digest(report: VerifyReport, external: LedgerDigest) -> DigestCheck:
    """Compare `external` with the digest the verification in `report` recomputed at its tip block (it must
    have run with `digest_at=[external.tip.sequence_no]`). Outcomes: `match`; `mismatch` (another strand, or
    another digest at that block: the repository is not the ledger the digest vouches for, exit 4);
    `beyond_tip` (the repository's chain ends before the tip block, exit 7); `unreachable` (the chain does
    not run from block 0 to it, e.g. raw exports pruned: nothing to fold, exit 7)."""
    tip = external.tip
    first = parse_address(report.first_address, "first block address") if report.first_address else None
    last = parse_address(report.tip_address, "tip address") if report.tip_address else None
    if first is not None and first.strand_id != tip.strand_id:
        return DigestCheck(external, "mismatch", f"the digest is of strand {tip.strand_id}, the repository's "
                           f"blocks are strand {first.strand_id}")
    if last is None or tip.sequence_no > last.sequence_no:
        held = "no block" if last is None else f"blocks up to {last.sequence_no}"
        return DigestCheck(external, "beyond_tip", f"the digest covers blocks up to {tip.sequence_no}, the "
                           f"repository holds {held}: it cannot prove it (back up and verify again later)")
    captured = report.digests_at.get(tip.sequence_no)
    if captured is None:
        return DigestCheck(external, "unreachable", f"the repository's chain does not run from block 0 to block "
                           f"{tip.sequence_no} without a break (starts at {report.first_address}), so the digest "
                           "cannot be recomputed from its blocks")
    recomputed = base64.b64encode(captured[0]).decode()
    if captured[0] != external.digest:
        return DigestCheck(external, "mismatch", f"the ledger digest at block {tip} recomputed from the "
                           f"repository's blocks is {recomputed}, the digest held outside is {external.text}",
                           recomputed)
    return DigestCheck(external, "match", f"the repository's blocks 0..{tip.sequence_no} fold to the digest",
                       recomputed)
