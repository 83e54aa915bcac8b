"""Two writers of the same month never interleave, on the real MariaDB.

- The warehouse write path (`replace_window`) called from concurrent threads, as two runs or a
  run and a CLI call would: no deadlock, no duplicate, never a mix of two versions, and the month
  ends equal to the independent recompute. Without the table write lock InnoDB deadlocks here
  (the month is not the leading key, so each DELETE gap-locks the whole table).
- Two Dagster runs of the same month on an instance whose `mart_writes` pool has a limit of 1,
  as dagster.yaml configures it: their mart steps run one after the other.
"""

import random
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import deserialize_value, serialize_value

from sales_platform.cli import _resources
from sales_platform.defs.marts.assets import MART_POOL
from sales_platform.schemas import customers_data_mart_table, sales_team_data_mart_table
from sales_platform.settings import Settings
from sales_platform.storage.warehouse import ensure_tables, replace_window
from sales_platform_tests.integration.test_automation import (
    RANGE_END,
    RANGE_START,
    _generate,
    assert_marts_match_oracle,
    definitions_from_env,
)
from sales_platform_tests.oracle import Sale, customer_mart_rows, sales_team_mart_rows

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def shipped_pools() -> dict:
    """The pools section of dagster.yaml, which deploy/dagster.prod.yaml must repeat."""
    local, prod = (
        yaml.safe_load((REPO_ROOT / name).read_text())["concurrency"]["pools"]
        for name in ("dagster.yaml", "deploy/dagster.prod.yaml")
    )
    assert local == prod, "the local and the prod instance disagree on the pool limits"
    return local


JANUARY = dg.TimeWindow(datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC))
FEBRUARY = dg.TimeWindow(datetime(2023, 2, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC))


def _sales(days: list[date], n: int, seed: int) -> list[Sale]:
    """Enough sellers and customers that a month's replace is thousands of rows."""
    rng = random.Random(seed)
    sales = []
    for _ in range(n):
        price = Decimal(rng.randint(100, 50_000)) / 100
        sales.append(
            Sale(
                key="synthetic",
                business_date=rng.choice(days),
                customer_id=rng.randint(1, 6000),
                store_id=rng.randint(1, 200),
                product_name="Tea",
                sales_person_id=rng.randint(1, 40),
                price=price,
                quantity=1,
                total_cost=price,
            )
        )
    return sales


def _read(engine: sa.Engine, table: sa.Table, column: str, value) -> list[tuple]:
    with engine.connect() as conn:
        query = sa.select(table).where(table.c[column] == value)
        return sorted(tuple(r) for r in conn.execute(query))


def _as_tuples(table: sa.Table, rows: list[dict]) -> list[tuple]:
    return sorted(tuple(r[c.name] for c in table.columns) for r in rows)


def _concurrently(*writes) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(writes))

    def run(write):
        start.wait()
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in writes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.timeout(600)
def test_concurrent_month_writes_end_equal_to_a_recompute(mariadb_url):
    engine = sa.create_engine(mariadb_url, pool_size=8)
    table = sales_team_data_mart_table
    ensure_tables(engine, [table, customers_data_mart_table])
    jan_days = [date(2023, 1, d) for d in range(1, 32)]
    jan = _sales(jan_days, 30_000, seed=1)
    late = _sales([date(2023, 1, 31)], 3_000, seed=2)  # what a refresh after a late file adds
    feb = _sales([date(2023, 2, d) for d in range(1, 29)], 20_000, seed=3)
    before = sales_team_mart_rows(jan, {}, date(2023, 1, 1))
    recompute = sales_team_mart_rows(jan + late, {}, date(2023, 1, 1))
    feb_rows = sales_team_mart_rows(feb, {}, date(2023, 2, 1))
    customers = customer_mart_rows(jan + late, {}, date(2023, 1, 1))
    assert len(recompute) > 5_000  # a replace long enough for two to overlap

    def write(rows, window=JANUARY, target=table, column="sales_month"):
        return lambda: replace_window(engine, target, column, window, rows)

    for _ in range(3):
        # Two refreshes of January (one before, one after the late file) and February at once.
        errors = _concurrently(write(before), write(recompute), write(feb_rows, FEBRUARY))
        assert errors == []
        got = _read(engine, table, "sales_month", "2023-01")
        assert got in (_as_tuples(table, before), _as_tuples(table, recompute))  # never a mix
        assert _read(engine, table, "sales_month", "2023-02") == _as_tuples(table, feb_rows)

    # Two runs refreshing January from the same fact: the month is the recompute, once.
    errors = _concurrently(
        write(recompute),
        write(recompute),
        write(customers, target=customers_data_mart_table, column="sales_date_month"),
    )
    assert errors == []
    assert _read(engine, table, "sales_month", "2023-01") == _as_tuples(table, recompute)
    assert _read(
        engine, customers_data_mart_table, "sales_date_month", date(2023, 1, 1)
    ) == _as_tuples(customers_data_mart_table, customers)
    engine.dispose()


