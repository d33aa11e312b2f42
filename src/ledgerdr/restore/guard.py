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
    done: list[str] = []
    upto = "no block" if holding.last_seq is None else f"blocks up to {holding.last_seq}"
    if holding.writable:
        what = (f"the target {holding.where} is a writable ledger ({'promoted, ' if holding.restore_target else ''}"
                f"{upto}): restoring into it would make it a read-only restore target, and its writers fail")
        if not force:
            raise TargetRefused(what + "; nothing was changed", hint="restore into a new target, or pass --force "
                                "to do exactly that")
        done.append(f"--force: {what}")
    newest = plan.expected_last_seq
    if holding.last_seq is not None and newest is not None and holding.last_seq > newest:
        what = (f"the target {holding.where} holds blocks up to {holding.last_seq}, newer than the backup's "
                f"newest block {newest}")
        if not force:
            raise TargetRefused(what + "; nothing was changed", hint="restore into a new target, or pass --force "
                                "to add the backup to it anyway (it keeps its newer blocks and cannot verify)")
        done.append(f"--force: {what}: they stay, and the restore cannot verify")
    return done
