"""The ASGI application: read the body (bounded), verify SigV4, route, render AWS's shapes.

One endpoint serves both APIs, since both sign as service `qldb`: a request with
`X-Amz-Target: QLDBSession.SendCommand` is the session API (AWS JSON 1.0), any other is the control
plane (REST-JSON). Point `AWS_ENDPOINT_URL_QLDB_SESSION` and `AWS_ENDPOINT_URL_QLDB` at the same URL.

Handlers are blocking (SQLite, fsync), so they run on a thread pool; the event loop only moves bytes.
More requests in flight than `max_in_flight` get `CapacityExceededException` (503), which the drivers
back off from. Every error the client sees is an AWS error shape; an unexpected exception is logged
with its stack trace here and reaches the client as `InternalFailure` (500) with a request id only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from . import messages
from .catalog import Catalog
from .control import ControlPlane, ControlRequest
from .errors import AwsError, bad_request, internal_failure
from .exports import Exports
from .session_api import SessionApi
from .sigv4 import SignedRequest, verify

log = logging.getLogger("ledgerdr.serve")
SESSION_TARGET = "QLDBSession.SendCommand"
DEFAULT_MAX_BODY = 8 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_body: int = DEFAULT_MAX_BODY
    max_in_flight: int = 512
    workers: int = 64
    max_sessions: int = 256
    transaction_seconds: float = 30.0  # QLDB's transaction timeout
    session_idle_seconds: float = 15 * 60


@dataclass
class _Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ServeApp:
    """QLDB's session API and control plane over the ledgers of `catalog`, for the keys given."""

    def __init__(self, catalog: Catalog, keys: dict[str, str], limits: Limits = Limits()) -> None:
        self.catalog = catalog
        self.keys = keys
        self.limits = limits
        self.sessions = SessionApi(catalog, max_sessions=limits.max_sessions,
                                   transaction_seconds=limits.transaction_seconds,
                                   idle_seconds=limits.session_idle_seconds)
        self.exports = Exports(catalog)
        self.control = ControlPlane(catalog, self.sessions, self.exports)
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="ledgerdr-serve")
        self._in_flight = 0  # touched only on the event loop's thread

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = new_request_id()
        session_api = _header(scope, b"x-amz-target") is not None
        if self._in_flight >= self.limits.max_in_flight:
            error = AwsError("CapacityExceededException", messages.CAPACITY_EXCEEDED, 503)
            await _send(send, _error(error, session_api, request_id))
            return
        self._in_flight += 1
        try:
            body = await _read_body(scope, receive, self.limits.max_body)
            if isinstance(body, AwsError):
                response = _error(body, session_api, request_id)
            else:
                loop = asyncio.get_running_loop()
                response = await loop.run_in_executor(self._pool, self.handle, scope, body, request_id)
        finally:
            self._in_flight -= 1
        await _send(send, response)

    def handle(self, scope: dict[str, Any], body: bytes, request_id: str) -> _Response:
        """One request given as an ASGI scope (uvicorn's stack), on a worker thread. Never raises."""
        return self.handle_request(_signed_request(scope, body), request_id)

    def handle_request(self, request: SignedRequest, request_id: str) -> _Response:
        """One request, as it arrived (the threaded stack parses straight into a SignedRequest). Never raises."""
        targets = request.headers.get("x-amz-target")
        session_api = targets is not None
        try:
            caller = verify(request, self.keys)
            if targets is not None:
                if targets[0] != SESSION_TARGET:
                    raise AwsError("UnknownOperationException", f"unknown operation {targets[0]}", 400)
                result = self.sessions.send_command(_json(request.body))
                return _ok(200, result, "application/x-amz-json-1.0", request_id)
            control = ControlRequest(request.method, request.raw_path, parse_qs(request.raw_query),
                                     _json(request.body) if request.body else {}, caller.region)
            status, result = self.control.handle(control)
            return _ok(status, result, "application/json", request_id)
        except AwsError as exc:
            return _error(exc, session_api, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(internal_failure(request_id), session_api, request_id)

    def session_result(self, body: bytes, request_id: str) -> dict[str, Any] | _Response:
        """A `QLDBSession.SendCommand` request whose framing, SigV4 signature and target were already checked
        (the threaded stack's native path, `ledgerdr._httpfast`): the session API part of `handle_request`.
        The result to answer with status 200, or the error's response. Never raises."""
        try:
            return self.sessions.send_command(_json(body))
        except AwsError as exc:
            return _error(exc, True, request_id)
        except Exception:
            log.exception("request %s failed", request_id)
            return _error(internal_failure(request_id), True, request_id)

    def close(self) -> None:
        self.sessions.close_all()
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


_REQUEST_ID_PREFIX = os.urandom(8).hex()  # per process: ids stay unique across restarts and servers
_request_numbers = itertools.count()  # next() on a count is atomic under the GIL: no lock needed


def new_request_id() -> str:
    """A request id for `x-amzn-RequestId` and the log: 32 hex digits, 64 random bits per process then a
    counter. Ids only need to be unique (they name a request in the log), not unpredictable, and
    os.urandom costs a getrandom system call per request (uuid4's text ~4 µs; this ~0.2)."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFFFFFFFFFF:016x}"


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _signed_request(scope: dict[str, Any], body: bytes) -> SignedRequest:
    headers: dict[str, list[str]] = {}
    for key, value in scope["headers"]:
        headers.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return SignedRequest(scope["method"], raw_path.decode("latin-1").split("?")[0],
                         scope.get("query_string", b"").decode("latin-1"), headers, body)


async def _read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes | AwsError:
    declared = _header(scope, b"content-length")
    too_big = AwsError("BadRequestException", f"request body exceeds the limit of {limit:,} bytes", 413)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_big
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return too_big
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request("request body must be a JSON object")
    return value


def _ok(status: int, result: dict[str, Any], content_type: str, request_id: str) -> _Response:
    return _Response(status, _headers(content_type, request_id), orjson.dumps(result))


def _error(error: AwsError, session_api: bool, request_id: str) -> _Response:
    if session_api:
        payload = {"__type": error.code, "message": error.message, **error.members}
        content_type = "application/x-amz-json-1.0"
    else:
        payload = {"Message": error.message, **error.members}
        content_type = "application/json"
    headers = _headers(content_type, request_id) + [(b"x-amzn-errortype", error.code.encode())]
    return _Response(error.status, headers, orjson.dumps(payload))


def _headers(content_type: str, request_id: str) -> list[tuple[bytes, bytes]]:
    kind = _CONTENT_TYPES.get(content_type)
    if kind is None:
        kind = (b"content-type", content_type.encode())
    return [kind, (b"x-amzn-requestid", request_id.encode())]


# The two content types every answer carries, encoded once.
_CONTENT_TYPES = {name: (b"content-type", name.encode()) for name in ("application/x-amz-json-1.0", "application/json")}


async def _send(send: Any, response: _Response) -> None:
    headers = response.headers + [(b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
