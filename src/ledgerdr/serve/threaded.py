"""A thread per connection, parsing with httptools: the default HTTP stack of `serve` (`--http threads`).

Why not uvicorn for the hot path: under uvicorn every request crosses threads twice — the event loop hands
it to the worker pool (the handlers block on SQLite and fsync) and the worker hands the response back
through the loop's self-pipe — and each crossing is a thread wake-up plus a GIL hand-over. Profiles of
the 16-session benchmark put ~40% of the server's Python time in those hand-overs (ThreadPoolExecutor
.submit, Condition.notify, future chaining). Here the thread that owns a connection reads the request,
runs the handler and writes the answer itself; the only crossing left is a commit's trip to the ledger's
group-commit writer. BENCHMARKS.md measures both stacks side by side.

What it keeps from a maintained stack: the HTTP/1.1 parser is httptools (llhttp, Node.js's parser, also
uvicorn's), which does the framing (Content-Length and chunked bodies, keep-alive, pipelining) and rejects
malformed requests. The common request — one complete SendCommand POST with a Content-Length body, the
only thing a session's connection sends — is framed and SigV4-verified in C when `ledgerdr._httpfast` is
built (a connection between requests hands its bytes to it first); that path accepts only a narrow, strictly
checked form and hands anything else (partial lines it does not take, chunked bodies, `Expect`, pipelining,
any SigV4 failure) to httptools and sigv4.py, which stay the reference and give every error. Written here:
the loop around it, bounded by `max_body` per request, `max_connections` threads (more connections are
answered 503 CapacityExceededException and closed), an idle timeout, and a graceful stop (requests in flight
finish, then the sockets close).
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from http import HTTPStatus

import httptools
import orjson

from .. import native
from . import messages
from .app import ServeApp, _error, _Response, new_request_id
from .errors import AwsError
from .sigv4 import SignedRequest

log = logging.getLogger("ledgerdr.serve")
IDLE_SECONDS = 75.0  # a keep-alive connection with no request for this long is closed (as uvicorn's default)
STOP_GRACE_SECONDS = 10.0
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Request:
    """One request as it arrives (a plain slotted class: one per request, and dataclass defaults cost more)."""

    __slots__ = ("url", "headers", "body", "size", "declared", "expects_continue", "error", "keep_alive", "method")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, list[str]] = {}  # lowercase name → values in arrival order, as SigV4 reads them
        self.body: list[bytes] = []
        self.size = 0
        self.declared = b""  # Content-Length as sent
        self.expects_continue = False
        self.error: AwsError | None = None
        self.keep_alive = True
        self.method = "GET"


class _Parser:
    """httptools callbacks, gathering each complete request (bounded body) into `done`."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.current = _Request()
        self.idle = True  # between requests: the next bytes may go to the native path instead
        self.done: list[_Request] = []
        self.refused: _Request | None = None  # declared a body over the limit: answered before it is read
        self.expects_continue = False  # the client sent `Expect: 100-continue` and waits before its body
        self.http = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.current = _Request()
        self.idle = False

    def on_url(self, url: bytes) -> None:
        self.current.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Decoded once here into the SignedRequest's shape: no per-request conversion from bytes pairs later.
        key = _NAMES.get(name)
        if key is None:
            key = _header_name(name)
        text = value.decode("latin-1")
        headers = self.current.headers
        values = headers.get(key)
        if values is None:
            headers[key] = [text]
        else:
            values.append(text)
        if key == "content-length":
            self.current.declared = value
        elif key == "expect":
            self.current.expects_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        declared = self.current.declared
        if declared.isdigit() and int(declared) > self.max_body:
            self.current.error = self._too_big()
            self.refused = self.current
        elif self.current.expects_continue:
            self.expects_continue = True

    def _too_big(self) -> AwsError:
        return AwsError("BadRequestException", f"request body exceeds the limit of {self.max_body:,} bytes", 413)

    def on_body(self, chunk: bytes) -> None:
        request = self.current
        request.size += len(chunk)
        if request.size > self.max_body:
            request.error = self._too_big()
            request.body.clear()
        elif request.error is None:
            request.body.append(chunk)

    def on_message_complete(self) -> None:
        current, http = self.current, self.http
        current.keep_alive = http.should_keep_alive()
        method = http.get_method()
        current.method = _METHODS.get(method) or method.decode("latin-1")
        self.done.append(current)
        self.idle = True


