"""Restore targets: the embedded ledger and PostgreSQL, behind one `Target` interface."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import Target


def embedded_path(url: str) -> Path | None:
    """The ledger file an `embedded:` target URL names; None for another kind of target."""
    if not url.startswith("embedded:"):
        return None
    rest = url[len("embedded:"):]
    return Path(rest[2:] if rest.startswith("//") else rest)


def open_target(url: str) -> Target:
    """`embedded:///abs/ledger.db`, `embedded:rel.db`, or a `postgresql://` / `postgres://` URI."""
    path = embedded_path(url)
    if path is not None:
        if path == Path():
            raise ConfigError(f"target {url!r} names no file")
        from .embedded import EmbeddedTarget

        return EmbeddedTarget(path)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresTarget

        return PostgresTarget(url)
    raise ConfigError(f"unknown target {url!r}: use embedded:///path/ledger.db or postgresql://…")


__all__ = ["Target", "embedded_path", "open_target"]
