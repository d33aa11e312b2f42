"""The read path's shortcuts give exactly what the slow ways give: the streamed reader and its raw block
bytes, the timestamp fast path, dot's integer comparison, JSON down-conversion of symbols, a restore's
journal side from the workers' recorded leaves, and a target's current rows hashed once."""

from __future__ import annotations

import base64
import random
import sqlite3
from hashlib import sha256
from pathlib import Path

import orjson
import pytest
from amazon.ion import simpleion
from amazon.ion.symbols import SymbolToken
from hypothesis import given
from hypothesis import strategies as st

from ledgerdr.journal.codecs import DecodeError, ExportFormat, parse_timestamp, read_blocks, to_json
from ledgerdr.journal.hashing import dot, ion_hash
from ledgerdr.restore import RestoreOptions, restore
from ledgerdr.targets.digest import PackedJournal, digest_of_target, unpack_journal
from ledgerdr.targets.embedded import EmbeddedTarget
from support.flows import backed_up_ledger
from support.qldb_export_factory import generate_blocks

_SIGNED = bytes(b ^ 0x80 for b in range(256))


def _reference_dot(a: bytes, b: bytes) -> bytes:
    """QLDB's dot as first written: compare the reversed bytes as signed octets."""
    key_a, key_b = a[::-1].translate(_SIGNED), b[::-1].translate(_SIGNED)
    return sha256(a + b if key_a < key_b else b + a).digest()


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.integers(0, 31))
def test_dot_orders_operands_as_qldb_does(a: bytes, b: bytes, position: int) -> None:
    assert dot(a, b) == _reference_dot(a, b)
    near = bytearray(a)
    near[position] ^= 0xFF  # operands that differ in one octet only, at any position
    assert dot(a, bytes(near)) == _reference_dot(a, bytes(near))


def test_to_json_turns_symbols_into_their_text() -> None:
    value = simpleion.loads("{a: sym, b: [x, \"s\"], c: (p q), d: note::tagged}")
    assert to_json(value) == {"a": "sym", "b": ["x", "s"], "c": ["p", "q"], "d": "tagged"}
    assert to_json({"bare": SymbolToken("plain", None)}) == {"bare": "plain"}
    with pytest.raises(TypeError):
        to_json(SymbolToken(None, 12))


_TIMESTAMPS = st.builds(
    lambda y, mo, d, h, mi, s, frac: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}Z",
    st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59),
    st.integers(0, 59), st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)))


@given(_TIMESTAMPS)
def test_parse_timestamp_equals_the_ion_reader(text: str) -> None:
    fast, reader = parse_timestamp(text), simpleion.loads(text)
    assert fast == reader and fast.tzinfo is reader.tzinfo
    assert (fast.precision, fast.fractional_precision) == (reader.precision, reader.fractional_precision)
    assert fast.fractional_seconds.as_tuple() == reader.fractional_seconds.as_tuple()
    assert ion_hash(fast) == ion_hash(reader)
    assert simpleion.dumps(fast, binary=True) == simpleion.dumps(reader, binary=True)


@pytest.mark.parametrize("text", ["2026-11-23T13:00Z", "2026T", "2026-11-23T13:00:00.5+01:30",
                                  "2026-11-23T13:00:00.100-00:00"])
def test_parse_timestamp_keeps_other_forms(text: str) -> None:
    assert ion_hash(parse_timestamp(text)) == ion_hash(simpleion.loads(text))


def test_binary_blocks_keep_their_own_bytes() -> None:
    values = [simpleion.loads(b.ion) for b in generate_blocks(12)]
    data = b"".join(simpleion.dumps(v, binary=True) for v in values)  # each with its version marker
    blocks = list(read_blocks(data, ExportFormat.ION_BINARY))
    assert len(blocks) == 12
    for block, value in zip(blocks, values, strict=True):
        assert block.raw is not None and ion_hash(simpleion.loads(block.raw)) == ion_hash(value)
    assert b"".join(b.raw for b in blocks) == data
    shared = simpleion.dumps(values, binary=True, sequence_as_stream=True)  # one symbol table for all
    assert [b.raw for b in read_blocks(shared, ExportFormat.ION_BINARY)] == [None] * 12
    text = b"".join(simpleion.dumps(v, binary=False, omit_version_marker=True).encode() + b"\n" for v in values)
    assert [b.raw for b in read_blocks(text, ExportFormat.ION_TEXT)] == [None] * 12


