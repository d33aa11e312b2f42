"""The fused chain-only JSON path (`ChainChecker.feed_json_lines`) against the block-by-block path it
replaces (`fuse_json=False`: `read_blocks(chain_only=True)` + `ChainChecker.feed`).

Both run on the same real files, good and damaged; everything they produce must be equal: the whole
`VerifyReport` (problems with kind, key, block address and detail, in order; counts; tip; digest),
the `--json` output, and the chain state a caller reads afterwards (tip time, remembered overlap hashes).
"""

from __future__ import annotations

import base64
import functools
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerdr.cli import cli
from ledgerdr.journal.codecs import ExportFormat, json_lines
from ledgerdr.journal.exports import plan_location, verify_location
from ledgerdr.journal.ids import new_id
from ledgerdr.journal.verify import VerifyReport, _fused_chain_hashes, verify_objects
from ledgerdr.journal.writer import DocumentWrite, JournalWriter
from ledgerdr.stores.file import FileStore
from support.qldb_export_factory import START, generate_blocks, write_qldb_export

BLOCKS = 40


@functools.cache
def _blocks():
    """40 blocks with no revisions, one, many (up to 40), deletes, and system entries mid-chain: alone
    (a second CREATE TABLE at 31) and beside a document revision (30)."""
    writer = JournalWriter()
    blocks = generate_blocks(30, seed=11, writer=writer)
    write = DocumentWrite("Vehicle", new_id(), new_id(), 0, {"VIN": "1N4AL11D75C109151"})
    blocks.append(writer.commit(["INSERT INTO Vehicle ?"], [write], system_revisions=[bytes(32 * [9])],
                                timestamp=START + timedelta(minutes=1)))
    blocks += generate_blocks(BLOCKS - 31, seed=12, writer=writer, start=START + timedelta(minutes=2))
    return blocks


def _run(root: Path, fuse: bool) -> dict[str, Any]:
    """Everything one chain-only verification yields: the report and the chain state callers read."""
    store = FileStore(root)
    report = verify_location(store, "", check_revisions=False, fuse_json=fuse)
    plan = plan_location(store, "")
    again = VerifyReport(exports=len(plan.exports), problems=list(plan.problems))
    chain = verify_objects(store.get, plan.objects, again, check_revisions=False, keep=plan.keep(), fuse_json=fuse)
    assert again == report  # verify_location is this, and this gives the chain
    return {"report": report.to_json(), "last_seq": chain.last_seq, "last_hash": chain.last_hash,
            "last_block_time": chain.last_block_time, "remembered": chain.remembered,
            "strand_id": chain.strand_id, "first_seq": chain.first_seq,
            "first_previous_hash": chain.first_previous_hash, "digest_valid": chain.digest_valid}


def _same(root: Path) -> dict[str, Any]:
    fused, general = _run(root, True), _run(root, False)
    assert fused == general
    return fused["report"]


def _kinds(report: dict[str, Any]) -> list[str]:
    return [p["kind"] for p in report["problems"]]


# ------------------------------------------------------------------------------------- building exports


@functools.cache
def _template(layout: str) -> dict[str, bytes]:
    """A JSON export (or two) of the test blocks as {relative path: bytes}, written once."""
    blocks = _blocks()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if layout == "one":
            write_qldb_export(root, blocks, ExportFormat.JSON, blocks_per_object=7)
        elif layout == "overlap":  # a later export repeats blocks 20..29: their hashes are remembered and compared
            write_qldb_export(root, blocks[:30], ExportFormat.JSON, blocks_per_object=6)
            write_qldb_export(root, blocks[20:], ExportFormat.JSON, prefix="later/", blocks_per_object=9)
        else:  # "fork": a second export branches off at block 20
            write_qldb_export(root, blocks[:30], ExportFormat.JSON, blocks_per_object=6)
            writer = JournalWriter(blocks[0].address.strand_id, next_sequence_no=20,
                                   previous_block_hash=blocks[19].block_hash)
            write_qldb_export(root, generate_blocks(15, seed=5, writer=writer), ExportFormat.JSON, prefix="fork/")
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _data_keys(files: dict[str, bytes]) -> list[str]:
    return [k for k in files if k.endswith(".json")]


