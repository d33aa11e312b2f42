"""Signed records (issue 21 item 5), end to end through the CLI on file repositories: a signed backup verifies
with its public key; a window record whose hashes still hold but whose signature is missing, wrong or by an
untrusted key is refused by `verify` (exit 4) and `restore` (exit 7), naming the record; after a key rotation
old and new records verify when both keys are trusted, and only those of the trusted key otherwise; unsigned
repositories keep working; a KMS key (moto) signs as well."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3
import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from moto import mock_aws

from ledgerdr.cli import cli
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from ledgerdr.repository import RECORDS, WINDOWS
from ledgerdr.signing import (
    Ed25519Signer,
    SignatureError,
    TrustedKeys,
    canonical_bytes,
    key_id_of,
    load_signer,
    sign_document,
    verify_document,
)
from ledgerdr.stores import FileStore


class Key:
    """An Ed25519 key pair written as `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` would."""

    def __init__(self, folder: Path, name: str) -> None:
        private = ed25519.Ed25519PrivateKey.generate()
        self.private_path, self.public_path = folder / f"{name}.pem", folder / f"{name}.pub"
        self.private_path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
        self.public_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
        self.raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id_of(private.public_key())
        self.signer = Ed25519Signer(private)


def _config(root: Path, signing: str = "") -> Path:
    path = root / "ledgerdr.toml"
    path.write_text(f'[source]\nkind = "embedded"\npath = "ledger.db"\n\n[backup]\ninterval = "1s"\nsettle = "0s"\n'
                    f'retention_days = 1\n\n{signing}\n'
                    f'[repositories.primary]\nurl = "{root / "primary"}"\nregion = "a"\n\n'
                    f'[repositories.secondary]\nurl = "{root / "secondary"}"\nregion = "b"\n')
    return path


def _commit(root: Path, seed: int) -> None:
    path = root / "ledger.db"
    ledger = Ledger.open(path) if path.exists() else Ledger.create(path)
    run_workload(ledger, 4, seed=seed)
    ledger.close()


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _backup(config: Path, root: Path, seed: int) -> None:
    _commit(root, seed)
    code, out = _run("backup", "--config", str(config), "--once")
    assert code == 0, out


def _records(repo: Path) -> dict[str, dict]:
    store = FileStore(repo)
    return {info.key: orjson.loads(store.get(info.key)) for info in store.list(RECORDS) if info.key.endswith(".json")}


def _window_keys(repo: Path) -> list[str]:
    return sorted(key for key in _records(repo) if key.startswith(WINDOWS))


def _replace(repo: Path, key: str, doc: dict) -> None:
    """What someone with write access to the storage can do: put a new, self-consistent record under a key
    (a store that does not enforce retention: an account that can lift the lock)."""
    store = FileStore(repo, lock_mode=None)
    store.delete(key)
    store.put(key, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


@pytest.fixture
def signed(tmp_path):
    """A ledger backed up with key A into the primary, replicated (signed watermarks) and compacted (a signed
    snapshot manifest)."""
    key = Key(tmp_path, "a")
    config = _config(tmp_path, '[signing]\nkey = "a.pem"\n')
    _backup(config, tmp_path, seed=1)
    for command in ("replicate", "compact"):
        code, out = _run(command, "--config", str(config))
        assert code == 0, out
    return tmp_path, config, key


def test_every_record_is_signed_and_verifies_with_the_trusted_key(signed):
    root, _config_path, key = signed
    records = _records(root / "primary")
    assert {k.split("/")[1] for k in records} == {"windows", "snapshots"}
    assert all(doc["signature"]["key_id"] == key.key_id and doc["signature"]["algorithm"] == "ed25519"
               and doc["signature"]["name"] == k for k, doc in records.items())
    for trusted in (str(key.public_path), base64.b64encode(key.raw_public).decode(), key.raw_public.hex()):
        code, out = _run("verify", str(root / "primary"), "--trusted-key", trusted)
        assert code == 0, out
        assert f"signed by trusted keys: {key.key_id} ({len(records)}), refused: 0" in out
    replica = _records(root / "secondary")  # copied records keep the primary's signature; watermarks are signed
    assert {k.split("/")[1] for k in replica} == {"windows", "watermarks"} and all(doc["signature"]["key_id"] == key.key_id for doc in replica.values())
    code, out = _run("verify", str(root / "secondary"), "--trusted-key", str(key.public_path), "--json")
    assert code == 0 and json.loads(out)["signatures"]["signed_by"] == {key.key_id: len(replica)}


@pytest.mark.parametrize("forgery", ["unsigned", "altered", "untrusted"])
def test_a_forged_window_record_with_valid_hashes_is_refused_naming_it(signed, forgery, tmp_path):
    root, config, key = signed
    repo = root / "primary"
    target = _window_keys(repo)[-1]
    doc = _records(repo)[target]
    if forgery == "unsigned":
        del doc["signature"]
    elif forgery == "altered":  # a field no hash covers, under the old signature
        doc["recorded_at"] = "2020-01-01T00:00:00.000Z"
    else:
        doc = sign_document(doc, Key(tmp_path / "..", "mallory").signer)
    _replace(repo, target, doc)
    code, out = _run("verify", str(repo))  # the hashes still hold: without trusted keys it passes
    assert code == 0, out
    code, out = _run("verify", str(repo), "--trusted-key", str(key.public_path))
    assert code == 4
    kind = {"unsigned": "unsigned_record", "altered": "bad_signature", "untrusted": "untrusted_key"}[forgery]
    [line] = [line for line in out.splitlines() if line.startswith("problem:")]
    assert line.startswith(f"problem: {kind}:") and target in line
    _trust_in_config(config, key)
    code, out = _run("restore", "--config", str(config), "--from", str(repo), "--to", f"embedded:{root / 'r.db'}",
                     "--workers", "0", "--state-dir", str(root / "state"))
    assert code == 7 and f"{kind} at {target}" in out
    assert not (root / "r.db").exists()  # refused before the target was touched


def test_a_signed_record_copied_under_another_key_is_refused(signed):
    """A signature names where its record is stored: a replica's genuine watermark copied into another
    repository's folder (which would make that one look verified) is refused, naming the copy."""
    root, _config_path, key = signed
    replica = root / "secondary"
    [original] = [k for k in _records(replica) if k.startswith("_ledgerdr/watermarks/secondary/")][-1:]
    copy = original.replace("/secondary/", "/tertiary/")
    store = FileStore(replica)
    store.put(copy, store.get(original))
    code, out = _run("verify", str(replica), "--trusted-key", str(key.public_path))
    assert code == 4
    [line] = [line for line in out.splitlines() if line.startswith("problem:")]
    assert line.startswith("problem: bad_signature:") and f"for {original}, not for {copy}" in line


