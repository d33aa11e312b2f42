"""`ledgerdr._httpfast`, the threaded stack's native path for the common request, against the Python path it
stands in for (httptools framing, then sigv4.py's `verify` and app.py's target check), which stays the
reference: on random, mutated and adversarial requests the native path takes only what the Python path
accepts, with the same path, headers and body; says NEED_MORE only where httptools waits for more; and hands
everything else back (FALLBACK) — it never crashes and never rejects on its own. Then, through a real
server: requests split across sends, pipelined, refused and accepted on one connection."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httptools
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from freezegun import freeze_time
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledgerdr import native
from ledgerdr.ledger.storage import Durability
from ledgerdr.serve.app import SESSION_TARGET, ServeApp
from ledgerdr.serve.catalog import Catalog
from ledgerdr.serve.errors import AwsError
from ledgerdr.serve.server import bind
from ledgerdr.serve.sigv4 import SignedRequest, canonical_request, signing_key, verify
from ledgerdr.serve.threaded import ThreadedServer, _Parser, _signed

httpfast = native.httpfast
pytestmark = pytest.mark.skipif(httpfast is None, reason="ledgerdr._httpfast is not built (or LEDGERDR_PURE_PYTHON)")

KEYS = {"AKIDTEST": "test-secret", "AKID2": "x" * 80}  # the second's "AWS4" + secret is over a SHA-256 block
MAX_BODY = 4096
NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
NEED_MORE, FALLBACK = 0, 1


def _python_path(raw: bytes, now: datetime = NOW) -> tuple[str, object]:
    """What the Python path makes of `raw`: ("more", None) while incomplete, ("several"/"reject"/"refused",
    …) for what the native path must not take, ("denied", code) when SigV4 or the target refuses it, else
    ("ok", (path, headers, body))."""
    parser = _Parser(MAX_BODY)
    try:
        parser.http.feed_data(raw)
    except httptools.HttpParserError:
        return "reject", None
    if parser.refused is not None:
        return "refused", None
    if not parser.done:
        return "more", None
    if len(parser.done) > 1 or not parser.idle:
        return "several", None
    request = parser.done[0]
    if request.error is not None or not request.keep_alive:
        return "other", None
    signed = _signed(request)
    try:
        verify(signed, KEYS, now=now)
    except AwsError as exc:
        return "denied", exc.code
    targets = signed.headers.get("x-amz-target")
    if targets is None or targets[0] != SESSION_TARGET:
        return "denied", "target"
    return "ok", (signed.raw_path, dict(signed.headers), signed.body)


def _agree(raw: bytes, now: datetime = NOW) -> object:
    """Checks the native path against the Python path on `raw`; returns the native answer."""
    framed = httpfast.parse(raw, MAX_BODY)
    answer = httpfast.session_body(raw, MAX_BODY, KEYS, now.timestamp())
    verdict, detail = _python_path(raw, now)
    if isinstance(answer, bytes):
        assert verdict == "ok", (verdict, detail, raw)
        assert isinstance(framed, tuple) and detail == framed and framed[2] == answer
    elif answer == NEED_MORE:
        assert framed == NEED_MORE
        assert verdict == "more", (verdict, raw)
    else:
        assert answer == FALLBACK
    if isinstance(framed, tuple):  # the framing alone agrees with httptools whether or not SigV4 passes
        parser = _Parser(MAX_BODY)
        parser.http.feed_data(raw)
        assert len(parser.done) == 1 and parser.idle
        request = parser.done[0]
        assert framed == (request.url.decode("latin-1"), request.headers, b"".join(request.body))
    return answer


def _sign(method: str, path: str, headers: list[tuple[str, str]], body: bytes, *, key_id: str = "AKIDTEST",
          when: datetime = NOW, region: str = "us-east-1", signed: list[str] | None = None,
          date: str | None = None) -> str:
    """The Authorization value for a request, computed with sigv4.py's own canonical request."""
    amz = when.strftime("%Y%m%dT%H%M%SZ")
    table: dict[str, list[str]] = {}
    for name, value in headers:
        table.setdefault(name.lower(), []).append(value)
    names = signed if signed is not None else sorted(table)
    request = SignedRequest(method, path, "", table, body)
    scope = f"{date or amz[:8]}/{region}/qldb/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz}\n{scope}\n" + hashlib.sha256(canonical_request(request, names)).hexdigest()
    key = signing_key(KEYS.get(key_id, "unknown"), date or amz[:8], region, "qldb")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"


