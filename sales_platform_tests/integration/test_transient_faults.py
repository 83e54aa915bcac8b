"""Transient faults: S3 throttling and 5xx, MySQL deadlocks, lock wait timeouts and killed
connections are retried with backoff and the output is exactly once; a fault that outlasts the
retries fails the run naming the object or the table, and a rerun converges.

S3 faults come from a fault-injecting endpoint in front of moto (`s3_faults.py`): it answers the
chosen calls with 503 SlowDown or 500 InternalError, whichever client makes them (boto3 for the
object store and the Iceberg writes, pyarrow for pyiceberg's reads). MySQL faults come from an
SQLAlchemy hook on every engine of the process: before a chosen statement it raises the driver's
error (a deadlock) or has a second connection `KILL CONNECTION` the writer's (a real lost
connection: MariaDB rolls the transaction back). The runs are the CLI's (the daily job, then the
marts), in this process on the session's Spark; the end state is compared with the independent
oracle, as the kill tests do (convergence.py). README, "Fault points", "Transient faults".
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

import dagster as dg
import pymysql
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError

from sales_platform.cli import _resources, range_plan
from sales_platform.definitions import build_definitions
from sales_platform.schemas import (
    LANDING_PREFIX,
    PROCESSED_PREFIX,
    customers_data_mart_table,
    product_staging_table,
    sales_team_data_mart_table,
)
from sales_platform.settings import Settings
from sales_platform.storage import database, iceberg, iceberg_io, object_store, warehouse
from sales_platform.storage.database import TransactionRetriesExhausted, create_engine
from sales_platform.storage.iceberg_io import LakeFileIO
from sales_platform.storage.ledger import FileVersion, Ledger
from sales_platform.storage.object_store import S3ObjectStore, s3_client
from sales_platform.storage.warehouse import ensure_tables, replace_window
from sales_platform_tests.conftest import MARIADB_ADMIN_URL, mariadb_database, new_bucket
from sales_platform_tests.convergence import (
    assert_converged,
    assert_nothing_lost_or_half_published,
    land,
    mart,
)
from sales_platform_tests.s3_faults import FOREVER, FaultyS3, faulty_s3_endpoint
from sales_platform_tests.support import stack_environ

pytestmark = pytest.mark.integration

DAILY, MARTS = "daily_sales_job", "monthly_marts_job"
START, END = date(2023, 12, 31), date(2024, 1, 1)
MONTHS = (date(2023, 12, 1), date(2024, 1, 1))
FILES = 4  # two a day, one of them a bad file
# The S3 calls a daily run and its marts make, each failed twice before it goes through (503
# SlowDown, then 500 InternalError); the run's own boto3 clients and pyarrow's reads alike.
S3_CALLS = {
    "boto3": (
        "ListObjectsV2",
        "HeadObject",
        "GetObject",
        "PutObject",
        "CopyObject",
        "DeleteObject",
    ),
    "pyarrow": ("HeadObject", "GetObject"),
}


# --- MySQL faults: an SQLAlchemy hook before chosen statements ---------------------------------


@dataclass
class SqlFault:
    pattern: str  # a regex the statement must match (from its start)
    action: str  # "kill" (a second connection kills the writer's) or a MySQL error number
    arrivals: set[int]  # the matching statements (1 = first) that fail; empty: every one
    seen: int = 0
    fired: int = 0
    # Called right after a kill, before the writer's next statement: what a reader sees then.
    on_kill: object = None


@dataclass
class SqlFaults:
    faults: list[SqlFault] = field(default_factory=list)
    killer: sa.Engine | None = None

    def add(self, pattern: str, action: str, *arrivals: int, on_kill=None) -> SqlFault:
        fault = SqlFault(pattern, action, set(arrivals), on_kill=on_kill)
        self.faults.append(fault)
        return fault

    def before_execute(self, conn, cursor, statement, parameters, context, executemany):
        for fault in self.faults:
            if not re.match(fault.pattern, statement):
                continue
            fault.seen += 1
            if fault.arrivals and fault.seen not in fault.arrivals:
                continue
            fault.fired += 1
            if fault.action != "kill":
                code = int(fault.action)
                raise pymysql.err.OperationalError(code, f"injected MySQL error {code}")
            # The writer's session id, asked on its own connection; a second one kills it.
            raw = conn.connection.dbapi_connection.cursor()
            raw.execute("SELECT CONNECTION_ID()")
            (writer,) = raw.fetchone()
            raw.close()
            with self.killer.connect() as other:
                other.exec_driver_sql(f"KILL CONNECTION {int(writer)}")
            if fault.on_kill is not None:
                fault.on_kill()


@contextlib.contextmanager
def sql_faults() -> Iterator[SqlFaults]:
    faults = SqlFaults(killer=sa.create_engine(MARIADB_ADMIN_URL))
    sa.event.listen(sa.Engine, "before_cursor_execute", faults.before_execute)
    try:
        yield faults
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", faults.before_execute)
        faults.killer.dispose()


LEDGER_UPDATE = rf"UPDATE {product_staging_table.name} "
CUSTOMERS_INSERT = rf"INSERT INTO {customers_data_mart_table.name} "
SELLERS_INSERT = rf"INSERT INTO {sales_team_data_mart_table.name} "


# --- a production stack behind the faulty endpoint ---------------------------------------------


class Stack:
    """Landing, lake and warehouse of one stack on the faulty endpoint, and the oracle."""

    faults: FaultyS3
    settings: Settings
    instance: dg.DagsterInstance

    def run(self, *jobs: str) -> list[dg.ExecuteInProcessResult]:
        """The CLI's runs of the range (the daily job, then the marts), the named jobs only,
        in this process; stops at the first that fails."""
        defs = build_definitions(self.settings)
        results = []
        for job, tags in range_plan(START, END):
            if job in jobs:
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=self.instance, tags=tags, raise_on_error=False
                )
                results.append(result)
                if not result.success:
                    break
        return results


@contextlib.contextmanager
def open_stack(s3_endpoint: str, tmp) -> Iterator[Stack]:
    with (
        faulty_s3_endpoint() as (url, faults),
        mariadb_database() as db_url,
        pytest.MonkeyPatch.context() as mp,
    ):
        for key, value in stack_environ("prod", tmp, db_url, new_bucket(s3_endpoint), url).items():
            mp.setenv(key, value)
        s = Stack()
        s.faults, s.settings = faults, Settings.from_env()
        with _resources(s.settings, "landing", "lake", "source_db", "warehouse_db") as res:
            s.store, s.lake = res.landing.open(), res.lake.lake()
            s.warehouse = res.warehouse_db.engine()
            land(s, res.source_db.engine(), START, 2, 2, 1 / FILES, seed=5)
            assert len(s.summary.files) == FILES and len(s.summary.bad_files) == 1
            with dg.instance_for_test() as instance:
                s.instance = instance
                yield s


def failure(results: list[dg.ExecuteInProcessResult]) -> str:
    """The failed run's step errors, with their causes."""
    assert results and not results[-1].success, "the run did not fail"
    return "\n".join(
        event.step_failure_data.error.to_string()
        for event in results[-1].all_events
        if event.is_step_failure
    )


