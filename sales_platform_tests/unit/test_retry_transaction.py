"""The transaction retry (storage/database.py): which errors run the transaction again, which
fail at once, and what the error says when the attempts run out."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa

from sales_platform.storage import database
from sales_platform.storage.database import (
    TRANSACTION_ATTEMPTS,
    TransactionRetriesExhausted,
    retry_transaction,
    transient_error_code,
)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(database, "_BACKOFF_SECONDS", 0.0)


def mysql_error(wrapper: type[sa.exc.DBAPIError], orig: pymysql.err.MySQLError):
    """The error SQLAlchemy raises for a PyMySQL error (the driver's error as `orig`)."""
    return wrapper("UPDATE t SET x=%(x)s", {"x": 1}, orig)


TRANSIENT = [
    mysql_error(sa.exc.OperationalError, pymysql.err.OperationalError(1213, "Deadlock found")),
    mysql_error(sa.exc.OperationalError, pymysql.err.OperationalError(1205, "Lock wait timeout")),
    mysql_error(sa.exc.OperationalError, pymysql.err.OperationalError(2006, "Server gone away")),
    mysql_error(sa.exc.OperationalError, pymysql.err.OperationalError(2013, "Lost connection")),
    mysql_error(sa.exc.OperationalError, pymysql.err.OperationalError(1927, "Connection killed")),
]
PERMANENT = [
    mysql_error(sa.exc.IntegrityError, pymysql.err.IntegrityError(1062, "Duplicate entry")),
    mysql_error(sa.exc.ProgrammingError, pymysql.err.ProgrammingError(1064, "SQL syntax")),
    mysql_error(sa.exc.ProgrammingError, pymysql.err.ProgrammingError(1146, "doesn't exist")),
    mysql_error(sa.exc.DataError, pymysql.err.DataError(1406, "Data too long")),
    mysql_error(sa.exc.OperationalError, pymysql.err.OperationalError(1045, "Access denied")),
    ValueError("not a database error"),
]


class Flaky:
    """A transaction that fails with `errors` in turn, then returns 'done'."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: str(e.orig.args[0]))
def test_a_transient_error_runs_the_whole_transaction_again(error):
    assert transient_error_code(error) == error.orig.args[0]
    work = Flaky(error, error)
    assert retry_transaction(work, "t 2024-01") == "done"
    assert work.calls == 3


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_any_other_error_is_raised_at_once_unchanged(error):
    assert transient_error_code(error) is None
    work = Flaky(error)
    with pytest.raises(type(error)) as raised:
        retry_transaction(work, "t 2024-01")
    assert raised.value is error
    assert work.calls == 1


def test_sqlite_errors_are_not_retried(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    calls = []

    def work():
        calls.append(1)
        with engine.begin() as conn:
            conn.exec_driver_sql("SELEC 1")

    with pytest.raises(sa.exc.OperationalError):
        retry_transaction(work, "t")
    assert calls == [1]


def test_when_the_attempts_run_out_the_error_names_what_failed_and_why():
    deadlock = TRANSIENT[0]
    work = Flaky(*[deadlock] * TRANSACTION_ATTEMPTS)
    with pytest.raises(TransactionRetriesExhausted) as raised:
        retry_transaction(work, "customers_data_mart sales_date_month 2024-01-01..2024-02-01")
    message = str(raised.value)
    assert message.startswith("customers_data_mart sales_date_month 2024-01-01..2024-02-01: ")
    assert f"failed {TRANSACTION_ATTEMPTS} times" in message and "1213 (deadlock)" in message
    assert raised.value.__cause__ is deadlock
    assert work.calls == TRANSACTION_ATTEMPTS
    # The bound values never reach the message (hide_parameters holds through the retry).
    assert "'x'" not in message


def test_the_backoff_grows_and_is_bounded(monkeypatch):
    monkeypatch.setattr(database, "_BACKOFF_SECONDS", 0.001)
    slept = []
    monkeypatch.setattr("tenacity.nap.time.sleep", slept.append)
    work = Flaky(*[TRANSIENT[0]] * (TRANSACTION_ATTEMPTS - 1))
    assert retry_transaction(work, "t") == "done"
    assert len(slept) == TRANSACTION_ATTEMPTS - 1
    caps = [0.001 * 2**i for i in range(len(slept))]
    assert all(0 <= s <= cap for s, cap in zip(slept, caps, strict=True)), slept
