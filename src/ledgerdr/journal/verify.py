"""Verification of journal blocks, chains and whole exports (reference §3.5–3.7, CONTRACTS §4, §6).

`BlockChecker` recomputes one block's hashes; `ChainChecker` links blocks into one strand (gaps,
overlaps hash-for-hash, broken links); `verify_location` walks every export under a location as
one chain, object by object, so memory does not grow with the export. Every finding is a `Problem`
naming the object key and the block address; nothing here raises on bad input.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .codecs import DecodeError, ExportFormat, read_blocks
from .hashing import dot, ion_hash, merkle_root
from .model import Block, RevisionKind, revision_kind
from .proofs import DigestAccumulator

_NULL_HASH = ion_hash(None)


@dataclass(frozen=True)
class Problem:
    kind: str
    key: str | None
    block_address: str | None
    detail: str

    def __str__(self) -> str:
        where = " ".join(p for p in (self.key and f"object {self.key}", self.block_address and
                                     f"block {self.block_address}") if p)
        return f"{self.kind}: {self.detail}" + (f" ({where})" if where else "")


@dataclass
class VerifyReport:
    blocks: int = 0
    revisions: int = 0
    system_entries: int = 0
    revisions_fully_verified: int = 0
    revisions_chain_only: dict[str, int] = field(default_factory=dict)
    first_address: str | None = None
    tip_address: str | None = None
    tip_hash: str | None = None
    exports: int = 0
    objects: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    digest: str | None = None  # digest at the tip, when the chain starts at the genesis block

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


# ---------------------------------------------------------------------------------------- one block


class BlockChecker:
    """Recomputes every hash of a block. `json` marks blocks read from a JSON export, whose `data`
    may have lost Ion types: a mismatch there is counted `json_type_lost`, not a problem."""

    def __init__(self, report: VerifyReport, *, strict: bool = False, check_revisions: bool = True) -> None:
        self.report = report
        self.strict = strict
        self.check_revisions = check_revisions
        self.chain_only: Counter[str] = Counter()

    def check(self, block: Block, key: str | None, json: bool, problems: list[Problem]) -> None:
        address = str(block.address)

        def problem(kind: str, detail: str) -> None:
            problems.append(Problem(kind, key, address, detail))

        problem.where = f"object {key}, block {address}"  # type: ignore[attr-defined]

        entries = block.entries_hash_list
        entry_set = set(entries)
        info = block.transaction_info
        if info is not None and self.check_revisions:
            if ion_hash(info) not in entry_set:
                problem("transaction_info_hash", "IonHash(transactionInfo) is not in entriesHashList")
            self._check_statements(info, address, key, problem)
        if self.check_revisions and block.redaction_info is not None and ion_hash(block.redaction_info) not in entry_set:
            problem("redaction_info_hash", "IonHash(redactionInfo) is not in entriesHashList")
        revisions = block.revisions
        if revisions:
            hashes = []
            for revision in revisions:
                hashes.append(bytes(revision["hash"]))
                self._check_revision(revision, json, problem)
            if merkle_root(hashes) not in entry_set:
                problem("revisions_root", "Merkle root of the revision hashes is not in entriesHashList")
        if merkle_root(entries) != block.entries_hash:
            problem("entries_hash", "entriesHash is not the Merkle root of entriesHashList")
        if dot(block.entries_hash, block.previous_block_hash) != block.block_hash:
            problem("block_hash", "blockHash != dot(entriesHash, previousBlockHash)")

    def _check_statements(self, info: Mapping[str, Any], address: str, key: str | None, problem) -> None:
        for statement in info.get("statements") or ():
            digest = statement.get("statementDigest")
            if digest is None or ion_hash(statement["statement"]) == bytes(digest):
                continue
            text = str(statement["statement"])
            if "?" in text and not self.strict:
                # QLDB never said whether parameters enter the digest (reference §2.2).
                self.report.warnings.append(f"statement digest rule unknown for a statement with parameters "
                                            f"(object {key}, block {address})")
            else:
                problem("statement_digest", f"statementDigest mismatch for {text[:80]!r}")

    def _check_revision(self, revision: Mapping[str, Any], json: bool, problem) -> None:
        kind = revision_kind(revision)
        if kind is RevisionKind.SYSTEM:
            self.report.system_entries += 1
            return
        self.report.revisions += 1
        if not self.check_revisions:
            self.chain_only["not_checked"] += 1
            return
        stated = bytes(revision["hash"])
        meta_hash = ion_hash(revision["metadata"])
        if kind is RevisionKind.DATA:
            if dot(meta_hash, ion_hash(revision["data"])) == stated:
                self.report.revisions_fully_verified += 1
            elif json:
                self.chain_only["json_type_lost"] += 1
                if self.chain_only["json_type_lost"] <= 100:
                    self.report.warnings.append(f"json_type_lost: revision {_doc(revision)} does not recompute "
                                                f"from its JSON data ({problem.where})")
            else:
                problem("revision_hash", f"revision {_doc(revision)}: hash does not recompute from data+metadata")
        elif kind is RevisionKind.REDACTED:
            if dot(meta_hash, bytes(revision["dataHash"])) == stated:
                self.chain_only["redacted"] += 1
            else:
                problem("revision_hash", f"redacted revision {_doc(revision)}: hash != dot(metadata, dataHash)")
        elif stated in (meta_hash, dot(meta_hash, _NULL_HASH)):
            self.report.revisions_fully_verified += 1
        elif self.strict:
            problem("revision_hash", f"deleted revision {_doc(revision)}: hash fits no known rule")
        else:
            self.chain_only["rule_unknown"] += 1


def _doc(revision: Mapping[str, Any]) -> str:
    meta = revision.get("metadata") or {}
    return f"{meta.get('id')} v{meta.get('version')}"


# ---------------------------------------------------------------------------------------- the chain


class ChainChecker:
    """Links blocks of one strand, in sequence order, across objects and exports.

    Blocks at or below the last sequence number seen are overlaps: they must repeat the earlier
    block hash-for-hash and are then skipped. `keep` says which sequence numbers will be seen
    again (from the objects' declared ranges), so only those hashes are remembered.
    """

    def __init__(self, report: VerifyReport, blocks: BlockChecker, keep: Callable[[int], bool] = lambda s: False):
        self.report = report
        self.blocks = blocks
        self.keep = keep
        self.strand_id: str | None = None
        self.last_seq: int | None = None
        self.last_hash: bytes | None = None
        self.remembered: dict[int, bytes] = {}
        self.digest = DigestAccumulator()
        self.digest_valid = True
        self.first_seq: int | None = None
        self.first_previous_hash: bytes | None = None
        self.last_block_time: str | None = None

    def feed(self, block: Block, key: str | None, json: bool, problems: list[Problem]) -> None:
        address, seq = str(block.address), block.sequence_no
        if self.strand_id is None:
            self.strand_id = block.strand_id
            self.report.first_address = address
            self.first_seq, self.first_previous_hash = seq, block.previous_block_hash
            if seq == 0 and block.previous_block_hash:
                problems.append(Problem("chain_broken", key, address, "genesis block has a previousBlockHash"))
            self.digest_valid = seq == 0
        elif block.strand_id != self.strand_id:
            problems.append(Problem("strand_mismatch", key, address, f"expected strand {self.strand_id}"))
            return
        if self.last_seq is not None and seq <= self.last_seq:
            self._overlap(block, key, problems)
            return
        if self.last_seq is not None:
            if seq > self.last_seq + 1:
                problems.append(Problem("gap", key, address,
                                        f"blocks {self.last_seq + 1}..{seq - 1} are missing"))
                self.digest_valid = False
            elif block.previous_block_hash != self.last_hash:
                problems.append(Problem("chain_broken", key, address,
                                        "previousBlockHash does not equal the prior block's blockHash"))
        self.blocks.check(block, key, json, problems)
        self.report.blocks += 1
        self.last_seq, self.last_hash = seq, block.block_hash
        if self.keep(seq):
            self.remembered[seq] = self.last_hash
        if self.digest_valid:
            self.digest.add(self.last_hash)
        self.report.tip_address = address
        self.report.tip_hash = _b64(self.last_hash)
        self.last_block_time = _time_text(block.value.get("blockTimestamp"))

    def _overlap(self, block: Block, key: str | None, problems: list[Problem]) -> None:
        earlier = self.remembered.get(block.sequence_no)
        if earlier is None and block.sequence_no == self.last_seq:
            earlier = self.last_hash
        if earlier is None:
            problems.append(Problem("overlap", key, str(block.address), "block repeats an earlier sequence "
                                    "number that its object's name did not declare"))
        elif earlier != block.block_hash:
            problems.append(Problem("overlap_mismatch", key, str(block.address),
                                    "block differs from the earlier copy of the same sequence number (fork)"))


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _time_text(value: Any) -> str | None:
    """ISO-8601 UTC with milliseconds, from an Ion timestamp or (JSON chain mode) its text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


# ---------------------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class ObjectRef:
    """One data object to verify: where to read it, what it should hold."""

    key: str  # the key as the manifest names it (for messages)
    resolved_key: str | None  # where it was found; None = missing
    fmt: ExportFormat
    first: int | None = None  # range declared by the name
    last: int | None = None
    sha256: str | None = None  # expected checksum, when a window record gives one


def verify_objects(
    read: Callable[[str], bytes],
    objects: Iterable[ObjectRef],
    report: VerifyReport,
    *,
    strict: bool = False,
    check_revisions: bool = True,
    keep: Callable[[int], bool] = lambda s: False,
    on_object: Callable[[ObjectRef, int], None] | None = None,
) -> ChainChecker:
    """Verify objects in the order given as one chain, adding to `report`."""
    block_checker = BlockChecker(report, strict=strict, check_revisions=check_revisions)
    chain = ChainChecker(report, block_checker, keep)
    for ref in objects:
        report.objects += 1
        blocks_before = report.blocks
        verify_object(read, ref, chain, report.problems)
        if on_object:
            on_object(ref, report.blocks - blocks_before)
    report.revisions_chain_only = dict(block_checker.chain_only)
    if chain.digest_valid and chain.digest.count:
        report.digest = _b64(chain.digest.digest())
    return chain


def verify_object(read: Callable[[str], bytes], ref: ObjectRef, chain: ChainChecker, problems: list[Problem]) -> None:
    declared = f"{{sequenceNo:{ref.first}..{ref.last}}}" if ref.first is not None else None
    if ref.resolved_key is None:
        problems.append(Problem("missing_object", ref.key, declared, "object named in the manifest does not exist"))
        return
    try:
        data = read(ref.resolved_key)
    except Exception as exc:  # a store error: name it, keep going with the next object
        problems.append(Problem("unreadable_object", ref.key, declared, str(exc)))
        return
    if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256:
        problems.append(Problem("checksum_mismatch", ref.key, declared,
                                "object bytes do not match the sha256 recorded for them"))
    mismatch = _format_mismatch(data, ref.fmt)
    if mismatch:
        problems.append(Problem("wrong_format", ref.key, declared, mismatch))
        return
    json = ref.fmt is ExportFormat.JSON
    first = last = None
    try:
        for block in read_blocks(data, ref.fmt, chain_only=not chain.blocks.check_revisions):
            if first is None:
                first = block.sequence_no
            last = block.sequence_no
            chain.feed(block, ref.key, json, problems)
    except DecodeError as exc:
        after = f"after {{sequenceNo:{last}}}" if last is not None else declared
        problems.append(Problem("unreadable_object", ref.key, after, f"cannot decode: {exc}"))
        return
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append(Problem("malformed_block", ref.key, f"after {{sequenceNo:{last}}}",
                                f"block does not follow QLDB's schema: {exc!r}"))
        return
    if ref.first is not None and (first, last) != (ref.first, ref.last):
        problems.append(Problem("range_mismatch", ref.key, declared,
                                f"object holds blocks {first}..{last}, its name declares {ref.first}..{ref.last}"))


_ION_VERSION_MARKER = b"\xe0\x01\x00\xea"


def _format_mismatch(data: bytes, fmt: ExportFormat) -> str | None:
    """The manifest's outputFormat must describe the bytes (Ion's reader would accept text as binary)."""
    binary = data.startswith(_ION_VERSION_MARKER)
    if fmt is ExportFormat.ION_BINARY and data and not binary:
        return "manifest says ION_BINARY but the object is not Ion binary"
    if fmt is not ExportFormat.ION_BINARY and binary:
        return f"manifest says {fmt.value} but the object is Ion binary"
    return None
