"""The journal writer: committed transactions in, hashed and chained blocks out.

One block per transaction, hashed by QLDB's rules (reference §3), so a journal written here passes
the same verifier as a real QLDB export. Used by the embedded ledger, by tests and by benchmarks.
Each block is encoded once, to Ion binary, at commit; exports copy those bytes.

The block is encoded by `journal.ionwrite`, which writes Ion binary and computes Ion Hash in one walk,
and splices in documents that the caller already encoded against a shared `SymbolTable` (the embedded
ledger encodes each document when its statement stages it): no document is encoded or hashed twice. The
envelope around the documents (revisions' metadata and hashes, transactionInfo, the Merkle roots, the
chained block hash) is written by the C accelerator `_ionhash.encode_block` when it is built, else by
`_envelope_python`, which stays its byte-for-byte reference (tests/test_block_native.py). A value that
encoder does not write falls back to `simpleion.dumps` and `hashing.ion_hash` of the whole block,
which raise the errors users have always seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from hashlib import sha256
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision

from .. import native
from .hashing import _escape, _s_name, _timestamp_repr, dot, ion_hash, merkle_root
from .ids import new_id
from .ionwrite import SymbolTable, Unencodable, encode_hashed, td
from .model import BlockAddress


def ms_timestamp(moment: datetime | None = None) -> Timestamp:
    """A UTC Ion timestamp at millisecond precision, as QLDB writes blockTimestamp and txTime."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return Timestamp(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond // 1000 * 1000, tzinfo=UTC, precision=TimestampPrecision.SECOND,
        fractional_precision=3,
    )


@dataclass(frozen=True, slots=True)
class EncodedData:
    """A document already encoded by `ionwrite.encode_hashed` against `symbols`: its Ion binary value
    and its Ion Hash. The writer splices it when the block is encoded against the same table."""

    symbols: SymbolTable
    ion: bytes
    hash: bytes


@dataclass(frozen=True)
class DocumentWrite:
    """One revision a transaction produced. `data is None` means the document was deleted.
    `encoded`, when given, must be `data` encoded (the writer trusts it, as it trusts `data`)."""

    table_name: str
    table_id: str
    document_id: str
    version: int
    data: Any | None
    statement_indexes: tuple[int, ...] = (0,)
    encoded: EncodedData | None = None


@dataclass(frozen=True)
class Redaction:
    """A revision whose data a later transaction erased (`EXEC redact_revision`)."""

    block_address: BlockAddress
    table_id: str
    document_id: str
    version: int


@dataclass(frozen=True)
class WrittenBlock:
    ion: bytes  # the block as a self-contained Ion binary value
    address: BlockAddress
    block_hash: bytes
    timestamp: Timestamp
    revision_hashes: tuple[bytes, ...] = field(default=())
    build_value: Callable[[], dict[str, Any]] = field(default=dict, repr=False, compare=False)

    @cached_property
    def value(self) -> dict[str, Any]:
        """The block as Python values (built on first use: the embedded ledger never needs it)."""
        return self.build_value()


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
        args = (address, when, tx_id, statements, writes, system_revisions, redactions, self.previous_block_hash)
        try:
            block = _encode_block(*args)
        except Unencodable:
            block = self._generic_block(*args)
        self.next_sequence_no += 1
        self.previous_block_hash = block.block_hash
        return block

    def _generic_block(
        self,
        address: BlockAddress,
        when: Timestamp,
        tx_id: str,
        statements: Sequence[str],
        writes: Sequence[DocumentWrite],
        system_revisions: Sequence[bytes],
        redactions: Sequence[Redaction],
        previous_block_hash: bytes,
    ) -> WrittenBlock:
        """The reference encoding: Python values, `ion_hash` and `simpleion.dumps` (for values that
        `ionwrite` does not write; they raise here what they always raised)."""
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
        block_hash = dot(entries_hash, previous_block_hash)
        value = _block_value(
            address, tx_id, when, (block_hash, entries_hash, previous_block_hash), entries, transaction_info,
            redaction_info, revisions,
        )
        ion = simpleion.dumps(value, binary=True)
        return WrittenBlock(ion, address, block_hash, when, revision_hashes, lambda: value)

    @staticmethod
    def _revision(address: BlockAddress, when: Timestamp, tx_id: str, write: DocumentWrite) -> dict[str, Any]:
        metadata = {"id": write.document_id, "version": write.version, "txTime": when, "txId": tx_id}
        if write.data is None:
            # QLDB never published a delete's hash rule; CONTRACTS §4 fixes IonHash(metadata).
            return {"blockAddress": address.to_ion(), "hash": ion_hash(metadata), "metadata": metadata}
        revision_hash = dot(ion_hash(metadata), ion_hash(write.data))
        return {"blockAddress": address.to_ion(), "hash": revision_hash, "data": write.data, "metadata": metadata}


