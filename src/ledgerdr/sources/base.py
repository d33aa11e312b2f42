"""The `Source` interface: a ledger that can export a time window of its journal into a location.

The backup flow is written against this only. A source writes the export exactly as QLDB would,
under the prefix it is given (CONTRACTS §2), and answers the digest questions of CONTRACTS §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..journal.codecs import ExportFormat
from ..journal.model import BlockAddress
from ..stores import Location


@dataclass(frozen=True)
class ExportDone:
    export_id: str
    prefix: str  # the key prefix the export was written under (ends with '/')


@dataclass(frozen=True)
class Digest:
    digest: bytes
    tip: BlockAddress


class Source(Protocol):
    kind: str
    ledger_name: str

    @property
    def lineage(self) -> str:
        """Changes when a standby is promoted; a repository refuses a foreign lineage."""

    def strand_id(self) -> str | None:
        """The journal's strand, or None while the journal is empty."""

    def first_block_time(self) -> datetime | None:
        """When the first block was committed (the first window starts at or before it)."""

    def export(self, start: datetime, end: datetime, location: Location, prefix: str, fmt: ExportFormat,
               retain_until: datetime | None) -> ExportDone:
        """Export blocks committed in [start, end) under `prefix` of `location`; return when complete.
        Raises SourceError when the export fails or is cancelled."""

    def digest(self) -> Digest:
        """The current digest and its tip (QLDB's GetDigest takes no time argument)."""

    def block_proof(self, address: BlockAddress, tip: BlockAddress) -> list[bytes]:
        """The GetBlock proof of `address` against the digest at `tip`."""
