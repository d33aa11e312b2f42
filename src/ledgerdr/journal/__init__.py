"""The journal: QLDB's data model, formats, hashing and verification."""

from .hashing import dot, ion_hash, merkle_root

__all__ = ["dot", "ion_hash", "merkle_root"]
