"""A driver for the embedded ledger shaped like pyqldb's `QldbDriver.execute_lambda`.

`fn(txn)` runs inside a transaction; `txn.execute_statement(sql, *params)` returns a cursor over Ion
values. On `OccConflict` the whole lambda is re-run (up to `retry_limit` retries, with small jittered
exponential backoff, as pyqldb does); any other exception aborts the transaction and propagates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import OccConflict
from .engine import Ledger, Transaction
from .storage import Durability

T = TypeVar("T")


class Cursor:
    """The results of one statement: iterable once, like pyqldb's buffered cursor."""

    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _Aborted(Exception):
    """Raised out of the lambda by `txn.abort()` so that execute_lambda stops without committing."""


class DriverTransaction:
    """What `fn` receives: `execute_statement`, `abort`, and the transaction id."""

    def __init__(self, txn: Transaction) -> None:
        self._txn = txn

    @property
    def transaction_id(self) -> str:
        return self._txn.id

    def execute_statement(self, statement: str, *parameters: Any) -> Cursor:
        """Run one statement. Parameters are Ion values or plain Python values."""
        return Cursor(self._txn.execute(statement, *parameters))

    def abort(self) -> None:
        """Abandon the transaction: nothing is committed and execute_lambda returns None."""
        self._txn.abort()
        raise _Aborted()


class LedgerDriver:
    """Runs lambdas against one ledger file. Not thread-safe: use one driver per thread."""

    def __init__(
        self,
        path: Path | str | Ledger,
        retry_limit: int = 4,
        *,
        durability: Durability | str = Durability.FULL,
        backoff_base: float = 0.01,
    ) -> None:
        self.ledger = path if isinstance(path, Ledger) else Ledger.open(path, durability=durability)
        self._owns_ledger = not isinstance(path, Ledger)
        self.retry_limit = retry_limit
        self.backoff_base = backoff_base
        self.retries = 0  # OCC retries performed since the driver was created

    def execute_lambda(self, fn: Callable[[DriverTransaction], T]) -> T | None:
        """Run `fn` in a transaction and commit it; returns fn's result (None if fn aborted).

        Raises OccConflict after `retry_limit` retries; any other error from fn or from the commit
        propagates after the transaction is aborted. Not idempotent: fn may run more than once.
        """
        attempt = 0
        while True:
            txn = self.ledger.begin()
            try:
                result = fn(DriverTransaction(txn))
                txn.commit()
                return result
            except _Aborted:
                return None
            except OccConflict:
                txn.abort()
                if attempt >= self.retry_limit:
                    raise
                attempt += 1
                self.retries += 1
                time.sleep(random.uniform(0, self.backoff_base * (2**attempt)))
            except BaseException:
                txn.abort()
                raise

    def list_tables(self) -> list[str]:
        """Names of the active tables, as pyqldb's driver lists them."""
        return self.ledger.list_tables()

    def close(self) -> None:
        if self._owns_ledger:
            self.ledger.close()

    def __enter__(self) -> LedgerDriver:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


__all__ = ["Cursor", "DriverTransaction", "LedgerDriver"]
