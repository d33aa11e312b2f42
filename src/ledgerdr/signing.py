"""Signed records: who wrote a record, not only that it is self-consistent.

A hash chain proves that records agree with each other and with the journal; anyone who can write to a
repository can still write a new, self-consistent window record, watermark or snapshot manifest. A signature
by a key the reader trusts closes that gap. This module is the whole mechanism, independent of repositories:

- `canonical_bytes(doc)` — the one encoding a signature covers (RFC 8785 JSON canonicalization: sorted keys,
  no whitespace, ECMAScript number form), so pretty-printing, key order or a re-encode never matters;
- `sign_document(doc, signer)` / `verify_document(doc, trusted)` — a JSON object with a `signature` member
  `{algorithm, key_id, name, value}` (`name`: where a record is stored, so a copy elsewhere is refused); the signed message is `CONTEXT ‖ SHA-256(canonical_bytes(doc with
  signature.value removed))` (docs/format.md, "Signed records"), so the key id and algorithm are signed
  too and a KMS key signs 60 bytes whatever the record's size (KMS signs at most 4096 bytes);
- `RecordSigner` — an Ed25519 private key (a file or an environment variable), or an AWS KMS asymmetric key
  (ECC_NIST_EDWARDS25519 with ED25519_SHA_512, or ECC_NIST_P256 with ECDSA_SHA_256);
- `TrustedKeys` — public keys by key id: a key id is the first 16 hex digits of the SHA-256 of the raw
  public key, carried in each signature, so records signed before a key rotation still verify when the old
  public key stays trusted.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .errors import ConfigError, VerificationError

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"  # AWS KMS ECC_NIST_P256 keys (KMS keys of that spec are common; moto has them)
CONTEXT = b"ledgerdr signed document v1\n"  # so a signature over a record is never valid for anything else
SIGNATURE = "signature"  # the member of a signed document that holds its signature

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


# ------------------------------------------------------------------------------ canonical encoding


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 (JCS) encoding of a JSON value: UTF-8, object members sorted by their UTF-16 code units,
    no whitespace, strings with only `"`, `\\` and control characters escaped, numbers in ECMAScript form.
    Raises ValueError for a value JSON cannot hold (NaN, infinities, non-string keys, other types)."""
    return _canonical(value).encode()


