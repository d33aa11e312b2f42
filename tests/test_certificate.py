"""Issue 21 items 6 and 8, end to end through the CLI on file repositories in two regions: a window's digest is
durable only once its record is held intact in two regions (`status`, `info`); `verify --digest` proves a
repository against a digest held outside it; a verified restore or promote writes a certificate that
`verify --certificate` re-checks against the repository, refusing a tampered one by the field."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr.certificate import default_path
from ledgerdr.cli import cli
from ledgerdr.compact import compact
from ledgerdr.journal.hashing import merkle_root
from ledgerdr.journal.layout import parse_data_object_key
from ledgerdr.journal.proofs import CapturingAccumulator, fold_proof, tree_proof
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.prune import prune
from ledgerdr.repository import read_windows
from ledgerdr.stores import open_location
from ledgerdr.stores.faults import flip_byte
from support.flows import T0, back_up_one_more_minute, backed_up_ledger, two_region_config


def _cli(*args: str):
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _json(*args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.fixture
def regions(tmp_path, monkeypatch):
    """A ledger backed up into the primary (eu-west-1); the secondary (eu-central-1) not yet replicated."""
    config = two_region_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out = _cli("backup", "--once", "--config", str(config))
    assert code == 0, out
    return tmp_path, str(config)


def _ledger_digest(root: Path, name: str = "digest.json") -> Path:
    """The source ledger's digest now, saved as `ledgerdr ledger digest --json` prints it (held outside)."""
    code, out = _cli("ledger", "digest", str(root / "ledger.db"), "--json")
    assert code == 0, out
    (root / name).write_text(out)
    return root / name


def _newest_digest(root: Path) -> dict:
    windows = read_windows(open_location(str(root / "primary"))).windows
    return windows[-1].digest


def test_a_digest_is_durable_only_once_replicated_to_a_second_region(regions):
    root, config = regions
    status = _json("status", "--config", config)
    assert status["durable_digest"] is None
    assert "durable digest: none" in _cli("status", "--config", config)[1]
    assert _json("info", "--config", config)["durable_digest"] is None

    assert _cli("replicate", "--config", config)[0] == 0
    newest = _newest_digest(root)
    for command in ("status", "info"):
        durable = _json(command, "--config", config)["durable_digest"]
        assert durable["digest"] == newest["digest"] and durable["tip_address"] == newest["tip_address"]
        assert durable["regions"] == ["eu-west-1", "eu-central-1"]
        assert durable["repositories"] == ["primary", "secondary"]
        assert durable["window"] == read_windows(open_location(str(root / "primary"))).windows[-1].window_start
        assert durable["tip_block"] == int(newest["tip_address"].rsplit(":", 1)[1].rstrip("}"))
    code, text = _cli("status", "--config", config)
    assert code == 0 and f"durable digest (in 2 regions): {newest['digest']}" in text
    assert "eu-west-1 (primary), eu-central-1 (secondary)" in text
    assert f"durable digest (in 2 regions): {newest['digest']}" in _cli("info", "--config", config)[1]


def test_a_damaged_copy_or_a_shared_region_is_not_durable(regions):
    root, config = regions
    assert _cli("replicate", "--config", config)[0] == 0
    original = Path(config).read_text()
    # two repositories in one region: a regional disaster takes both, so nothing is durable
    Path(config).write_text(original.replace('"eu-central-1"', '"eu-west-1"'))
    assert _json("status", "--config", config)["durable_digest"] is None
    Path(config).write_text(original)
    # the replica's copy of the first window's data object is altered: from that window on nothing the replica
    # holds counts (status's own verdict, no second hashing), so no digest is held intact in two regions
    first = read_windows(open_location(str(root / "primary"))).windows[0]
    flip_byte(root / "secondary", next(o.key for o in first.objects if parse_data_object_key(o.key)), -1)
    assert _json("status", "--config", config, code=4)["durable_digest"] is None


def test_verify_digest_accepts_the_ledgers_digest_in_qldb_forms(regions):
    root, _ = regions
    saved = _ledger_digest(root)
    code, out = _cli("verify", str(root / "primary"), "--digest", str(saved))
    assert code == 0 and "MATCHES" in out, out
    raw = json.loads(saved.read_text())
    tip = f'{{strandId:"{raw["digest_tip_address"]["strandId"]}",sequenceNo:{raw["digest_tip_address"]["sequenceNo"]}}}'
    get_digest = json.dumps({"Digest": raw["digest"], "DigestTipAddress": {"IonText": tip}})  # aws qldb get-digest
    report = _json("verify", str(root / "primary"), "--digest", get_digest)
    assert report["ok"] and report["external_digest"]["outcome"] == "match"
    assert report["external_digest"]["recomputed"] == raw["digest"]
    (root / "digest.ion").write_text(f'{{Digest: {{{{{raw["digest"]}}}}}, DigestTipAddress: {{IonText: '
                                     f'{json.dumps(tip)}}}}}')  # the same response in Ion: the digest a blob
    assert _cli("verify", str(root / "primary"), "--digest", str(root / "digest.ion"))[0] == 0
    assert _cli("verify", str(root / "primary"), "--digest", raw["digest"], "--digest-tip-address", tip)[0] == 0


