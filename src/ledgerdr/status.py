"""What `ledgerdr status` reports for one repository: windows, newest verified block, RPO, gaps.

RPO (CONTRACTS §7) = now − `window_end` of the repository's newest *verified* window. In the
primary a window is verified before it is recorded; in a replica, only its own watermark says
what was verified there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from .repository import find_orphans, parse_iso, read_watermarks, read_windows
from .stores import Location


@dataclass
class RepositoryStatus:
    name: str
    region: str
    url: str
    windows: int = 0
    verified_windows: int = 0
    newest_verified_window_end: str | None = None
    last_seq: int | None = None
    tip_hash: str | None = None
    last_block_time: str | None = None
    rpo_seconds: float | None = None
    gaps: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    unreadable_records: list[str] = field(default_factory=list)
    pending_windows: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        rpo = "unknown (nothing verified)" if self.rpo_seconds is None else f"{self.rpo_seconds:.0f}s"
        lines = [f"[{self.name}] region {self.region}  {self.url}",
                 f"  windows: {self.windows} recorded, {self.verified_windows} verified, "
                 f"{self.pending_windows} pending",
                 f"  newest verified block: {self.last_seq}  at {self.last_block_time}",
                 f"  tip hash: {self.tip_hash}",
                 f"  RPO now: {rpo}"]
        lines += [f"  GAP: nothing recorded from {a} to {b}" for a, b in self.gaps]
        lines += [f"  orphan export attempt (not recorded): {o}" for o in self.orphans[:10]]
        lines += [f"  UNREADABLE record: {k}" for k in self.unreadable_records]
        return "\n".join(lines)


def repository_status(name: str, region: str, location: Location, *, now: datetime, primary: bool,
                      primary_name: str | None = None) -> RepositoryStatus:
    catalog = read_windows(location)
    status = RepositoryStatus(name, region, location.url, windows=len(catalog.windows), gaps=catalog.gaps(),
                              unreadable_records=catalog.unreadable)
    status.orphans = find_orphans(location, catalog) if primary else []
    if primary:
        verified = catalog.windows
    else:
        marks = read_watermarks(location, name)
        done = set(marks[-1].windows_verified) if marks else set()
        verified = [w for w in catalog.windows if w.window_start in done]
    status.verified_windows = len(verified)
    status.pending_windows = len(catalog.windows) - len(verified)
    if verified:
        newest = verified[-1]
        status.newest_verified_window_end = newest.window_end
        status.rpo_seconds = (now - parse_iso(newest.window_end)).total_seconds()
        with_blocks = [w for w in verified if w.last_seq is not None]
        if with_blocks:
            status.last_seq = with_blocks[-1].last_seq
            status.tip_hash = with_blocks[-1].last_block_hash
            status.last_block_time = with_blocks[-1].last_block_time
    return status