def test_streamed_reader_reports_truncation() -> None:
    data = b"".join(b.ion for b in generate_blocks(3))
    with pytest.raises(DecodeError):
        list(read_blocks(data[:-7], ExportFormat.ION_BINARY))


# ------------------------------------------------------------------------------------------ restore


def _restore(tmp_path: Path, name: str, **kwargs):
    _, primary = backed_up_ledger(tmp_path / "src")
    options = RestoreOptions(workers=0, state_dir=tmp_path / "state", **kwargs)
    return primary, restore(primary.store.url, f"embedded:{tmp_path / name}", options), options


def _leaves(state: Path) -> list[Path]:
    return sorted(p for p in state.rglob("*.leaves") if ".ledgerdr-meta" not in p.parts)


def test_finalize_uses_recorded_leaves_and_rereads_without_them(tmp_path):
    primary, first, options = _restore(tmp_path, "a.db")
    assert first.verdict, first.problems
    leaves = _leaves(tmp_path / "state")
    assert len(leaves) == first.units_applied > 1
    random.Random(1).choice(leaves).unlink()  # a worker killed between its commit and its record
    again = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", options)
    assert again.verdict, again.problems
    assert again.journal_state_digest == first.journal_state_digest == again.target_state_digest


def test_unreadable_leaves_are_read_again_and_altered_ones_show(tmp_path):
    primary, first, options = _restore(tmp_path, "a.db")
    leaves = _leaves(tmp_path / "state")
    leaves[0].write_bytes(b"not json")  # unreadable: the unit is fetched and verified again
    again = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", options)
    assert again.verdict and again.journal_state_digest == first.journal_state_digest
    header, _, packed = leaves[1].read_bytes().partition(b"\n")
    leaves[1].write_bytes(header + b"\n" + packed[:-1])  # truncated: read again too
    again = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", options)
    assert again.verdict and again.journal_state_digest == first.journal_state_digest
    # the first entry's revision hash (after its table index, flags and version) is not the journal's
    leaves[1].write_bytes(header + b"\n" + packed[:13] + bytes(32) + packed[45:])
    altered = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", options)
    assert not altered.verdict and altered.journal_state_digest != altered.target_state_digest


def test_leaves_recorded_in_format_1_are_still_read(tmp_path):
    """An interrupted restore by an earlier version recorded its leaves as JSON (format 1): a resume reads them."""
    primary, first, options = _restore(tmp_path, "a.db")
    for path in _leaves(tmp_path / "state"):
        header, _, packed = path.read_bytes().partition(b"\n")
        record = orjson.loads(header)
        journal = PackedJournal(tuple(map(tuple, record["tables"])), packed, record["entries"])
        index = {table_id: i for i, (table_id, _) in enumerate(journal.tables)}
        path.write_bytes(orjson.dumps({**record, "format_version": 1, "entries": [
            (index[t], doc, version, base64.b64encode(h).decode(), flags)
            for t, _, doc, version, h, flags in unpack_journal(journal)]}))
    again = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", options)
    assert again.verdict and again.journal_state_digest == first.journal_state_digest == again.target_state_digest
    path = _leaves(tmp_path / "state")[0]  # read, not fetched again: a hash altered there shows
    record = orjson.loads(path.read_bytes())
    record["entries"][0][3] = base64.b64encode(bytes(32)).decode()
    path.write_bytes(orjson.dumps(record))
    altered = restore(primary.store.url, f"embedded:{tmp_path / 'a.db'}", options)
    assert not altered.verdict and altered.journal_state_digest != altered.target_state_digest


def test_a_current_row_that_differs_from_its_history_is_hashed_apart(tmp_path):
    _, report, _ = _restore(tmp_path, "a.db")
    assert report.verdict
    conn = sqlite3.connect(tmp_path / "a.db")
    (table_id, doc_id, version), other = conn.execute(
        "SELECT table_id, doc_id, version FROM documents LIMIT 1").fetchone(), conn.execute(
        "SELECT data FROM documents LIMIT 1 OFFSET 1").fetchone()[0]
    conn.execute("UPDATE documents SET data = ? WHERE table_id = ? AND doc_id = ?", (other, table_id, doc_id))
    conn.commit()
    conn.close()
    target = EmbeddedTarget(tmp_path / "a.db")
    try:
        digest = digest_of_target(target)
    finally:
        target.close()
    assert digest.digest != report.target_state_digest
    assert [(m.document_id, m.version, m.where) for m in digest.mismatches] == [(doc_id, version, "current")]
