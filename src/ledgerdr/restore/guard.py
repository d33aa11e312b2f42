"""Which targets a restore may write into, decided before anything is written (DESIGN "Signals that tell
the truth": no command overwrites what it did not create; a refusal changes nothing).

A restore makes its target a read-only copy of the backup's lineage. Into the live source ledger (or
any ledger with data of its own) that would turn production read-only; into a ledger of another
lineage it would mix two histories; into a ledger ahead of the backup it would end unverifiable. So
the target's `holding()` is read first and such a target refused with the reason, unless `--force`
(never for another lineage or the configured source), which then says what it will do.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import RestoreError
from ..targets.base import TargetHolding
from .plan import RestorePlan


class TargetRefused(RestoreError):
    """The target holds other data; nothing was written to it."""


def check_target(holding: TargetHolding, plan: RestorePlan, *, force: bool = False,
                 protected: Iterable[str | Path] = ()) -> list[str]:
    """Raise TargetRefused when `plan` must not be restored into the target `holding` describes.
    Returns what `force` made happen anyway, one sentence each, for the report. `protected` are files
    never restored into (the configured source ledger), force or not."""
    if holding.path is not None and any(Path(p).resolve() == Path(holding.path) for p in protected):
        raise TargetRefused(f"the target {holding.where} is the configured source ledger: a restore never "
                            f"writes into it (nothing was changed)",
                            hint="restore into a new file, e.g. --to embedded:restored.db")
    if holding.empty:
        return []
    if plan.strand_id and holding.strand_id and holding.strand_id != plan.strand_id:
        raise TargetRefused(f"the target {holding.where} holds ledger strand {holding.strand_id}, the backup "
                            f"is strand {plan.strand_id}: another lineage, nothing was changed",
                            hint="restore into a new target; --force cannot mix two lineages")
    reasons = []  # (what the target holds, what --force then does)
    if holding.writable:
        upto = "no block" if holding.last_seq is None else f"blocks up to {holding.last_seq}"
        reasons.append((f"the target {holding.where} is a writable ledger ("
                        f"{'promoted, ' if holding.restore_target else ''}{upto})",
                        "it becomes a read-only restore target, and its writers fail"))
    newest = plan.expected_last_seq
    if holding.last_seq is not None and newest is not None and holding.last_seq > newest:
        reasons.append((f"the target {holding.where} holds blocks up to {holding.last_seq}, newer than the "
                        f"backup's newest block {newest}", "they stay, and the restore cannot verify"))
    if reasons and not force:
        what, effect = reasons[0]
        raise TargetRefused(f"{what}: nothing was changed",
                            hint=f"restore into a new target, or pass --force to go on anyway ({effect})")
    return [f"--force: {what}: {effect}" for what, effect in reasons]
