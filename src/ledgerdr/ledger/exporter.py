"""Journal export from the embedded ledger into any `Store`, in QLDB's exact layout (reference §1).

Order of writes, as QLDB's: the started manifest first, then the data objects
`<prefix>yyyy/mm/dd/hh/<strandId>.<first>-<last>.<ext>`, then the completed manifest whose `keys` are
the full object keys in block order. A reader that sees a completed manifest therefore sees every
object it names. Every object is written put-if-absent with its sha256, so a retried export must use
a new export id (a new attempt folder) and can never overwrite anything.

The window is the blocks whose `blockTimestamp` lies in [start, end). Blocks stream from SQLite in
batches and objects are flushed at `max_blocks_per_object` / `max_bytes_per_object` and at every UTC
hour boundary (an object holds one hour's blocks), so memory is bounded by one object, not the window.
ION_BINARY objects are the stored block bytes concatenated (no parse); ION_TEXT objects are converted
from them by the C converter (`ledgerdr._iontext`) when it is built; JSON, and ION_TEXT without it, parse
each stored block once and re-encode it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amazon.ion import simpleion
from amazon.ion.simpleion import IonPyValueModel

from .. import native
from ..errors import ConfigError
from ..journal.codecs import ExportFormat, encode_block, encode_ion_value
from ..journal.ids import new_id
from ..journal.layout import (
    StartedManifest,
    completed_manifest_key,
    data_object_key,
    normalize_prefix,
    started_manifest_key,
)
from ..journal.writer import ms_timestamp
from ..stores.base import Store
from .engine import Ledger
from .storage import BlockRow, from_ms, to_ms

MiB = 1024 * 1024
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class ExportResult:
    export_id: str
    prefix: str
    format: ExportFormat
    start: datetime
    end: datetime
    first_seq: int | None  # None for a window with no block
    last_seq: int | None
    blocks: int
    revisions: int  # revisions with metadata (deletes included), as the verify report counts them
    objects: tuple[tuple[str, int, str], ...]  # (key, size, sha256 hex), in block order
    started_key: str
    completed_key: str
    first_previous_block_hash: bytes | None  # b"" when the window starts at the genesis block
    last_block_hash: bytes | None


@dataclass
class _ObjectBuffer:
    """The data object being filled: blocks of one UTC hour, in sequence order."""

    first: int = -1
    last: int = -1
    hour: int = -1
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)

    def fits(self, hour: int, size: int, max_blocks: int, max_bytes: int) -> bool:
        if not self.chunks:
            return True
        return hour == self.hour and len(self.chunks) < max_blocks and self.size + size <= max_bytes

    def add(self, seq: int, hour: int, chunk: bytes) -> None:
        if not self.chunks:
            self.first, self.hour = seq, hour
        self.last = seq
        self.size += len(chunk)
        self.chunks.append(chunk)


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ConfigError(f"export {what} must be a datetime, got {moment!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _bucket_name(store: Store) -> str:
    """What QLDB's started manifest calls the bucket: the S3 bucket, or the last part of a store's URL."""
    return store.properties.bucket or store.url.rstrip("/").rsplit("/", 1)[-1]


def export_journal(
    ledger: Ledger,
    *,
    start: datetime,
    end: datetime,
    store: Store,
    prefix: str,
    fmt: ExportFormat | str,
    retain_until: datetime | None = None,
    export_id: str | None = None,
    max_blocks_per_object: int = 10_000,
    max_bytes_per_object: int = 64 * MiB,
) -> ExportResult:
    """Export the blocks with blockTimestamp in [start, end) to `store` under `prefix`.

    Raises ConfigError for a bad window (start >= end, end in the future) or limits, ObjectExists if
    `export_id` was used before under this prefix, and other StoreErrors from the store. Not
    idempotent: each call writes a new export; an interrupted one leaves no completed manifest, which
    readers report as incomplete. An empty window still writes both manifests (`keys: []`).
    """
    fmt = ExportFormat.parse(fmt)
    start, end = _aware(start, "start"), _aware(end, "end")
    if start >= end:
        raise ConfigError(
            f"export window is empty or reversed: start {start.isoformat()} >= end {end.isoformat()}"
        )
    if end > datetime.now(UTC):
        raise ConfigError(
            f"export end {end.isoformat()} is in the future; blocks may still be committed before it",
            hint="export only windows that have closed (QLDB refuses them too)",
        )
    if max_blocks_per_object < 1 or max_bytes_per_object < 1:
        raise ConfigError("max_blocks_per_object and max_bytes_per_object must be positive")
    export_id = export_id or new_id()
    prefix = normalize_prefix(prefix)
    started_key = started_manifest_key(prefix, export_id)
    manifest = StartedManifest(
        ledger.name,
        export_id,
        ms_timestamp(start),
        ms_timestamp(end),
        _bucket_name(store),
        prefix,
        output_format=fmt.value,
    )
    _put(store, started_key, encode_ion_value(manifest.to_ion(), fmt), retain_until)

    window = ledger.block_range_for_time(to_ms(start), to_ms(end))
    objects: list[tuple[str, int, str]] = []
    blocks = revisions = 0
    last_row: BlockRow | None = None
    if window is not None:
        buffer = _ObjectBuffer()
        for row in ledger.iter_blocks(*window):
            chunk = row.ion if fmt is ExportFormat.ION_BINARY else _reencode(row.ion, fmt)
            hour = row.ts_ms // _HOUR_MS
            if not buffer.fits(hour, len(chunk), max_blocks_per_object, max_bytes_per_object):
                objects.append(_flush(store, buffer, ledger.strand_id, prefix, fmt, retain_until))
                buffer = _ObjectBuffer()
            buffer.add(row.seq, hour, chunk)
            blocks += 1
            revisions += row.revisions
            last_row = row
        objects.append(_flush(store, buffer, ledger.strand_id, prefix, fmt, retain_until))

    completed_key = completed_manifest_key(prefix, export_id, ledger.strand_id)
    _put(store, completed_key, encode_ion_value({"keys": [key for key, _, _ in objects]}, fmt), retain_until)
    return ExportResult(
        export_id=export_id,
        prefix=prefix,
        format=fmt,
        start=start,
        end=end,
        first_seq=None if window is None else window[0],
        last_seq=None if window is None else window[1],
        blocks=blocks,
        revisions=revisions,
        objects=tuple(objects),
        started_key=started_key,
        completed_key=completed_key,
        first_previous_block_hash=None if window is None else _previous_hash(ledger, window[0]),
        last_block_hash=None if last_row is None else last_row.block_hash,
    )


def _reencode(ion: bytes, fmt: ExportFormat) -> bytes:
    if fmt is ExportFormat.ION_TEXT and native.iontext is not None:
        try:
            return native.iontext.binary_to_text(ion)  # ~40x amazon.ion's load + text dump
        except ValueError:
            pass  # outside what the converter writes (e.g. a shared symbol table): amazon.ion decides
    # MAY_BE_BARE returns plain Python values wherever that loses no Ion type (about 2.5x faster to
    # parse than IonPy wrappers); the re-encoded text is the same.
    return encode_block(simpleion.loads(ion, value_model=IonPyValueModel.MAY_BE_BARE), fmt)


def _previous_hash(ledger: Ledger, first_seq: int) -> bytes:
    if first_seq == 0:
        return b""
    return next(ledger.iter_blocks(first_seq - 1, first_seq - 1)).block_hash


def _flush(
    store: Store,
    buffer: _ObjectBuffer,
    strand_id: str,
    prefix: str,
    fmt: ExportFormat,
    retain_until: datetime | None,
) -> tuple[str, int, str]:
    hour = from_ms(buffer.hour * _HOUR_MS)
    key = data_object_key(prefix, strand_id, buffer.first, buffer.last, fmt, hour)
    data = b"".join(buffer.chunks)
    return key, len(data), _put(store, key, data, retain_until)


def _put(store: Store, key: str, data: bytes, retain_until: datetime | None) -> str:
    digest = hashlib.sha256(data).hexdigest()
    store.put(key, data, retain_until=retain_until, sha256=digest)
    return digest


def result_summary(result: ExportResult) -> dict[str, Any]:
    """A JSON-friendly summary (for the CLI and logs)."""
    return {
        "export_id": result.export_id,
        "prefix": result.prefix,
        "format": result.format.value,
        "window_start": result.start.isoformat(),
        "window_end": result.end.isoformat(),
        "first_seq": result.first_seq,
        "last_seq": result.last_seq,
        "blocks": result.blocks,
        "revisions": result.revisions,
        "objects": len(result.objects),
        "bytes": sum(size for _, size, _ in result.objects),
    }
