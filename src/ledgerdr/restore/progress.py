"""How far each restore in a state folder has come, read from the folder alone (for `ledgerdr metrics`
and a restore's or worker's `--metrics-port`).

Everything here is what the restore itself leaves durably as it goes: its plan (`plan.json`), its run
record (`run.json`: first start, ended or not), one result per applied unit (`unit-results/`, shared by
the restores of the folder; unit ids are deterministic) and its queue (`queue.db`, one named queue per
run, the newest being the current or last run's). So any process can read it at any time, the restore's
own workers, a `metrics` server beside it, or one started after it died, and they all agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LedgerDRError
from ..queues import local_queue_urls, open_queue
from .plan import RestorePlan
from .run import _read_run as read_run
from .shapes import SNAPSHOT_FORMAT, WorkUnit
from .worker import open_state, read_results

UNIT_RESULTS = "unit-results"  # where `restore` has its workers record unit results (restore/run.py)
QUEUE_FILE = "queue.db"


@dataclass(frozen=True)
class RestoreProgress:
    """One restore: `in_progress` until its run record says it ended (an interrupted or killed restore stays
    in progress until it is resumed, or planned afresh by running it again). Blocks count each planned
    block once: a snapshot's range is shared by its parts, and is counted applied part by part."""

    restore_id: str
    source: str
    target: str
    in_progress: bool
    started_at: float | None
    units_planned: int
    units_applied: int
    blocks_planned: int
    blocks_applied: int
    revisions_applied: int
    dead_letters: int | None  # the newest run's dead-lettered units; None when its queue cannot be read


def restore_progress(state_root: Path) -> list[RestoreProgress]:
    """Every restore planned under `state_root` (a `restore --state-dir`), oldest first; [] when there is
    no such folder. A folder without a readable plan is left out (it is being written, or not a restore)."""
    if not state_root.is_dir():
        return []
    results = read_results(open_state(str(state_root / UNIT_RESULTS)))
    found = []
    for folder in sorted(p for p in state_root.iterdir() if (p / "plan.json").is_file()):
        try:
            plan = RestorePlan.from_bytes((folder / "plan.json").read_bytes())
        except (ValueError, TypeError, KeyError):
            continue
        found.append(_progress(plan, read_run(state_root, folder.name) or {}, results, folder / QUEUE_FILE))
    return sorted(found, key=lambda p: (p.started_at or 0, p.restore_id))


def _progress(plan: RestorePlan, run: dict, results: dict, queue_file: Path) -> RestoreProgress:
    applied = [unit for unit in plan.units if unit.unit_id in results]
    parts = sum(unit.fmt == SNAPSHOT_FORMAT for unit in plan.units)
    return RestoreProgress(
        restore_id=plan.restore_id, source=plan.source, target=(run.get("identity") or {}).get("target", ""),
        in_progress=not run.get("finished", False), started_at=run.get("first_started"),
        units_planned=len(plan.units), units_applied=len(applied),
        blocks_planned=_blocks(plan.units, parts), blocks_applied=_blocks(applied, parts),
        revisions_applied=sum(results[unit.unit_id].revisions for unit in applied),
        dead_letters=_dead_letters(queue_file))


def _blocks(units: list[WorkUnit], snapshot_parts: int) -> int:
    """Blocks the units stand for; the parts of one snapshot share its range (each stands for a share)."""
    journal = sum(u.last_seq - u.first_seq + 1 for u in units if u.fmt != SNAPSHOT_FORMAT)
    snapshot = [u for u in units if u.fmt == SNAPSHOT_FORMAT]
    if not snapshot:
        return journal
    return journal + (snapshot[0].last_seq - snapshot[0].first_seq + 1) * len(snapshot) // snapshot_parts


def _dead_letters(queue_file: Path) -> int | None:
    """Dead letters of the restore's newest run (an earlier run's were applied again by the runs after it)."""
    try:
        urls = local_queue_urls(queue_file)
        if not urls:
            return 0
        queue = open_queue(urls[-1])
        try:
            return queue.counts().dead
        finally:
            queue.close()
    except LedgerDRError:
        return None
