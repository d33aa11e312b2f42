"""Verification of journal exports: real QLDB samples, generated exports in every format, and every
kind of damage the issue lists (each reported with the object key and block address)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import orjson
import pytest
from amazon.ion import simpleion
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerdr.cli import cli
from ledgerdr.journal import dot, ion_hash, merkle_root
from ledgerdr.journal.codecs import ExportFormat
from ledgerdr.journal.exports import verify_location
from ledgerdr.journal.model import Block
from ledgerdr.journal.proofs import DigestAccumulator, fold_proof, tree_proof, verify_proof
from ledgerdr.journal.verify import BlockChecker, VerifyReport
from ledgerdr.journal.writer import JournalWriter
from ledgerdr.stores.file import FileStore
from support.qldb_export_factory import SAMPLES, generate_blocks, sample_block, write_qldb_export

FORMATS = list(ExportFormat)


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture(scope="module")
def blocks():
    return generate_blocks(60, seed=7)


def _verify(root: Path, prefix: str = "", **kwargs) -> VerifyReport:
    return verify_location(FileStore(root), prefix, **kwargs)


# ------------------------------------------------------------------------------------- real QLDB data


def test_real_block_sample_verifies_every_hash():
    report, problems = VerifyReport(), []
    BlockChecker(report).check(Block(sample_block()), "sample", False, problems)
    assert problems == []
    assert report.revisions == report.revisions_fully_verified == 1


def test_real_block_sample_altered_is_caught():
    block = sample_block()
    block["revisions"][0]["data"]["LastName"] = "Lewes"
    report, problems = VerifyReport(), []
    BlockChecker(report).check(Block(block), "sample", False, problems)
    assert [p.kind for p in problems] == ["revision_hash"]
    assert problems[0].block_address == '{strandId:"HbD9IggL584EPHmfwjmVz0",sequenceNo:3}'


def test_real_revision_sample_verifies():
    response = json.loads((SAMPLES / "kvs-nodejs_sampleRevisionResponse.json").read_text())
    revision = simpleion.loads(response["Revision"]["IonText"])
    assert dot(ion_hash(revision["metadata"]), ion_hash(revision["data"])) == revision["hash"]


def test_known_bad_ledger_info_proof_is_a_mismatch():
    info = json.loads((SAMPLES / "kvs-nodejs_sampleLedgerInfo.json").read_text())
    proof = [bytes(h) for h in simpleion.loads(info["Proof"]["IonText"])]
    digest = _b64(info["LedgerDigest"]["Digest"])
    assert not verify_proof(_b64(info["RevisionHash"]), proof, digest)


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_block_in_a_qldb_layout_export(tmp_path, fmt):
    class _Written:  # the sample block, shaped like the factory's blocks
        value = sample_block()
        timestamp = value["blockTimestamp"]
        address = Block(value).address

    write_qldb_export(tmp_path, [_Written], fmt)
    report = _verify(tmp_path)
    assert report.ok, report.problems
    assert report.blocks == 1 and report.tip_hash == "lu425dAWsmvzxuNHTbn4ID4mLo0bWKkjLP2Uel4wrPQ="
    if fmt is ExportFormat.JSON:  # DOB is a timestamp; JSON turns it into a string
        assert report.revisions_chain_only == {"json_type_lost": 1}
    else:
        assert report.revisions_fully_verified == 1


# ------------------------------------------------------------------------------------- generated exports


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_export_verifies(tmp_path, blocks, fmt):
    write_qldb_export(tmp_path, blocks, fmt, blocks_per_object=7)
    report = _verify(tmp_path)
    assert report.ok, report.problems
    assert report.blocks == 60
    assert report.revisions == sum(1 for b in blocks for r in b.value.get("revisions", []) if "metadata" in r)
    assert report.first_address == str(blocks[0].address) and report.tip_address == str(blocks[-1].address)
    assert report.digest == base64.b64encode(merkle_root([b.block_hash for b in blocks])).decode()
    if fmt.is_ion:
        assert report.revisions_fully_verified == report.revisions


def test_json_chain_only_mode_checks_the_chain(tmp_path, blocks):
    write_qldb_export(tmp_path, blocks, ExportFormat.JSON)
    report = _verify(tmp_path, check_revisions=False)
    assert report.ok and report.blocks == 60 and report.revisions_fully_verified == 0


@pytest.mark.parametrize("keys_with_prefix", [True, False])
@pytest.mark.parametrize("prefix", ["qldb-dr/", "journalExport", "My:Tests/a.b/"])
def test_key_forms_and_local_copies(tmp_path, blocks, prefix, keys_with_prefix):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT, prefix=prefix,
                                keys_with_prefix=keys_with_prefix)
    assert _verify(tmp_path).ok
    assert _verify(tmp_path, written.prefix).ok
    # `aws s3 sync s3://bucket/<prefix> ./copy`: the copy's root is the prefix itself
    assert _verify(tmp_path / written.prefix).ok


def test_manifest_without_output_format_defaults_to_ion_text(tmp_path, blocks):
    write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT, output_format_in_manifest=False)
    assert _verify(tmp_path).ok


def test_empty_export_is_not_a_problem(tmp_path):
    write_qldb_export(tmp_path, [], ExportFormat.ION_TEXT)
    report = _verify(tmp_path)
    assert report.ok and report.blocks == 0 and report.tip_hash is None


def test_nothing_under_location_is_a_problem(tmp_path):
    report = _verify(tmp_path)
    assert [p.kind for p in report.problems] == ["no_exports"] and report.exports == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_json_data_edit_is_named_as_type_lost(tmp_path, blocks, fmt):
    """JSON cannot tell an edited value from a value whose Ion type was lost; it names the revision."""
    written = write_qldb_export(tmp_path, blocks, fmt)
    path = _first_data(tmp_path, written)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Chen", b"Chan", 1) if b"Chen" in data else data.replace(b"Ana", b"Anu", 1))
    report = _verify(tmp_path)
    if fmt is ExportFormat.JSON:
        assert report.ok
        assert any("json_type_lost" in w and written.data_keys[0] in w for w in report.warnings)
    else:
        assert [p.kind for p in report.problems] == ["revision_hash"]


# ------------------------------------------------------------------------------------- damage


def _first_data(root: Path, written) -> Path:
    return root / written.data_keys[0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_altered_byte_is_reported_with_key(tmp_path, blocks, fmt):
    written = write_qldb_export(tmp_path, blocks, fmt)
    path = _first_data(tmp_path, written)
    data = bytearray(path.read_bytes())
    # one character of a statement: in JSON too this breaks a hash (data edits there read as type loss)
    index = data.index(b"Vehicle") + 3
    data[index] = ord("X")
    path.write_bytes(bytes(data))
    report = _verify(tmp_path)
    assert not report.ok
    assert all(p.key == written.data_keys[0] for p in report.problems)
    assert report.problems[0].block_address


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_object(tmp_path, blocks, fmt):
    written = write_qldb_export(tmp_path, blocks, fmt)
    path = _first_data(tmp_path, written)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    report = _verify(tmp_path)
    kinds = {p.kind for p in report.problems}
    assert kinds & {"unreadable_object", "range_mismatch", "malformed_block"}, report.problems
    assert all(p.key == written.data_keys[0] for p in report.problems if p.kind not in ("chain_broken", "gap"))


def test_missing_object_named_in_manifest(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_BINARY)
    (tmp_path / written.data_keys[2]).unlink()
    report = _verify(tmp_path)
    kinds = [p.kind for p in report.problems]
    assert "missing_object" in kinds and "gap" in kinds
    missing = next(p for p in report.problems if p.kind == "missing_object")
    assert missing.key == written.data_keys[2] and "8..11" in missing.block_address


def test_gap_between_exports(tmp_path, blocks):
    write_qldb_export(tmp_path, blocks[:20], ExportFormat.ION_TEXT)
    write_qldb_export(tmp_path, blocks[25:], ExportFormat.ION_TEXT)
    gap = [p for p in _verify(tmp_path).problems if p.kind == "gap"]
    assert len(gap) == 1 and "20..24" in gap[0].detail and "sequenceNo:25" in gap[0].block_address


def test_overlapping_exports_that_agree_verify(tmp_path, blocks):
    write_qldb_export(tmp_path, blocks[:30], ExportFormat.ION_TEXT)
    write_qldb_export(tmp_path, blocks[20:], ExportFormat.ION_BINARY, prefix="later/", blocks_per_object=5)
    report = _verify(tmp_path)
    assert report.ok, report.problems
    assert report.blocks == 60 and report.exports == 2


def test_overlap_that_disagrees_is_a_fork(tmp_path, blocks):
    write_qldb_export(tmp_path, blocks[:30], ExportFormat.ION_TEXT)
    fork_writer = JournalWriter(blocks[0].address.strand_id, next_sequence_no=20,
                                previous_block_hash=blocks[19].block_hash)
    fork = generate_blocks(10, seed=99, writer=fork_writer)
    write_qldb_export(tmp_path, fork, ExportFormat.ION_TEXT, prefix="fork/")
    kinds = [p.kind for p in _verify(tmp_path).problems]
    assert "overlap_mismatch" in kinds


def test_broken_link_between_exports(tmp_path, blocks):
    other = generate_blocks(10, seed=3, writer=JournalWriter(blocks[0].address.strand_id, next_sequence_no=60,
                                                             previous_block_hash=bytes(32)))
    write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT)
    write_qldb_export(tmp_path, other, ExportFormat.ION_TEXT)
    broken = [p for p in _verify(tmp_path).problems if p.kind == "chain_broken"]
    assert broken and "sequenceNo:60" in broken[0].block_address


def test_wrong_format_declared(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT)
    started = tmp_path / written.started_key
    started.write_text(started.read_text().replace('"ION_TEXT"', '"ION_BINARY"'))
    report = _verify(tmp_path)
    assert not report.ok


def test_unknown_format_name(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT)
    started = tmp_path / written.started_key
    started.write_text(started.read_text().replace('"ION_TEXT"', '"PARQUET"'))
    assert "wrong_format" in [p.kind for p in _verify(tmp_path).problems]


def test_unreadable_ion(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT)
    _first_data(tmp_path, written).write_bytes(b"{blockAddress: {{{ not ion")
    problems = _verify(tmp_path).problems
    assert problems[0].kind == "unreadable_object" and problems[0].key == written.data_keys[0]


def test_export_without_completed_manifest(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT)
    (tmp_path / written.completed_key).unlink()
    assert [p.kind for p in _verify(tmp_path).problems] == ["export_incomplete"]


def test_checksum_recorded_elsewhere_is_checked(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_TEXT)
    expected = {written.data_keys[0]: "0" * 64}
    problems = _verify(tmp_path, expected=expected).problems
    assert [p.kind for p in problems] == ["checksum_mismatch"]


# ------------------------------------------------------------------------------------- digests and proofs


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70))
def test_streamed_digest_equals_merkle_root_and_proofs_fold(hashes):
    acc = DigestAccumulator()
    for h in hashes:
        acc.add(h)
    root = merkle_root(hashes)
    assert acc.digest() == root
    for index in {0, len(hashes) // 2, len(hashes) - 1}:
        assert fold_proof(hashes[index], tree_proof(hashes, index)) == root


# ------------------------------------------------------------------------------------- the command


def test_cli_verify_json_and_exit_codes(tmp_path, blocks):
    written = write_qldb_export(tmp_path, blocks, ExportFormat.ION_BINARY)
    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", str(tmp_path), "--json"])
    assert ok.exit_code == 0, ok.output
    report = orjson.loads(ok.stdout)
    for key in ("blocks", "revisions", "revisions_fully_verified", "problems", "tip_hash", "system_entries",
                "revisions_chain_only", "first_address", "tip_address", "exports", "objects", "warnings"):
        assert key in report
    assert report["blocks"] == 60
    (tmp_path / written.data_keys[1]).unlink()
    bad = runner.invoke(cli, ["verify", str(tmp_path)])
    assert bad.exit_code == 4
    assert "missing_object" in bad.output and written.data_keys[1] in bad.output
    assert "Traceback" not in bad.output


def test_cli_verify_missing_directory_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_cli_verify_copy_of_location(tmp_path, blocks):
    write_qldb_export(tmp_path / "a", blocks, ExportFormat.JSON)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert CliRunner().invoke(cli, ["verify", f"file://{tmp_path / 'b'}"]).exit_code == 0
