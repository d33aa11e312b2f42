"""The range of restore points a repository's window records offer: what `--until` / `--until-block` accept.

One function for both `ledgerdr info` (which shows the range) and the restore planner (which refuses a
point outside it, naming the range), so what `info` shows is exactly what `restore` takes.

- `--until-block N`: from the first recorded block to the newest one (both included).
- `--until T` (transactions committed before T): after the start of the first window that holds blocks
  (before it, nothing would be restored) and up to the end of the newest window (after it, blocks the
  repository does not hold would be missing from a restore that looks complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .errors import ConfigError
from .repository import WindowRecord, iso_ms, parse_iso


@dataclass(frozen=True)
class RestoreRange:
    first_block: int
    last_block: int
    after_time: str  # --until must be later than this (the first window with blocks starts here)
    until_time: str  # --until may be this or earlier (the newest window ends here)

    def to_json(self) -> dict:
        return {"until_block": [self.first_block, self.last_block], "until": {"after": self.after_time,
                                                                              "up_to": self.until_time}}

    def describe(self) -> str:
        return (f"--until-block {self.first_block}..{self.last_block}; --until after {self.after_time} "
                f"up to {self.until_time}")


def restorable_range(windows: Sequence[WindowRecord]) -> RestoreRange | None:
    """The range restore accepts from these window records (oldest first); None when none holds a block."""
    with_blocks = [w for w in windows if w.last_seq is not None]
    if not with_blocks:
        return None
    first = with_blocks[0]
    first_block = first.first_seq if first.first_seq is not None else first.last_seq
    return RestoreRange(first_block, max(w.last_seq for w in with_blocks),  # type: ignore[type-var]
                        first.window_start, max(windows, key=lambda w: w.end).window_end)


def check_restore_point(span: RestoreRange, url: str, *, until: datetime | None = None,
                        until_block: int | None = None) -> None:
    """Raise ConfigError (exit 2) for a restore point outside `span`, naming the range."""
    where = f"the restore points under {url} are {span.describe()}"
    if until_block is not None and not span.first_block <= until_block <= span.last_block:
        side = f"past the newest block ({span.last_block})" if until_block > span.last_block else \
            f"before the first block ({span.first_block})"
        raise ConfigError(f"--until-block {until_block} is {side}: {where}; nothing was restored",
                          hint=f"pass --until-block {span.first_block}..{span.last_block}, or omit it "
                               "(`ledgerdr info` lists the restore points)")
    if until is not None:
        shown = iso_ms(until)
        if until <= parse_iso(span.after_time):
            raise ConfigError(f"--until {shown} is before the first restorable point: {where}; nothing was "
                              "restored", hint="`ledgerdr info` lists the restore points")
        if until > parse_iso(span.until_time):
            raise ConfigError(f"--until {shown} is after the newest restorable point (the repository holds no "
                              f"block after {span.until_time}): {where}; nothing was restored",
                              hint="omit --until to restore everything the repository holds")
