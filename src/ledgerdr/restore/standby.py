"""Warm standby and promotion (DESIGN §3, issue "warm standby").

`follow_once` applies every new window record, in order, if and only if it chains onto the last block
the standby applied; otherwise it stops and names the gap or fork by block address. The standby's
position is what its target durably holds, so a SIGKILLed follower resumes where it was. `promote`
applies the rest, verifies the whole target against the journal, records a write-once *incarnation*
in the repository, and opens the ledger for writes under a new lineage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from ..errors import RestoreError
from ..journal.layout import new_id
from ..repository import Incarnation, WindowRecord, iso_ms, parse_iso, read_windows, utcnow, write_incarnation
from ..stores import Location
from ..targets.base import Target
from .plan import units_of_window
from .worker import apply_unit


@dataclass
class FollowReport:
    windows_applied: list[str] = field(default_factory=list)
    position_seq: int | None = None
    position_hash: str | None = None
    lag_blocks: int = 0
    lag_seconds: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def follow_once(location: Location, target: Target, *, now: datetime | None = None) -> FollowReport:
    """Apply every recorded window after the target's position; raises RestoreError on a gap or fork."""
    windows = read_windows(location).windows
    info = target.info()
    last = info.get("last_block")
    seq = last["sequence_no"] if last else None
    block_hash = last["hash"] if last else None
    report = FollowReport()
    for window in windows:
        if window.last_seq is None or (seq is not None and window.last_seq <= seq):
            continue
        _check_chains(window, seq, block_hash)
        for unit in units_of_window(window):
            apply_unit(location, target, unit, window.source.get("ledger"))
        seq, block_hash = window.last_seq, window.last_block_hash
        report.windows_applied.append(window.window_start)
    if hasattr(target, "finalize"):
        target.finalize()
    report.position_seq, report.position_hash = seq, block_hash
    newest = next((w for w in reversed(windows) if w.last_seq is not None), None)
    if newest is not None:
        report.lag_blocks = newest.last_seq - (seq if seq is not None else -1)
    applied = next((w for w in windows if w.last_seq == seq), None) if seq is not None else None
    if applied is not None:
        report.lag_seconds = round(((now or utcnow()) - parse_iso(applied.window_end)).total_seconds(), 3)
    return report


def _check_chains(window: WindowRecord, seq: int | None, block_hash: str | None) -> None:
    expected = 0 if seq is None else seq + 1
    first = window.first_seq
    address = f'{{strandId:"{window.source.get("strand_id")}",sequenceNo:{first}}}'
    if first != expected:
        raise RestoreError(f"standby stopped: window {window.window_start} starts at block {first}, the standby "
                           f"holds up to {seq} (gap at {address})",
                           hint="a window is missing from the repository; restore it before following on")
    if seq is not None and window.first_previous_block_hash != block_hash:
        raise RestoreError(f"standby stopped: window {window.window_start} does not chain onto the standby's last "
                           f"block {seq} (fork at {address})", hint="the repository holds another history")


def promote(location: Location, target_url: str, *, state_dir=None) -> Incarnation:
    """Stop following, apply the rest, verify, record the incarnation, open the ledger for writes."""
    from pathlib import Path

    from ..targets import open_target
    from .run import RestoreOptions, restore

    report = restore(location.url, target_url, RestoreOptions(workers=0, state_dir=Path(state_dir or
                                                                                      ".ledgerdr-restores")))
    if not report.verdict:
        raise RestoreError("promote refused: the standby does not verify against the journal: "
                           + "; ".join(report.problems[:5]))
    windows = read_windows(location).windows
    previous = windows[-1].lineage if windows else None
    incarnation = Incarnation(new_id(), previous, report.last_seq, report.last_block_hash, iso_ms(utcnow()))
    write_incarnation(location, incarnation)
    target = open_target(target_url)
    try:
        if not hasattr(target, "promote"):
            raise RestoreError(f"only an embedded target can be promoted to a writable ledger ({target.kind} is a "
                               "queryable replica)")
        target.promote(incarnation.lineage)
    finally:
        target.close()
    return incarnation
