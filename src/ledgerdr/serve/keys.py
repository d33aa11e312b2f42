"""The access keys `serve` accepts, and its `[serve]` settings, gathered and validated up front.

Keys come from `--access-key KEY_ID:SECRET` (repeatable), then `LEDGERDR_ACCESS_KEYS="id:secret,…"`,
then the config's `[serve] access_keys = ["id:secret", …]`; all of them are accepted together. A
server with no key at all is refused: every request must be signed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ENV_VAR = "LEDGERDR_ACCESS_KEYS"
SERVE_SETTINGS = {"access_keys", "data", "host", "port", "tls_cert", "tls_key", "durability", "max_sessions"}


def parse_key(text: str, where: str) -> tuple[str, str]:
    key_id, sep, secret = text.strip().partition(":")
    if not sep or not key_id or not secret:
        raise ConfigError(f"{where}: {text.split(':')[0]!r}… is not KEY_ID:SECRET")
    return key_id, secret


def gather_keys(cli_keys: Iterable[str], settings: Mapping[str, Any],
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every configured key id → its secret. Raises ConfigError for a malformed key or none at all."""
    environ = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    sources = [(text, "--access-key") for text in cli_keys]
    sources += [(text, ENV_VAR) for text in environ.get(ENV_VAR, "").split(",") if text.strip()]
    config_keys = settings.get("access_keys", [])
    if not isinstance(config_keys, list):
        raise ConfigError("serve.access_keys: must be a list of \"KEY_ID:SECRET\" strings")
    sources += [(str(text), "serve.access_keys") for text in config_keys]
    for text, where in sources:
        key_id, secret = parse_key(text, where)
        keys[key_id] = secret
    if not keys:
        raise ConfigError("no access key configured: every request to `serve` must be SigV4-signed",
                          hint=f"pass --access-key KEY_ID:SECRET, set {ENV_VAR}, or add access_keys to [serve]")
    return keys


def serve_settings(config_path: str | Path | None) -> dict[str, Any]:
    """The `[serve]` table of the config file (empty when there is no file). Raises ConfigError."""
    if config_path is None:
        return {}
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        table = tomllib.loads(path.read_text()).get("serve", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(table) - SERVE_SETTINGS)
    if unknown:
        raise ConfigError(f"{path}: " + ", ".join(f"serve.{name}: unknown setting" for name in unknown))
    return table