def _canonical(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("object member names must be strings")
        members = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(f"{_string(k)}:{_canonical(v)}" for k, v in members) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    raise ValueError(f"{type(value).__name__} is not a JSON value")


# The json module's own string encoder without ASCII escaping (its C version): exactly RFC 8785's escaping
# (", \\, \b \f \n \r \t, other control characters as lowercase \u00xx), without json.dumps's per-call set-up.
_string = json.encoder.encode_basestring


def _number(x: float) -> str:
    """ECMAScript's Number.prototype.toString of `x` (what RFC 8785 prescribes), from the shortest digits
    that round-trip (Python's repr gives the same digits)."""
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a JSON number")
    if x == 0:
        return "0"
    _sign, digits, exponent = Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    exponent = int(exponent) + len(digits) - len(text)
    k, n = len(text), int(exponent) + len(text)  # x = 0.text × 10^n
    out = (text + "0" * (n - k) if k <= n <= 21 else
           text[:n] + "." + text[n:] if 0 < n <= 21 else
           "0." + "0" * -n + text if -6 < n <= 0 else
           text[0] + ("." + text[1:] if k > 1 else "") + "e" + ("+" if n > 0 else "-") + str(abs(n - 1)))
    return ("-" if x < 0 else "") + out


def signed_message(doc: Mapping[str, Any]) -> bytes:
    """What a signature over `doc` signs: CONTEXT ‖ SHA-256 of the canonical encoding of `doc` with its
    signature's `value` left out (its `algorithm` and `key_id` stay, so they are signed too)."""
    body = dict(doc)
    if isinstance(body.get(SIGNATURE), Mapping):
        body[SIGNATURE] = {k: v for k, v in body[SIGNATURE].items() if k != "value"}
    return CONTEXT + hashlib.sha256(canonical_bytes(body)).digest()


# ------------------------------------------------------------------------------------------ keys


def key_id_of(public_key: PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key (Ed25519: its 32 bytes; P-256: the
    uncompressed point): short, stable, and the same however the key is stored."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(raw).hexdigest()[:16]


def algorithm_of(public_key: PublicKey) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return ED25519
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return ECDSA_P256
    raise ConfigError(f"{type(public_key).__name__} keys cannot sign ledgerdr records (use Ed25519 or P-256)")


def public_key_text(public_key: PublicKey) -> str:
    """The public key as one line a user can pass to `--trusted-key` (base64: Ed25519 raw, else DER)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(raw).decode()


def _decode_text(text: str) -> bytes | None:
    """Hex or base64 key material in `text`, or None when it is neither."""
    text = "".join(text.split())
    try:
        return bytes.fromhex(text) if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text) \
            else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


def load_private_key(data: bytes, where: str) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes), from its raw
    32 bytes, or from those bytes in hex or base64. Raises ConfigError naming `where`."""
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"signing key {where}: not a readable unencrypted PEM private key: {exc}") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(f"signing key {where}: a {type(key).__name__}, not an Ed25519 key")
        return key
    raw = data if len(data) == 32 else _decode_text(data.decode("ascii", "replace"))
    if raw is None or len(raw) != 32:
        raise ConfigError(f"signing key {where}: not an Ed25519 private key (PEM, or 32 bytes raw, hex or base64)")
    return ed25519.Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(spec: str) -> PublicKey:
    """A public key from `spec`: a file (PEM, DER, raw 32 bytes, or hex/base64 text), or hex/base64 inline
    (Ed25519's raw 32 bytes, or a DER SubjectPublicKeyInfo such as KMS's GetPublicKey returns). Raises
    ConfigError naming `spec`."""
    data = _file_bytes(spec)
    if data is not None and data.lstrip().startswith(b"-----BEGIN"):
        try:
            return _usable(serialization.load_pem_public_key(data), spec)
        except ValueError as exc:
            raise ConfigError(f"trusted key {spec}: not a PEM public key: {exc}") from None
    if data is None:
        raw = _decode_text(spec)
    else:
        raw = data if len(data) == 32 or not _is_text(data) else _decode_text(data.decode("ascii"))
    if raw is None:
        raise ConfigError(f"trusted key {spec!r}: neither a file nor a hex or base64 public key")
    if len(raw) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    try:
        return _usable(serialization.load_der_public_key(raw), spec)
    except ValueError:
        raise ConfigError(f"trusted key {spec!r}: not an Ed25519 (32 bytes) or DER public key") from None


def _file_bytes(spec: str) -> bytes | None:
    """The bytes of file `spec`, or None when `spec` names no file (it is then key material itself)."""
    try:
        return Path(spec).read_bytes() if Path(spec).is_file() else None
    except OSError as exc:
        if len(spec) > 255:  # inline key material too long to be a file name
            return None
        raise ConfigError(f"trusted key {spec}: cannot be read: {exc.strerror or exc}") from None


def _is_text(data: bytes) -> bool:
    return all(32 <= b < 127 or b in b"\r\n\t" for b in data)


def _usable(key: Any, where: str) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey) or (
            isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        return key
    raise ConfigError(f"trusted key {where}: a {type(key).__name__}; ledgerdr records are signed with Ed25519 "
                      "or P-256 keys")


# ------------------------------------------------------------------------------------------ signers


class RecordSigner(Protocol):
    """What signs: its key id, algorithm and public key, and `sign(message) -> signature bytes`."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> PublicKey: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Ed25519Signer:
    """A local Ed25519 private key."""

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key: PublicKey = private_key.public_key()
        self.key_id = key_id_of(self.public_key)
        self.algorithm = ED25519

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


class KmsSigner:
    """An AWS KMS asymmetric key: the private key never leaves KMS. ECC_NIST_EDWARDS25519 keys sign with
    ED25519_SHA_512 (message type RAW: pure Ed25519, the same signatures a local key makes);
    ECC_NIST_P256 keys with ECDSA_SHA_256. The public key (and so the key id) comes from GetPublicKey."""

    _ALGORITHMS = {"ECC_NIST_EDWARDS25519": (ED25519, "ED25519_SHA_512"), "ECC_NIST_P256": (ECDSA_P256, "ECDSA_SHA_256")}

    def __init__(self, key: str, client: Any = None) -> None:
        if client is None:
            import boto3  # only when a KMS key is configured

            region = key.split(":")[3] if key.startswith("arn:") else None
            client = boto3.client("kms", region_name=region)
        answer = client.get_public_key(KeyId=key)
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")  # moto answers with the latter only
        if spec not in self._ALGORITHMS or answer.get("KeyUsage") != "SIGN_VERIFY":
            raise ConfigError(f"KMS key {key}: {spec} / {answer.get('KeyUsage')} cannot sign ledgerdr records",
                              hint="create it with KeySpec ECC_NIST_EDWARDS25519 (or ECC_NIST_P256) and "
                                   "KeyUsage SIGN_VERIFY")
        self._client, self._key = client, key
        self.algorithm, self._kms_algorithm = self._ALGORITHMS[spec]
        self.public_key: PublicKey = _usable(serialization.load_der_public_key(answer["PublicKey"]), key)
        self.key_id = key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        answer = self._client.sign(KeyId=self._key, Message=message, MessageType="RAW",
                                   SigningAlgorithm=self._kms_algorithm)
        return answer["Signature"]


class DeferredSigner:
    """A signer described by a spec (see `load_signer`) and loaded at its first use: a command that only
    reads a repository (status, info) never needs the private key, KMS or the environment variable."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @functools.cached_property
    def _signer(self) -> RecordSigner:
        return load_signer(self.spec)

    @property
    def key_id(self) -> str:
        return self._signer.key_id

    @property
    def algorithm(self) -> str:
        return self._signer.algorithm

    @property
    def public_key(self) -> PublicKey:
        return self._signer.public_key

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(message)


@functools.lru_cache(maxsize=8)
def load_signer(spec: str) -> RecordSigner:
    """The signer `spec` names: `kms:KEY` (a KMS key id, alias or ARN; an ARN's region is used),
    `env:NAME` (an environment variable holding the private key as PEM, hex or base64), or a file path (PEM,
    raw 32 bytes, hex or base64). Loaded once per process. Raises ConfigError."""
    if spec.startswith("kms:"):
        return KmsSigner(spec[len("kms:"):])
    if spec.startswith("env:"):
        name = spec[len("env:"):]
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"signing key env:{name}: the environment variable is not set")
        return Ed25519Signer(load_private_key(value.encode(), f"env:{name}"))
    try:
        data = Path(spec).read_bytes()
    except OSError as exc:
        raise ConfigError(f"signing key {spec}: cannot be read: {exc.strerror or exc}") from None
    return Ed25519Signer(load_private_key(data, spec))