def _client_with_attempts(retries: int):
    """`object_store.s3_client` whose clients retry a call `retries` times after its first
    attempt (ObjectStoreResource's `max_attempts`, botocore's; the platform's default is 5)."""
    made_by = object_store.s3_client

    def s3_client(endpoint_url, region_name, max_attempts=retries):
        return made_by(endpoint_url, region_name, retries)

    return s3_client


# --- whole runs ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_transient_s3_and_mysql_faults_in_a_run_are_retried_and_the_output_is_exactly_once(
    spark, s3_endpoint, tmp_path
):
    with open_stack(s3_endpoint, tmp_path) as stack, sql_faults() as sql:
        for client, operations in S3_CALLS.items():
            for op in operations:
                stack.faults.fail(op, 1, 503, client=client)
                stack.faults.fail(op, 1, 500, client=client)
        # A deadlock on the first ledger update; the fourth loses its connection (killed).
        sql.add(LEDGER_UPDATE, "1213", 1)
        sql.add(LEDGER_UPDATE, "kill", 4)
        # The first month of the customer mart: killed inside its delete-and-insert. What a
        # reader sees at that instant: the month as it was (none yet) or whole, never a part.
        seen_at_kill = []

        def read_month() -> None:
            customers, _ = mart(stack, MONTHS[0])
            seen_at_kill.append(customers)

        killed = sql.add(CUSTOMERS_INSERT, "kill", 1, on_kill=read_month)
        deadlocked = sql.add(SELLERS_INSERT, "1213", 1)

        results = stack.run(DAILY, MARTS)

        assert [r.success for r in results] == [True, True], failure(results)
        wanted = {(op, c): 2 for c, ops in S3_CALLS.items() for op in ops}
        assert {k: stack.faults.injected[k] for k in wanted} == wanted, stack.faults.seen
        assert [(f.action, f.fired) for f in sql.faults] == [
            ("1213", 1),
            ("kill", 1),
            ("kill", 1),
            ("1213", 1),
        ]
        # The killed and the deadlocked months were written again, once.
        assert killed.seen >= 2 and deadlocked.seen >= 2
        assert seen_at_kill == [[]], seen_at_kill
        assert_converged(stack)


