"""The restore flow: plan, queue, workers, finalize (DESIGN §3)."""

from .plan import RestorePlan, plan_restore
from .run import RestoreOptions, RestoreReport, restore
from .shapes import WorkUnit

__all__ = ["RestoreOptions", "RestorePlan", "RestoreReport", "WorkUnit", "plan_restore", "restore"]