# What every request repeats, decoded once per process rather than once per request: the header names a
# client sends (as bytes exactly as sent → lowercase text; bounded, since names are the client's choice)
# and the methods.
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 256
_METHODS = {method.encode(): method for method in ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")}


def _header_name(name: bytes) -> str:
    key = name.decode("latin-1").lower()
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = key
    return key


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))


_STATUS_LINES = {status: _status_line(status) for status in _REASONS}
_KEEP_ALIVE = {True: b"connection: keep-alive\r\n\r\n", False: b"connection: close\r\n\r\n"}


def _render(response: _Response, keep_alive: bool) -> bytes:
    """The response's bytes, for one send."""
    status = response.status
    head = _STATUS_LINES.get(status) or _status_line(status)
    lines = [head]
    lines += [name + b": " + value + b"\r\n" for name, value in response.headers]
    lines.append(b"content-length: %d\r\n" % len(response.body))
    lines.append(_KEEP_ALIVE[keep_alive])
    lines.append(response.body)
    return b"".join(lines)


def _kernel_timeouts(conn: socket.socket, seconds: float) -> None:
    """The idle timeout kept by the kernel (SO_RCVTIMEO/SO_SNDTIMEO) on a blocking socket. Python's own
    timeout (`settimeout`) polls before every recv and send: two more system calls per request. A read or
    write that times out fails with EAGAIN (BlockingIOError, an OSError), which closes the connection as
    Python's TimeoutError did."""
    conn.setblocking(True)
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


_httpfast = native.httpfast
_READ_SIZE = 65536  # under glibc's mmap threshold (allocated once per connection)
NEED_MORE = 0  # _httpfast's answers when it does not take the request (its module's NEED_MORE and FALLBACK)
FALLBACK = 1


def _fast_answer(app: ServeApp, data: bytes | memoryview) -> bytes | int:
    """The answer's bytes to `data` when the native path takes it — exactly one SendCommand request, framed
    and SigV4-verified in C (`ledgerdr._httpfast`: the same rules as httptools and sigv4.py, which it hands
    everything else to) — else NEED_MORE (a request it takes, not complete yet) or FALLBACK."""
    assert _httpfast is not None
    body = _httpfast.session_body(data, app.limits.max_body, app.keys)
    if body.__class__ is int:
        return body
    request_id = new_request_id()
    result = app.session_result(body, request_id)
    if isinstance(result, _Response):
        return _render(result, True)
    payload = orjson.dumps(result)
    return _SESSION_OK % (request_id.encode(), len(payload), payload)


# `_render(_ok(200, result, "application/x-amz-json-1.0", request_id), keep_alive=True)` in one formatting
# operation (the same bytes, tested): the answer to nearly every request of a session's connection.
_SESSION_OK = (b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: %s\r\n"
               b"content-length: %d\r\nconnection: keep-alive\r\n\r\n%s")


def _signed(request: _Request) -> SignedRequest:
    """What `ServeApp.handle_request` takes: the request as it arrived."""
    path, _, query = request.url.decode("latin-1").partition("?")
    return SignedRequest(request.method, path, query, request.headers, b"".join(request.body))


