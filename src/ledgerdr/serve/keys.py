"""The access keys `serve` accepts, gathered and validated up front.

Keys come from `--access-key KEY_ID:SECRET` (repeatable), then `LEDGERDR_ACCESS_KEYS="id:secret,…"`,
then the config's `[serve] access_keys = ["id:secret", …]` (validated, with its `${NAME}` references
expanded, by `ledgerdr.config.load_serve_settings`, where every `[serve]` key is declared); all of them
are accepted together. A server with no key at all is refused: every request must be signed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError

ENV_VAR = "LEDGERDR_ACCESS_KEYS"


def parse_key(text: str, where: str) -> tuple[str, str]:
    """`KEY_ID:SECRET` split. Raises ConfigError naming `where` and the key id, never the text: without a
    `:` all of it may be the secret."""
    key_id, sep, secret = text.strip().partition(":")
    if not sep or not key_id or not secret:
        shown = f"{key_id!r}…" if sep and key_id else "a key"
        raise ConfigError(f"{where}: {shown} is not KEY_ID:SECRET")
    return key_id, secret


def gather_keys(cli_keys: Iterable[str], settings: Mapping[str, Any],
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every configured key id → its secret. Raises ConfigError for a malformed key or none at all."""
    environ = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    sources = [(text, "--access-key") for text in cli_keys]
    sources += [(text, ENV_VAR) for text in environ.get(ENV_VAR, "").split(",") if text.strip()]
    sources += [(text, f"serve.access_keys[{i}]") for i, text in enumerate(settings.get("access_keys", []))]
    for text, where in sources:
        key_id, secret = parse_key(text, where)
        keys[key_id] = secret
    if not keys:
        raise ConfigError("no access key configured: every request to `serve` must be SigV4-signed",
                          hint=f"pass --access-key KEY_ID:SECRET, set {ENV_VAR}, or add access_keys to [serve]")
    return keys