def _trust_in_config(config: Path, *keys: Key) -> None:
    text = config.read_text()
    trusted = ", ".join(json.dumps(k.public_path.name) for k in keys)
    config.write_text(text.replace("[signing]\n", f"[signing]\ntrusted_keys = [{trusted}]\n"))


def test_after_a_key_rotation_old_and_new_records_verify_when_both_are_trusted(tmp_path):
    a, b = Key(tmp_path, "a"), Key(tmp_path, "b")
    config = _config(tmp_path, '[signing]\nkey = "a.pem"\n')
    _backup(config, tmp_path, seed=1)
    first = set(_window_keys(tmp_path / "primary"))
    config.write_text(config.read_text().replace('key = "a.pem"', 'key = "b.pem"'))
    _backup(config, tmp_path, seed=2)
    records = _records(tmp_path / "primary")
    by_key = {doc["signature"]["key_id"] for k, doc in records.items() if k not in first}
    assert by_key == {b.key_id} and {records[k]["signature"]["key_id"] for k in first} == {a.key_id}
    repo = str(tmp_path / "primary")
    code, out = _run("verify", repo, "--trusted-key", str(a.public_path), "--trusted-key", str(b.public_path))
    assert code == 0, out
    assert f"{a.key_id} ({len(first)}), {b.key_id} ({len(records) - len(first)})" in out \
        or f"{b.key_id} ({len(records) - len(first)}), {a.key_id} ({len(first)})" in out
    code, out = _run("verify", repo, "--trusted-key", str(b.public_path))
    assert code == 4
    refused = [line for line in out.splitlines() if line.startswith("problem: untrusted_key")]
    assert len(refused) == len(first) and all(a.key_id in line for line in refused)
    assert {k for k in first if any(k in line for line in refused)} == first
    _trust_in_config(config, a, b)  # restore takes the trusted keys from the config
    code, out = _run("restore", "--config", str(config), "--from", repo, "--to", f"embedded:{tmp_path / 'r.db'}",
                     "--workers", "0", "--state-dir", str(tmp_path / "state"))
    assert code == 0 and "verdict: VERIFIED" in out