@pytest.mark.timeout(300)
def test_a_fault_outlasting_the_retries_fails_the_run_naming_it_and_a_rerun_converges(
    spark, s3_endpoint, tmp_path
):
    with open_stack(s3_endpoint, tmp_path) as stack, sql_faults() as sql:
        # S3 throttles every copy into the archive: the daily run fails naming the call and
        # the object; nothing is lost or half published. The run's S3 clients give up after one
        # retry (max_attempts 1, not 5): the give-up is what is proven here (the retries, by the
        # tests above), and botocore's backoff before retries 2 to 5 is about 15 s of waiting.
        stack.faults.fail("CopyObject", FOREVER, 503, key_contains=PROCESSED_PREFIX)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(object_store, "s3_client", _client_with_attempts(1))
            message = failure(stack.run(DAILY, MARTS))
        key = stack.faults.last_failed["CopyObject"]
        assert "SlowDown" in message and "CopyObject" in message, message
        assert "reached max retries: 1" in message and key in message, message
        assert_nothing_lost_or_half_published(stack, "archive copy throttled")
        print(f"\nS3 gave up: {next(m for m in message.splitlines() if 'CopyObject' in m)}")
        stack.faults.clear()

        # Every insert into the seller mart deadlocks: the daily run succeeds, the marts fail
        # naming the table and the month; the month holds what it held before (nothing).
        sql.add(SELLERS_INSERT, "1213")
        results = stack.run(DAILY, MARTS)
        assert [r.success for r in results] == [True, False]
        message = failure(results)
        assert TransactionRetriesExhausted.__name__ in message, message
        assert f"{sales_team_data_mart_table.name} sales_month " in message, message
        assert "failed 5 times, the last with MySQL error 1213 (deadlock)" in message, message
        assert_nothing_lost_or_half_published(stack, "seller mart deadlocked")
        print(f"MySQL gave up: {next(m for m in message.splitlines() if 'failed 5' in m)}")
        sql.faults.clear()

        # Without faults the marts run again and everything converges.
        assert [r.success for r in stack.run(MARTS)] == [True]
        assert_converged(stack)


# --- the building blocks, one call at a time ----------------------------------------------------


