"""QLDB's scalar functions added to the embedded ledger (ledger/functions.py), the examples of QLDB's
PartiQL reference run with `FROM` a one-row table; and the driver's iterator cursor and RetryConfig."""

from __future__ import annotations

from decimal import Decimal

import pytest
from amazon.ion import simpleion

from ledgerdr.errors import LedgerError, OccConflict
from ledgerdr.ledger.driver import LedgerDriver, RetryConfig
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.functions import date_diff, substring
from ledgerdr.ledger.syntax import MISSING


@pytest.fixture
def ledger(tmp_path):
    with Ledger.create(tmp_path / "f.db") as opened:
        opened.execute("CREATE TABLE One")
        opened.execute("INSERT INTO One ?", {"name": "  Ann  ", "nothing": None, "vin": "1N4AL11D75C109151"})
        yield opened


def _value(ledger: Ledger, expression: str):
    [row] = ledger.execute(f"SELECT {expression} AS v FROM One")
    return row.get("v", MISSING)


def _ion(ledger: Ledger, expression: str) -> str:
    return simpleion.dumps(_value(ledger, expression), binary=False, omit_version_marker=True)


@pytest.mark.parametrize("expression,expected", [
    ("SUBSTRING('123456789', 0, 999)", "123456789"),
    ("SUBSTRING('123456789', 1, 2)", "12"),
    ("SUBSTRING('1', 1, 0)", ""),
    ("SUBSTRING('1234', -2, 4)", "1"),
    ("SUBSTRING(vin, 4)", "AL11D75C109151"),
    ("TRIM(name)", "Ann"),
    ("TRIM('       foobar         ')", "foobar"),
    ("CAST('123' AS INT)", 123),
    ("CAST(12 AS STRING)", "12"),
    ("CAST(true AS INT)", 1),
    ("CAST('1.5' AS DECIMAL)", Decimal("1.5")),
    ("DATE_DIFF(day, `2010-01-01T`, `2010-01-02T`)", 1),
    ("DATE_DIFF(year, `2010-01-01T`, `2011-01-01T`)", 1),
    ("DATE_DIFF(month, `2010-01-01T`, `2010-05T`)", 4),
    ("DATE_DIFF(month, `2010-02-01T`, `2010-01-01T`)", -1),
    ("EXTRACT(YEAR FROM `2010-01-01T`)", 2010),
    ("EXTRACT(MONTH FROM `2010-01-01T`)", 1),
    ("EXTRACT(TIMEZONE_HOUR FROM `2017-01-02T03:04:05+05:30`)", 5),
    ("EXTRACT(TIMEZONE_MINUTE FROM `2017-01-02T03:04:05+05:30`)", 30),
    ("EXTRACT(SECOND FROM `2017-01-02T03:04:05.25Z`)", Decimal("5.25")),
    ("TO_STRING(`1969-07-20T20:18Z`, 'MMMM d, y')", "July 20, 1969"),
    ("TO_STRING(`1969-07-20T20:18Z`, 'MMM d, yyyy')", "Jul 20, 1969"),
    ("TO_STRING(`1969-07-20T20:18Z`, 'M-d-yy')", "7-20-69"),
    ("TO_STRING(`1969-07-20T20:18Z`, 'MM-d-y')", "07-20-1969"),
    ("TO_STRING(`1969-07-20T20:18Z`, 'MMMM d, y h:m a')", "July 20, 1969 8:18 PM"),
    ("TO_STRING(`1969-07-20T20:18Z`, 'y-MM-dd''T''H:m:ssX')", "1969-07-20T20:18:00Z"),
    ("TO_STRING(`1969-07-20T20:18+08:00`, 'y-MM-dd''T''H:m:ssXXXX')", "1969-07-20T20:18:00+08:00"),
])
def test_qldb_reference_examples(ledger, expression, expected):
    assert _value(ledger, expression) == expected


@pytest.mark.parametrize("expression,expected", [
    ("DATE_ADD(day, 5, `2017-01-10T`)", "2017-01-15"),
    ("DATE_ADD(month, 1, `2017-01-31T`)", "2017-02-28"),
    ("DATE_ADD(year, -1, `2017-01-10T`)", "2016-01-10"),
    ("DATE_ADD(second, 30, `2017-01-10T05:30:55Z`)", "2017-01-10T05:31:25Z"),
    ("TO_TIMESTAMP('2007T')", "2007T"),
    ("TO_TIMESTAMP('2016', 'y')", "2016T"),
    ("TO_TIMESTAMP('1969-07-20 20:18', 'y-MM-dd HH:mm')", "1969-07-20T20:18Z"),
    ("TO_TIMESTAMP('July 20, 1969', 'MMMM d, y')", "1969-07-20"),
])
def test_timestamps_keep_ion_precision(ledger, expression, expected):
    assert _ion(ledger, expression) == expected


