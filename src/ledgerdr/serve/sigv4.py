"""AWS Signature Version 4 verification, as botocore's `SigV4Auth` signs (header authorization).

The server recomputes the signature from what arrived: the method, the path exactly as sent (botocore
signs the already percent-encoded path encoded once more, so does this), the query string sorted by
its raw pairs, the headers the client listed in `SignedHeaders`, and the SHA-256 of the body. Errors
carry AWS's codes and statuses: no `Authorization` header → MissingAuthenticationTokenException,
an unknown key id → UnrecognizedClientException, a wrong signature or a clock more than 5 minutes off
→ InvalidSignatureException, each with HTTP 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

from .errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=5)
_SHA256_BLOCK = 64
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)


class SignedRequest(NamedTuple):  # one per request: a NamedTuple is cheaper to build than a frozen dataclass
    """What the signature covers. `headers` maps lowercase names to their values in arrival order."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, list[str]]
    body: bytes


class Caller(NamedTuple):  # a NamedTuple: one per request, and cheaper to build than a frozen dataclass
    access_key_id: str
    region: str
    service: str


def _denied(code: str, message: str) -> AwsError:
    return AwsError(code, message, 403)


def verify(request: SignedRequest, keys: Mapping[str, str], now: datetime | None = None) -> Caller:
    """The caller whose key signed `request`; raises AwsError (403) when it is unsigned or wrongly signed.
    Every request is verified in full: its canonical request is hashed and its signature recomputed and
    compared in constant time. What repeats from request to request (the credential's parts, the list of
    signed headers, the derived key's HMAC pads) is parsed or derived once and cached."""
    header = _single(request.headers, "authorization")
    if header is None:
        raise _denied("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(header)
    if match is None:
        raise _denied("IncompleteSignatureException",
                      "Authorization header requires Credential, SignedHeaders and Signature with AWS4-HMAC-SHA256")
    credential = _credential(match["credential"])
    if credential is None:
        raise _denied("IncompleteSignatureException", f"Credential {match['credential']!r} is malformed")
    key_id, date, region, service, credential_scope = credential
    secret = keys.get(key_id)
    if secret is None:
        raise _denied("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = _single(request.headers, "x-amz-date")
    signed_at = _parse_amz_date(amz_date)
    if signed_at is None or amz_date is None or not amz_date.startswith(date):
        raise _denied("IncompleteSignatureException", "X-Amz-Date is missing, malformed, or not the credential's date")
    now = now or datetime.now(UTC)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise _denied("InvalidSignatureException",
                      f"Signature expired: {amz_date} is now earlier than "
                      f"{(now - MAX_CLOCK_SKEW).strftime('%Y%m%dT%H%M%SZ')} "
                      f"({now.strftime('%Y%m%dT%H%M%SZ')} - 5 min.)")
    signed, required = _signed_headers(match["signed"])
    if "host" not in required or not request.headers.keys() >= required:
        raise _denied("InvalidSignatureException", "SignedHeaders must include host and name only headers sent")
    canonical_hash = hashlib.sha256(canonical_request(request, signed)).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{credential_scope}\n{canonical_hash}".encode()
    expected = _hmac_sha256(_signing_pads(secret, date, region, service), string_to_sign)
    if not hmac.compare_digest(expected.hex(), match["signature"].lower()):
        raise _denied("InvalidSignatureException",
                      "The request signature we calculated does not match the signature you provided. "
                      "Check your AWS Secret Access Key and signing method.")
    return Caller(key_id, region, service)


def canonical_request(request: SignedRequest, signed: Sequence[str]) -> bytes:
    headers = request.headers
    lines = []
    for name in signed:
        values = headers[name]
        # a header sent once is the usual case: folded inline (str.split beats a regex test ~15× here)
        value = " ".join(values[0].split()) if len(values) == 1 else _header_value(values)
        lines.append(f"{name}:{value}\n")
    return (f"{request.method.upper()}\n{_canonical_path(request.raw_path)}\n{_canonical_query(request.raw_query)}\n"
            f"{''.join(lines)}\n{';'.join(signed)}\n{hashlib.sha256(request.body).hexdigest()}").encode()


@lru_cache(maxsize=256)
def _credential(text: str) -> tuple[str, str, str, str, str] | None:
    """`KEY_ID/DATE/REGION/SERVICE/aws4_request` as (key id, date, region, service, credential scope),
    None when malformed. A client sends the same credential all day: parsed once."""
    scope = text.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return None
    return scope[0], scope[1], scope[2], scope[3], "/".join(scope[1:])


@lru_cache(maxsize=256)
def _signed_headers(text: str) -> tuple[tuple[str, ...], frozenset[str]]:
    """SignedHeaders as listed, and as a set: each must be among the request's headers."""
    names = tuple(text.split(";"))
    return names, frozenset(names)


@lru_cache(maxsize=256)
def _signing_pads(secret: str, date: str, region: str, service: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after the derived key's HMAC inner and outer pads (RFC 2104): each request's HMAC
    then costs two state copies and two short hashes, not a key schedule (a quarter of `hmac.digest`)."""
    key = signing_key(secret, date, region, service).ljust(_SHA256_BLOCK, b"\0")  # 32 bytes: no pre-hash
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def _hmac_sha256(pads: tuple[hashlib._Hash, hashlib._Hash], message: bytes) -> bytes:
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.digest()


@lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key (four HMACs); cached, since it changes once a day per key, region and service."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@lru_cache(maxsize=1024)
def _canonical_path(raw_path: str) -> str:
    """botocore's rule: drop dot segments and empty segments, keep a trailing slash, then quote the
    (already percent-encoded) path once more."""
    parts: list[str] = []
    for part in raw_path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    trailing = "/" if raw_path.endswith("/") and parts else ""
    return quote("/" + "/".join(parts) + trailing, safe="/~")


def _canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs = [pair.partition("=") for pair in raw_query.split("&")]
    return "&".join(f"{key}={value}" for key, _, value in sorted(pairs))


def _header_value(values: list[str]) -> str:
    """A header sent several times: its values folded and joined with commas, as botocore signs them."""
    return ",".join(" ".join(value.split()) for value in values)


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


_AMZ_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


@lru_cache(maxsize=64)
def _parse_amz_date(text: str | None) -> datetime | None:
    """`YYYYMMDDTHHMMSSZ` (strptime costs ~35 µs a request; this a few, and requests signed in the same
    second share one parse)."""
    match = _AMZ_DATE.match(text or "")
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
