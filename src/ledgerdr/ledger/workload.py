"""A realistic, deterministic workload for the embedded ledger (tests, the demo and benchmarks).

The same `seed` gives the same sequence of operations and values (document ids are drawn by the
ledger, so they differ between runs). It exercises what a restore must reproduce: DDL (CREATE TABLE,
CREATE INDEX) in the journal; inserts of nested structs with decimals, timestamps, blobs, symbols and
lists; updates through an index and by id; deletes; read-only transactions (which QLDB journals
too); single- and multi-document transactions up to QLDB's 40-document limit.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from amazon.ion.symbols import SymbolToken

from ..journal.writer import ms_timestamp
from .driver import DriverTransaction, LedgerDriver
from .engine import Ledger

_TABLE_NAMES = ("Vehicle", "Person", "Invoice", "Policy", "Claim", "Account", "Shipment", "Sensor")
_COLORS = ("red", "green", "blue", "black", "white", "silver")
_CITIES = ("Seattle", "Lisbon", "Osaka", "Nairobi", "Lima", "Oslo", "Perth")
_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
MAX_BATCH = 40


@dataclass
class WorkloadStats:
    transactions: int = 0
    ddl_statements: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    selects: int = 0
    read_only_transactions: int = 0
    multi_document_transactions: int = 0
    occ_retries: int = 0
    tables: list[str] = field(default_factory=list)

    @property
    def documents_written(self) -> int:
        return self.inserted + self.updated + self.deleted


def make_document(rng: random.Random, table: str, serial: int) -> dict[str, Any]:
    """One realistic document (about 300-600 bytes of Ion binary): nested struct, decimal, int, float,
    bool, timestamp (half at millisecond precision, half as plain datetimes), blob, symbols, list of
    structs, nullable string. Its `key` field is unique per (table, serial)."""
    moment = _BASE_TIME + timedelta(seconds=rng.randrange(0, 365 * 86400), milliseconds=rng.randrange(1000))
    return {
        "key": f"{table[:3].upper()}-{serial:08d}",
        "owner": {
            "name": f"owner{rng.randrange(10_000)}",
            "city": rng.choice(_CITIES),
            "tags": [SymbolToken(rng.choice(_COLORS), None) for _ in range(rng.randrange(3))],
        },
        "amount": Decimal(rng.randrange(0, 10_000_000)).scaleb(-2),
        "count": rng.randrange(-1000, 1000),
        "ratio": rng.random(),
        "active": rng.random() < 0.8,
        "since": ms_timestamp(moment) if rng.random() < 0.5 else moment,
        "digest": rng.randbytes(rng.randrange(0, 24)),
        "history": [
            {"at": rng.randrange(1_000_000), "note": rng.choice(_CITIES)} for _ in range(rng.randrange(4))
        ],
        "comment": None if rng.random() < 0.2 else "x" * rng.randrange(0, 200),
    }


class _Workload:
    def __init__(self, driver: LedgerDriver, seed: int, tables: int) -> None:
        if not 1 <= tables <= 20:
            raise ValueError("tables must be between 1 and 20 (QLDB's active-table quota)")
        self.driver = driver
        self.rng = random.Random(seed)
        self.stats = WorkloadStats()
        self.tables = [
            _TABLE_NAMES[i % len(_TABLE_NAMES)] + ("" if i < len(_TABLE_NAMES) else str(i))
            for i in range(tables)
        ]
        self.live: dict[str, list[tuple[str, str]]] = {t: [] for t in self.tables}  # (doc id, key)
        self.serial = 0

    # ------------------------------------------------------------------------------------ values
    def document(self, table: str) -> dict[str, Any]:
        self.serial += 1
        return make_document(self.rng, table, self.serial)

    def pick(self, table: str) -> tuple[str, str] | None:
        docs = self.live[table]
        return docs[self.rng.randrange(len(docs))] if docs else None

    # ------------------------------------------------------------------------------- transactions
    def run(self, transactions: int, on_step: Callable[[], None] | None = None) -> WorkloadStats:
        tick = on_step or (lambda: None)
        self.ddl()
        tick()
        for _ in range(max(0, transactions - 1)):
            self.step()
            tick()
        self.stats.tables = list(self.tables)
        return self.stats

    def execute(self, fn: Any) -> Any:
        before = self.driver.retries
        result = self.driver.execute_lambda(fn)
        self.stats.transactions += 1
        self.stats.occ_retries += self.driver.retries - before
        return result

    def ddl(self) -> None:
        existing = set(self.driver.list_tables())

        def create(txn: DriverTransaction) -> None:
            for table in self.tables:
                if table not in existing:
                    txn.execute_statement(f"CREATE TABLE {table}")
                    txn.execute_statement(f"CREATE INDEX ON {table} (key)")
                    self.stats.ddl_statements += 2

        self.execute(create)

    def step(self) -> None:
        roll = self.rng.random()
        table = self.rng.choice(self.tables)
        if roll < 0.40 or not self.live[table]:
            self.insert(table, 1)
        elif roll < 0.55:
            self.insert(table, self.rng.choice((2, 5, 10, 20, MAX_BATCH)))
        elif roll < 0.72:
            self.update(table)
        elif roll < 0.80:
            self.delete(table)
        elif roll < 0.92:
            self.select(table)
        else:
            self.multi_update(table)

    def insert(self, table: str, count: int) -> None:
        docs = [self.document(table) for _ in range(count)]

        def fn(txn: DriverTransaction) -> list[str]:
            if count == 1:
                return [r["documentId"] for r in txn.execute_statement(f"INSERT INTO {table} ?", docs[0])]
            return [r["documentId"] for r in txn.execute_statement(f"INSERT INTO {table} ?", docs)]

        ids = self.execute(fn)
        self.live[table].extend(zip(ids, (d["key"] for d in docs), strict=True))
        self.stats.inserted += count
        self.stats.multi_document_transactions += count > 1

    def update(self, table: str) -> None:
        picked = self.pick(table)
        assert picked is not None  # step() updates only a table with live documents
        doc_id, key = picked
        amount = Decimal(self.rng.randrange(0, 1_000_000)).scaleb(-2)
        args: tuple[Any, ...]
        if self.rng.random() < 0.5:
            sql, args = (
                f"UPDATE {table} AS t SET t.amount = ?, t.owner.city = ? WHERE t.key = ?",
                (amount, self.rng.choice(_CITIES), key),
            )
        else:
            sql, args = (
                f"UPDATE {table} AS t BY id SET t.amount = ? REMOVE t.comment WHERE id = ?",
                (amount, doc_id),
            )
        self.execute(lambda txn: list(txn.execute_statement(sql, *args)))
        self.stats.updated += 1

    def multi_update(self, table: str) -> None:
        targets = self.rng.sample(self.live[table], min(len(self.live[table]), self.rng.randrange(2, 12)))

        def fn(txn: DriverTransaction) -> None:
            for doc_id, _key in targets:
                txn.execute_statement(f"UPDATE {table} BY id SET count = count + 1 WHERE id = ?", doc_id)

        self.execute(fn)
        self.stats.updated += len(targets)
        self.stats.multi_document_transactions += 1

    def delete(self, table: str) -> None:
        docs = self.live[table]
        doc_id, key = docs.pop(self.rng.randrange(len(docs)))
        self.execute(lambda txn: list(txn.execute_statement(f"DELETE FROM {table} WHERE key = ?", key)))
        self.stats.deleted += 1

    def select(self, table: str) -> None:
        target = self.pick(table)
        roll = self.rng.random()

        def fn(txn: DriverTransaction) -> int:
            if roll < 0.5 and target:
                return len(txn.execute_statement(f"SELECT * FROM {table} WHERE key = ?", target[1]))
            if roll < 0.8 and target:
                return len(
                    txn.execute_statement(f"SELECT t.owner FROM {table} AS t BY id WHERE id = ?", target[0])
                )
            # An aggregate over an indexed lookup, not over the table: QLDB's guidance is to avoid full scans
            # (they hit the transaction timeout on large tables), and a full COUNT(*) here made growing a
            # benchmark ledger quadratic in its size.
            key = target[1] if target else f"{table[:3].upper()}-none"
            return len(txn.execute_statement(f"SELECT COUNT(*) AS n FROM {table} WHERE key = ?", key))

        self.execute(fn)
        self.stats.selects += 1
        self.stats.read_only_transactions += 1


def run_workload(
    driver_or_ledger: LedgerDriver | Ledger, transactions: int, seed: int = 0, tables: int = 3,
    on_step: Callable[[], None] | None = None,
) -> WorkloadStats:
    """Run `transactions` transactions (the first creates the tables and their indexes, if missing).

    Deterministic for a given seed apart from the ids the ledger draws. Raises whatever the ledger
    raises (OccConflict only after the driver's retries). Not idempotent: every call adds blocks.
    """
    driver = (
        driver_or_ledger if isinstance(driver_or_ledger, LedgerDriver) else LedgerDriver(driver_or_ledger)
    )
    return _Workload(driver, seed, tables).run(transactions, on_step)