def test_verify_digest_refuses_a_wrong_digest_naming_the_block_and_one_past_the_tip(regions):
    root, _ = regions
    raw = json.loads(_ledger_digest(root).read_text())
    seq, strand = raw["digest_tip_address"]["sequenceNo"], raw["digest_tip_address"]["strandId"]
    tip = f'{{strandId:"{strand}",sequenceNo:{seq}}}'
    wrong = base64.b64encode(bytes([b ^ 1 for b in base64.b64decode(raw["digest"])])).decode()
    code, out = _cli("verify", str(root / "primary"), "--digest", wrong, "--digest-tip-address", tip)
    assert code == 4 and f"at block {tip}" in out and "NOT PROVEN (mismatch)" in out, out
    # the right digest claimed for an earlier block does not match there either
    earlier = f'{{strandId:"{strand}",sequenceNo:{seq - 1}}}'
    assert _cli("verify", str(root / "primary"), "--digest", raw["digest"], "--digest-tip-address", earlier)[0] == 4

    ledger = Ledger.open(root / "ledger.db")  # the ledger moves on; the repository has not backed it up yet
    run_workload(ledger, 3, seed=9)
    ledger.close()
    ahead = _ledger_digest(root, "ahead.json")
    code, out = _cli("verify", str(root / "primary"), "--digest", str(ahead))
    assert code == 7 and "NOT PROVEN (beyond_tip)" in out and f"repository holds blocks up to {seq}" in out, out
    code, out = _cli("verify", str(root / "primary"), "--digest", raw["digest"])
    assert code == 2 and "no tip address" in out


def _restore(root: Path, name: str, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["restore", "--from", str(root / "primary"), "--to", f"embedded:{root / name}.db",
                                      "--workers", "0", "--state-dir", str(root / "state"), "--json", *extra])
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {"output": result.output}