class ThreadedServer:
    """Serves `app` on `sock` until `stop()` (or SIGINT/SIGTERM in `serve_forever`)."""

    def __init__(self, app: ServeApp, sock: socket.socket, ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = 1024, idle_seconds: float = IDLE_SECONDS) -> None:
        self.app, self.sock, self.ssl_context = app, sock, ssl_context
        self.max_connections, self.idle_seconds = max_connections, idle_seconds
        self._connections: dict[threading.Thread, socket.socket] = {}  # each connection's thread → its socket
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def serve_forever(self, install_signals: bool = True) -> None:
        if install_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop())
        self.sock.settimeout(0.5)  # so that the accept loop sees a stop
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                self._start(conn)
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    def _start(self, conn: socket.socket) -> None:
        with self._lock:
            full = len(self._connections) >= self.max_connections
            thread = threading.Thread(target=self._connection, args=(conn, full), daemon=True,
                                      name="ledgerdr-serve-conn")
            self._connections[thread] = conn
        thread.start()

    def _shutdown(self) -> None:
        """Stop reading every connection (a request being handled still gets its answer), wait, close."""
        self.sock.close()
        with self._lock:
            connections = dict(self._connections)
        for conn in connections.values():
            try:
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        for thread in connections:
            thread.join(STOP_GRACE_SECONDS)
        self.app.close()

    def _connection(self, conn: socket.socket, refuse: bool) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stall on small answers
            if self.ssl_context is None:
                _kernel_timeouts(conn, self.idle_seconds)
            else:
                conn.settimeout(self.idle_seconds)  # the ssl module's reads need Python's own timeout
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._connections[threading.current_thread()] = conn
            self._serve_connection(conn, refuse)
        except (OSError, ssl.SSLError):
            pass  # the client went away, timed out or failed its TLS handshake: nothing to answer
        finally:
            with self._lock:
                self._connections.pop(threading.current_thread(), None)
            conn.close()

    def _serve_connection(self, conn: socket.socket, refuse: bool) -> None:
        parser = _Parser(self.app.limits.max_body)
        fast = _httpfast is not None and not refuse
        # One buffer per connection, read into: a fresh 64 KiB bytes per recv cost a malloc and a shrinking
        # realloc per request, and a request arriving in pieces was joined piece by piece (quadratic for a large
        # body). A request the native path takes but that has not all arrived stays at the buffer's start
        # (`filled` bytes) and the next read appends to it; one larger than the buffer goes to httptools, as
        # anything else the native path does not take.
        buffer = bytearray(_READ_SIZE)
        view = memoryview(buffer)
        filled = 0
        while not self._stopping.is_set():
            size = conn.recv_into(view[filled:])
            if not size:
                return
            data: bytes | memoryview
            if fast and parser.idle:
                data = view[:filled + size]
                answer = _fast_answer(self.app, data)
                if answer.__class__ is bytes:
                    filled = 0
                    conn.sendall(answer)
                    continue
                filled += size
                if answer == NEED_MORE and filled < _READ_SIZE:
                    continue
                # FALLBACK (or a request larger than the buffer): httptools and sigv4.py take these bytes (and
                # this connection until it is idle again)
                data, filled = bytes(view[:filled]), 0
            else:
                data = view[:size]
            try:
                parser.http.feed_data(data)
            except httptools.HttpParserError as exc:
                error = AwsError("BadRequestException", f"malformed HTTP request: {exc}", 400)
                conn.sendall(_render(_error(error, False, new_request_id()), keep_alive=False))
                return
            if parser.refused is not None:
                conn.sendall(_render(self._answer(parser.refused, refuse), keep_alive=False))
                return
            if parser.expects_continue:
                parser.expects_continue = False
                if not parser.done:  # the body has not come yet: tell the client to send it
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            for request in parser.done:
                keep_alive = request.keep_alive and not refuse
                conn.sendall(_render(self._answer(request, refuse), keep_alive))
                if not keep_alive:
                    return
            parser.done.clear()

    def _answer(self, request: _Request, refuse: bool) -> _Response:
        request_id = new_request_id()
        session_api = "x-amz-target" in request.headers
        if refuse:
            error = AwsError("CapacityExceededException", messages.CAPACITY_EXCEEDED, 503)
            return _error(error, session_api, request_id)
        if request.error is not None:
            return _error(request.error, session_api, request_id)
        return self.app.handle_request(_signed(request), request_id)


def serve_threaded(app: ServeApp, sock: socket.socket, ssl_context: ssl.SSLContext | None,
                   on_listening: Callable[[], None]) -> None:
    server = ThreadedServer(app, sock, ssl_context, max_connections=app.limits.max_in_flight)
    on_listening()
    server.serve_forever()
