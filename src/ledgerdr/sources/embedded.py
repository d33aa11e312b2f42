"""The embedded ledger as a backup source: the same flow as QLDB, with no cloud."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..journal.codecs import ExportFormat
from ..journal.model import BlockAddress
from ..stores import Location
from .base import Digest, ExportDone


class EmbeddedSource:
    kind = "embedded"

    def __init__(self, path: str | Path, *, create: bool = True, ledger_name: str | None = None) -> None:
        from ..ledger.engine import Ledger

        path = Path(path)
        if not path.exists() and create:
            Ledger.create(path, name=ledger_name or path.stem).close()
        self.ledger = Ledger.open(path)
        self.ledger_name = self.ledger.name

    @property
    def lineage(self) -> str:
        return self.ledger.lineage

    def strand_id(self) -> str | None:
        return self.ledger.strand_id if self.ledger.block_count else None

    def first_block_time(self) -> datetime | None:
        return self.ledger.first_block_time()

    def export(self, start: datetime, end: datetime, location: Location, prefix: str, fmt: ExportFormat,
               retain_until: datetime | None) -> ExportDone:
        from ..ledger.exporter import export_journal

        result = export_journal(self.ledger, start=start, end=end, store=location.store, prefix=prefix, fmt=fmt,
                                retain_until=retain_until)
        return ExportDone(result.export_id, result.prefix)

    def digest(self) -> Digest:
        digest = self.ledger.get_digest()
        return Digest(bytes(digest["digest"]), BlockAddress.from_ion(digest["digestTipAddress"]))

    def block_proof(self, address: BlockAddress, tip: BlockAddress) -> list[bytes]:
        _, proof = self.ledger.get_block(address.sequence_no, tip=tip.sequence_no)
        return list(proof)

    def close(self) -> None:
        self.ledger.close()