def _tampered(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    out = path.with_name("tampered-" + path.name)
    out.write_text(json.dumps(doc))
    return out


def test_a_restore_writes_a_certificate_that_verify_rechecks(regions):
    root, config = regions
    saved = _ledger_digest(root)
    code, report = _restore(root, "restored")
    assert code == 0, report
    path = root / "restored.db.certificate.json"
    assert report["certificate"] == str(path) and path.is_file()
    doc = json.loads(path.read_text())
    assert doc["kind"] == "ledgerdr-restore-certificate" and doc["verdict"] == "verified"
    assert doc["restore_id"] == report["restore_id"] and doc["operation"] == "restore"
    assert doc["block_range"] == {"first": 0, "last": report["last_seq"], "last_block_hash": report["last_block_hash"],
                                  "last_block_time": doc["block_range"]["last_block_time"]}
    assert doc["target"]["state_digest"] == report["target_state_digest"] == doc["journal_state_digest"]
    assert doc["source"]["repository"] == open_location(str(root / "primary")).url
    assert doc["source"]["lineage"] == read_windows(open_location(str(root / "primary"))).windows[-1].lineage
    assert doc["rto_seconds"] == report["rto_seconds"] and doc["tool"]["name"] == "ledgerdr"
    # the digest and its proof recompute from the last block's hash; the ledger agrees (its tip is that block)
    proof = [base64.b64decode(h) for h in doc["ledger_digest"]["proof"]]
    digest = fold_proof(base64.b64decode(doc["block_range"]["last_block_hash"]), proof)
    assert base64.b64encode(digest).decode() == doc["ledger_digest"]["digest"] == json.loads(saved.read_text())["digest"]

    check = _json("verify", "--certificate", str(path))
    assert check["ok"] and {"block_range.last_block_hash", "ledger_digest.digest", "ledger_digest.proof",
                            "source.lineage", "journal_state_digest", "target.state_digest"} <= set(check["checked"])
    # against the replica too, with the digest held outside, and the live target's state digest
    assert _cli("replicate", "--config", config)[0] == 0
    code, out = _cli("verify", str(root / "secondary"), "--certificate", str(path), "--digest", str(saved),
                     "--check-target")
    assert code == 0 and "certificate: OK" in out and "--digest" in out and "target (live)" in out, out


@pytest.mark.parametrize(("field", "change"), [
    ("block_range.last_block_hash", lambda d: d["block_range"].update(last=d["block_range"]["last"] - 1)),
    ("ledger_digest.digest", lambda d: d["ledger_digest"].update(digest=base64.b64encode(b"\0" * 32).decode())),
    ("target.state_digest", lambda d: d["target"].update(state_digest=hashlib.sha256(b"x").hexdigest())),
    ("source.lineage", lambda d: d["source"].update(lineage="another")),
])
def test_verify_certificate_refuses_a_tampered_claim_naming_the_field(regions, field, change):
    root, _ = regions
    assert _restore(root, "restored")[0] == 0
    tampered = _tampered(root / "restored.db.certificate.json", change)
    code, out = _cli("verify", "--certificate", str(tampered))
    assert code == 4 and f"problem: {field}: says" in out and "REFUSED" in out, out


def test_verify_certificate_with_digests_from_outside(regions):
    root, _ = regions
    saved = _ledger_digest(root)
    assert _restore(root, "restored", "--certificate", str(root / "audit" / "cert.json"))[0] == 0
    path = root / "audit" / "cert.json"
    assert path.is_file() and not (root / "restored.db.certificate.json").exists()
    raw = json.loads(saved.read_text())
    wrong = base64.b64encode(bytes([b ^ 1 for b in base64.b64decode(raw["digest"])])).decode()
    wrong_file = root / "wrong.json"
    wrong_file.write_text(json.dumps({**raw, "digest": wrong}))
    code, out = _cli("verify", "--certificate", str(path), "--digest", str(wrong_file))
    assert code == 4 and "problem: --digest: the ledger digest at block" in out, out
    ledger = Ledger.open(root / "ledger.db")
    run_workload(ledger, 3, seed=9)
    ledger.close()
    code, out = _cli("verify", "--certificate", str(path), "--digest", str(_ledger_digest(root, "ahead.json")))
    assert code == 7 and "problem: --digest: the digest covers blocks up to" in out, out


def test_promote_writes_a_certificate(regions):
    root, _ = regions
    standby = root / "standby.db"
    assert _cli("standby", "--from", str(root / "primary"), "--to", f"embedded:{standby}", "--once")[0] == 0
    code, out = _cli("promote", "--from", str(root / "primary"), "--to", f"embedded:{standby}",
                     "--state-dir", str(root / "state"))
    assert code == 0 and f"certificate: {standby}.certificate.json" in out, out
    doc = json.loads(Path(f"{standby}.certificate.json").read_text())
    assert doc["operation"] == "promote" and doc["promotion"]["lineage"] == Ledger.open(standby).lineage
    assert doc["promotion"]["previous_lineage"] == doc["source"]["lineage"]
    assert _cli("verify", "--certificate", f"{standby}.certificate.json")[0] == 0


def test_after_a_prune_the_certificate_says_why_it_holds_no_digest(tmp_path):
    """Raw exports a snapshot covers were pruned: no digest folds from block 0 any more. The certificate says
    so instead of claiming one, and `verify --certificate` cannot prove the range (exit 7), while the state
    digest still recomputes (from the snapshot, as the restore planned it)."""
    path, location = backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    compact(location)
    back_up_one_more_minute(path, location, 3)
    with freeze_time(T0 + timedelta(days=40)):  # the exports' retention is over
        assert prune(location, confirm=True).record_key
    code, report = _restore(tmp_path, "restored")
    assert code == 0, report
    doc = json.loads((tmp_path / "restored.db.certificate.json").read_text())
    assert doc["ledger_digest"] is None and "do not run from block 0" in doc["ledger_digest_unavailable"]
    assert doc["block_range"]["first"] == 0 and doc["snapshot_last_seq"] is not None
    check = _json("verify", "--certificate", str(tmp_path / "restored.db.certificate.json"), code=7)
    assert [p["field"] for p in check["problems"]] == ["block_range.last"]
    assert {"journal_state_digest", "target.state_digest", "source.lineage"} <= set(check["checked"])


def test_a_postgresql_restores_certificate_goes_to_its_state_folder(tmp_path):
    """The default places (docs/format.md): beside an embedded target's file, else in the state folder."""
    assert default_path("embedded:///data/restored.db", tmp_path, "R1") == Path("/data/restored.db.certificate.json")
    assert default_path("postgresql://u@localhost/db", tmp_path, "R1") == tmp_path / "R1" / "certificate.json"


def test_the_digest_at_each_block_and_its_proof_are_the_merkle_trees():
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(37)]
    accumulator = CapturingAccumulator(frozenset(range(0, 37, 3)))
    for block_hash in hashes:
        accumulator.add(block_hash)
    for seq, (digest, block_hash, proof) in accumulator.captured.items():
        assert digest == merkle_root(hashes[:seq + 1]) == fold_proof(block_hash, proof)
        assert block_hash == hashes[seq] and proof == tree_proof(hashes[:seq + 1], seq)