def _write(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _other_hash(seed: int) -> str:
    return base64.b64encode(bytes((seed + i) % 256 for i in range(32))).decode()


# Values a field may be set to: the wrong type, an empty or short hash, text that is not base64, a
# different hash, and the same hash in non-canonical base64 (a2b_base64 skips characters outside the
# alphabet, so it decodes equal while its text differs).
HOSTILE = ["none", "empty", "zero", "float", "true", "list", "dict", "short", "junk", "other", "spaced", "delete"]
FIELDS = ["blockHash", "entriesHash", "previousBlockHash", "entriesHashList", "entriesHashList.0",
          "entriesHashList.1", "revisions", "revisions.0", "revisions.0.hash", "revisions.1.hash",
          "revisions.0.metadata", "blockAddress", "blockAddress.sequenceNo", "blockAddress.strandId",
          "blockTimestamp"]


def _hostile(kind: str, current: Any) -> Any:
    if kind == "spaced" and isinstance(current, str) and len(current) > 8:
        return current[:8] + " \n" + current[8:]
    return {"none": None, "empty": "", "zero": 0, "float": 1.0, "true": True, "list": [], "dict": {},
            "short": base64.b64encode(bytes(31)).decode(), "junk": "not base64!", "other": _other_hash(7),
            "spaced": current}.get(kind, current)


def _set_field(obj: dict[str, Any], path: str, kind: str) -> None:
    *parents, name = path.split(".")
    node: Any = obj
    for part in parents:
        if isinstance(node, list):
            node = node[int(part)] if int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return
    if isinstance(node, list):
        index = int(name)
        if index < len(node):
            if kind == "delete":
                del node[index]
            else:
                node[index] = _hostile(kind, node[index])
    elif isinstance(node, dict) and name in node:
        if kind == "delete":
            del node[name]
        else:
            node[name] = _hostile(kind, node[name])


def _mutate(files: dict[str, bytes], op: tuple) -> None:
    keys = _data_keys(files)
    if not keys:
        return
    key = keys[op[1] % len(keys)]
    lines = files[key].split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines and op[0] != "delete_object":
        return
    at = op[2] % max(1, len(lines))
    kind = op[0]
    if kind == "field":
        try:
            obj = orjson.loads(lines[at])
        except orjson.JSONDecodeError:
            return
        if isinstance(obj, dict):
            _set_field(obj, op[3], op[4])
            lines[at] = orjson.dumps(obj)
    elif kind == "flip":  # one byte replaced: sometimes still JSON, sometimes not
        line = bytearray(lines[at])
        if line:
            line[op[3] % len(line)] = op[4]
            lines[at] = bytes(line)
    elif kind == "drop":  # a missing block
        del lines[at]
    elif kind == "truncate":  # a line cut short
        lines[at] = lines[at][: op[3] % max(1, len(lines[at]))]
    elif kind == "swap":  # reordered lines
        other = op[3] % len(lines)
        lines[at], lines[other] = lines[other], lines[at]
    elif kind == "duplicate":  # a block repeated in place (an overlap its name does not declare)
        lines.insert(at, lines[at])
    elif kind == "blank":
        lines.insert(at, b" \t")
    elif kind == "move":  # a block moved to another object
        target = keys[op[3] % len(keys)]
        moved = lines.pop(at)
        if target != key:
            files[target] = files[target] + moved + b"\n"
    elif kind == "delete_object":
        del files[key]
        return
    files[key] = b"\n".join(lines) + b"\n"


small = st.integers(0, 10_000)
HASHES = ["blockHash", "entriesHash", "previousBlockHash", "entriesHashList.0", "entriesHashList.1",
          "revisions.0.hash", "revisions.1.hash"]
MUTATIONS = st.one_of(
    st.tuples(st.just("field"), small, small, st.sampled_from(HASHES), st.just("other")),  # a tampered hash
    st.tuples(st.just("field"), small, small, st.sampled_from(FIELDS), st.sampled_from(HOSTILE)),
    st.tuples(st.just("flip"), small, small, small, st.sampled_from(b'0Aa+/="{}[],: x\\')),
    st.tuples(st.sampled_from(["drop", "duplicate", "blank", "delete_object"]), small, small),
    st.tuples(st.sampled_from(["truncate", "swap", "move"]), small, small, small),
)


# ------------------------------------------------------------------------------------- the property


@settings(max_examples=200, deadline=None)
@given(layout=st.sampled_from(["one", "overlap", "fork"]), mutations=st.lists(MUTATIONS, max_size=4))
def test_fused_path_reports_exactly_what_the_general_path_reports(layout, mutations):
    files = dict(_template(layout))
    for op in mutations:
        _mutate(files, op)
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), files)
        report = _same(Path(tmp))
    if not mutations and layout != "fork":
        assert report["ok"] and report["blocks"] == BLOCKS and report["digest"] is not None


# ------------------------------------------------------------------------------------- named cases


