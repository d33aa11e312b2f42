"""Small JSON state files (ledger state, export descriptions), replaced atomically and durably."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write `record` to `path` through a temporary file, fsynced, then renamed over the old one: a
    crash leaves either the old or the new record, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as out:
        json.dump(record, out, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
