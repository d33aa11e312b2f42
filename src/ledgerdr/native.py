"""The optional C accelerators, and which of them this process uses.

`ledgerdr._ionhash` (Ion binary encoding with the Ion Hash in one pass, and the Ion Hash read straight
from Ion binary), `ledgerdr._iontext` (Ion binary → Ion text), `ledgerdr._journal` (journal blocks
verified straight from their Ion binary bytes), `ledgerdr._statedigest` (the restore's state digest from a
target's stored rows), `ledgerdr._pgcopy` (PostgreSQL binary COPY data and the documents' JSON, from the
verifier's rows) and `ledgerdr._httpfast` (`serve`'s common request framed and SigV4-verified) are built by `pip install` when a C compiler is present. Each has a pure-Python twin that stays the reference: the tests check that both
give the same bytes. Set `LEDGERDR_PURE_PYTHON=1` to run on the Python paths alone (a machine without a
compiler does so anyway).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load(name: str) -> ModuleType | None:
    if os.environ.get("LEDGERDR_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"ledgerdr.{name}")
    except ImportError:
        return None


ionhash: ModuleType | None = _load("_ionhash")
iontext: ModuleType | None = _load("_iontext")
journal: ModuleType | None = _load("_journal")
statedigest: ModuleType | None = _load("_statedigest")
pgcopy: ModuleType | None = _load("_pgcopy")
httpfast: ModuleType | None = _load("_httpfast")


def summary() -> dict[str, bool]:
    """Which accelerators are in use (for `ledgerdr --version`-style reports and benchmarks)."""
    return {"ionhash": ionhash is not None, "iontext": iontext is not None, "journal": journal is not None,
            "statedigest": statedigest is not None, "pgcopy": pgcopy is not None, "httpfast": httpfast is not None}
