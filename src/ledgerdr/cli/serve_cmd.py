"""`ledgerdr serve`: QLDB's session API and control plane over the ledgers of a directory."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import load_serve_settings
from ..errors import ConfigError
from ..ledger.storage import Durability
from ..logs import configured_level, log_event
from ..serve.app import Limits
from ..serve.keys import ENV_VAR, gather_keys
from ..serve.server import ServeOptions
from ..serve.server import serve as run_server
from .common import config_option


@click.command()
@click.option("--data", type=click.Path(file_okay=False),
              help="Directory of ledgers: DIR/<name>.db (CreateLedger creates them). Or [serve] data.")
@click.option("--host", help="Address to listen on (default 127.0.0.1: this machine only).")
@click.option("--port", type=int, help="TCP port (default 8443; 0 picks a free one and prints it).")
@click.option("--access-key", "access_keys", multiple=True, metavar="KEY_ID:SECRET",
              help=f"A key clients sign with (SigV4). Repeatable; also {ENV_VAR} and [serve] access_keys.")
@config_option
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM private key for --tls-cert.")
@click.option("--durability", type=click.Choice(["full", "normal"]),
              help="full (default): every commit is fsynced before it is acknowledged.")
@click.option("--max-sessions", type=int, help="Open sessions allowed at once (default 256).")
@click.option("--transaction-timeout", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="A transaction expires this long after it started (QLDB: 30 s; lower only for tests).")
@click.option("--session-timeout", type=float, default=900.0, show_default=True, metavar="SECONDS",
              help="A session unused this long expires (InvalidSessionException; drivers open a new one).")
@click.option("--http", type=click.Choice(["threads", "httptools", "h11", "auto"]), default="threads",
              show_default=True, help="HTTP stack: threads (a thread per connection, httptools parser; the fastest, "
              "BENCHMARKS.md) or uvicorn with its httptools or h11 parser; auto = threads.")
def serve(data: str | None, host: str | None, port: int | None, access_keys: tuple[str, ...],
          config_path: str | None, tls_cert: str | None, tls_key: str | None, durability: str | None,
          max_sessions: int | None, transaction_timeout: float, session_timeout: float, http: str) -> None:
    """Serve QLDB's APIs (session API and control plane, SigV4) over the ledgers in a directory.

    Point existing QLDB code at it with AWS_ENDPOINT_URL_QLDB_SESSION and AWS_ENDPOINT_URL_QLDB
    (both the printed URL). See docs/serve.md.
    """
    settings = load_serve_settings(config_path) if config_path else {}  # its [serve] table: defaults
    data_dir = data or settings.get("data")
    if not data_dir:
        raise ConfigError("--data DIR is required (or [serve] data in the config)")
    base = Path(config_path).parent if config_path and not data else Path(".")
    tls_cert = tls_cert or settings.get("tls_cert")
    tls_key = tls_key or settings.get("tls_key")
    options = ServeOptions(
        data=base / data_dir,
        keys=gather_keys(access_keys, settings),
        host=host or settings.get("host", "127.0.0.1"),
        port=port if port is not None else int(settings.get("port", 8443)),
        tls_cert=Path(tls_cert) if tls_cert else None,
        tls_key=Path(tls_key) if tls_key else None,
        durability=Durability(durability or settings.get("durability", "full")),
        limits=Limits(max_sessions=max_sessions or int(settings.get("max_sessions", 256)),
                      transaction_seconds=min(transaction_timeout, 30.0), session_idle_seconds=session_timeout),
        http=http,
        # uvicorn's own messages (start-up, shutdown, errors) at --log-level; its access log stays off
        log_level=configured_level() or "warning",
    )
    def on_listening(url: str) -> None:
        click.echo(f"ledgerdr serve: listening on {url} (ledgers in {options.data})")
        log_event(f"listening on {url}", logger="ledgerdr.serve", event="listening", url=url, data=str(options.data))

    run_server(options, on_listening=on_listening)
    log_event("stopped", logger="ledgerdr.serve", event="stopped")
