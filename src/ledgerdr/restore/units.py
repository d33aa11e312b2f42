"""One work unit, fetched, verified and turned into what a target applies.

Nothing from an object is applied before the whole object has been verified: its sha256 (when
recorded), every block's hashes, and the links between its blocks. A block's revisions become
`RestoredRevision`s keyed by table id, document id and version, so applying them is idempotent
and independent of order (DESIGN "Restore semantics").
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import VerificationError
from ..journal.codecs import DecodeError, ExportFormat, read_blocks
from ..journal.hashing import dot, ion_hash
from ..journal.ionwrite import standalone_hashed
from ..journal.model import Block
from ..journal.verify import BlockChecker, Problem, VerifyReport
from ..stores import Store
from ..targets.base import TableDDL, redactions_of_block, revisions_of_block
from ..targets.ddl import events_of_block, first_seen
from ..targets.digest import PackedJournal, journal_entries, pack_journal
from .overlaps import fetch_object
from .shapes import SNAPSHOT_FORMAT, UnitContent, UnitResult, WorkUnit
from .snapshot import SnapshotContent, load_snapshot_unit, snapshot_result


def journal_leaves(content: UnitContent) -> bytes:
    """What the restore's state digest needs of a verified unit (`targets.digest.digest_of_journal`):
    one entry per revision and the redactions, recorded by the worker beside its result so that
    finalize does not fetch, parse and verify every object a second time. Table names are listed
    once and entries refer to them by position."""
    return leaves_of(content.unit, pack_journal(journal_entries(content.revisions)),
                     [r.key for r in content.redactions])


def leaves_of(unit: WorkUnit, packed: PackedJournal, redactions: list[tuple[str, str, int]]) -> bytes:
    """`journal_leaves` of a unit's verified entries and redaction keys, however they were read: a JSON header
    line (format 2, the unit's fingerprint, the tables, the redactions), then the entries packed
    (`targets.digest.pack_journal`). docs/format.md "Restore digest leaves"."""
    return orjson.dumps({
        "format_version": 2,
        "unit": unit_fingerprint(unit),
        "tables": [list(pair) for pair in packed.tables],
        "entries": packed.count,
        "redactions": [list(key) for key in redactions],
    }) + b"\n" + packed.packed


def unit_fingerprint(unit: WorkUnit) -> str:
    """Everything that decides a unit's content (key, range, checksum, version, `--until` cut-off).
    A unit's id names only its key and range, so leaves recorded by a restore with another cut-off
    must not stand in for this one's."""
    return hashlib.sha256(unit.to_bytes()).hexdigest()


def read_journal_leaves(data: bytes, unit: WorkUnit) -> tuple[PackedJournal, list[tuple[str, str, int]]]:
    """The entries and redaction keys `journal_leaves` recorded for exactly `unit` (format 2, or the JSON
    of format 1 that earlier versions wrote). Raises ValueError when they are unreadable or were recorded
    for a unit with other content."""
    header, _, packed = data.partition(b"\n")
    try:
        raw = orjson.loads(header)
        version = raw.get("format_version")
        if version not in (1, 2):
            raise ValueError(f"unknown leaves format {version!r}")
        if raw.get("unit") != unit_fingerprint(unit):
            raise ValueError("leaves recorded for a unit with other content")
        tables = tuple((str(t), str(n)) for t, n in raw["tables"])
        redactions = [(str(t), str(d), int(v)) for t, d, v in raw["redactions"]]
        if version == 1:
            return pack_journal((*tables[i], str(doc), int(v), base64.b64decode(h), int(flags))
                                for i, doc, v, h, flags in raw["entries"]), redactions
        journal = PackedJournal(tables, packed, int(raw["entries"]))
        journal.check()
        return journal, redactions
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"unreadable journal leaves: {exc}") from None


