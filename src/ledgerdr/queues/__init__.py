"""Work queues: one `Queue` interface (base.py), a `sqlite` and an `sqs` backend, and `open_queue`.

URLs understood by `open_queue`:
- `sqlite:///abs/path.db?name=q` or `sqlite:relative.db?name=q` (name defaults to "default");
- `sqs://NAME` or `sqs://ACCOUNT/NAME` (resolved with GetQueueUrl), e.g. `sqs://restore-work?region=eu-west-1`;
- an SQS queue URL, `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
Query parameters: `name` (sqlite only), `max_attempts`, `region` (sqs only). Keyword options go to the
backend's constructor (`clock` for sqlite; `client`, `dead_letter_url` for sqs).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import (
    ConfigError,
    MessageTooLarge,
    QueueError,
    QueueNotFound,
    QueueUnavailable,
    SendIncomplete,
    StaleReceipt,
)
from .base import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_VISIBILITY_TIMEOUT,
    PORTABLE_MAX_BODY_BYTES,
    DeadLetter,
    Message,
    Queue,
    QueueCounts,
    QueueProperties,
)
from .sqlite import SqliteQueue, queue_names

if TYPE_CHECKING:
    from .sqs import SqsQueue, create_sqs_queue

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "MAX_VISIBILITY_TIMEOUT",
    "PORTABLE_MAX_BODY_BYTES",
    "DeadLetter",
    "Message",
    "MessageTooLarge",
    "Queue",
    "QueueCounts",
    "QueueError",
    "QueueNotFound",
    "QueueProperties",
    "QueueUnavailable",
    "SendIncomplete",
    "SqliteQueue",
    "SqsQueue",
    "StaleReceipt",
    "create_sqs_queue",
    "local_queue_urls",
    "open_queue",
]


def __getattr__(name: str) -> Any:
    # The SQS backend pulls in boto3 (~130 ms): loaded when first named, so a command that only uses
    # sqlite queues (every scheduled `backup --once` with a local notify queue) does not pay for it.
    if name in ("SqsQueue", "create_sqs_queue"):
        from . import sqs

        return getattr(sqs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SQLITE_OPTIONS = {"name", "max_attempts", "clock"}
_SQS_OPTIONS = {"region", "max_attempts", "client", "dead_letter_url"}


def open_queue(url: str, **opts: Any) -> Queue:
    """Open the queue at `url`. Raises `ConfigError` for an unknown scheme, a malformed URL, an unknown
    option or one given twice with different values; the backend's errors otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url, parts.netloc, unquote(parts.path), _options(url, parts.query, opts,
                                                                             _SQLITE_OPTIONS))
    if scheme == "sqs":
        return _open_sqs_name(url, parts.netloc, parts.path, _options(url, parts.query, opts, _SQS_OPTIONS))
    host = (parts.hostname or "").lower()
    if scheme == "https" and (host.startswith("sqs.") or ".queue." in host):
        from .sqs import SqsQueue

        queue_url = parts._replace(query="", fragment="").geturl()
        return SqsQueue(queue_url, **_options(url, parts.query, opts, _SQS_OPTIONS))
    raise ConfigError(f"unknown queue URL {url!r}",
                      hint="use sqlite:///path.db?name=q, sqlite:relative.db, sqs://NAME or an SQS queue URL")


def local_queue_urls(path: str | os.PathLike[str]) -> list[str]:
    """The URL of every queue in the local queue file `path` (a restore's `queue.db`), oldest first, each
    with the `max_attempts` it was created with (so `open_queue` opens it as its users do); [] when there is
    no such file. Reads only. Raises QueueError for a file that is not a queue file."""
    return [f"sqlite://{quote(os.path.abspath(path))}?{urlencode({'name': name, 'max_attempts': attempts})}"
            for name, attempts in queue_names(path)]


def _open_sqlite(url: str, netloc: str, path: str, options: dict[str, Any]) -> SqliteQueue:
    if netloc or not path:
        raise ConfigError(f"queue URL {url!r} has no file path",
                          hint="use sqlite:///absolute/path.db or sqlite:relative/path.db")
    return SqliteQueue(path, **options)


def _open_sqs_name(url: str, netloc: str, path: str, options: dict[str, Any]) -> SqsQueue:
    segments = [s for s in (netloc, *path.split("/")) if s]
    if len(segments) not in (1, 2):
        raise ConfigError(f"queue URL {url!r} must be sqs://NAME or sqs://ACCOUNT/NAME")
    account = segments[0] if len(segments) == 2 else None
    from .sqs import SqsQueue

    return SqsQueue.from_name(segments[-1], account=account, **options)


def _options(url: str, query: str, opts: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """Merge the URL's query parameters with keyword options, refusing unknown and conflicting ones."""
    merged: dict[str, Any] = dict(opts)
    for key, value in parse_qsl(query, keep_blank_values=True):
        parsed = _int_option(url, key, value) if key == "max_attempts" else value
        if key in merged and merged[key] != parsed:
            raise ConfigError(f"queue URL {url!r}: {key}={value!r} conflicts with option {merged[key]!r}")
        merged[key] = parsed
    unknown = sorted(set(merged) - allowed)
    if unknown:
        raise ConfigError(f"queue URL {url!r}: unknown option(s) {', '.join(unknown)}",
                          hint=f"allowed here: {', '.join(sorted(allowed))}")
    return merged


def _int_option(url: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"queue URL {url!r}: {key} must be an integer, not {value!r}") from None