def test_good_export_takes_the_fused_path_for_every_linked_block(tmp_path):
    """The fused checks accept every block that continues the chain (no revisions, one, many, system
    entries), so a good export never falls back to the block-by-block path after its first block."""
    written = write_qldb_export(tmp_path, _blocks(), ExportFormat.JSON, blocks_per_object=7)
    last_hash = last_text = None
    accepted = 0
    for key in written.data_keys:
        for _index, _line, obj in json_lines((tmp_path / key).read_bytes()):
            if last_hash is not None:
                fused = _fused_chain_hashes(obj, last_hash, last_text)
                assert fused is not None, obj["blockAddress"]
                assert fused[0] == base64.b64decode(obj["blockHash"])
                accepted += 1
            last_hash, last_text = base64.b64decode(obj["blockHash"]), obj["blockHash"]
    assert accepted == BLOCKS - 1
    report = _same(tmp_path)
    assert report["ok"] and report["blocks"] == BLOCKS and report["revisions"] > 40
    assert report["system_entries"] == 3 and report["revisions_chain_only"] == {"not_checked": report["revisions"]}


def _damaged(tmp_path: Path, change) -> tuple[dict[str, Any], list[str]]:
    written = write_qldb_export(tmp_path, _blocks(), ExportFormat.JSON, blocks_per_object=7)
    path = tmp_path / written.data_keys[1]  # blocks 7..13
    lines = path.read_bytes().splitlines()
    change(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return _same(tmp_path), written.data_keys


def _tamper_block_hash(lines: list[bytes]) -> None:
    obj = orjson.loads(lines[2])
    obj["blockHash"] = _other_hash(1)
    lines[2] = orjson.dumps(obj)


def test_tampered_block_hash(tmp_path):
    report, keys = _damaged(tmp_path, _tamper_block_hash)
    assert _kinds(report) == ["block_hash", "chain_broken"]
    assert [p["block_address"].rsplit(":", 1)[1] for p in report["problems"]] == ["9}", "10}"]
    assert all(p["key"] == keys[1] for p in report["problems"])


def test_tampered_revision_hash(tmp_path):
    def change(lines: list[bytes]) -> None:
        for i, line in enumerate(lines):
            obj = orjson.loads(line)
            if obj.get("revisions"):
                obj["revisions"][0]["hash"] = _other_hash(2)
                lines[i] = orjson.dumps(obj)
                return
    report, _ = _damaged(tmp_path, change)
    assert _kinds(report) == ["revisions_root"]


def test_missing_block(tmp_path):
    report, keys = _damaged(tmp_path, lambda lines: lines.pop(3))
    assert _kinds(report) == ["gap"]  # the object still spans 7..13, as its name says
    assert "10..10" in report["problems"][0]["detail"] and report["blocks"] == BLOCKS - 1


def test_truncated_line(tmp_path):
    def change(lines: list[bytes]) -> None:
        lines[4] = lines[4][: len(lines[4]) // 2]
    report, keys = _damaged(tmp_path, change)
    assert _kinds(report) == ["unreadable_object", "gap"]
    assert report["problems"][0]["block_address"] == "after {sequenceNo:10}"
    assert report["problems"][0]["detail"].startswith("cannot decode: line 5 is not JSON")


def test_reordered_lines(tmp_path):
    def change(lines: list[bytes]) -> None:
        lines[2], lines[3] = lines[3], lines[2]
    report, _ = _damaged(tmp_path, change)
    # 7, 8, 10, 9, 11: 9 is missing before 10, then comes back as an undeclared repeat; 11 links to 10
    assert _kinds(report) == ["gap", "overlap"]


def test_block_off_the_schema(tmp_path):
    def change(lines: list[bytes]) -> None:
        obj = orjson.loads(lines[1])
        del obj["entriesHash"]
        lines[1] = orjson.dumps(obj)
    report, _ = _damaged(tmp_path, change)
    assert _kinds(report) == ["malformed_block", "gap"]
    assert report["problems"][0]["detail"] == "block does not follow QLDB's schema: KeyError('entriesHash')"


@pytest.mark.parametrize("layout", ["overlap", "fork"])
def test_overlapping_exports(tmp_path, layout):
    _write(tmp_path, _template(layout))
    report = _same(tmp_path)
    if layout == "overlap":
        assert report["ok"] and report["blocks"] == BLOCKS
    else:  # the two exports' objects interleave by range: each fork block differs, each object's first breaks
        kinds = _kinds(report)
        assert kinds.count("overlap_mismatch") == 10 and set(kinds) == {"overlap_mismatch", "chain_broken"}


def test_cli_chain_only_json_output_is_the_general_paths(tmp_path):
    _damaged(tmp_path, _tamper_block_hash)
    result = CliRunner().invoke(cli, ["verify", str(tmp_path), "--chain-only", "--json"])
    assert result.exit_code == 4, result.output
    general = verify_location(FileStore(tmp_path), "", check_revisions=False, fuse_json=False)
    assert orjson.loads(result.stdout) == orjson.loads(orjson.dumps(general.to_json()))
