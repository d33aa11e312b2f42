"""The journal writer: committed transactions in, hashed and chained blocks out.

One block per transaction, hashed by QLDB's rules (reference §3), so a journal written here passes
the same verifier as a real QLDB export. Used by the embedded ledger, by tests and by benchmarks.
Each block is encoded once, to Ion binary, at commit; exports copy those bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision

from .hashing import dot, ion_hash, merkle_root
from .layout import new_id
from .model import BlockAddress


def ms_timestamp(moment: datetime | None = None) -> Timestamp:
    """A UTC Ion timestamp at millisecond precision, as QLDB writes blockTimestamp and txTime."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return Timestamp(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond // 1000 * 1000, tzinfo=UTC, precision=TimestampPrecision.SECOND,
        fractional_precision=3,
    )


@dataclass(frozen=True)
class DocumentWrite:
    """One revision a transaction produced. `data is None` means the document was deleted."""

    table_name: str
    table_id: str
    document_id: str
    version: int
    data: Any | None
    statement_indexes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Redaction:
    """A revision whose data a later transaction erased (`EXEC redact_revision`)."""

    block_address: BlockAddress
    table_id: str
    document_id: str
    version: int


@dataclass(frozen=True)
class WrittenBlock:
    value: dict[str, Any]
    ion: bytes  # the block as a self-contained Ion binary value
    address: BlockAddress
    block_hash: bytes
    timestamp: Timestamp
    revision_hashes: tuple[bytes, ...] = field(default=())


class JournalWriter:
    """Turns transactions into blocks, continuing a strand from `next_sequence_no`.

    Not thread-safe: the caller serializes commits (the embedded ledger holds its write lock).
    """

    def __init__(
        self,
        strand_id: str | None = None,
        *,
        next_sequence_no: int = 0,
        previous_block_hash: bytes = b"",
        last_timestamp: datetime | None = None,
    ) -> None:
        self.strand_id = strand_id or new_id()
        self.next_sequence_no = next_sequence_no
        self.previous_block_hash = previous_block_hash
        self._last_timestamp = last_timestamp

    def _next_timestamp(self, requested: datetime | None) -> Timestamp:
        moment = ms_timestamp(requested)
        if self._last_timestamp is not None and moment < self._last_timestamp:
            moment = ms_timestamp(self._last_timestamp)  # block times never go backwards
        self._last_timestamp = moment
        return moment

    def commit(
        self,
        statements: Sequence[str],
        writes: Sequence[DocumentWrite] = (),
        *,
        timestamp: datetime | None = None,
        transaction_id: str | None = None,
        system_revisions: Sequence[bytes] = (),
        redactions: Sequence[Redaction] = (),
    ) -> WrittenBlock:
        """Write one block for one committed transaction and advance the chain."""
        address = BlockAddress(self.strand_id, self.next_sequence_no)
        when = self._next_timestamp(timestamp)
        tx_id = transaction_id or new_id()
        revisions = [self._revision(address, when, tx_id, w) for w in writes]
        revisions += [{"hash": h} for h in system_revisions]
        transaction_info = _transaction_info(statements, writes, when)
        entries = []
        revision_hashes = tuple(r["hash"] for r in revisions)
        if revisions:
            entries.append(merkle_root(list(revision_hashes)))
        entries.append(ion_hash(transaction_info))
        redaction_info = _redaction_info(redactions)
        if redaction_info is not None:
            entries.append(ion_hash(redaction_info))
        entries_hash = merkle_root(entries)
        block_hash = dot(entries_hash, self.previous_block_hash)
        value: dict[str, Any] = {
            "blockAddress": address.to_ion(),
            "transactionId": tx_id,
            "blockTimestamp": when,
            "blockHash": block_hash,
            "entriesHash": entries_hash,
            "previousBlockHash": self.previous_block_hash,
            "entriesHashList": entries,
            "transactionInfo": transaction_info,
        }
        if redaction_info is not None:
            value["redactionInfo"] = redaction_info
        if revisions:
            value["revisions"] = revisions
        self.next_sequence_no += 1
        self.previous_block_hash = block_hash
        ion = simpleion.dumps(value, binary=True)
        return WrittenBlock(value, ion, address, block_hash, when, revision_hashes)

    @staticmethod
    def _revision(address: BlockAddress, when: Timestamp, tx_id: str, write: DocumentWrite) -> dict[str, Any]:
        metadata = {"id": write.document_id, "version": write.version, "txTime": when, "txId": tx_id}
        if write.data is None:
            # QLDB never published a delete's hash rule; CONTRACTS §4 fixes IonHash(metadata).
            return {"blockAddress": address.to_ion(), "hash": ion_hash(metadata), "metadata": metadata}
        revision_hash = dot(ion_hash(metadata), ion_hash(write.data))
        return {"blockAddress": address.to_ion(), "hash": revision_hash, "data": write.data, "metadata": metadata}


def _transaction_info(statements: Sequence[str], writes: Sequence[DocumentWrite], when: Timestamp) -> dict:
    info: dict[str, Any] = {
        "statements": [
            {"statement": text, "startTime": when, "statementDigest": ion_hash(text)} for text in statements
        ]
    }
    if writes:
        documents: dict[str, Any] = {}
        for write in writes:
            entry = documents.setdefault(
                write.document_id, {"tableName": write.table_name, "tableId": write.table_id, "statements": []}
            )
            entry["statements"] = sorted(set(entry["statements"]) | set(write.statement_indexes))
        info["documents"] = documents
    return info


def _redaction_info(redactions: Sequence[Redaction]) -> dict[str, Any] | None:
    if not redactions:
        return None
    return {
        "revisions": [
            {"blockAddress": r.block_address.to_ion(), "tableId": r.table_id, "documentId": r.document_id,
             "version": r.version}
            for r in redactions
        ]
    }
