"""`serve`'s SigV4 verifier against botocore's own signer: what botocore signs passes, and any change to a
signed part, a missing signed header, a wrong key or secret, or a skewed clock is refused with AWS's code.
The verifier caches what repeats between requests (credential, signed-header list, the key's HMAC pads),
so each case runs after a good request with the same credential has filled those caches."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from freezegun import freeze_time

from ledgerdr.serve.errors import AwsError
from ledgerdr.serve.sigv4 import Caller, SignedRequest, _hmac_sha256, _signing_pads, signing_key, verify

KEYS = {"AKIDTEST": "test-secret", "AKIDOTHER": "other-secret"}
BODY = b'{"SessionToken": "abc", "StartTransaction": {}}'


def _signed(body: bytes = BODY, *, key_id: str = "AKIDTEST", secret: str = "test-secret",
            path: str = "/", query: str = "", region: str = "us-east-1",
            when: datetime | None = None) -> tuple[SignedRequest, datetime]:
    """A request as botocore signs it, in the shape the server hands to `verify`."""
    when = when or datetime.now(UTC).replace(microsecond=0)
    url = "http://127.0.0.1:8443" + path + (f"?{query}" if query else "")
    request = AWSRequest("POST", url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "QLDBSession.SendCommand",
        "X-Amz-Date": when.strftime("%Y%m%dT%H%M%SZ")})
    with freeze_time(when):  # botocore stamps X-Amz-Date with its own clock
        SigV4Auth(Credentials(key_id, secret), "qldb", region).add_auth(request)
    assert request.headers["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    headers: dict[str, list[str]] = {"host": ["127.0.0.1:8443"]}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value if isinstance(value, str) else value.decode())
    return SignedRequest("POST", path, query, headers, body), when


def _refused(request: SignedRequest, now: datetime | None = None) -> str:
    with pytest.raises(AwsError) as refused:
        verify(request, KEYS, now=now)
    assert refused.value.status == 403
    return refused.value.code


def test_what_botocore_signs_verifies_and_names_the_caller():
    for _ in range(3):  # the first fills the caches, the others read them
        request, when = _signed()
        assert verify(request, KEYS, now=when) == Caller("AKIDTEST", "us-east-1", "qldb")
    request, when = _signed(path="/ledgers/a%20b/", query="b=2&a=1", region="eu-west-1", key_id="AKIDOTHER",
                            secret="other-secret")
    assert verify(request, KEYS, now=when) == Caller("AKIDOTHER", "eu-west-1", "qldb")


def test_every_signed_part_is_checked_on_every_request():
    good, when = _signed()
    assert verify(good, KEYS, now=when)
    assert _refused(good._replace(body=BODY + b" "), when) == "InvalidSignatureException"
    assert _refused(good._replace(method="PUT"), when) == "InvalidSignatureException"
    assert _refused(good._replace(raw_path="/other"), when) == "InvalidSignatureException"
    assert _refused(good._replace(raw_query="a=1"), when) == "InvalidSignatureException"
    changed = dict(good.headers, **{"x-amz-target": ["QLDBSession.Other"]})
    assert _refused(good._replace(headers=changed), when) == "InvalidSignatureException"
    flipped = good.headers["authorization"][0]
    flipped = flipped[:-1] + ("0" if flipped[-1] != "0" else "1")
    assert _refused(good._replace(headers=dict(good.headers, authorization=[flipped])), when) == \
        "InvalidSignatureException"


def test_wrong_secret_unknown_key_skew_and_missing_headers_are_refused():
    request, when = _signed(secret="not-the-secret")
    assert _refused(request, when) == "InvalidSignatureException"
    request, when = _signed(key_id="AKIDUNKNOWN")
    assert _refused(request, when) == "UnrecognizedClientException"
    request, when = _signed(when=datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=6))
    assert _refused(request, datetime.now(UTC)) == "InvalidSignatureException"
    request, when = _signed()
    assert _refused(request._replace(headers={k: v for k, v in request.headers.items() if k != "authorization"}),
                    when) == "MissingAuthenticationTokenException"
    without_target = {k: v for k, v in request.headers.items() if k != "x-amz-target"}
    assert _refused(request._replace(headers=without_target), when) == "InvalidSignatureException"
    no_host_signed = request.headers["authorization"][0].replace(";host;", ";", 1)  # every listed one was sent
    assert "host" not in no_host_signed
    assert _refused(request._replace(headers=dict(request.headers, authorization=[no_host_signed])), when) == \
        "InvalidSignatureException"
    malformed = request.headers["authorization"][0].replace("/aws4_request", "/aws4_other", 1)
    assert _refused(request._replace(headers=dict(request.headers, authorization=[malformed])), when) == \
        "IncompleteSignatureException"


@pytest.mark.parametrize("message", [b"", b"x", b"y" * 63, b"z" * 64, b"w" * 1000])
def test_the_cached_pad_hmac_is_hmac_sha256(message):
    key = signing_key("s", "20260101", "us-east-1", "qldb")
    assert _hmac_sha256(_signing_pads("s", "20260101", "us-east-1", "qldb"), message) == \
        hmac.digest(key, message, hashlib.sha256)