def test_promote_refuses_untrusted_records_and_signs_its_incarnation_record(signed):
    root, _config_path, key = signed
    repo, standby = str(root / "primary"), f"embedded:{root / 'standby.db'}"
    assert _run("standby", "--from", repo, "--to", standby, "--once")[0] == 0
    original = _records(root / "primary")[_window_keys(root / "primary")[0]]
    _replace(root / "primary", _window_keys(root / "primary")[0],
             {k: v for k, v in _records(root / "primary")[_window_keys(root / "primary")[0]].items() if k != "signature"})
    code, out = _run("promote", "--from", repo, "--to", standby, "--state-dir", str(root / "st"), "--trusted-key",
                     str(key.public_path))
    assert code == 7 and f"unsigned_record at {_window_keys(root / 'primary')[0]}" in out
    assert not any(k.startswith("_ledgerdr/incarnations/") for k in _records(root / "primary"))
    _replace(root / "primary", _window_keys(root / "primary")[0], original)
    code, out = _run("promote", "--from", repo, "--to", standby, "--state-dir", str(root / "st"), "--signing-key",
                     str(key.private_path), "--trusted-key", str(key.public_path))
    assert code == 0, out
    [incarnation] = [doc for k, doc in _records(root / "primary").items() if k.startswith("_ledgerdr/incarnations/")]
    assert incarnation["signature"]["key_id"] == key.key_id
    code, out = _run("verify", repo, "--trusted-key", str(key.public_path))
    assert code == 0, out


def test_unsigned_repositories_verify_without_trusted_keys_and_are_refused_with_them(tmp_path):
    config = _config(tmp_path)
    _backup(config, tmp_path, seed=1)
    records = _records(tmp_path / "primary")
    assert records and not any("signature" in doc for doc in records.values())
    repo = str(tmp_path / "primary")
    code, out = _run("verify", repo)
    assert code == 0, out
    key = Key(tmp_path, "a")
    code, out = _run("verify", repo, "--trusted-key", str(key.public_path))
    assert code == 4 and out.count("problem: unsigned_record") == len(records)
    code, out = _run("restore", "--from", repo, "--to", f"embedded:{tmp_path / 'r.db'}", "--trusted-key",
                     str(key.public_path), "--workers", "0", "--state-dir", str(tmp_path / "state"))
    assert code == 7 and "unsigned_record at " in out and "_ledgerdr/windows/" in out


def test_records_written_before_signing_are_accepted_once_attested(tmp_path):
    key = Key(tmp_path, "a")
    config = _config(tmp_path)
    _backup(config, tmp_path, seed=1)
    before = _window_keys(tmp_path / "primary")
    config.write_text(config.read_text().replace("[repositories.primary]", '[signing]\nkey = "a.pem"\n\n'
                                                 "[repositories.primary]"))
    _backup(config, tmp_path, seed=2)
    repo, trust = str(tmp_path / "primary"), ("--trusted-key", str(key.public_path))
    code, out = _run("verify", repo, *trust)
    assert code == 4 and out.count("problem: unsigned_record") == len(before)
    code, out = _run("attest", "--config", str(config))  # a dry run
    assert code == 0 and f"would attest {len(before)} records with key {key.key_id}" in out
    assert _run("verify", repo, *trust)[0] == 4
    code, out = _run("attest", "--config", str(config), "--confirm")
    assert code == 0 and f"attested {len(before)} records" in out
    code, out = _run("verify", repo, *trust)
    assert code == 0, out
    assert _run("attest", "--config", str(config))[1].strip() == "nothing to attest: every record is signed"
    doc = _records(tmp_path / "primary")[before[0]]  # the same record, other bytes: no longer what was attested
    store = FileStore(tmp_path / "primary", lock_mode=None)
    store.delete(before[0])
    store.put(before[0], orjson.dumps(doc))
    code, out = _run("verify", repo, *trust)
    assert code == 4 and f"bad_signature: record differs from the bytes attestation by key {key.key_id}" in out
    assert before[0] in out
    (tmp_path / "other").mkdir()
    code, out = _run("attest", "--config", str(_config(tmp_path / "other")))
    assert code == 2 and "attest needs a signing key" in out


