"""The journal data model: blocks, revisions and addresses, as QLDB defines them.

A block is kept as the Ion struct it was parsed from (`Block.value`): hashes are computed over the
value *as parsed*, never after a round trip through a model of our own (the Java sample broke that
way, reference §3.1). The accessors below only read fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from amazon.ion.simple_types import IonPyNull


@dataclass(frozen=True, slots=True, order=True)
class BlockAddress:
    strand_id: str
    sequence_no: int

    def __str__(self) -> str:
        return f'{{strandId:"{self.strand_id}",sequenceNo:{self.sequence_no}}}'

    def to_ion(self) -> dict[str, Any]:
        return {"strandId": self.strand_id, "sequenceNo": self.sequence_no}

    @classmethod
    def from_ion(cls, value: Mapping[str, Any]) -> BlockAddress:
        return cls(str(value["strandId"]), int(value["sequenceNo"]))


class RevisionKind(Enum):
    DATA = "data"  # insert (version 0) or update
    DELETE = "delete"  # metadata, no data and no dataHash
    REDACTED = "redacted"  # dataHash in place of data
    SYSTEM = "system"  # hash only: an internal system entry


def revision_kind(revision: Mapping[str, Any]) -> RevisionKind:
    if "metadata" not in revision:
        return RevisionKind.SYSTEM
    if "data" in revision:
        return RevisionKind.DATA
    if "dataHash" in revision:
        return RevisionKind.REDACTED
    return RevisionKind.DELETE


class Block:
    """One journal block. `raw` holds the block's own encoded bytes when the reader kept them."""

    __slots__ = ("value", "raw")

    def __init__(self, value: Mapping[str, Any], raw: bytes | None = None) -> None:
        self.value = value
        self.raw = raw

    @property
    def address(self) -> BlockAddress:
        return BlockAddress.from_ion(self.value["blockAddress"])

    @property
    def sequence_no(self) -> int:
        return int(self.value["blockAddress"]["sequenceNo"])

    @property
    def strand_id(self) -> str:
        return str(self.value["blockAddress"]["strandId"])

    @property
    def block_hash(self) -> bytes:
        return bytes(self.value["blockHash"])

    @property
    def entries_hash(self) -> bytes:
        return bytes(self.value["entriesHash"])

    @property
    def previous_block_hash(self) -> bytes:
        """Empty for the genesis block, whether the field is absent or empty (CONTRACTS §4)."""
        previous = self.value.get("previousBlockHash")
        return bytes(previous) if previous is not None and not _is_null(previous) else b""

    @property
    def entries_hash_list(self) -> list[bytes]:
        return [bytes(h) for h in self.value.get("entriesHashList") or ()]

    @property
    def timestamp(self) -> Any:
        return self.value["blockTimestamp"]

    @property
    def transaction_id(self) -> str | None:
        tx = self.value.get("transactionId")
        return None if tx is None else str(tx)

    @property
    def transaction_info(self) -> Mapping[str, Any] | None:
        return self.value.get("transactionInfo")

    @property
    def redaction_info(self) -> Mapping[str, Any] | None:
        return self.value.get("redactionInfo")

    @property
    def revisions(self) -> Sequence[Mapping[str, Any]]:
        return self.value.get("revisions") or ()

    def statements(self) -> list[str]:
        info = self.transaction_info
        return [str(s["statement"]) for s in (info or {}).get("statements") or ()]

    def table_of(self, document_id: str) -> tuple[str | None, str | None]:
        """(tableId, tableName) of a document written in this block, from transactionInfo.documents."""
        info = self.transaction_info or {}
        doc = (info.get("documents") or {}).get(document_id)
        if doc is None:
            return None, None
        return str(doc["tableId"]), str(doc["tableName"])

    def __repr__(self) -> str:
        return f"Block({self.address})"


def _is_null(value: Any) -> bool:
    return isinstance(value, IonPyNull)
