"""Restore targets: the embedded ledger and PostgreSQL, behind one `Target` interface."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import Target


def open_target(url: str) -> Target:
    """`embedded:///abs/ledger.db`, `embedded:rel.db`, or a `postgresql://` / `postgres://` URI."""
    if url.startswith("embedded:"):
        rest = url[len("embedded:"):]
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ConfigError(f"target {url!r} names no file")
        from .embedded import EmbeddedTarget

        return EmbeddedTarget(Path(path))
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresTarget

        return PostgresTarget(url)
    raise ConfigError(f"unknown target {url!r}: use embedded:///path/ledger.db or postgresql://…")


__all__ = ["Target", "open_target"]