def load_unit(store: Store, unit: WorkUnit) -> UnitContent:
    """Fetch and verify; raises VerificationError naming the key and block address."""
    if unit.fmt == SNAPSHOT_FORMAT:  # a snapshot part
        return load_snapshot_unit(store, unit)
    data = fetch_object(store, unit.key, unit.version_id)
    if unit.sha256 and hashlib.sha256(data).hexdigest() != unit.sha256:
        raise VerificationError(f"object {unit.key}: bytes do not match the recorded sha256; nothing applied",
                                [Problem("checksum_mismatch", unit.key, None, "sha256 mismatch")])
    fmt = ExportFormat.parse(unit.fmt)
    content = UnitContent(unit)
    report, problems = VerifyReport(), []
    checker = _EncodingChecker(report)
    previous: Block | None = None
    try:
        for block in read_blocks(data, fmt):
            seq = block.sequence_no
            if previous is not None and (seq != previous.sequence_no + 1 or
                                         block.previous_block_hash != previous.block_hash):
                problems.append(Problem("chain_broken", unit.key, str(block.address), "blocks inside the object "
                                        "do not chain"))
            previous = block
            if seq > unit.last_seq:
                if unit.sha256:
                    # The bytes are the recorded object's (sha256 above), verified when it was recorded,
                    # and the rest belongs to other units, which check it before applying it.
                    break
                continue  # no recorded checksum: decode and link the whole object before applying any of it
            if seq < unit.first_seq:
                continue
            if unit.until_ms is not None and _ms(block) >= unit.until_ms:
                continue
            checker.check(block, unit.key, fmt is ExportFormat.JSON, problems)
            content.blocks.append(block)
    except DecodeError as exc:
        raise VerificationError(f"object {unit.key}: cannot decode: {exc}; nothing applied",
                                [Problem("unreadable_object", unit.key, None, str(exc))]) from None
    if problems:
        raise VerificationError(f"object {unit.key} failed verification; nothing applied", problems)
    for block in content.blocks:
        _collect(content, block, fmt is ExportFormat.JSON, checker.encoded)
    return content


class _EncodingChecker(BlockChecker):
    """`BlockChecker` whose revision check also yields what a target stores: a data revision's document
    is encoded by `ionwrite.standalone_hashed`, whose one walk gives both its Ion binary and its Ion Hash, and
    that hash is the one the check compares with the journal's. So the bytes a target stores are those of
    the very value whose hash was verified, and the document is hashed and encoded once, not hashed here
    and encoded again by the target (`encoded`, by `id` of the revision struct, for `revisions_of_block`).

    Anything else (JSON, deletes, redacted revisions, values the encoder does not write, and any
    mismatch, so that the problem is reported as always) goes through `BlockChecker`'s own check.

    Each document gets a symbol table of its own, so its stored bytes depend on the document alone, as
    when a target encodes it itself (from a JSON export): a table shared between documents saves ~15% of
    encoding, but the bytes would then depend on the documents before it."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(report)
        self.encoded: dict[int, bytes] = {}

    def _check_revision(self, revision: Mapping[str, Any], stated: bytes, json: bool, block: Block,
                        key: str | None, problems: list[Problem]) -> None:
        if not json and "data" in revision and "metadata" in revision:
            encoded = standalone_hashed(revision["data"])
            if encoded is not None and dot(ion_hash(revision["metadata"]), encoded[0]) == stated:
                self.report.revisions += 1
                self.report.revisions_fully_verified += 1
                self.encoded[id(revision)] = encoded[1]
                return
        super()._check_revision(revision, stated, json, block, key, problems)


def _ms(block: Block) -> int:
    stamp = block.value["blockTimestamp"]
    return int(stamp.timestamp() * 1000)


def _collect(content: UnitContent, block: Block, json: bool, encoded: Mapping[int, bytes]) -> None:
    content.strand_id = content.strand_id or block.strand_id
    revisions = revisions_of_block(block, json_export=json, encoded=encoded)
    for revision in revisions:
        content.tables.setdefault(revision.table_id, TableDDL(revision.table_id, revision.table_name, (), False,
                                                              revision.block_seq))
    content.revisions.extend(revisions)
    content.redactions.extend(redactions_of_block(block))
    content.ddl.extend(events_of_block(block))


def result_of(content: UnitContent) -> UnitResult:
    if isinstance(content, SnapshotContent):
        return snapshot_result(content)
    blocks = content.blocks
    first, last = (blocks[0], blocks[-1]) if blocks else (None, None)
    return UnitResult(
        unit_id=content.unit.unit_id,
        first_seq=first.sequence_no if first else None,
        first_previous_hash=_b64(first.previous_block_hash) if first else None,
        last_seq=last.sequence_no if last else None,
        last_hash=_b64(last.block_hash) if last else None,
        last_block_time_ms=_ms(last) if last else None,
        revisions=len(content.revisions),
        type_lost=tuple(f"{r.table_name} {r.document_id} v{r.version}" for r in content.revisions if r.type_lost),
        ddl=tuple(event.to_list() for event in first_seen(content.ddl)),
    )


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
