"""Rendering shared by the commands: JSON for machines, rich text and progress for people."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..logs import structured

stderr = Console(stderr=True)


def emit_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode())


def emit_error(message: str, *, kind: str, exit_code: int, hint: str | None = None, **details: Any) -> None:
    """Under --json, an error (or a failure a command exits non-zero for) is this one JSON object on stderr,
    the same shape whatever raised it, so a script reads stdout's report and stderr's reason alike."""
    click.echo(orjson.dumps({"error": message, "hint": hint, "kind": kind, "exit_code": int(exit_code), **details},
                            default=str).decode(), err=True)


class _Rate(ProgressColumn):
    """Units done per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed:.1f}/s")


class _NoProgress:
    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def progress(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on a terminal; silent otherwise (logs and CI stay clean), and under
    `--log-format json`, whose stderr is for a log pipeline even on a terminal.

    Yields an object with `advance(n=1)` and `update(description=..., completed=..., total=...)`. With a
    `total` (given here or by `update`), the bar shows the time remaining.
    """
    if not (enabled and sys.stderr.isatty()) or structured():
        yield _NoProgress()
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=total)

        class _Handle:
            def advance(self, n: int = 1) -> None:
                bar.advance(task, n)

            def update(self, **kwargs: Any) -> None:
                bar.update(task, **kwargs)

        yield _Handle()


class RoundProgress:
    """A bar for each round of a loop whose rounds the command does not drive (a standby's catch-up): opened
    by the first report of a round that has work (`report(done, total)`), closed by `end_round()`. A round
    with nothing to do draws nothing."""

    def __init__(self, description: str, *, enabled: bool = True) -> None:
        self.description, self.enabled = description, enabled
        self._stack: ExitStack | None = None
        self._bar: Any = None

    def report(self, done: int, total: int) -> None:
        if self._stack is None:
            if total <= 0:
                return
            self._stack = ExitStack()
            self._bar = self._stack.enter_context(progress(self.description, total, enabled=self.enabled))
        self._bar.update(completed=done, total=total)

    def end_round(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = self._bar = None
