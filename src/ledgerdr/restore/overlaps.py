"""Forks found while planning: two objects that claim the same block with different hashes.

When two exports (or two window records) under one location cover the same blocks, the planner
keeps the earlier object and skips the repeated blocks of the later one. Skipping is right only if
both hold the same blocks: if they disagree (same strand and sequence number, another hash), the
location holds two histories, and applying either would be a guess. So before anything is applied,
the repeated range is read from both objects and compared hash for hash; a mismatch is a `ForkError`
naming both keys and the block address.

Cost: only objects that take part in an overlap are read here (decoded, not re-verified: the worker
verifies what it applies); a location without overlaps costs nothing more.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ObjectNotFound, RestoreError, VerificationError
from ..journal.codecs import DecodeError, ExportFormat, read_blocks
from ..journal.verify import Problem
from ..stores import Store


class ForkError(RestoreError):
    """Two objects under one location disagree on a block: the restore is refused, nothing applied."""


@dataclass(frozen=True)
class Claim:
    """An object's claim to hold blocks [first, last] (a planned unit, or an object a later unit repeats)."""

    key: str
    fmt: str
    first: int
    last: int
    sha256: str | None = None
    version_id: str | None = None


def fetch_object(store: Store, key: str, version_id: str | None = None) -> bytes:
    """The recorded version, or the key's current one where that version id does not exist.

    Window records name the primary's version ids; a replica bucket gives the same bytes other ids.
    The recorded sha256 and the hash chain still decide whether what was read is the right object.
    """
    if not version_id:
        return store.get(key)
    try:
        return store.get(key, version_id=version_id)
    except ObjectNotFound:
        return store.get(key)


def block_hashes(store: Store, claim: Claim, first: int, last: int) -> dict[int, tuple[bytes, str]]:
    """{sequence number: (block hash, block address)} of the object's blocks in [first, last].
    Raises VerificationError naming the key when the bytes do not match the recorded sha256 or do not
    decode (a damaged object is refused as such, not mistaken for a fork)."""
    data = fetch_object(store, claim.key, claim.version_id)
    if claim.sha256 and hashlib.sha256(data).hexdigest() != claim.sha256:
        raise VerificationError(f"object {claim.key}: bytes do not match the recorded sha256; nothing applied",
                                [Problem("checksum_mismatch", claim.key, None, "sha256 mismatch")])
    out = {}
    try:
        for block in read_blocks(data, ExportFormat.parse(claim.fmt), chain_only=True):
            if first <= block.sequence_no <= last:
                out[block.sequence_no] = (block.block_hash, str(block.address))
    except DecodeError as exc:
        raise VerificationError(f"object {claim.key}: cannot decode: {exc}; nothing applied",
                                [Problem("unreadable_object", claim.key, None, str(exc))]) from None
    return out


def check_repeat(store: Store, earlier: Iterable[Claim], later: Claim, first: int, last: int) -> None:
    """Compare blocks [first, last] of `later` with the same blocks of the `earlier` objects that hold
    them. Raises ForkError at the first block they disagree on (or that `later` lacks but claims)."""
    theirs = block_hashes(store, later, first, last)
    for claim in earlier:
        lo, hi = max(first, claim.first), min(last, claim.last)
        if lo > hi:
            continue
        for seq, (block_hash, address) in sorted(block_hashes(store, claim, lo, hi).items()):
            other = theirs.get(seq)
            if other is None:
                raise ForkError(f"object {later.key} declares block {address} but does not hold it, while "
                                f"{claim.key} does; nothing applied")
            if other[0] != block_hash:
                raise ForkError(
                    f"fork: {claim.key} and {later.key} disagree on block {address} (hashes "
                    f"{_b64(block_hash)} and {_b64(other[0])}); nothing applied",
                    hint="two histories of one ledger are under this location: restore from the exports of "
                         "one of them (a location holding only that export)")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
