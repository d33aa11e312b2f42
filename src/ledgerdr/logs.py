"""`--log-format text|json` and `--log-level`: what the long-running modes say, for people or for a log
pipeline.

Without either option nothing changes: messages go to stderr as plain lines, and Python's own default
(warnings and errors only) applies to library loggers. With one of them, a handler on the `ledgerdr`
logger writes every record at or above the level to stderr, one JSON object per line with `--log-format
json` (`time`, `level`, `logger`, `message` and the record's fields), so that `backup --every` and `serve`
can be shipped to a log pipeline as they are.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

LOGGER = logging.getLogger("ledgerdr")
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
_FIELDS = "ledgerdr_fields"  # the record attribute holding `note`'s fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
                **getattr(record, _FIELDS, {})}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _Handler(logging.StreamHandler):
    """Ours: replaced, never stacked, when the options are given again in one process (tests, embedding)."""


def configure(fmt: str | None, level: str | None) -> None:
    """Install the handler when `fmt` or `level` is given; otherwise leave logging as it is."""
    if fmt is None and level is None:
        return
    for handler in [h for h in LOGGER.handlers if isinstance(h, _Handler)]:
        LOGGER.removeHandler(handler)
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel((level or "info").upper())
    LOGGER.propagate = False


def note(message: str, *, logger: str = "ledgerdr", level: int = logging.INFO, **fields: Any) -> None:
    """A long-running mode's progress line: a log record when the options configured logging, else a plain
    line on stderr (as before the options existed)."""
    if any(isinstance(h, _Handler) for h in LOGGER.handlers):
        logging.getLogger(logger).log(level, message, extra={_FIELDS: fields})
    else:
        print(message, file=sys.stderr, flush=True)