def _raw(path: str, headers: list[tuple[str, str]], body: bytes, *, method: str = "POST",
         version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}".encode("latin-1")]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _request(body: bytes = b'{"SessionToken": "t", "StartTransaction": {}}', path: str = "/",
             extra: list[tuple[str, str]] = (), when: datetime = NOW, **sign: object) -> bytes:
    headers = [("Host", "127.0.0.1:8443"), ("Content-Length", str(len(body))),
               ("X-Amz-Date", when.strftime("%Y%m%dT%H%M%SZ")), ("X-Amz-Target", SESSION_TARGET),
               ("Content-Type", "application/x-amz-json-1.0"), *extra]
    signed_headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
    authorization = _sign("POST", path, signed_headers, body, when=when, **sign)  # type: ignore[arg-type]
    return _raw(path, [*headers, ("Authorization", authorization)], body)


# ----------------------------------------------------------------------------------- fixed cases
def test_the_common_request_is_taken_and_every_prefix_waits_for_more():
    raw = _request()
    assert _agree(raw) == b'{"SessionToken": "t", "StartTransaction": {}}'
    for cut in range(len(raw)):
        assert _agree(raw[:cut]) == NEED_MORE


def test_what_botocore_signs_is_taken():
    body = b'{"SessionToken": "abc", "StartTransaction": {}}'
    request = AWSRequest("POST", "http://127.0.0.1:8443/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": SESSION_TARGET})
    with freeze_time(NOW):
        SigV4Auth(Credentials("AKIDTEST", "test-secret"), "qldb", "us-east-1").add_auth(request)
    headers = [("Host", "127.0.0.1:8443"), ("Content-Length", str(len(body)))]
    headers += [(name, value if isinstance(value, str) else value.decode()) for name, value in request.headers.items()]
    assert _agree(_raw("/", headers, body)) == body


@pytest.mark.parametrize("change", [
    lambda raw: raw.replace(b"test-secret", b"x"),  # (no effect: the secret is not sent) — still taken
    lambda raw: raw.replace(b'"t"', b'"u"'),  # body changed after signing
    lambda raw: raw.replace(b"POST / ", b"POST /x "),  # path changed
    lambda raw: raw.replace(b"Signature=", b"Signature=0")[:-1],  # signature of 65 digits
    lambda raw: raw.replace(b"Content-Length:", b"Content-Length: 0"),  # leading zero: left to httptools
    lambda raw: raw.replace(b"HTTP/1.1", b"HTTP/1.0"),
    lambda raw: raw.replace(b"Host:", b"Host :"),
    lambda raw: raw.replace(b"\r\nHost", b"\nHost"),
    lambda raw: raw + raw,  # pipelined
    lambda raw: raw.replace(b"X-Amz-Target: ", b"X-Amz-Target:  "),
    lambda raw: raw.replace(b"POST", b"post"),
])
def test_changed_requests_are_never_taken_unless_python_takes_them(change):
    _agree(change(_request()))


def test_sigv4_refusals_are_left_to_python():
    assert _agree(_request(key_id="AKIDUNKNOWN")) == FALLBACK  # UnrecognizedClientException from Python
    for minutes in (-6, 6, -4.9, 4.9):  # skewed, and near the limit: Python's rule decides
        assert _agree(_request(when=NOW + timedelta(minutes=minutes))) == FALLBACK
    assert _agree(_request(when=NOW + timedelta(minutes=4))) != FALLBACK
    assert _agree(_request(signed=["content-type", "x-amz-date"])) == FALLBACK  # host not signed
    assert _agree(_request(date="20261206")) == FALLBACK  # credential date is not X-Amz-Date's
    assert _agree(_request(key_id="AKID2")) != FALLBACK  # a long secret
    assert _agree(_request(extra=[("Connection", "close")])) == FALLBACK
    assert _agree(_request(extra=[("Expect", "100-continue")])) == FALLBACK
    assert _agree(_request(extra=[("Transfer-Encoding", "chunked")])) == FALLBACK
    assert _agree(_request(extra=[("X-Amz-Target", SESSION_TARGET)])) == FALLBACK  # a header sent twice


def test_paths_are_canonicalised_as_sigv4_py_does():
    for path in ("/", "/a/b/", "/a/./b/../c", "//a//", "/..", "/a/b/..", "/~x-y_z.1"):
        assert isinstance(_agree(_request(path=path)), bytes), path
    assert _agree(_request(path="/" + "a/" * 100)) == FALLBACK  # more segments than the native path takes
    assert _agree(_request(path="/a%20b")) == FALLBACK