def test_a_key_from_an_environment_variable_signs(tmp_path):
    key = Key(tmp_path, "a")
    config = _config(tmp_path, '[signing]\nkey = "env:LEDGERDR_TEST_SIGNING_KEY"\n')
    _commit(tmp_path, seed=1)
    code, out = _run("backup", "--config", str(config), "--once")
    assert code == 2 and "env:LEDGERDR_TEST_SIGNING_KEY" in out and "not set" in out
    code, out = _run("status", "--config", str(config))  # reading needs no key
    assert code == 0, out
    code, out = _run("backup", "--config", str(config), "--once",
                     env={"LEDGERDR_TEST_SIGNING_KEY": key.private_path.read_text()})
    assert code == 0, out
    code, out = _run("verify", str(tmp_path / "primary"), "--trusted-key", key.raw_public.hex())
    assert code == 0, out


def test_check_shows_the_key_to_trust_and_refuses_a_bad_one(tmp_path):
    key = Key(tmp_path, "a")
    config = _config(tmp_path, '[signing]\nkey = "a.pem"\ntrusted_keys = ["a.pub"]\n')
    code, out = _run("check", "--config", str(config))
    assert code == 0, out
    public = base64.b64encode(key.raw_public).decode()
    assert f"ed25519 key {key.key_id} signs every record; trust it with --trusted-key {public}" in out
    assert f"a.pub: key {key.key_id}" in out
    config = _config(tmp_path, '[signing]\nkey = "env:LEDGERDR_TEST_UNSET"\ntrusted_keys = ["bad"]\n')
    code, out = _run("check", "--config", str(config))
    assert code == 2 and "ERROR signing_key" in out and "ERROR trusted_key" in out


def test_bad_signing_settings_are_usage_errors(tmp_path):
    config = _config(tmp_path, '[signing]\nkey = "missing.pem"\ntrusted_keys = "a.pub"\n')
    code, out = _run("backup", "--config", str(config), "--once")
    assert code == 2 and "signing.trusted_keys" in out and "a list of strings" in out
    config = _config(tmp_path, '[signing]\nkey = "missing.pem"\n')
    _commit(tmp_path, seed=1)
    code, out = _run("backup", "--config", str(config), "--once")
    assert code == 2 and "missing.pem" in out
    code, out = _run("verify", str(tmp_path / "primary"), "--trusted-key", "not-a-key")
    assert code == 2 and "not-a-key" in out


def test_a_kms_key_signs_records_that_verify_with_its_public_key(tmp_path):
    """moto's KMS signs with ECC_NIST_P256 keys (ECDSA_SHA_256); it has no ECC_NIST_EDWARDS25519 keys, so the
    Ed25519 KMS path is not exercised here."""
    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1")
        arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        public = base64.b64encode(kms.get_public_key(KeyId=arn)["PublicKey"]).decode()
        config = _config(tmp_path, f'[signing]\nkey = "kms:{arn}"\n')
        _backup(config, tmp_path, seed=1)
        records = _records(tmp_path / "primary")
        assert records and {d["signature"]["algorithm"] for d in records.values()} == {"ecdsa-p256-sha256"}
        code, out = _run("verify", str(tmp_path / "primary"), "--trusted-key", public)
        assert code == 0, out
        other = Key(tmp_path, "other")
        code, out = _run("verify", str(tmp_path / "primary"), "--trusted-key", str(other.public_path))
        assert code == 4 and "untrusted_key" in out


# ------------------------------------------------------------------------------- the reusable API


