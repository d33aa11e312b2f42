"""ledgerdr: verifiable disaster recovery for QLDB-style ledgers."""

__version__ = "0.1.0"
