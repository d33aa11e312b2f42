"""`--log-format text|json` and `--log-level`: what the long-running modes say, for people or for a log
pipeline.

Without either option nothing changes: messages go to stderr as plain lines, and Python's own default
(warnings and errors only) applies to library loggers. With one of them, one handler on the root logger
writes every record at or above the level to stderr, one JSON object per line with `--log-format json`
(`time`, `level`, `logger`, `message` and the record's fields: `repository`, `window`, `block`, `event`
where known), so that `backup --every`, `replicate --follow`, `standby` and `serve` can be shipped to a
log pipeline as they are. On the root logger, so that what libraries log (uvicorn's server messages
under `serve`, a queue's dead letters) comes out in the same shape: no plain line slips between the JSON
objects. Third-party loggers keep Python's default threshold (warnings) unless the level asked for is
stricter; `serve` sets uvicorn's own level from `--log-level`.
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
    """Ours: replaced, never stacked, when the options are given again in one process (tests, embedding).
    Writes to whatever `sys.stderr` is at each record, not the one at configuration time: a test runner
    or a progress display that swaps stderr gets the lines, and a closed stream is never kept."""

    def __init__(self, structured: bool) -> None:
        super().__init__()
        self.structured = structured

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(fmt: str | None, level: str | None) -> None:
    """Install the handler when `fmt` or `level` is given; otherwise leave logging as it is."""
    if fmt is None and level is None:
        return
    root = logging.getLogger()
    for handler in [h for h in (*root.handlers, *LOGGER.handlers) if isinstance(h, _Handler)]:
        root.removeHandler(handler)
        LOGGER.removeHandler(handler)
    threshold = logging.getLevelName((level or "info").upper())
    handler = _Handler(structured=fmt == "json")
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(message)s"))
    handler.setLevel(threshold)  # also for loggers that set their own level (ledgerdr.serve, uvicorn.error)
    root.addHandler(handler)
    root.setLevel(max(threshold, logging.WARNING))
    LOGGER.setLevel(threshold)
    LOGGER.propagate = True


def _ours() -> _Handler | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, _Handler)), None)


def configured_level() -> str | None:
    """The `--log-level` in force (lower case), or None when the options were not given."""
    handler = _ours()
    return None if handler is None else logging.getLevelName(handler.level).lower()


def structured() -> bool:
    """True under `--log-format json`: stderr carries JSON objects only (no progress bars, no plain lines)."""
    handler = _ours()
    return handler is not None and handler.structured


def note(message: str, *, logger: str = "ledgerdr", level: int = logging.INFO, **fields: Any) -> None:
    """A long-running mode's progress line: a log record when the options configured logging, else a plain
    line on stderr (as before the options existed)."""
    if _ours() is not None:
        logging.getLogger(logger).log(level, message, extra={_FIELDS: fields})
    else:
        print(message, file=sys.stderr, flush=True)


def log_event(message: str, *, logger: str = "ledgerdr", level: int = logging.INFO, **fields: Any) -> None:
    """A log record with `note`'s fields, and nothing without the options below the warning level: for what
    a command already prints on stdout (a standby's or a follower's rounds) and a log pipeline also wants."""
    logging.getLogger(logger).log(level, message, extra={_FIELDS: fields})
