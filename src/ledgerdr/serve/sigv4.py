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
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

from .errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=5)
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
    """The caller whose key signed `request`; raises AwsError (403) when it is unsigned or wrongly signed."""
    header = _single(request.headers, "authorization")
    if header is None:
        raise _denied("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(header)
    if match is None:
        raise _denied("IncompleteSignatureException",
                      "Authorization header requires Credential, SignedHeaders and Signature with AWS4-HMAC-SHA256")
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise _denied("IncompleteSignatureException", f"Credential {match['credential']!r} is malformed")
    key_id, date, region, service, _ = scope
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
    signed = match["signed"].split(";")
    if "host" not in signed or any(name not in request.headers for name in signed):
        raise _denied("InvalidSignatureException", "SignedHeaders must include host and name only headers sent")
    credential_scope = "/".join(scope[1:])
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, credential_scope, hashlib.sha256(canonical_request(request, signed)).hexdigest()]
    )
    expected = hmac.digest(signing_key(secret, date, region, service), string_to_sign.encode(), "sha256")
    if not hmac.compare_digest(expected.hex(), match["signature"].lower()):
        raise _denied("InvalidSignatureException",
                      "The request signature we calculated does not match the signature you provided. "
                      "Check your AWS Secret Access Key and signing method.")
    return Caller(key_id, region, service)


def canonical_request(request: SignedRequest, signed: list[str]) -> bytes:
    headers = "".join(f"{name}:{_header_value(request.headers[name])}\n" for name in signed)
    return "\n".join([
        request.method.upper(),
        _canonical_path(request.raw_path),
        _canonical_query(request.raw_query),
        headers,
        ";".join(signed),
        hashlib.sha256(request.body).hexdigest(),
    ]).encode()


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
    if len(values) == 1:
        return " ".join(values[0].split())  # the usual case; str.split beats a regex test ~15× here
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
