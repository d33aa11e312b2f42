"""Which ledger digest is durable: held by repositories in at least two regions (`status`, `info`).

Each window record carries the ledger digest captured at the window's end (CONTRACTS §5). A digest counts as
durable only once the record holding it is present and intact in at least two repositories in different
regions: a region lost with the only copy would take away what the journal is checked against. "Intact" is
what `status` already decided for each repository (status.py): in the primary, the windows before the first
break; in a replica, the windows its watermark vouches for whose copies still hash to the recorded sha256.
Nothing is read or hashed again here; the copies of a record must also be byte-identical (the same sha256),
so a replica holding an altered record does not count towards the primary's digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .digests import parse_address
from .errors import ConfigError
from .status import RepositoryStatus

MIN_REGIONS = 2


@dataclass(frozen=True)
class DurableDigest:
    digest: str
    tip_address: str
    tip_block: int | None
    window: str
    window_end: str
    regions: tuple[str, ...]
    repositories: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "tip_address": self.tip_address, "tip_block": self.tip_block,
                "window": self.window, "window_end": self.window_end, "regions": list(self.regions),
                "repositories": list(self.repositories)}

    def render(self) -> str:
        where = ", ".join(f"{r} ({n})" for r, n in zip(self.regions, self.repositories, strict=True))
        return (f"durable digest (in {len(self.regions)} regions): {self.digest}\n"
                f"  tip block {self.tip_block} {self.tip_address}, window {self.window} .. {self.window_end}\n"
                f"  held in {where}")


NONE_DURABLE = ("durable digest: none (no window's digest is held intact in repositories in two regions yet; "
                "`ledgerdr replicate` copies and verifies them)")


def render_durable(durable: DurableDigest | None) -> str:
    return durable.render() if durable is not None else NONE_DURABLE


def newest_durable_digest(statuses: Sequence[RepositoryStatus]) -> DurableDigest | None:
    """The newest window digest whose record `statuses` show verified, byte-identical, in repositories of at
    least two regions; None when there is none."""
    holders: dict[tuple[str, str], list[RepositoryStatus]] = {}  # (window, record sha256) -> who holds it
    records = {}
    for status in statuses:
        for held in status.held:
            if held.digest is None or not held.digest.get("digest") or not held.record_sha256:
                continue
            holders.setdefault((held.window_start, held.record_sha256), []).append(status)
            records[(held.window_start, held.record_sha256)] = held
    durable = [key for key, who in holders.items() if len({s.region for s in who}) >= MIN_REGIONS]
    if not durable:
        return None
    key = max(durable, key=lambda k: (records[k].window_start, k[1]))
    held, who = records[key], holders[key]
    first_per_region: dict[str, str] = {}  # in the configuration's order: the primary first
    for status in who:
        first_per_region.setdefault(status.region, status.name)
    assert held.digest is not None  # filtered above
    return DurableDigest(held.digest["digest"], held.digest.get("tip_address", ""), _tip_block(held.digest),
                         held.window_start, held.window_end, tuple(first_per_region),
                         tuple(first_per_region.values()))


def _tip_block(digest: dict) -> int | None:
    try:
        return parse_address(digest.get("tip_address")).sequence_no
    except ConfigError:
        return None