def test_any_json_document_signs_and_verifies_whatever_its_encoding(tmp_path):
    """`sign_document` / `verify_document` for other documents (a restore certificate): the signature covers
    the canonical encoding, so re-encoding the JSON (indent, key order) keeps it valid; any change breaks it."""
    key = Key(tmp_path, "a")
    doc = {"restore_id": "r1", "rto_seconds": 12.5, "blocks": [0, 41], "verdict": True, "note": "été\n",
           "digest": None}
    signed = sign_document(doc, key.signer)
    trusted = TrustedKeys.parse([str(key.public_path)])
    reencoded = json.loads(json.dumps(signed, indent=4, sort_keys=False, ensure_ascii=True))
    assert verify_document(reencoded, trusted) == key.key_id
    assert verify_document(sign_document(signed, key.signer), trusted) == key.key_id  # re-signing replaces
    for change in ({"rto_seconds": 12.6}, {"verdict": False}, {"extra": 1}):
        with pytest.raises(SignatureError) as caught:
            verify_document({**signed, **change}, trusted)
        assert caught.value.kind == "bad_signature"
    forged_id = {**signed, "signature": {**signed["signature"], "key_id": "0" * 16}}
    with pytest.raises(SignatureError, match="not trusted"):
        verify_document(forged_id, trusted)


def test_canonical_encoding_follows_rfc_8785():
    # RFC 8785 §3.2.2.3's number examples, and its member ordering by UTF-16 code units
    assert canonical_bytes([1e-7, 1e21, 1e20, 333333333.3333333, 4.5, 0.002, 1e-27, -0.0]) == \
        b"[1e-7,1e+21,100000000000000000000,333333333.3333333,4.5,0.002,1e-27,0]"
    assert canonical_bytes({"\u20ac": 1, "\r": 2, "\U0001F600": 3, "\ufb33": 4, "1": 5}) == \
        '{"\\r":2,"1":5,"\u20ac":1,"\U0001F600":3,"\ufb33":4}'.encode()
    assert canonical_bytes({"b": [True, None], "a": "\u001f\"\\"}) == b'{"a":"\\u001f\\"\\\\","b":[true,null]}'
    with pytest.raises(ValueError):
        canonical_bytes({"x": float("nan")})


def test_key_id_is_the_same_from_every_form_of_the_key(tmp_path):
    key = Key(tmp_path, "a")
    assert load_signer(str(key.private_path)).key_id == key.key_id
    forms = [str(key.public_path), base64.b64encode(key.raw_public).decode(), key.raw_public.hex()]
    assert {next(iter(TrustedKeys.parse([form]).keys)) for form in forms} == {key.key_id}
    assert len(key.key_id) == 16 and int(key.key_id, 16) >= 0


def test_a_restore_certificate_is_signed_with_the_record_key_and_checked_against_trusted_keys(signed):
    root, config, key = signed
    other = Key(root, "other")
    target = root / "restored.db"
    code, out = _run("restore", "--config", str(config), "--from", "primary", "--to", f"embedded:///{target}",
                     "--workers", "0", "--trusted-key", str(key.public_path), "--state-dir", str(root / "state"))
    assert code == 0, out
    certificate = Path(f"{target}.certificate.json")
    doc = orjson.loads(certificate.read_bytes())
    assert doc["signature"]["key_id"] == key.key_id

    code, out = _run("verify", "--certificate", str(certificate), str(root / "primary"),
                     "--trusted-key", str(key.public_path))
    assert code == 0, out
    code, out = _run("verify", "--certificate", str(certificate), str(root / "primary"),
                     "--trusted-key", str(other.public_path))
    assert code == 4 and "signature" in out and "untrusted_key" in out, out

    unsigned = root / "unsigned.certificate.json"  # the same claims, the signature stripped
    unsigned.write_bytes(orjson.dumps({k: v for k, v in doc.items() if k != "signature"}))
    assert _run("verify", "--certificate", str(unsigned), str(root / "primary"))[0] == 0  # no trusted keys
    code, out = _run("verify", "--certificate", str(unsigned), str(root / "primary"),
                     "--trusted-key", str(key.public_path))
    assert code == 4 and "unsigned_record" in out, out
