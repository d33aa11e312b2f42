"""Builds journal exports laid out exactly as QLDB documents them, independently of ledgerdr's own
exporter, so the verifier and the restore are tested against the documented format rather than
against our writer's habits (reference §1.2–1.4).

Blocks come from `JournalWriter` (QLDB's hashing rules); files are written straight to a directory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision

from ledgerdr.journal.codecs import ExportFormat, encode_block, encode_ion_value
from ledgerdr.journal.ids import new_id
from ledgerdr.journal.writer import DocumentWrite, JournalWriter, WrittenBlock

SAMPLES = Path(__file__).resolve().parent.parent / "data"  # copies, with provenance in data/README.md
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def generate_blocks(count: int, *, seed: int = 0, start: datetime = START, step_ms: int = 700,
                    writer: JournalWriter | None = None) -> list[WrittenBlock]:
    """`count` transactions over two tables: inserts, updates, deletes and read-only selects, with
    decimals, timestamps, blobs, nested structs and lists in the data."""
    rng = random.Random(seed)
    writer = writer or JournalWriter()
    tables = {"Vehicle": new_id(), "Person": new_id()}
    live: dict[str, tuple[str, int]] = {}
    blocks = []
    for i in range(count):
        when = start + timedelta(milliseconds=step_ms * i)
        roll = rng.random()
        if i == 0:
            blocks.append(writer.commit(["CREATE TABLE Vehicle", "CREATE TABLE Person"], timestamp=when,
                                        system_revisions=[bytes(32 * [7])]))
            continue
        if roll < 0.15:
            blocks.append(writer.commit(["SELECT * FROM Vehicle WHERE VIN = ?"], timestamp=when))
            continue
        writes = []
        n_docs = rng.choice([1, 1, 1, 3, 40]) if roll < 0.7 else 1
        statement = "INSERT INTO Vehicle ?"
        for _ in range(n_docs):
            if roll < 0.7 or not live:
                doc_id, table, version, data = new_id(), "Vehicle", 0, vehicle_document(rng, i)
            elif roll < 0.9:
                doc_id = rng.choice(sorted(live))
                table, version = live[doc_id][0], live[doc_id][1] + 1
                data, statement = vehicle_document(rng, i), "UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?"
            else:
                doc_id = rng.choice(sorted(live))
                table, version = live[doc_id][0], live[doc_id][1] + 1
                data, statement = None, "DELETE FROM Vehicle AS v WHERE v.VIN = ?"
            if any(w.document_id == doc_id for w in writes):
                continue
            writes.append(DocumentWrite(table, tables[table], doc_id, version, data))
            if data is None:
                live.pop(doc_id, None)
            else:
                live[doc_id] = (table, version)
        blocks.append(writer.commit([statement], writes, timestamp=when))
    return blocks


def vehicle_document(rng: random.Random, i: int) -> dict:
    """A Vehicle document with every scalar type QLDB journals carry (decimal, timestamp, blob, nesting)."""
    return {
        "VIN": f"VIN{i:08d}{rng.randrange(1000)}",
        "Price": Decimal(rng.randrange(100000, 9999999)).scaleb(-2),
        "Made": Timestamp(2000 + rng.randrange(25), 1 + rng.randrange(12), 1 + rng.randrange(28),
                          precision=TimestampPrecision.DAY),
        "Key": bytes(rng.randrange(256) for _ in range(8)),
        "Owner": {"Name": rng.choice(["Ana", "Bo", "Chen", "Dée"]), "Tags": ["a", 1, None]},
        "Count": rng.randrange(-5, 10**12),
    }


@dataclass
class WrittenExport:
    export_id: str
    prefix: str
    started_key: str
    completed_key: str
    data_keys: list[str] = field(default_factory=list)


def write_qldb_export(root: Path, blocks: list[WrittenBlock], fmt: ExportFormat, *, prefix: str = "qldb-dr/",
                      blocks_per_object: int = 4, keys_with_prefix: bool = True,
                      output_format_in_manifest: bool = True) -> WrittenExport:
    """Write `blocks` as one QLDB export under `root/prefix`, in QLDB's layout."""
    export_id = new_id()
    strand = blocks[0].address.strand_id if blocks else "JdxjkR9bSYB5jMHWcI464T"
    norm = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    started = {"ledgerName": "vehicle-registration", "exportId": export_id,
               "inclusiveStartTime": blocks[0].timestamp if blocks else START,
               "exclusiveEndTime": blocks[-1].timestamp if blocks else START, "bucket": "dr-bucket",
               "prefix": prefix, "objectEncryptionType": "SSE_S3"}
    if output_format_in_manifest:
        started["outputFormat"] = fmt.value
    out = WrittenExport(export_id, norm, f"{norm}{export_id}.started.manifest",
                        f"{norm}{export_id}.{strand}.completed.manifest")
    _write(root, out.started_key, encode_ion_value(started, fmt))
    for i in range(0, len(blocks), blocks_per_object):
        chunk = blocks[i : i + blocks_per_object]
        hour = chunk[0].timestamp
        name = f"{hour.year:04d}/{hour.month:02d}/{hour.day:02d}/{hour.hour:02d}/{strand}." \
               f"{chunk[0].address.sequence_no}-{chunk[-1].address.sequence_no}.{fmt.extension}"
        key = norm + name
        _write(root, key, b"".join(encode_block(b.value, fmt) for b in chunk))
        out.data_keys.append(key if keys_with_prefix else name)
    _write(root, out.completed_key, encode_ion_value({"keys": out.data_keys}, fmt))
    return out


def _write(root: Path, key: str, data: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def sample_block() -> dict:
    """The real QLDB block of samples/streams-dmv_block-summary-and-revision.ion, as a journal block."""
    summary, details = simpleion.loads((SAMPLES / "streams-dmv_block-summary-and-revision.ion").read_text(),
                                       single_value=False)
    block = dict(summary["payload"])
    del block["revisionSummaries"]
    block["revisions"] = [details["payload"]["revision"]]
    return block