@pytest.mark.timeout(120)
def test_every_s3_call_retries_throttling_and_names_the_object_when_it_gives_up(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    with faulty_s3_endpoint() as (url, faults):
        store = S3ObjectStore(s3_client(url, "us-east-1"), bucket, "root")
        calls = {
            "PutObject": lambda: store.put_bytes("a/x.csv", b"x" * 100),
            "HeadObject": lambda: store.head("a/x.csv"),
            "GetObject": lambda: store.get_bytes("a/x.csv"),
            "ListObjectsV2": lambda: list(store.list("a/")),
            "CopyObject": lambda: store.copy("a/x.csv", "b/x.csv"),
            "DeleteObject": lambda: store.move("b/x.csv", "c/x.csv"),
            "DeleteObjects": lambda: store.delete(["c/x.csv"]),
        }
        for op, call in calls.items():
            faults.fail(op, 1, 503)
            faults.fail(op, 1, 500)
            call()
            assert faults.injected[op, "boto3"] == 2, op
        assert store.get_bytes("a/x.csv") == b"x" * 100
        assert [o.key for o in store.list("")] == ["a/x.csv"]

        # Given up (after one retry here, to keep the test short): the error names the object.
        impatient = S3ObjectStore(s3_client(url, "us-east-1", max_attempts=1), bucket, "root")
        faults.fail("GetObject", FOREVER, 503)
        with pytest.raises(ClientError) as raised:
            impatient.get_bytes("a/x.csv")
        message = str(raised.value)
        assert "SlowDown" in message and "GetObject" in message, message
        assert "reached max retries: 1" in message, message
        assert f"s3://{bucket}/root/a/x.csv" in message, message


@pytest.mark.timeout(120)
def test_iceberg_reads_through_pyarrow_retry_and_name_the_object_when_they_give_up(
    s3_endpoint, monkeypatch
):
    # Three attempts (the first included: the AWS SDK's count) instead of five: a shorter test.
    monkeypatch.setattr(iceberg_io, "S3_MAX_ATTEMPTS", 3)
    bucket = new_bucket(s3_endpoint)
    with faulty_s3_endpoint() as (url, faults):
        file_io = LakeFileIO(iceberg.file_io_properties(url, "us-east-1"))
        location = f"s3://{bucket}/lake/t/metadata/v1.metadata.json"
        with file_io.new_output(location).create() as out:
            out.write(b"{}" * 2000)  # above the size of an error reply (see s3_faults)
        for op in ("HeadObject", "GetObject"):
            faults.fail(op, 1, 503, client="pyarrow")
            faults.fail(op, 1, 500, client="pyarrow")
        with file_io.new_input(location).open() as stream:
            assert stream.read() == b"{}" * 2000
        assert faults.injected == {("HeadObject", "pyarrow"): 2, ("GetObject", "pyarrow"): 2}

        faults.fail("GetObject", FOREVER, 503, client="pyarrow")
        with pytest.raises(OSError) as raised, file_io.new_input(location).open() as stream:
            stream.read()
        message = str(raised.value)
        assert "GetObject" in message and location in message, message


def test_a_killed_connection_mid_replace_keeps_the_month_whole_and_the_retry_replaces_it(
    mariadb_url, monkeypatch
):
    engine = create_engine(mariadb_url)
    table = sales_team_data_mart_table
    ensure_tables(engine, [table])
    window = dg.TimeWindow(datetime(2024, 1, 1), datetime(2024, 2, 1))

    def month(total: int) -> list[dict]:
        return [
            {
                "store_id": 1 + i % 3,
                "sales_person_id": i,
                "full_name": f"seller {i}",
                "sales_month": "2024-01",
                "total_sales": total + i,
                "incentive": 0,
                "sales_rank": 1 + i,
            }
            for i in range(300)
        ]

    def read() -> list[tuple]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.sales_person_id, table.c.total_sales).where(
                    table.c.sales_month == "2024-01"
                )
            )
            return sorted(tuple(r) for r in rows)

    old, new = month(1000), month(5000)
    replace_window(engine, table, "sales_month", window, old)
    whole = {"old": read()}
    replace_window(engine, table, "sales_month", window, new)
    whole["new"] = read()
    replace_window(engine, table, "sales_month", window, old)

    # A reader polls the month all along; the writer inserts in batches of 50 and is killed
    # after its third batch, half of the new month inserted, none committed.
    monkeypatch.setattr(warehouse, "INSERT_BATCH", 50)
    snapshots: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            rows = read()
            snapshots.append(next((k for k, v in whole.items() if v == rows), f"{len(rows)} rows"))

    reader = threading.Thread(target=poll, daemon=True)
    with sql_faults() as sql:
        at_kill = []
        killed = sql.add(SELLERS_INSERT, "kill", 4, on_kill=lambda: at_kill.append(read()))
        reader.start()
        try:
            replace_window(engine, table, "sales_month", window, new)
        finally:
            stop.set()
            reader.join(30)
    assert killed.fired == 1 and killed.seen == 4 + 6  # the retry inserted all six batches
    assert at_kill == [whole["old"]]
    assert read() == whole["new"]
    assert set(snapshots) <= {"old", "new"}, Counter(snapshots)
    assert "old" in snapshots