def test_absent_and_wrongly_typed_arguments(ledger):
    assert _value(ledger, "TRIM(nothing)") is None
    assert _value(ledger, "SUBSTRING(no_such_field, 1)") is MISSING
    assert _value(ledger, "CAST('x' AS INT)") is MISSING
    assert _value(ledger, "DATE_ADD(day, 1, 'not a timestamp')") is MISSING
    assert _value(ledger, "UTCNOW()").year >= 2024
    assert substring("abc", 2) == "bc" and date_diff("hour", *(simpleion.loads(t) for t in (
        "2020-01-01T00:00Z", "2020-01-01T05:59Z"))) == 5


@pytest.mark.parametrize("statement", [
    "SELECT DATE_ADD(fortnight, 1, `2017T`) FROM One",
    "SELECT CAST(1 AS widget) FROM One",
    "SELECT EXTRACT(YEAR `2017T`) FROM One",
    "SELECT SUBSTRING('a') FROM One",
])
def test_malformed_function_calls_are_syntax_errors(ledger, statement):
    with pytest.raises(LedgerError):
        ledger.execute(statement)


def test_driver_cursor_is_an_iterator_and_retry_config_is_honoured(tmp_path):
    waits: list[int] = []

    def backoff(attempt: int, error: BaseException, transaction_id: str) -> float:
        waits.append(attempt)
        assert isinstance(error, OccConflict) and len(transaction_id) == 22
        return 0

    Ledger.create(tmp_path / "d.db").close()
    with LedgerDriver(tmp_path / "d.db", retry_config=RetryConfig(retry_limit=1, custom_backoff=backoff)) as driver:
        driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE C"))
        driver.execute_lambda(lambda t: t.execute_statement("INSERT INTO C ?", {"n": 0}))
        cursor = driver.execute_lambda(lambda t: t.execute_statement("SELECT n FROM C"))
        assert next(cursor) == {"n": 0}
        with pytest.raises(StopIteration):
            next(cursor)
        other = LedgerDriver(driver.ledger.path)

        def conflicting(t):
            t.execute_statement("SELECT n FROM C")
            other.execute_lambda(lambda u: u.execute_statement("UPDATE C SET n = n + 1"))
            t.execute_statement("UPDATE C SET n = 100")

        with pytest.raises(OccConflict):
            driver.execute_lambda(conflicting)
        other.close()
        assert waits == [1]  # one retry (retry_limit=1), its wait from custom_backoff


def test_history_refuses_an_end_in_the_future_or_a_start_after_the_end(ledger):
    assert len(ledger.execute("SELECT * FROM history(One, `2000-01-01T`, `2001-01-01T`)")) == 0
    assert len(ledger.execute("SELECT * FROM history(One, `2000-01-01T`, UTCNOW())")) == 1
    with pytest.raises(LedgerError, match="in the future"):
        ledger.execute("SELECT * FROM history(One, `2000-01-01T`, `2999-01-01T`)")
    with pytest.raises(LedgerError, match="after its end"):
        ledger.execute("SELECT * FROM history(One, `2001-01-01T`, `2000-01-01T`)")


def test_bag_and_list_literals_in_from(ledger):
    [row] = ledger.execute("SELECT TRIM('  x ') AS t, UTCNOW() AS now FROM << 0 >>")
    assert row["t"] == "x" and row["now"].year >= 2024
    assert ledger.execute("SELECT r.x FROM <<{'x': 1}, {'x': 2}>> AS r WHERE r.x > 1") == [{"x": 2}]
    assert ledger.execute("SELECT VALUE v FROM [1, 2, 3] AS v") == [1, 2, 3]
    with pytest.raises(LedgerError, match="BY is available on tables only"):
        ledger.execute("SELECT * FROM << 0 >> AS v BY vid")


@pytest.mark.parametrize("expression,expected", [
    ("TRIM(BOTH 'x' FROM 'xxabcxx')", "abc"),
    ("TRIM(LEADING FROM '  a  ')", "a  "),
    ("TRIM(TRAILING 'y' FROM 'yay')", "ya"),
    ("TRIM('x' FROM 'xax')", "a"),
    ("SUBSTRING('123456789' FROM 2 FOR 3)", "234"),
    ("SUBSTRING('123456789' FROM 7)", "789"),
])
def test_the_sql_forms_of_trim_and_substring(ledger, expression, expected):
    assert _value(ledger, expression) == expected


def test_txid_is_the_running_transactions_id(ledger):
    txn = ledger.begin()
    [row] = txn.execute("SELECT TXID() AS t FROM << 0 >>")
    assert row["t"] == txn.id
    txn.abort()
    with pytest.raises(LedgerError):
        ledger.execute("SELECT * FROM One WHERE TXID(1)")