def _step_intervals(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[float, float]]:
    intervals = []
    for run_id in run_ids:
        started: dict[str, float] = {}
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None or "mart" not in event.step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                intervals.append((started[event.step_key], entry.timestamp))
    return sorted(intervals)


def _await_claim(instance: dg.DagsterInstance, run: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not instance.event_log_storage.get_concurrency_info(MART_POOL).claimed_slots:
        assert run.poll() is None, f"the first run ended ({run.returncode}) before it held the pool"
        assert time.monotonic() < deadline, f"the first run held no slot after {timeout:.0f} s"
        time.sleep(0.05)


def refresh_in_this_process(instance_ref: str, month: str) -> None:
    """A mart refresh run in its own process, as the run launcher starts every run."""
    instance = dg.DagsterInstance.from_ref(deserialize_value(instance_ref, InstanceRef))
    job = definitions_from_env().resolve_job_def("monthly_marts_job")
    result = job.execute_in_process(instance=instance, partition_key=month, raise_on_error=False)
    sys.exit(0 if result.success else 1)


@pytest.mark.timeout(900)
def test_two_runs_of_one_month_take_turns_on_the_pool(tmp_path, monkeypatch, mariadb_url, spark):
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SALES_PLATFORM_WAREHOUSE_DB_URL", mariadb_url)
    monkeypatch.delenv("SALES_PLATFORM_ENV", raising=False)
    settings = Settings.from_env()
    defs = definitions_from_env()
    # The pool limit the instance really ships with, not one written here.
    pools = {"concurrency": {"pools": shipped_pools()}}
    with (
        _resources(settings, "landing", "source_db", "warehouse_db") as res,
        dg.instance_for_test(overrides=pools) as instance,
    ):
        expected = _generate(res, date(2023, 1, 14), days=2)
        daily = defs.resolve_job_def("daily_sales_job").execute_in_process(
            instance=instance, tags={RANGE_START: "2023-01-14", RANGE_END: "2023-01-15"}
        )
        assert daily.success
        # Two processes, like two launched runs (one Dagster process cannot run two jobs at
        # once safely: its logging setup is not thread-safe).
        code = (
            "import sys; from sales_platform_tests.integration.test_automation_concurrency "
            "import refresh_in_this_process as r; r(sys.argv[1], sys.argv[2])"
        )
        # The pool exists before the two runs ask for it, as on any instance that has run a
        # mart once: Dagster creates a pool's slots on first use, and on SQLite storage two
        # processes doing that in the same millisecond can both create one (seen in CI).
        instance.event_log_storage.initialize_concurrency_limit_to_default(MART_POOL)
        assert instance.event_log_storage.get_concurrency_info(MART_POOL).slot_count == 1
        ref = serialize_value(instance.get_ref())
        argv = [sys.executable, "-c", code, ref, "2023-01-01"]
        first = subprocess.Popen(argv)
        # The second run asks while the first holds the slot, as a manual refresh meets the
        # automation's run. Not in the same millisecond: Dagster's claim on SQLite storage
        # is not atomic across processes (its FOR UPDATE SKIP LOCKED is a no-op there), and
        # two claims 7 ms apart both got the one slot in CI. MySQL storage locks the row.
        _await_claim(instance, first)
        runs = [first, subprocess.Popen(argv)]
        assert [p.wait(timeout=600) for p in runs] == [0, 0]

        records = instance.get_run_records(dg.RunsFilter(job_name="monthly_marts_job"))
        assert len(records) == 2
        intervals = _step_intervals(instance, [r.dagster_run.run_id for r in records])
        assert len(intervals) == 4  # two mart steps in each run
        for (_, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
            assert end <= next_start, f"mart steps overlapped: {intervals}"
        assert_marts_match_oracle(res, expected, date(2023, 1, 1))