# ------------------------------------------------------------------------------------------ trust


class SignatureError(VerificationError):
    """A document is unsigned (`kind` unsigned_record), signed by a key not trusted (untrusted_key), or its
    signature does not verify (bad_signature)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TrustedKeys:
    """Public keys whose signatures are accepted, by key id. Empty: nothing is checked by the callers."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self.keys: dict[str, PublicKey] = {key_id_of(k): k for k in keys}

    @classmethod
    def parse(cls, specs: Iterable[str]) -> TrustedKeys:
        """From `--trusted-key` values or the config's `trusted_keys` (see `load_public_key`)."""
        return cls(load_public_key(spec) for spec in specs)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __repr__(self) -> str:
        return f"TrustedKeys({', '.join(self.keys)})"

    def verify(self, message: bytes, signature: Mapping[str, Any]) -> str:
        """The key id whose key made `signature` over `message`; raises SignatureError."""
        key_id = signature.get("key_id")
        if not isinstance(key_id, str) or key_id not in self.keys:
            raise SignatureError("untrusted_key", f"signed by key {key_id}, which is not trusted (trusted: "
                                 f"{', '.join(self.keys) or 'none'})")
        key, algorithm = self.keys[key_id], signature.get("algorithm")
        try:
            value = base64.b64decode(str(signature.get("value", "")), validate=True)
            if algorithm != algorithm_of(key):
                raise InvalidSignature
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(value, message)
            else:
                key.verify(value, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureError("bad_signature", f"the {algorithm} signature by key {key_id} does not verify: "
                                 "the record was changed after it was signed, or forged") from None
        return key_id


def sign_document(doc: Mapping[str, Any], signer: RecordSigner, *, name: str | None = None) -> dict[str, Any]:
    """`doc` (a JSON object, any `signature` member replaced) with a `signature` {algorithm, key_id, [name],
    value} over its canonical encoding. `name`: where the document is stored (a record's key relative to its
    repository), signed with it so that a signed document copied elsewhere is refused. Raises ValueError for
    a value JSON cannot hold."""
    body = {k: v for k, v in doc.items() if k != SIGNATURE}
    body[SIGNATURE] = {"algorithm": signer.algorithm, "key_id": signer.key_id, **({"name": name} if name else {})}
    body[SIGNATURE]["value"] = base64.b64encode(signer.sign(signed_message(body))).decode()
    return body


def verify_document(doc: Any, trusted: TrustedKeys, *, name: str | None = None) -> str:
    """The key id that signed `doc`, when the key is trusted and the signature verifies over the document as
    it is, and — given `name` — it was signed for that name; raises SignatureError (kind unsigned_record,
    untrusted_key or bad_signature)."""
    signature = doc.get(SIGNATURE) if isinstance(doc, Mapping) else None
    if not isinstance(signature, Mapping):
        raise SignatureError("unsigned_record", "carries no signature")
    try:
        message = signed_message(doc)
    except ValueError as exc:
        raise SignatureError("bad_signature", f"cannot be encoded canonically: {exc}") from None
    key_id = trusted.verify(message, signature)
    if name is not None and signature.get("name") != name:
        raise SignatureError("bad_signature", f"was signed by key {key_id} for {signature.get('name')}, not for "
                             f"{name}: a signed record copied to another key")
    return key_id
