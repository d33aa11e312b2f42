"""Digests and proofs over the journal's block hashes (reference §3.6, CONTRACTS §4).

The digest at tip N is `merkle_root([blockHash_0 … blockHash_N])` with QLDB's pairing: left to
right, an odd last node promoted unchanged. Because a promoted node keeps its hash, the root of a
stream of leaves is the right fold of `dot` over the perfect subtrees still open, so it can be
computed in O(log n) memory while blocks stream past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce

from .hashing import dot


class DigestAccumulator:
    """Feeds block hashes 0..N in order; `digest()` is the ledger digest at tip N."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, root of a perfect subtree), heights descending
        self.count = 0

    def add(self, block_hash: bytes) -> None:
        height, node = 0, block_hash
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            node = dot(left, node)
            height += 1
        self._stack.append((height, node))
        self.count += 1

    def digest(self) -> bytes:
        if not self._stack:
            return b""
        return reduce(lambda right, left: dot(left, right), (h for _, h in reversed(self._stack[:-1])),
                      self._stack[-1][1])


class CapturingAccumulator(DigestAccumulator):
    """A DigestAccumulator that also keeps the digest at each sequence number in `capture`, with that
    block's hash and its proof against the digest (`captured[seq] = (digest, block_hash, proof)`):
    `verify --digest` and the restore certificate compare a digest at a block that is not the chain's tip.
    Separate from DigestAccumulator so that the verifier's hot loop pays nothing when no digest is asked
    for. Fed only while the chain runs from block 0 without a gap (ChainChecker.digest_valid)."""

    def __init__(self, capture: frozenset[int]) -> None:
        super().__init__()
        self.capture = capture
        self.captured: dict[int, tuple[bytes, bytes, list[bytes]]] = {}

    def add(self, block_hash: bytes) -> None:
        seq = self.count  # fed from the genesis block on, so the count is the sequence number
        # Before the merge, the open subtrees are exactly the left siblings on the new leaf's path: its proof
        # (lowest first, as `tree_proof` gives it).
        proof = [h for _, h in reversed(self._stack)] if seq in self.capture else None
        super().add(block_hash)
        if proof is not None:
            self.captured[seq] = (self.digest(), block_hash, proof)


def fold_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """QLDB's proof check: fold `dot` over the proof, starting from the leaf (dot is symmetric)."""
    return reduce(dot, proof, leaf)


def verify_proof(leaf: bytes, proof: Iterable[bytes], digest: bytes) -> bool:
    return fold_proof(leaf, proof) == digest


def tree_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The sibling hashes from leaf `index` up to the root of `merkle_root(hashes)`.

    Levels where the node has no sibling (an odd last node, promoted) contribute nothing.
    """
    if not 0 <= index < len(hashes):
        raise IndexError(f"leaf {index} outside 0..{len(hashes) - 1}")
    proof: list[bytes] = []
    level = list(hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = [dot(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        index //= 2
    return proof
