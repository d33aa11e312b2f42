"""`ledgerdr info`: the restore points of each repository, at a glance (like `pgbackrest info`).

Per repository: its lineages (the windows each wrote) and incarnations (promotions), the windows' first and
last block and time, the snapshots, the replica's watermark, orphans and breaks (the status semantics of
status.py), and the range `restore --until` / `--until-block` accept (points.py: the same function the
restore planner checks a point with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import groupby

from .errors import VerificationError
from .points import RestoreRange, pruned_floor, restorable_range
from .repository import WindowRecord, read_incarnations, read_watermarks, read_windows
from .snapshots import list_snapshots
from .status import RepositoryStatus, repository_status
from .stores import Location


@dataclass
class LineageWindows:
    """A run of consecutive windows one lineage wrote."""

    lineage: str
    windows: int
    first_window: str
    last_window_end: str
    first_block: int | None
    last_block: int | None


@dataclass
class RepositoryInfo:
    status: RepositoryStatus
    restore_range: RestoreRange | None = None
    lineages: list[LineageWindows] = field(default_factory=list)
    incarnations: list[dict] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    unreadable_snapshots: list[str] = field(default_factory=list)
    watermark: dict | None = None  # a replica's newest: how far it verified its copies

    def to_json(self) -> dict:
        s = self.status
        return {"name": s.name, "region": s.region, "url": s.url, "lineage": s.lineage,
                "incarnation": s.incarnation, "incarnations": self.incarnations,
                "lineages": [asdict(run) for run in self.lineages], "windows": s.windows,
                "restore_points": self.restore_range.to_json() if self.restore_range else None,
                "snapshots": self.snapshots, "unreadable_snapshots": self.unreadable_snapshots,
                "watermark": self.watermark, "newest_verified_block": s.last_seq, "rpo_seconds": s.rpo_seconds,
                "orphans": s.orphans, "breaks": s.breaks, "damaged": s.damaged, "broken": s.broken}

    def render(self) -> str:
        s = self.status
        lines = [f"[{s.name}] region {s.region}  {s.url}",
                 f"  lineage {s.lineage}  (incarnation {s.incarnation})"]
        lines += [f"    promoted at block {i['last_seq']} on {i['promoted_at']}: {i['previous_lineage']} -> "
                  f"{i['lineage']}" for i in self.incarnations]
        lines.append(f"  windows: {s.windows}")
        lines += [f"    {run.lineage}: {run.windows} windows {run.first_window} .. {run.last_window_end}, "
                  f"blocks {_blocks(run.first_block, run.last_block)}" for run in self.lineages]
        lines.append("  restore points: " + (self.restore_range.describe() if self.restore_range else
                                             "none (no window record holds a block)"))
        lines.append(f"  snapshots: {len(self.snapshots)}" + "".join(
            f"\n    blocks {m['first_seq']}..{m['last_seq']} (tip at {m['tip_time']}, created {m['created_at']})"
            for m in self.snapshots))
        lines += [f"    UNREADABLE snapshot manifest: {key}" for key in self.unreadable_snapshots]
        if self.watermark is not None:
            lines.append(f"  watermark: verified up to block {self.watermark['last_seq']} "
                         f"({self.watermark['windows_verified']} windows) at {self.watermark['verified_at']}")
        lines.append(f"  orphans: {len(s.orphans)}" + "".join(f"\n    {key}" for key in s.orphans))
        lines += [f"  {b['kind'].upper()}: {b['key']}: {b['detail']}" for b in s.breaks]
        lines += [f"  DAMAGED copy ({d['was']}): {d['key']}" for d in s.damaged]
        if s.broken:
            lines.append(f"  restores past the first break are refused; newest verified block {s.last_seq}")
        return "\n".join(lines)


def _blocks(first: int | None, last: int | None) -> str:
    return "none" if last is None else f"{first}..{last}"


def repository_info(name: str, region: str, location: Location, *, now: datetime, primary: bool) -> RepositoryInfo:
    """Everything `ledgerdr info` shows for one repository (reads records and manifests, no data object)."""
    windows = read_windows(location).windows
    info = RepositoryInfo(repository_status(name, region, location, now=now, primary=primary),
                          restore_range=restorable_range(windows, pruned_floor(location)),
                          lineages=lineage_runs(windows))
    try:
        info.incarnations = [asdict(i) for i in read_incarnations(location)]
    except VerificationError:
        pass  # already a break in the status, naming the record
    manifests, info.unreadable_snapshots = list_snapshots(location)
    info.snapshots = [{"first_seq": m.first_seq, "last_seq": m.last_seq, "tip_hash": m.tip_hash,
                       "tip_time": m.tip_time, "lineage": m.lineage, "created_at": m.created_at}
                      for m in manifests]
    if not primary:
        marks = read_watermarks(location, name)
        if marks:
            info.watermark = {"last_seq": marks[-1].last_seq, "last_block_hash": marks[-1].last_block_hash,
                              "windows_verified": len(marks[-1].windows_verified),
                              "verified_at": marks[-1].verified_at}
    return info


def lineage_runs(windows: list[WindowRecord]) -> list[LineageWindows]:
    """Consecutive windows grouped by the lineage that wrote them (a promotion starts a new run)."""
    runs = []
    for lineage, group in groupby(windows, key=lambda w: w.lineage):
        run = list(group)
        blocks = [w for w in run if w.last_seq is not None]
        runs.append(LineageWindows(lineage, len(run), run[0].window_start, run[-1].window_end,
                                   blocks[0].first_seq if blocks else None, blocks[-1].last_seq if blocks else None))
    return runs
