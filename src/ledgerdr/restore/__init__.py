"""The restore flow: plan, queue, workers, finalize (DESIGN §3)."""

from .plan import RestorePlan, WorkUnit, plan_restore
from .run import RestoreOptions, RestoreReport, restore

__all__ = ["RestoreOptions", "RestorePlan", "RestoreReport", "WorkUnit", "plan_restore", "restore"]
