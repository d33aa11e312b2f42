"""Erasing a redacted revision's data from a stored block (QLDB's REDACT_REVISION, issue 16 item 13).

QLDB removes the data of a redacted revision from the journal itself: the revision keeps its `hash` and
gains `dataHash` (the Ion Hash of the erased `data`), so its hash, the block's entries and the chain all
verify as before. Every copy of a block that ledgerdr stores (the embedded ledger, an embedded restore
target, a standby) is rewritten by this one function when a redaction reaches it, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amazon.ion import simpleion

from .hashing import ion_hash

Erase = Mapping[tuple[str, int], bytes | None]  # (documentId, version) → dataHash (None: hash the data)


def redact_block_ion(ion: bytes, erase: Erase) -> bytes | None:
    """The block's Ion binary with `data` replaced by `dataHash` in every revision `erase` names; None
    when no revision of the block still holds data to erase (nothing to rewrite)."""
    if not erase:
        return None
    block = simpleion.loads(ion)
    revisions = block.get("revisions") or []
    changed = False
    for i, revision in enumerate(revisions):
        metadata = revision.get("metadata")
        if metadata is None or "data" not in revision:
            continue
        key = (str(metadata["id"]), int(metadata["version"]))
        if key in erase:
            revisions[i] = redacted_revision(revision, erase[key] or ion_hash(revision["data"]))
            changed = True
    return simpleion.dumps(block, binary=True) if changed else None


def redacted_revision(revision: Any, data_hash: bytes) -> dict[str, Any]:
    """The revision with `data` replaced by `dataHash`, other fields (and their order) unchanged."""
    return {
        ("dataHash" if name == "data" else name): (data_hash if name == "data" else value)
        for name, value in revision.items()
    }