def test_header_values_are_folded_as_sigv4_py_does():
    extra = [("X-Amz-Meta", "a  b   c"), ("X-Other", "p q")]
    raw = _request(extra=extra)
    assert isinstance(_agree(raw), bytes)


# ----------------------------------------------------------------------------------- properties
_NAMES = st.sampled_from(["Host", "Content-Type", "X-Amz-Date", "X-Amz-Target", "X-Amz-Meta", "Connection",
                          "Expect", "Transfer-Encoding", "Accept-Encoding", "User-Agent", "Content-Length",
                          "x-y", "X_Z", "a!b"])
_VALUE_CHARS = st.sampled_from([" ", "  ", "\t", "a", "Z", "0", ",", ";", "=", "/", "\x85", "\xa0", "\x1f", "\x7f",
                                "\xff", '"', "keep-alive", "close", "100-continue", "chunked"])
_VALUES = st.lists(_VALUE_CHARS, min_size=0, max_size=8).map("".join)
_PATHS = st.lists(st.sampled_from(["/", "a", ".", "..", "~", "-", "%20", "?", "q=1", "#"]), max_size=8).map(
    lambda parts: "/" + "".join(parts))


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """A request as a client might build one: mostly well signed, with random extra headers, values and path."""
    body = draw(st.binary(max_size=64))
    path = draw(_PATHS)
    extra = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=3))
    when = NOW + timedelta(seconds=draw(st.sampled_from([0, -30, 200, -299, 301, -400])))
    headers = [("Host", draw(st.sampled_from(["127.0.0.1:8443", " h ", "h  i"]))),
               ("Content-Length", str(len(body))), ("X-Amz-Date", when.strftime("%Y%m%dT%H%M%SZ")),
               ("X-Amz-Target", draw(st.sampled_from([SESSION_TARGET, "Other.Op", SESSION_TARGET + " "]))), *extra]
    names = sorted({name.lower() for name, _ in headers if name.lower() != "content-length"})
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from([*names, "absent", "HOST"]), min_size=1, max_size=6))
    try:
        authorization = _sign("POST", path.partition("?")[0], [(n, v) for n, v in headers if n.lower() in names],
                              body, key_id=draw(st.sampled_from(["AKIDTEST", "AKID2", "NOPE"])), when=when,
                              signed=names)
    except KeyError:
        authorization = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261207/us-east-1/qldb/aws4_request, " \
                        "SignedHeaders=host, Signature=" + "0" * 64
    headers.append(("Authorization", authorization))
    draw(st.randoms()).shuffle(headers)
    return _raw(path, headers, body)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A well-signed request with a few bytes replaced, inserted, deleted, or a cut."""
    raw = bytearray(draw(_requests()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "cut", "upper"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 44, 47, 58, 59, 61, 65, 97, 127, 128, 255]))
        if kind == "replace" and raw:
            raw[at] = byte
        elif kind == "insert":
            raw.insert(at, byte)
        elif kind == "delete" and raw:
            del raw[at]
        elif kind == "cut":
            del raw[at:]
        elif raw:
            raw[at] = ord(chr(raw[at]).upper()) & 0xFF
    return bytes(raw)


_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_requests())
def test_random_requests_agree(raw):
    _agree(raw)


@_SETTINGS
@given(_mutated())
# llhttp refuses a second Content-Length, or a non-digit in one, as its value arrives, before the head is complete
@example(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nX-Amz-Target: QLDBSession.SendCommand\r\n"
         b"Content-Length: a")
@example(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n")
@example(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x")
def test_mutated_requests_agree(raw):
    _agree(raw)


@_SETTINGS
@given(st.binary(max_size=512))
@example(b"POST / HTTP/1.1\r\n")
@example(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nA:" + b"b" * 20000)
def test_random_bytes_agree(raw):
    _agree(raw)


def test_every_cut_of_a_taken_request_waits_or_falls_back():
    raw = _request(extra=[("X-Amz-Meta", "a  b")])
    for cut in range(len(raw) + 1):
        _agree(raw[:cut])


# ----------------------------------------------------------------------------------- a real server
@pytest.fixture
def served(tmp_path) -> Iterator[int]:
    from ledgerdr.ledger.engine import Ledger

    with Ledger.create(tmp_path / "data" / "l.db") as ledger:
        ledger.execute("CREATE TABLE T")
    app = ServeApp(Catalog(tmp_path / "data", Durability.FULL), dict(KEYS))
    server = ThreadedServer(app, bind("127.0.0.1", 0))
    serving = threading.Thread(target=server.serve_forever, kwargs={"install_signals": False})
    serving.start()
    try:
        yield server.sock.getsockname()[1]
    finally:
        server.stop()
        serving.join(30)


def _answers(conn: socket.socket, count: int) -> list[tuple[int, dict]]:
    data, answers = b"", []
    while len(answers) < count:
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
        while b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            answers.append((int(head.split()[1]), json.loads(rest[:length])))
            data = rest[length:]
    return answers


def _now_request(command: dict, **kwargs: object) -> bytes:
    return _request(json.dumps(command).encode(), when=datetime.now(UTC).replace(microsecond=0), **kwargs)


def test_a_connection_mixes_split_pipelined_refused_and_taken_requests(served):
    with socket.create_connection(("127.0.0.1", served), timeout=30) as conn:
        start = _now_request({"StartSession": {"LedgerName": "l"}})
        conn.sendall(start[:40])  # the head in pieces, then the body: NEED_MORE until it is whole
        conn.sendall(start[40:-5])
        conn.sendall(start[-5:])
        [(status, answer)] = _answers(conn, 1)
        assert status == 200
        token = answer["StartSession"]["SessionToken"]
        begin = _now_request({"SessionToken": token, "StartTransaction": {}})
        conn.sendall(begin + begin)  # pipelined: the Python path answers both, in order
        answers = _answers(conn, 2)
        assert [status for status, _ in answers] == [200, 200]
        bad = _now_request({"SessionToken": token, "StartTransaction": {}}, key_id="AKIDUNKNOWN")
        conn.sendall(bad)
        [(status, answer)] = _answers(conn, 1)
        assert status == 403 and answer["__type"] == "UnrecognizedClientException"
        conn.sendall(begin)  # the same connection is served again, by the native path
        [(status, answer)] = _answers(conn, 1)
        assert status == 200 and answer["StartTransaction"]["TransactionId"]
        conn.sendall(_now_request({"SessionToken": token, "Nonsense": {}}))
        [(status, answer)] = _answers(conn, 1)
        assert status == 400 and answer["__type"] == "BadRequestException"
        conn.sendall(_request(b"{not json", when=datetime.now(UTC).replace(microsecond=0)))
        [(status, answer)] = _answers(conn, 1)
        assert status == 400 and answer["__type"] == "BadRequestException"


def test_a_request_larger_than_the_read_buffer_is_answered_and_the_connection_goes_on(served):
    """A connection reads into one buffer of its own (threaded._READ_SIZE); a request the native path would take
    but that does not fit it goes to httptools whole, as it arrives, and the next request is the native path's."""
    from ledgerdr.serve.threaded import _READ_SIZE

    with socket.create_connection(("127.0.0.1", served), timeout=30) as conn:
        conn.sendall(_now_request({"StartSession": {"LedgerName": "l"}}))
        [(status, answer)] = _answers(conn, 1)
        token = answer["StartSession"]["SessionToken"]
        # Members other than the command are ignored by SendCommand: a padding member makes the body large.
        large = _now_request({"SessionToken": token, "StartTransaction": {}, "Padding": "x" * (2 * _READ_SIZE)})
        for start in range(0, len(large), 10_000):  # in pieces, as a client's sends may arrive
            conn.sendall(large[start:start + 10_000])
        [(status, answer)] = _answers(conn, 1)
        assert status == 200 and answer["StartTransaction"]["TransactionId"]
        begin = _now_request({"SessionToken": token, "StartTransaction": {}})
        conn.sendall(begin[:100])  # a split request again: it waits in the buffer for the rest
        conn.sendall(begin[100:])
        [(status, answer)] = _answers(conn, 1)
        assert status == 200 and answer["StartTransaction"]["TransactionId"]


def test_the_session_answer_has_the_renderers_bytes():
    """The native path's 200 answer is formatted in one operation; the same bytes as the generic renderer's."""
    import orjson

    from ledgerdr.serve.app import _ok
    from ledgerdr.serve.threaded import _SESSION_OK, _render

    for result in ({"StartTransaction": {"TransactionId": "x" * 22, "TimingInformation": {}}}, {"a": "é" * 300}):
        payload = orjson.dumps(result)
        assert _SESSION_OK % (b"0123abcd", len(payload), payload) == \
            _render(_ok(200, result, "application/x-amz-json-1.0", "0123abcd"), True)