def test_a_lost_commit_reply_is_retried_and_the_write_lands_once(mariadb_url, monkeypatch):
    """The commit went through but its reply was lost (2013 after COMMIT): the ledger row and
    the month are written again, and are there once."""
    engine = create_engine(mariadb_url)
    ledger = Ledger(engine)
    table = customers_data_mart_table
    ensure_tables(engine, [table])
    commit = engine.dialect.do_commit
    lost = []

    def commit_then_lose_the_reply(dbapi_connection):
        commit(dbapi_connection)
        if len(lost) < 3:
            lost.append(1)
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")

    monkeypatch.setattr(engine.dialect, "do_commit", commit_then_lose_the_reply)
    version = FileVersion("b", f"{LANDING_PREFIX}2024-01-01/f.csv", "e1", "s3://b/k", None, 10)
    ledger.start(version, "run-1")
    ledger.complete(version, 10, 9, 1)
    window = dg.TimeWindow(datetime(2024, 1, 1), datetime(2024, 2, 1))
    rows = [
        {
            "customer_id": i,
            "full_name": "n",
            "address": "a",
            "phone_number": "p",
            "sales_date_month": date(2024, 1, 1),
            "total_sales": 10 + i,
            "coupon_tier": "none",
            "discount_percent": 0,
            "coupon_code": None,
        }
        for i in range(5)
    ]
    replace_window(engine, table, "sales_date_month", window, rows)
    assert len(lost) == 3
    [entry] = ledger.entries()
    assert (entry["status"], entry["rows_accepted"], entry["run_id"]) == ("I", 9, "run-1")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 5


def test_a_real_lock_wait_timeout_on_a_ledger_update_is_retried_until_the_lock_is_freed(
    mariadb_url,
):
    """Another session holds the file's ledger row; the update times out (1205, after 1 s
    here), InnoDB rolls back that statement only, the retry runs once the row is free."""
    engine = create_engine(mariadb_url)
    sa.event.listen(
        engine,
        "connect",
        lambda dbapi, _: dbapi.cursor().execute("SET SESSION innodb_lock_wait_timeout = 1"),
    )
    ledger = Ledger(engine)
    version = FileVersion("b", f"{LANDING_PREFIX}2024-01-01/f.csv", "e1", "s3://b/k", None, 10)
    ledger.start(version, "run-1")
    holder = create_engine(mariadb_url).connect()
    holder.begin()
    holder.execute(sa.select(product_staging_table).with_for_update()).all()
    released = threading.Timer(1.5, holder.close)  # closing rolls back: the lock is freed
    released.start()
    timeouts = []

    def count_timeouts(context) -> None:
        if getattr(context.original_exception, "args", (None,))[0] == 1205:
            timeouts.append(1)

    sa.event.listen(engine, "handle_error", count_timeouts)
    ledger.complete(version, 10, 9, 1)
    released.join()
    assert timeouts, "the update never waited on the lock"
    assert ledger_rows_status(ledger) == ["I"]


def test_a_ledger_update_that_deadlocks_every_time_fails_naming_the_table_and_file(
    mariadb_url, monkeypatch
):
    monkeypatch.setattr(database, "_BACKOFF_SECONDS", 0.01)
    ledger = Ledger(create_engine(mariadb_url))
    version = FileVersion("b", f"{LANDING_PREFIX}2024-01-01/f.csv", "e1", "s3://b/k", None, 10)
    ledger.start(version, "run-1")
    with sql_faults() as sql:
        sql.add(LEDGER_UPDATE, "1213")
        with pytest.raises(TransactionRetriesExhausted) as raised:
            ledger.complete(version, 10, 9, 1)
    message = str(raised.value)
    assert message.startswith(f"{product_staging_table.name} {version.key}: failed 5 times")
    assert ledger_rows_status(ledger) == ["A"]


def test_a_duplicate_key_or_a_syntax_error_from_mariadb_is_not_retried(mariadb_url):
    engine = create_engine(mariadb_url)
    calls = Counter()

    def insert_twice():
        calls["duplicate"] += 1
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1), (1)")

    def bad_syntax():
        calls["syntax"] += 1
        with engine.begin() as conn:
            conn.exec_driver_sql("SELEC 1")

    with pytest.raises(sa.exc.IntegrityError):
        database.retry_transaction(insert_twice, "t")
    with pytest.raises(sa.exc.ProgrammingError):
        database.retry_transaction(bad_syntax, "t")
    assert calls == {"duplicate": 1, "syntax": 1}


def ledger_rows_status(ledger: Ledger) -> list[str]:
    return [e["status"] for e in ledger.entries()]
