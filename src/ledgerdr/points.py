"""The range of restore points a repository's window records offer: what `--until` / `--until-block` accept.

One function for both `ledgerdr info` (which shows the range) and the restore planner (which refuses a
point outside it, naming the range), so what `info` shows is exactly what `restore` takes.

- `--until-block N`: from the first recorded block to the newest one (both included); after a prune, from
  the oldest snapshot that covers what was pruned.
- `--until T` (transactions committed before T): after the start of the first window that holds blocks
  (before it, nothing would be restored) and up to the end of the newest window (after it, blocks the
  repository does not hold would be missing from a restore that looks complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from .errors import ConfigError
from .journal.layout import parse_data_object_key
from .repository import WindowRecord, iso_ms, parse_iso
from .stores import Location

PRUNES = "_ledgerdr/prunes/"  # prune.py writes a record there for each run that deleted raw exports


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


def restorable_range(windows: Sequence[WindowRecord], floor: tuple[int, str] | None = None) -> RestoreRange | None:
    """The range restore accepts from these window records (oldest first); None when none holds a block.
    `floor` (`pruned_floor`): after a prune, a restore starts from a snapshot at or after this block."""
    with_blocks = [w for w in windows if w.last_seq is not None]
    if not with_blocks:
        return None
    first = with_blocks[0]
    first_block, after = (first.first_seq if first.first_seq is not None else first.last_seq), first.window_start
    if floor is not None:
        first_block, after = floor
    last_block = max(w.last_seq for w in with_blocks if w.last_seq is not None)
    assert first_block is not None  # a window with blocks has a last_seq, hence a first block
    return RestoreRange(first_block, last_block, after, max(windows, key=lambda w: w.end).window_end)


def pruned_floor(location: Location) -> tuple[int, str] | None:
    """After `prune` deleted raw exports up to block P, only points from the oldest snapshot at or after P
    restore (its tip block, and times after its tip); None when nothing was pruned. Reads the prune records
    and the snapshot manifests only."""
    from .snapshots import list_snapshots

    pruned = -1
    for info in location.store.list(location.folder(PRUNES)):
        try:
            deleted = orjson.loads(location.store.get(info.key)).get("deleted", [])
        except (ValueError, AttributeError):
            continue
        names = [parse_data_object_key(key) for key in deleted]
        pruned = max([pruned, *(name.last for name in names if name is not None)])
    if pruned < 0:
        return None
    manifests, _ = list_snapshots(location)
    after = [(m.last_seq, m.tip_time) for m in manifests if m.last_seq >= pruned and m.tip_time is not None]
    return (after[0][0], after[0][1]) if after and after[0][1] is not None else None


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
