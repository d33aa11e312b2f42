"""Backup sources: the embedded ledger and Amazon QLDB (or a QLDB-compatible endpoint)."""

from __future__ import annotations

from ..config import SourceConfig
from ..errors import ConfigError
from .base import Digest, ExportDone, Source


def open_source(config: SourceConfig) -> Source:
    if config.kind == "embedded":
        from .embedded import EmbeddedSource

        return EmbeddedSource(config.path or "ledger.db", ledger_name=config.ledger)
    if config.kind == "qldb":
        from .qldb import QldbSource

        return QldbSource(config.ledger, role_arn=config.role_arn or "", region=config.region,
                          endpoint_url=config.endpoint_url)
    raise ConfigError(f"source.kind {config.kind!r} is not supported")


__all__ = ["Digest", "ExportDone", "Source", "open_source"]
