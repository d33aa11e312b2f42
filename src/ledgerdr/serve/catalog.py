"""The ledgers of one data directory, and the control-plane state QLDB keeps beside each.

A ledger named `n` is the file `DIR/n.db` — one created by CreateLedger, or any ledger file put there
(a restore's target, a standby). Names follow QLDB's rule (1–32 letters, digits and single inner
hyphens, not all digits), so a name can never leave DIR. What the ledger file does not hold — state,
creation time, deletion protection, permissions mode, tags — lives in `DIR/.serve/n.json`, written
atomically; a file without one gets QLDB's defaults (ACTIVE, deletion protection on).

DeleteLedger moves the files to `DIR/.deleted/` instead of erasing them: ledgerdr never destroys a
journal on a single request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LedgerDRError
from ..ledger.engine import Ledger
from ..ledger.storage import Durability
from .errors import AwsError, invalid_parameter, not_found
from .records import write_json

_NAME = re.compile(r"^(?!.*--)(?![0-9]+$)(?!-)(?!.*-$)[A-Za-z0-9-]{1,32}$")
ACCOUNT_ID = "000000000000"
PERMISSIONS_MODES = ("ALLOW_ALL", "STANDARD")


@dataclass
class LedgerState:
    name: str
    state: str  # CREATING | ACTIVE
    created: float  # epoch seconds
    deletion_protection: bool = True
    permissions_mode: str = "STANDARD"
    tags: dict[str, str] = field(default_factory=dict)

    def arn(self, region: str) -> str:
        return ledger_arn(region, self.name)

    def description(self, region: str) -> dict[str, Any]:
        return {
            "Name": self.name, "Arn": self.arn(region), "State": self.state,
            "CreationDateTime": self.created, "PermissionsMode": self.permissions_mode,
            "DeletionProtection": self.deletion_protection,
        }


def ledger_arn(region: str, name: str) -> str:
    return f"arn:aws:qldb:{region}:{ACCOUNT_ID}:ledger/{name}"


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid_parameter(
            f"Ledger name {name!r} is invalid: 1-32 letters, digits and single inner hyphens, not all digits",
            "Name")
    return name


class Catalog:
    """Thread-safe view of the data directory's ledgers."""

    def __init__(self, data_dir: Path, durability: Durability | str = Durability.FULL) -> None:
        self.dir = Path(data_dir)
        self.durability = Durability(durability)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / ".serve").mkdir(exist_ok=True)
        self._lock = threading.RLock()
        self._creating: set[str] = set()

    def path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.db"

    # ------------------------------------------------------------------------------- reads
    def get(self, name: str) -> LedgerState:
        """The ledger's state; ResourceNotFoundException when there is no such ledger."""
        path = self.path(name)
        with self._lock:
            if name not in self._creating and not path.is_file():
                raise not_found(name)
            state = self._read_state(name)
            if state is None:
                state = LedgerState(name, "ACTIVE", _first_block_time(path))
                self._write_state(state)
            state.state = "CREATING" if name in self._creating else "ACTIVE"
            return state

    def active_path(self, name: str, *, for_session: bool = False) -> Path:
        """The file of an ACTIVE ledger. A ledger still being created is QLDB's precondition error (the
        session API says BadRequestException, as QLDB does for a ledger it cannot open)."""
        try:
            state = self.get(name)
        except AwsError as exc:
            if for_session:  # the session API has no ResourceNotFoundException: QLDB says BadRequest
                raise AwsError("BadRequestException", exc.message) from None
            raise
        if state.state != "ACTIVE":
            if for_session:
                raise AwsError("BadRequestException", f"Ledger {name} is not active (state {state.state})")
            raise AwsError("ResourcePreconditionNotMetException", f"Ledger {name} is {state.state}", 412,
                           ResourceType="LEDGER", ResourceName=name)
        return self.path(name)

    def names(self) -> list[str]:
        with self._lock:
            on_disk = {p.stem for p in self.dir.glob("*.db") if _NAME.match(p.stem)}
            return sorted(on_disk | self._creating)

    # ------------------------------------------------------------------------------ writes
    def create(self, name: str, *, deletion_protection: bool, permissions_mode: str,
               tags: dict[str, str]) -> LedgerState:
        """Register the ledger as CREATING and create its file in the background (then ACTIVE)."""
        path = self.path(name)
        if permissions_mode not in PERMISSIONS_MODES:
            raise invalid_parameter(f"PermissionsMode {permissions_mode!r} is not one of {PERMISSIONS_MODES}",
                                    "PermissionsMode")
        with self._lock:
            if path.exists() or name in self._creating:
                raise AwsError("ResourceAlreadyExistsException", f"Ledger {name} already exists", 409,
                               ResourceType="LEDGER", ResourceName=name)
            state = LedgerState(name, "CREATING", time.time(), deletion_protection, permissions_mode, dict(tags))
            self._write_state(state)
            self._creating.add(name)
        threading.Thread(target=self._create_file, args=(name, path), name=f"create-{name}", daemon=True).start()
        return state

    def _create_file(self, name: str, path: Path) -> None:
        try:
            Ledger.create(path, name, durability=self.durability).close()
        finally:
            with self._lock:
                self._creating.discard(name)

    def update(self, name: str, **changes: Any) -> LedgerState:
        with self._lock:
            state = self.get(name)
            for key, value in changes.items():
                setattr(state, key, value)
            self._write_state(state)
            return state

    def delete(self, name: str) -> Path:
        """Move the ledger's files to DIR/.deleted/; refused while deletion protection is on. The caller
        closes every connection to the file first (sessions), so its WAL has been checkpointed."""
        with self._lock:
            state = self.get(name)
            if state.state != "ACTIVE":
                raise AwsError("ResourceInUseException", f"Ledger {name} is {state.state}", 409,
                               ResourceType="LEDGER", ResourceName=name)
            if state.deletion_protection:
                raise AwsError("ResourcePreconditionNotMetException",
                               f"Preventing deletion of ledger {name}: deletion protection is enabled. "
                               "Disable it with UpdateLedger first.", 412, ResourceType="LEDGER", ResourceName=name)
            graveyard = self.dir / ".deleted"
            graveyard.mkdir(exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = graveyard / f"{name}-{stamp}.db"
            for suffix in ("-wal", "-shm"):
                extra = Path(f"{self.path(name)}{suffix}")
                if extra.exists():
                    extra.rename(f"{target}{suffix}")
            self.path(name).rename(target)
            self._state_path(name).rename(graveyard / f"{name}-{stamp}.json")
            return target

    # ------------------------------------------------------------------------------ state files
    def _state_path(self, name: str) -> Path:
        return self.dir / ".serve" / f"{name}.json"

    def _read_state(self, name: str) -> LedgerState | None:
        try:
            raw = json.loads(self._state_path(name).read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise LedgerDRError(f"{self._state_path(name)} is not valid JSON: {exc}") from None
        raw.pop("format_version", None)
        return LedgerState(**raw)

    def _write_state(self, state: LedgerState) -> None:
        write_json(self._state_path(state.name), {"format_version": 1, **asdict(state)})


def _first_block_time(path: Path) -> float:
    """A dropped-in ledger file was created no later than its first block (backup windows start there)."""
    try:
        with Ledger.open(path, read_only=True) as ledger:
            first = ledger.first_block_time()
    except LedgerDRError:
        first = None
    return first.timestamp() if first is not None else path.stat().st_mtime
