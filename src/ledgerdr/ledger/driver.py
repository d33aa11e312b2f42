"""A driver for the embedded ledger shaped like pyqldb's `QldbDriver.execute_lambda`.

`fn(txn)` runs inside a transaction; `txn.execute_statement(sql, *params)` returns a cursor over Ion
values. On `OccConflict` the whole lambda is re-run (up to `retry_limit` retries, with small jittered
exponential backoff, as pyqldb does); any other exception aborts the transaction and propagates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from amazon.ion import simpleion

from ..errors import OccConflict, QuotaExceeded
from ..journal.ionwrite import standalone_hashed
from .engine import Ledger, Transaction
from .storage import Durability

T = TypeVar("T")
MAX_PARAMETER_BYTES = 128 * 1024  # QLDB's limit on one statement parameter, as Ion binary


def check_parameter_size(index: int, size: int) -> None:
    """Raise QuotaExceeded when parameter `index` (0-based) is over QLDB's 128 KiB; `serve` says the same."""
    if size > MAX_PARAMETER_BYTES:
        raise QuotaExceeded(f"Parameters[{index}] is {size:,} bytes; the limit is {MAX_PARAMETER_BYTES:,}")


def ion_binary(value: Any) -> bytes:
    """`value` as a self-contained Ion binary stream: ledgerdr's own encoder (C when built; ~5× faster than
    amazon.ion's dumps on a small document), amazon.ion for the rare value it does not write."""
    encoded = standalone_hashed(value)
    return simpleion.dumps(value, binary=True) if encoded is None else encoded[1]


class Cursor:
    """The results of one statement, like pyqldb's buffered cursor: iterable, and an iterator itself
    (`next(cursor)` gives the next value, as pyqldb's cursors do)."""

    def __init__(self, values: list[Any]) -> None:
        self._values = values
        self._position = iter(values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __next__(self) -> Any:
        return next(self._position)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class RetryConfig:
    """pyqldb's `RetryConfig`: `retry_limit` OCC retries; the wait before retry n is
    `custom_backoff(n, error, transaction_id)` milliseconds, or by default a jittered `base * 2**n` ms."""

    retry_limit: int = 4
    base: int = 10
    custom_backoff: Callable[[int, BaseException, str], float] | None = None


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
        """Run one statement. Parameters are Ion values or plain Python values, each at most 128 KiB as
        Ion binary (QuotaExceeded otherwise, as pyqldb gets BadRequestException from QLDB)."""
        for index, value in enumerate(parameters):
            check_parameter_size(index, len(ion_binary(value)))
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
        retry_config: RetryConfig | None = None,
    ) -> None:
        self.ledger = path if isinstance(path, Ledger) else Ledger.open(path, durability=durability)
        self._owns_ledger = not isinstance(path, Ledger)
        self.retry_config = retry_config or RetryConfig(retry_limit, int(backoff_base * 1000))
        self.retry_limit = self.retry_config.retry_limit
        self.backoff_base = self.retry_config.base / 1000
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
            except OccConflict as exc:
                txn.abort()
                if attempt >= self.retry_limit:
                    raise
                attempt += 1
                self.retries += 1
                time.sleep(self._backoff(attempt, exc, txn.id))
            except BaseException:
                txn.abort()
                raise

    def _backoff(self, attempt: int, error: BaseException, transaction_id: str) -> float:
        custom = self.retry_config.custom_backoff
        if custom is not None:
            return max(0.0, custom(attempt, error, transaction_id)) / 1000
        return random.uniform(0, self.backoff_base * (2**attempt))

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


__all__ = ["MAX_PARAMETER_BYTES", "Cursor", "DriverTransaction", "LedgerDriver", "RetryConfig", "check_parameter_size",
           "ion_binary"]