def _block_value(
    address: BlockAddress,
    tx_id: str,
    when: Timestamp,
    hashes: tuple[bytes, bytes, bytes],
    entries: list[bytes],
    transaction_info: dict[str, Any],
    redaction_info: dict[str, Any] | None,
    revisions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A block as Python values, its fields in QLDB's order; `hashes` is (block, entries, previous block)."""
    block_hash, entries_hash, previous_block_hash = hashes
    value: dict[str, Any] = {
        "blockAddress": address.to_ion(),
        "transactionId": tx_id,
        "blockTimestamp": when,
        "blockHash": block_hash,
        "entriesHash": entries_hash,
        "previousBlockHash": previous_block_hash,
        "entriesHashList": entries,
        "transactionInfo": transaction_info,
    }
    if redaction_info is not None:
        value["redactionInfo"] = redaction_info
    if revisions:
        value["revisions"] = revisions
    return value


def _transaction_info(statements: Sequence[str], writes: Sequence[DocumentWrite], when: Timestamp) -> dict[str, Any]:
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


# --- the fast encoder ------------------------------------------------------------------------------------

_BLOB32 = td(0xA0, 32)


def _struct(body: bytes) -> bytes:
    return td(0xD0, len(body)) + body


def _string_ion(text: str) -> bytes:
    raw = text.encode("utf-8")
    return td(0x80, len(raw)) + raw


def _string_s(text: str) -> bytes:
    return b"\x0b\x80" + _escape(text.encode("utf-8")) + b"\x0e"


def _blob_ion(value: bytes) -> bytes:
    return _BLOB32 + value if len(value) == 32 else td(0xA0, len(value)) + value


def _int_ion(value: int) -> bytes:
    magnitude = value.to_bytes((value.bit_length() + 7) >> 3, "big")
    return td(0x20, len(magnitude)) + magnitude


def _sorted_struct_s(hashes: list[bytes]) -> bytes:
    hashes.sort()
    return b"\x0b\xd0" + _escape(b"".join(hashes)) + b"\x0e"


@lru_cache(maxsize=4096)
def _field_hash(name: str, serialized: bytes) -> bytes:
    """H(s(name) || s(value)): a struct field's hash, cached for the fields that recur."""
    return sha256(_s_name(name) + serialized).digest()


def _statement_parts(text: str) -> tuple[bytes, bytes, bytes, bytes]:
    """(string encoding, field hash of `statement`, statementDigest, its field hash) of a statement
    text: drivers repeat the same parameterised texts, so short ones are computed once."""
    return _statement_parts_cached(text) if len(text) <= 2048 else _statement_parts_uncached(text)


def _statement_parts_uncached(text: str) -> tuple[bytes, bytes, bytes, bytes]:
    serialized = _string_s(text)
    digest = sha256(serialized).digest()
    digest_s = b"\x0b\xa0" + _escape(digest) + b"\x0e"
    statement_hash = sha256(_s_name("statement") + serialized).digest()
    return _string_ion(text), statement_hash, digest, sha256(_s_name("statementDigest") + digest_s).digest()


_statement_parts_cached = lru_cache(maxsize=1024)(_statement_parts_uncached)


@lru_cache(maxsize=1024)
def _document_entry_s(table_name: str, table_id: str, indexes: tuple[int, ...]) -> bytes:
    """s({tableName, tableId, statements}) of a transactionInfo.documents entry."""
    statements_s = b"\x0b\xb0" + b"".join(encode_hashed(i, _NO_SYMBOLS)[1] for i in indexes) + b"\x0e"
    return _sorted_struct_s(
        [
            _field_hash("tableName", _string_s(table_name)),
            _field_hash("tableId", _string_s(table_id)),
            _field_hash("statements", statements_s),
        ]
    )


_NO_SYMBOLS = SymbolTable()  # ints need no symbols
_NATIVE = native.ionhash
# Every field name of a block without redactions (redactionInfo's are added when needed).
_ENVELOPE = (
    "blockAddress", "strandId", "sequenceNo", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
    "previousBlockHash", "entriesHashList", "transactionInfo", "statements", "statement", "startTime",
    "statementDigest", "documents", "tableName", "tableId", "revisions", "hash", "data", "metadata", "id",
    "version", "txTime", "txId",
)


def _block_symbols(writes: Sequence[DocumentWrite]) -> SymbolTable:
    """The caller's table when the documents were encoded against one, else a new one."""
    for write in writes:
        if write.encoded is not None:
            return write.encoded.symbols
    return SymbolTable()


def _document_data(writes: Sequence[DocumentWrite], symbols: SymbolTable) -> list[tuple[bytes, bytes] | None]:
    """(Ion binary against `symbols`, Ion Hash) of each write's data, None for a delete: what the caller
    encoded when it used the same table, else encoded here (before the envelope's names join the table)."""
    data: list[tuple[bytes, bytes] | None] = []
    for write in writes:
        encoded = write.encoded
        if write.data is None:
            data.append(None)
        elif encoded is not None and encoded.symbols is symbols:
            data.append((encoded.ion, encoded.hash))
        else:
            data_ion, data_s = encode_hashed(write.data, symbols)
            data.append((data_ion, sha256(data_s).digest()))
    return data


# (body, block hash, entries hash, entriesHashList, revision hashes): the block without its symbol table.
Envelope = tuple[bytes, bytes, bytes, Sequence[bytes], Sequence[bytes]]


@dataclass(frozen=True, slots=True)
class BlockParts:
    """What a block's envelope is encoded from: `data` is `_document_data(writes, symbols)`, `ts_rep` the
    block timestamp's Ion representation."""

    symbols: SymbolTable
    address: BlockAddress
    ts_rep: bytes
    tx_id: str
    statements: Sequence[str]
    writes: Sequence[DocumentWrite]
    data: Sequence[tuple[bytes, bytes] | None]
    system_revisions: Sequence[bytes]
    redactions: Sequence[Redaction]
    previous_block_hash: bytes


def _envelope_native(parts: BlockParts) -> Envelope | None:
    """`_envelope_python` by the C accelerator, or None where it leaves the block to Python (no C build,
    redactions, a document written twice, unusual argument types)."""
    if _NATIVE is None or parts.redactions:
        return None
    items = [
        (w.table_name, w.table_id, w.document_id, w.version, *(d or (None, None)), w.statement_indexes)
        for w, d in zip(parts.writes, parts.data, strict=True)
    ]
    envelope: Envelope | None = _NATIVE.encode_block(
        parts.symbols, parts.address.strand_id, parts.address.sequence_no, parts.tx_id, parts.ts_rep,
        parts.statements, items, parts.system_revisions, parts.previous_block_hash,
    )
    return envelope


def _encode_block(
    address: BlockAddress,
    when: Timestamp,
    tx_id: str,
    statements: Sequence[str],
    writes: Sequence[DocumentWrite],
    system_revisions: Sequence[bytes],
    redactions: Sequence[Redaction],
    previous_block_hash: bytes,
) -> WrittenBlock:
    """Encode and hash one block with `ionwrite` and, when built, the C envelope (the same bytes' meaning
    and hashes as `JournalWriter._generic_block`). Raises Unencodable for a value it does not write."""
    symbols = _block_symbols(writes)
    parts = BlockParts(
        symbols, address, _timestamp_repr(when), tx_id, statements, writes, _document_data(writes, symbols),
        system_revisions, redactions, previous_block_hash,
    )
    body, block_hash, entries_hash, entries, hashes = _envelope_native(parts) or _envelope_python(parts)
    ion = symbols.prelude() + body
    hashes = tuple(hashes)

    def build_value() -> dict[str, Any]:
        revisions: list[dict[str, Any]] = []
        for write, revision_hash in zip(writes, hashes, strict=False):
            metadata = {"id": write.document_id, "version": write.version, "txTime": when, "txId": tx_id}
            revision: dict[str, Any] = {"blockAddress": address.to_ion(), "hash": revision_hash}
            if write.data is not None:
                revision["data"] = write.data
            revision["metadata"] = metadata
            revisions.append(revision)
        revisions += [{"hash": h} for h in system_revisions]
        return _block_value(
            address, tx_id, when, (block_hash, entries_hash, previous_block_hash), list(entries),
            _transaction_info(statements, writes, when), _redaction_info(redactions), revisions,
        )

    return WrittenBlock(ion, address, block_hash, when, hashes, build_value)


def _envelope_python(parts: BlockParts) -> Envelope:
    """The block's struct encoded against `parts.symbols` (its envelope names added in `_ENVELOPE`'s order,
    then the document ids of transactionInfo.documents), with its hashes."""
    symbols, address, ts_rep, tx_id = parts.symbols, parts.address, parts.ts_rep, parts.tx_id
    statements, writes, system_revisions = parts.statements, parts.writes, parts.system_revisions
    f = symbols.fields(_ENVELOPE).__getitem__
    ts_ion = td(0x60, len(ts_rep)) + ts_rep
    ts_s = b"\x0b\x60" + _escape(ts_rep) + b"\x0e"
    tx_ion = _string_ion(tx_id)
    address_ion = _struct(
        f("strandId") + _string_ion(address.strand_id) + f("sequenceNo") + _int_ion(address.sequence_no)
    )

    # revisions: hash = dot(H(metadata), H(data)), or H(metadata) for a delete (CONTRACTS §4)
    tx_time_hash = sha256(_s_name("txTime") + ts_s).digest()
    tx_id_hash = sha256(_s_name("txId") + _string_s(tx_id)).digest()
    meta_tail = f("txTime") + ts_ion + f("txId") + tx_ion
    revision_head = f("blockAddress") + address_ion + f("hash") + _BLOB32
    data_field, metadata_field, id_field, version_field = f("data"), f("metadata"), f("id"), f("version")
    revision_ions = []
    revision_hashes = []
    for write, document in zip(writes, parts.data, strict=True):
        version_ion, version_s = encode_hashed(write.version, symbols)
        metadata_s = _sorted_struct_s(
            [
                sha256(_s_name("id") + _string_s(write.document_id)).digest(),
                _field_hash("version", version_s),
                tx_time_hash,
                tx_id_hash,
            ]
        )
        metadata_hash = sha256(metadata_s).digest()
        metadata_ion = _struct(
            id_field + _string_ion(write.document_id) + version_field + version_ion + meta_tail
        )
        if document is None:
            revision_hash = metadata_hash
            data_part = b""
        else:
            revision_hash = dot(metadata_hash, document[1])
            data_part = data_field + document[0]
        revision_hashes.append(revision_hash)
        revision_ions.append(_struct(revision_head + revision_hash + data_part + metadata_field + metadata_ion))
    hash_field = f("hash")
    for system_hash in system_revisions:
        revision_hashes.append(system_hash)
        revision_ions.append(_struct(hash_field + _blob_ion(system_hash)))

    info_ion, info_hash = _transaction_info_encoded(statements, writes, ts_ion, ts_s, symbols, f)
    entries = [merkle_root(revision_hashes)] if revision_hashes else []
    entries.append(info_hash)
    redaction_info = _redaction_info(parts.redactions)
    redaction_ion = b""
    if redaction_info is not None:
        redaction_ion, redaction_s = encode_hashed(redaction_info, symbols)
        entries.append(sha256(redaction_s).digest())
    entries_hash = merkle_root(entries)
    block_hash = dot(entries_hash, parts.previous_block_hash)

    entries_list = b"".join(_blob_ion(e) for e in entries)
    body = [
        f("blockAddress") + address_ion,
        f("transactionId") + tx_ion,
        f("blockTimestamp") + ts_ion,
        f("blockHash") + _blob_ion(block_hash),
        f("entriesHash") + _blob_ion(entries_hash),
        f("previousBlockHash") + _blob_ion(parts.previous_block_hash),
        f("entriesHashList") + td(0xB0, len(entries_list)) + entries_list,
        f("transactionInfo") + info_ion,
    ]
    if redaction_info is not None:
        body.append(symbols.field("redactionInfo") + redaction_ion)
    if revision_ions:
        revisions_list = b"".join(revision_ions)
        body.append(f("revisions") + td(0xB0, len(revisions_list)) + revisions_list)
    return _struct(b"".join(body)), block_hash, entries_hash, entries, revision_hashes


def _transaction_info_encoded(
    statements: Sequence[str],
    writes: Sequence[DocumentWrite],
    ts_ion: bytes,
    ts_s: bytes,
    symbols: SymbolTable,
    f: Callable[[str], bytes],
) -> tuple[bytes, bytes]:
    """(encoding, Ion Hash) of the block's transactionInfo (the same value as `_transaction_info`);
    `f` gives the encoded SID of an envelope field name."""
    start_hash = sha256(_s_name("startTime") + ts_s).digest()
    statement_field, start_field, digest_field = f("statement"), f("startTime"), f("statementDigest")
    statement_ions = []
    statement_ss = []
    for text in statements:
        text_ion, text_hash, digest, digest_hash = _statement_parts(text)
        statement_ions.append(
            _struct(statement_field + text_ion + start_field + ts_ion + digest_field + _blob_ion(digest))
        )
        statement_ss.append(
            _sorted_struct_s([text_hash, start_hash, digest_hash])
        )
    statements_ion = b"".join(statement_ions)
    body = f("statements") + td(0xB0, len(statements_ion)) + statements_ion
    hashes = [sha256(_s_name("statements") + b"\x0b\xb0" + b"".join(statement_ss) + b"\x0e").digest()]
    if writes:
        grouped: dict[str, tuple[str, str, set[int]]] = {}
        for write in writes:
            entry = grouped.setdefault(write.document_id, (write.table_name, write.table_id, set()))
            entry[2].update(write.statement_indexes)
        table_field, id_field, statements_field = f("tableName"), f("tableId"), f("statements")
        entry_ions: dict[tuple[str, str, tuple[int, ...]], bytes] = {}
        parts = []
        document_hashes = []
        for document_id, (table_name, table_id, indexes) in grouped.items():
            key = (table_name, table_id, tuple(sorted(indexes)))
            entry_ion = entry_ions.get(key)
            if entry_ion is None:
                index_ion = b"".join(encode_hashed(i, symbols)[0] for i in key[2])
                entry_ion = entry_ions[key] = _struct(
                    table_field + _string_ion(table_name) + id_field + _string_ion(table_id)
                    + statements_field + td(0xB0, len(index_ion)) + index_ion
                )
            parts.append(symbols.field(document_id) + entry_ion)
            name_s = b"\x0b\x70" + _escape(document_id.encode("utf-8")) + b"\x0e"
            document_hashes.append(sha256(name_s + _document_entry_s(*key)).digest())
        documents_ion = _struct(b"".join(parts))
        body += f("documents") + documents_ion
        hashes.append(sha256(_s_name("documents") + _sorted_struct_s(document_hashes)).digest())
    return _struct(body), sha256(_sorted_struct_s(hashes)).digest()
