"""Run the application on uvicorn, a maintained ASGI server (HTTP/1.1 keep-alive, TLS, graceful
shutdown on SIGTERM/SIGINT). The listening socket is bound here, before uvicorn starts, so that
`--port 0` can report the port the system chose and a caller can wait for the "listening" line."""

from __future__ import annotations

import logging
import resource
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from ..errors import ConfigError
from ..ledger.storage import Durability
from ..logs import configured_level
from .app import Limits, ServeApp
from .catalog import Catalog
from .threaded import serve_threaded


@dataclass(frozen=True)
class ServeOptions:
    data: Path
    keys: dict[str, str]
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    durability: Durability = Durability.FULL
    limits: Limits = Limits()
    log_level: str = "warning"
    # "threads" (the default): a thread per connection with httptools (threaded.py); "httptools" or "h11":
    # uvicorn with that parser, kept to compare against (BENCHMARKS.md) and as a fallback.
    http: str = "threads"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises ConfigError when the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets that do, and without it the
    # response's header and body writes meet the client's delayed ACK (40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _raise_open_file_limit() -> None:
    """Each session holds its own SQLite connection (the file, its WAL and shared memory) besides its socket:
    a few hundred sessions pass the usual soft limit of 1,024 descriptors, so take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit; LimitExceededException still caps the sessions


def _ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load --tls-cert {cert} / --tls-key {key}: {exc}") from None
    return context


def serve(options: ServeOptions, on_listening: Callable[[str], None] = print) -> None:
    """Serve until SIGINT/SIGTERM. Calls `on_listening(url)` once the socket accepts connections."""
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    _raise_open_file_limit()
    threads = options.http in ("threads", "auto")
    context = _ssl_context(options.tls_cert, options.tls_key) if threads and options.tls_cert and options.tls_key \
        else None
    catalog = Catalog(options.data, options.durability)
    app = ServeApp(catalog, options.keys, options.limits)
    sock = bind(options.host, options.port)
    scheme = "https" if options.tls_cert else "http"
    host, port = sock.getsockname()[:2]
    logging.getLogger("ledgerdr.serve").setLevel(logging.INFO)
    if threads:
        serve_threaded(app, sock, context, on_listening=lambda: on_listening(f"{scheme}://{host}:{port}"))
        return
    config = uvicorn.Config(
        app, http=options.http, log_level=options.log_level, access_log=False, lifespan="on", timeout_keep_alive=75,
        # under --log-format/--log-level uvicorn's records go to ledgerdr's one handler (logs.py), else to its own
        log_config=None if configured_level() else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=10,  # on SIGTERM, requests in flight get 10 s, then connections close
        ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
        ssl_keyfile=str(options.tls_key) if options.tls_key else None,
    )
    server = uvicorn.Server(config)
    on_listening(f"{scheme}://{host}:{port}")
    server.run(sockets=[sock])
