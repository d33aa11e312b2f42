"""Verification of journal blocks, chains and whole exports (reference §3.5–3.7, CONTRACTS §4, §6).

`BlockChecker` recomputes one block's hashes; `ChainChecker` links blocks into one strand (gaps,
overlaps hash-for-hash, broken links); `verify_location` walks every export under a location as
one chain, object by object, so memory does not grow with the export. Every finding is a `Problem`
naming the object key and the block address; nothing here raises on bad input.
"""

from __future__ import annotations

import base64
import hashlib
from binascii import a2b_base64
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from amazon.ion.simpleion import IonPyValueModel

from .. import native
from .codecs import DecodeError, ExportFormat, json_chain_block, json_lines, read_blocks
from .hashing import dot, ion_hash, merkle_root
from .ionload import load_value
from .model import Block, BlockAddress
from .proofs import CapturingAccumulator, DigestAccumulator

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
    orphans: list[dict[str, Any]] = field(default_factory=list)  # {key, age_seconds, reason}: attempts no record names
    # The digest at each block asked for (`digest_at`): {seq: (digest, block hash, proof)}, raw bytes. Not
    # part of the CONTRACTS §6 report: `verify --digest` and the restore certificate print what they use.
    digests_at: dict[int, tuple[bytes, bytes, list[bytes]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["digests_at"]
        out["ok"] = self.ok
        return out


# ---------------------------------------------------------------------------------------- one block


class BlockChecker:
    """Recomputes every hash of a block. `json` marks blocks read from a JSON export, whose `data`
    may have lost Ion types: a mismatch there is counted `json_type_lost`, not a problem.

    Per-block bookkeeping is kept off the hot path: a block's address is formatted only when a
    problem or warning names it (formatting it for every block cost as much as a chain-only check)."""

    def __init__(self, report: VerifyReport, *, strict: bool = False, check_revisions: bool = True) -> None:
        self.report = report
        self.strict = strict
        self.check_revisions = check_revisions
        self.chain_only: Counter[str] = Counter()

    def check(self, block: Block, key: str | None, json: bool, problems: list[Problem]) -> None:
        value = block.value
        get = value.get
        entries = [bytes(h) for h in get("entriesHashList") or ()]
        entry_set = set(entries)
        if self.check_revisions:
            _check_shape(value, block, key, problems)
            info = get("transactionInfo")
            if info is not None:
                if ion_hash(info) not in entry_set:
                    _problem(problems, "transaction_info_hash", key, block,
                             "IonHash(transactionInfo) is not in entriesHashList")
                self._check_statements(info, block, key, problems)
            redaction = get("redactionInfo")
            if redaction is not None and ion_hash(redaction) not in entry_set:
                _problem(problems, "redaction_info_hash", key, block, "IonHash(redactionInfo) is not in entriesHashList")
        revisions = get("revisions")
        if revisions:
            hashes = [bytes(revision["hash"]) for revision in revisions]
            if self.check_revisions:
                for revision, stated in zip(revisions, hashes, strict=True):
                    self._check_revision(revision, stated, json, block, key, problems)
            else:
                system = sum(1 for revision in revisions if "metadata" not in revision)
                self.report.system_entries += system
                self.report.revisions += len(hashes) - system
                self.chain_only["not_checked"] += len(hashes) - system
            if merkle_root(hashes) not in entry_set:
                _problem(problems, "revisions_root", key, block,
                         "Merkle root of the revision hashes is not in entriesHashList")
        entries_hash = bytes(value["entriesHash"])
        if merkle_root(entries) != entries_hash:
            _problem(problems, "entries_hash", key, block, "entriesHash is not the Merkle root of entriesHashList")
        if dot(entries_hash, block.previous_block_hash) != bytes(value["blockHash"]):
            _problem(problems, "block_hash", key, block, "blockHash != dot(entriesHash, previousBlockHash)")

    def _check_statements(self, info: Mapping[str, Any], block: Block, key: str | None,
                          problems: list[Problem]) -> None:
        for statement in info.get("statements") or ():
            digest = statement.get("statementDigest")
            if digest is None or ion_hash(statement["statement"]) == bytes(digest):
                continue
            text = str(statement["statement"])
            if "?" in text and not self.strict:
                # QLDB never said whether parameters enter the digest (reference §2.2).
                self.report.warnings.append(f"statement digest rule unknown for a statement with parameters "
                                            f"(object {key}, block {block.address})")
            else:
                _problem(problems, "statement_digest", key, block, f"statementDigest mismatch for {text[:80]!r}")

    def _check_revision(self, revision: Mapping[str, Any], stated: bytes, json: bool, block: Block,
                        key: str | None, problems: list[Problem]) -> None:
        # revision_kind, inlined: this runs once per revision
        if "metadata" not in revision:
            self.report.system_entries += 1
            return
        report = self.report
        report.revisions += 1
        meta_hash = ion_hash(revision["metadata"])
        if "data" in revision:
            if dot(meta_hash, ion_hash(revision["data"])) == stated:
                report.revisions_fully_verified += 1
            elif json:
                self.chain_only["json_type_lost"] += 1
                if self.chain_only["json_type_lost"] <= 100:
                    report.warnings.append(f"json_type_lost: revision {_doc(revision)} does not recompute "
                                           f"from its JSON data (object {key}, block {block.address})")
            else:
                _problem(problems, "revision_hash", key, block,
                         f"revision {_doc(revision)}: hash does not recompute from data+metadata")
        elif "dataHash" in revision:
            if dot(meta_hash, bytes(revision["dataHash"])) == stated:
                self.chain_only["redacted"] += 1
            else:
                _problem(problems, "revision_hash", key, block,
                         f"redacted revision {_doc(revision)}: hash != dot(metadata, dataHash)")
        elif stated == meta_hash or stated == dot(meta_hash, _NULL_HASH):
            report.revisions_fully_verified += 1
        elif self.strict:
            _problem(problems, "revision_hash", key, block, f"deleted revision {_doc(revision)}: hash fits no known rule")
        else:
            self.chain_only["rule_unknown"] += 1


# QLDB's block fields (reference §1.3). No hash covers the field names, `transactionId` or a revision's copy of
# the block address, so a flipped byte there passes every hash check: for exports without window records (whose
# sha256 catches any flip) these shape checks, made by a full verify, are what is left to catch it.
_BLOCK_FIELDS = frozenset({"blockAddress", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
                           "previousBlockHash", "entriesHashList", "transactionInfo", "revisions", "redactionInfo"})
_UNREAD_FIELDS = frozenset({"transactionId"})  # required, and read by no hash check (which name the others)


def _check_shape(value: Mapping[str, Any], block: Block, key: str | None, problems: list[Problem]) -> None:
    names = value.keys()
    if not (_UNREAD_FIELDS <= names and names <= _BLOCK_FIELDS):
        missing, unknown = sorted(_UNREAD_FIELDS - names), sorted(set(names) - _BLOCK_FIELDS)
        _problem(problems, "malformed_block", key, block, f"block fields do not follow QLDB's schema: missing "
                 f"{missing}, unknown {unknown}")
    address = value["blockAddress"]
    for revision in value.get("revisions") or ():
        copy = revision.get("blockAddress")
        if copy is not None and (str(copy.get("strandId")) != str(address["strandId"])
                                 or copy.get("sequenceNo") != address["sequenceNo"]):
            _problem(problems, "malformed_block", key, block, f"revision {_doc(revision)} names block address "
                     f"{{strandId:{copy.get('strandId')},sequenceNo:{copy.get('sequenceNo')}}}, not its block's")


def _problem(problems: list[Problem], kind: str, key: str | None, block: Block, detail: str) -> None:
    problems.append(Problem(kind, key, str(block.address), detail))


def _doc(revision: Mapping[str, Any]) -> str:
    meta = revision.get("metadata") or {}
    return f"{meta.get('id')} v{meta.get('version')}"


# ---------------------------------------------------------------------------------------- the chain


class ChainChecker:
    """Links blocks of one strand, in sequence order, across objects and exports.

    Blocks at or below the last sequence number seen are overlaps: they must repeat the earlier
    block hash-for-hash and are then skipped. `keep` says which sequence numbers will be seen
    again (from the objects' declared ranges), so only those hashes are remembered.

    The report's tip (`tip_address`, `tip_hash`) and `last_block_time` are derived from the last
    block fed, once per object (`sync_report`) or on reading, not formatted for every block.
    """

    def __init__(self, report: VerifyReport, blocks: BlockChecker, keep: Callable[[int], bool] = lambda s: False,
                 *, fuse_json: bool = True, use_native: bool = True):
        self.report = report
        self.blocks = blocks
        self.keep = keep
        self.fuse_json = fuse_json  # chain-only JSON objects through feed_json_lines (False: block by block)
        self.use_native = use_native  # Ion binary objects through the C verifier when it is built (feed_native)
        self.strand_id: str | None = None
        self.last_seq: int | None = None
        self.last_hash: bytes | None = None
        self.remembered: dict[int, bytes] = {}
        self.digest = DigestAccumulator()
        self.digest_valid = True
        self.first_seq: int | None = None
        self.first_previous_hash: bytes | None = None
        self._tip: Block | _SegmentTip | None = None  # the last block linked into the chain
        self._synced: Block | _SegmentTip | None = None

    @property
    def last_block_time(self) -> str | None:
        return None if self._tip is None else _time_text(self._tip.value.get("blockTimestamp"))

    def sync_report(self) -> None:
        """Write the tip into the report (verify_object calls it after each object)."""
        tip = self._tip
        if tip is not None and tip is not self._synced:
            self.report.tip_address = str(tip.address)
            self.report.tip_hash = _b64(self.last_hash or b"")
            self._synced = tip

    def feed(self, block: Block, key: str | None, json: bool, problems: list[Problem]) -> None:
        address = block.value["blockAddress"]
        seq, strand_id = int(address["sequenceNo"]), str(address["strandId"])
        previous = block.previous_block_hash
        if self.strand_id is None:
            self.strand_id = strand_id
            self.report.first_address = str(block.address)
            self.first_seq, self.first_previous_hash = seq, previous
            if seq == 0 and previous:
                _problem(problems, "chain_broken", key, block, "genesis block has a previousBlockHash")
            self.digest_valid = seq == 0
        elif strand_id != self.strand_id:
            _problem(problems, "strand_mismatch", key, block, f"expected strand {self.strand_id}")
            return
        last_seq = self.last_seq
        if last_seq is not None:
            if seq <= last_seq:
                self._overlap(block, key, problems)
                return
            if seq > last_seq + 1:
                _problem(problems, "gap", key, block, f"blocks {last_seq + 1}..{seq - 1} are missing")
                self.digest_valid = False
            elif previous != self.last_hash:
                _problem(problems, "chain_broken", key, block,
                         "previousBlockHash does not equal the prior block's blockHash")
        self.blocks.check(block, key, json, problems)
        self.report.blocks += 1
        block_hash = bytes(block.value["blockHash"])
        self.last_seq, self.last_hash, self._tip = seq, block_hash, block
        if self.keep(seq):
            self.remembered[seq] = block_hash
        if self.digest_valid:
            self.digest.add(block_hash)

    def feed_json_lines(self, data: bytes, key: str | None, problems: list[Problem], span: list[int | None]) -> None:
        """Chain-only check of one JSON Lines object, fused with its parse; `span` gets [first, last]
        sequence numbers read, as `_verify_object` tracks them. Same results as `feed(json_chain_block(...))`
        for every line, in the same order, with the same exceptions (tests/test_verify_json_chain.py).

        A chain check of JSON is budgeted at about one parse of it (the issue: ≤ 2×): re-typing each line
        into a `Block` and going through `feed` and `BlockChecker.check` cost as much as orjson itself.
        So a line that continues the chain (next sequence number, same strand, previousBlockHash equal to the
        last blockHash) is checked here, reading the parsed dict as is: the same hashes are decoded and the
        same `merkle_root`/`dot` recomputed; when every check passes the block is counted and linked as
        `feed` would. Anything else (the chain's first block, a gap, overlap, other strand, a hash mismatch,
        a field off the schema, any exception) goes, without side effects, to `json_chain_block` + `feed`,
        which then reports exactly what they always report. The parsed dict is left untouched here for that.
        """
        keep, add_digest, remembered = self.keep, self.digest.add, self.remembered
        first, last = span
        strand_id, last_seq, last_hash, digest_valid = self.strand_id, self.last_seq, self.last_hash, self.digest_valid
        last_text: str | None = None  # the base64 text `last_hash` was decoded from, when known
        tip: dict[str, Any] | None = None  # the last block linked here (as parsed)
        blocks = revisions = system = 0
        with_revisions = False  # BlockChecker counts "not_checked" for any block with revisions, even 0
        try:
            for index, _line, obj in json_lines(data):
                address = obj.get("blockAddress")
                if last_seq is not None and strand_id is not None and type(address) is dict:
                    seq = address.get("sequenceNo")
                    if type(seq) is int and seq == last_seq + 1 and address.get("strandId") == strand_id:
                        try:
                            fused = _fused_chain_hashes(obj, last_hash, last_text)
                        except Exception:  # whatever it is, the general path below meets and reports it
                            fused = None
                        if fused is not None:
                            last_hash, last_text, counted, system_here = fused
                            if counted:
                                with_revisions = True
                                revisions += counted - system_here
                                system += system_here
                            blocks += 1
                            last_seq, tip = seq, obj
                            if first is None:
                                first = seq
                            last = seq
                            if keep(seq):
                                remembered[seq] = last_hash
                            if digest_valid:
                                add_digest(last_hash)
                            continue
                # the general path, from the state the fused blocks left
                if blocks:
                    self._flush_fused(span, first, last, last_seq, last_hash, tip, blocks, revisions, system,
                                      with_revisions)
                    tip, blocks, revisions, system, with_revisions = None, 0, 0, 0, False
                last_text = None
                block = json_chain_block(obj, index)
                if first is None:
                    first = span[0] = block.sequence_no
                last = span[1] = block.sequence_no
                self.feed(block, key, True, problems)
                strand_id, last_seq, last_hash, digest_valid = (self.strand_id, self.last_seq, self.last_hash,
                                                                self.digest_valid)
        finally:
            if blocks:  # (only fused blocks since the last general one: that one's `feed` kept the state itself)
                self._flush_fused(span, first, last, last_seq, last_hash, tip, blocks, revisions, system,
                                  with_revisions)

    def native_blocks(self, data: bytes, fmt: ExportFormat) -> list[tuple[Any, ...]] | None:
        """The C verifier's blocks of a whole Ion binary object (`_journal.verify_blocks`), or None when it
        is not built, not wanted, the check is chain-only, or the object is outside what it reads."""
        if fmt is not ExportFormat.ION_BINARY or not self.use_native or native.journal is None \
                or not self.blocks.check_revisions:
            return None
        blocks: list[tuple[Any, ...]] | None = native.journal.verify_blocks(data, False)
        return blocks

    def feed_native(self, data: bytes, blocks: list[tuple[Any, ...]], key: str | None, problems: list[Problem],
                    span: list[int | None]) -> None:
        """Link blocks the C verifier has checked (each block's hashes recomputed from its bytes, every
        revision fully verified). A block that simply continues the chain (next sequence number, same strand,
        previousBlockHash equal to the last blockHash) is counted and linked here, as `feed` would; any other
        (the chain's first block, a gap, an overlap, another strand) is parsed from its own segment and goes
        through `feed`, which checks it again in Python and reports exactly what it always reports."""
        report, keep, remembered, add_digest = self.report, self.keep, self.remembered, self.digest.add
        tip: tuple[int, str, int, int] | None = None  # the last block linked here: seq, strand, its segment
        for seq, strand_id, previous, block_hash, revisions, system, start, end, *_ in blocks:
            if span[0] is None:
                span[0] = seq
            span[1] = seq
            last_seq = self.last_seq
            if last_seq is not None and seq == last_seq + 1 and strand_id == self.strand_id \
                    and previous == self.last_hash:
                report.blocks += 1
                report.revisions += revisions
                report.revisions_fully_verified += revisions
                report.system_entries += system
                self.last_seq, self.last_hash, tip = seq, block_hash, (seq, strand_id, start, end)
                if keep(seq):
                    remembered[seq] = block_hash
                if self.digest_valid:
                    add_digest(block_hash)
                continue
            tip = None
            self.feed(segment_block(data, start, end), key, False, problems)
        if tip is not None:
            seq, strand_id, start, end = tip
            self._tip = _SegmentTip(data[start:end], BlockAddress(strand_id, seq))

    def _flush_fused(self, span: list[int | None], first: int | None, last: int | None, last_seq: int | None,
                     last_hash: bytes | None, tip: dict[str, Any] | None, blocks: int, revisions: int, system: int,
                     with_revisions: bool) -> None:
        """Write back what `feed_json_lines` kept in locals since the last general block: the link, the
        object's span, the report's counts, and its last block as the tip."""
        self.last_seq, self.last_hash = last_seq, last_hash
        span[0], span[1] = first, last
        if tip is not None:
            self._tip = Block(tip)  # reads blockAddress and blockTimestamp only, which chain mode leaves as parsed
        report = self.report
        report.blocks += blocks
        report.revisions += revisions
        report.system_entries += system
        if with_revisions:
            self.blocks.chain_only["not_checked"] += revisions

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


class _SegmentTip:
    """The last block of an object the C verifier linked. Its address is what the verifier read from it; its
    value (only `last_block_time` reads it) is parsed from its own bytes when first asked: parsing every
    object's last block with amazon.ion took nearly a third of the time of the C verification itself."""

    __slots__ = ("raw", "address", "_block")

    def __init__(self, raw: bytes, address: BlockAddress) -> None:
        self.raw = raw
        self.address = address
        self._block: Block | None = None

    @property
    def value(self) -> Mapping[str, Any]:
        if self._block is None:
            self._block = segment_block(self.raw, 0, len(self.raw))
        return self._block.value


def segment_block(data: bytes, start: int, end: int) -> Block:
    """The block whose self-contained Ion binary is data[start:end], parsed as `read_blocks` parses it."""
    raw = data[start:end]
    return Block(load_value(raw, value_model=IonPyValueModel.MAY_BE_BARE), raw)


def _fused_chain_hashes(obj: Mapping[str, Any], last_hash: bytes | None,
                        last_text: str | None) -> tuple[bytes, str, int, int] | None:
    """`BlockChecker.check` in chain-only mode plus `feed`'s link check, on a parsed JSON block that
    continues the chain: (blockHash, its text, revisions, system entries) when all of them pass and
    `_retype_chain` would accept the block, else None (or an exception). Reads `obj` only.

    Equal base64 texts decode to equal hashes, so a text equal to one already decoded (the previous
    blockHash, an entriesHashList member) is compared as text: most blocks hold one revision, whose
    hash is then the revisions' Merkle root and a member of entriesHashList as given."""
    previous_text = obj.get("previousBlockHash")
    if previous_text is None or previous_text != last_text or last_hash is None:
        previous = b"" if previous_text is None else a2b_base64(previous_text)
        if previous != last_hash:
            return None
    else:
        previous = last_hash
    entries_text = obj.get("entriesHashList")
    if type(entries_text) is not list:
        return None
    entries = [a2b_base64(h) for h in entries_text]
    revisions = obj.get("revisions")
    count = system = 0
    if revisions:
        if type(revisions) is not list:
            return None
        count = len(revisions)
        if count == 1:
            revision = revisions[0]
            text = revision["hash"]
            if text not in entries_text and a2b_base64(text) not in entries:
                return None
            system = 0 if "metadata" in revision else 1
        else:
            hashes = [a2b_base64(revision["hash"]) for revision in revisions]
            for revision in revisions:
                if "metadata" not in revision:
                    system += 1
            if merkle_root(hashes) not in entries:
                return None
    entries_hash = a2b_base64(obj["entriesHash"])
    block_text = obj["blockHash"]
    block_hash = a2b_base64(block_text)
    root = dot(entries[0], entries[1]) if len(entries) == 2 else merkle_root(entries)
    if root != entries_hash or dot(entries_hash, previous) != block_hash:
        return None
    return block_hash, block_text, count, system


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
    fuse_json: bool = True,
    use_native: bool = True,
    digest_at: Collection[int] = (),
) -> ChainChecker:
    """Verify objects in the order given as one chain, adding to `report`. `fuse_json=False` checks
    chain-only JSON block by block, `use_native=False` Ion binary without the C verifier (the references
    the fast paths are tested and measured against). `digest_at`: the sequence numbers whose ledger digest
    (and proof) to keep in `report.digests_at`; one is missing when the chain does not reach it from block 0
    without a gap."""
    block_checker = BlockChecker(report, strict=strict, check_revisions=check_revisions)
    chain = ChainChecker(report, block_checker, keep, fuse_json=fuse_json, use_native=use_native)
    capturing = CapturingAccumulator(frozenset(digest_at)) if digest_at else None
    if capturing is not None:
        chain.digest = capturing
    for ref in objects:
        report.objects += 1
        blocks_before = report.blocks
        verify_object(read, ref, chain, report.problems)
        if on_object:
            on_object(ref, report.blocks - blocks_before)
    report.revisions_chain_only = dict(block_checker.chain_only)
    if chain.digest_valid and chain.digest.count:
        report.digest = _b64(chain.digest.digest())
    if capturing is not None:
        report.digests_at.update(capturing.captured)
    return chain


def verify_object(read: Callable[[str], bytes], ref: ObjectRef, chain: ChainChecker, problems: list[Problem]) -> None:
    try:
        _verify_object(read, ref, chain, problems)
    finally:
        chain.sync_report()


def _verify_object(read: Callable[[str], bytes], ref: ObjectRef, chain: ChainChecker, problems: list[Problem]) -> None:
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
    chain_only = not chain.blocks.check_revisions
    span: list[int | None] = [None, None]  # first and last sequence numbers read
    try:
        if json and chain_only and chain.fuse_json:
            chain.feed_json_lines(data, ref.key, problems, span)
        elif (verified := chain.native_blocks(data, ref.fmt)) is not None:
            chain.feed_native(data, verified, ref.key, problems, span)
        else:
            for block in read_blocks(data, ref.fmt, chain_only=chain_only):
                if span[0] is None:
                    span[0] = block.sequence_no
                span[1] = block.sequence_no
                chain.feed(block, ref.key, json, problems)
    except DecodeError as exc:
        last = span[1]
        after = f"after {{sequenceNo:{last}}}" if last is not None else declared
        problems.append(Problem("unreadable_object", ref.key, after, f"cannot decode: {exc}"))
        return
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append(Problem("malformed_block", ref.key, f"after {{sequenceNo:{span[1]}}}",
                                f"block does not follow QLDB's schema: {exc!r}"))
        return
    first, last = span
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
