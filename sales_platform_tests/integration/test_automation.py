"""The platform running itself, on the local stack (folder + SQLite) and a test instance: the
landing sensor -> daily runs -> the marts' declarative automation (sensor `marts_follow_fact`,
evaluated as the sensor daemon evaluates it) -> one refresh per month; the month-to-date report
of the current month; the month-end close; a late file that changes a store's incentive winner.
Every mart is compared with the independent recompute (`oracle`). The backfill and the
concurrency tests live beside this file and share its helpers.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.cli import _resources
from sales_platform.definitions import build_definitions
from sales_platform.defs.ingest.sensors import landing_sensor
from sales_platform.defs.marts.automation import MART_KEYS, marts_follow_fact
from sales_platform.generate import generate
from sales_platform.schemas import (
    LANDING_PREFIX,
    SALES_CSV_COLUMNS,
    customer_table,
    customers_data_mart_table,
    product_table,
    sales_team_data_mart_table,
)
from sales_platform.settings import AutomationSettings, Settings
from sales_platform_tests.oracle import Expected, expect_before_run
from sales_platform_tests.support import today_clear_of_midnight

pytestmark = pytest.mark.integration

FACT = dg.AssetKey("sales_enriched")
RAW = dg.AssetKey("raw_sales")
SALES_TEAM = dg.AssetKey("sales_team_monthly_mart")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """The local stack in a fresh data folder: (settings, definitions, resources)."""
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    for name in ("SALES_PLATFORM_ENV", "SALES_PLATFORM_WAREHOUSE_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    defs = definitions_from_env()
    with _resources(settings, "landing", "source_db", "warehouse_db") as res:
        yield settings, defs, res


def definitions_from_env() -> dg.Definitions:
    """What the test code location loads (no arguments: Dagster calls it)."""
    return build_definitions(
        dataclasses.replace(Settings.from_env(), automation=AutomationSettings())
    )


def _generate(res, start: date, days: int, seed: int = 5) -> Expected:
    """Generate, and return what the marts must hold, read from landing before any run."""
    summary = generate(
        res.landing.open(),
        res.source_db.engine(),
        start_date=start,
        days=days,
        rows_per_day=300,
        seed=seed,
        customers=60,
        stores=3,
        sellers_per_store=3,
        progress=False,
    )
    return expect_before_run(res.landing.open(), res.source_db.engine(), summary.written)


def _run_day(defs, instance, day: str) -> None:
    """One daily run, as the landing sensor requests it for a day whose files landed."""
    result = defs.resolve_job_def("daily_sales_job").execute_in_process(
        instance=instance, partition_key=day
    )
    assert result.success


def _tick(defs, instance, cursor=None) -> dg.SensorResult:
    """One evaluation of the marts' automation. The first one (no cursor) only starts watching:
    changes made before it are not news to it."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return marts_follow_fact.evaluate_tick(context)


def _execute(defs, instance, request: dg.RunRequest) -> None:
    result = defs.resolve_job_def("monthly_marts_job").execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        asset_selection=list(request.asset_selection),
        tags=request.tags,
    )
    assert result.success


def _rows(engine: sa.Engine, table: sa.Table, column: str, value) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(sa.select(table).where(table.c[column] == value)).mappings()
        ]


def assert_marts_match_oracle(res, expected: Expected, month: date) -> None:
    """Both marts of the month equal what the oracle expected before the runs."""
    warehouse = res.warehouse_db.engine()
    want_customers, want_sellers = expected.customer_mart(month), expected.sales_team_mart(month)
    assert want_customers and want_sellers
    got_customers = _rows(warehouse, customers_data_mart_table, "sales_date_month", month)
    got_sellers = _rows(warehouse, sales_team_data_mart_table, "sales_month", f"{month:%Y-%m}")

    def by_key(table):
        pk = [c.name for c in table.primary_key.columns]
        return lambda row: tuple(row[c] for c in pk)

    assert sorted(got_customers, key=by_key(customers_data_mart_table)) == sorted(
        want_customers, key=by_key(customers_data_mart_table)
    )
    assert sorted(got_sellers, key=by_key(sales_team_data_mart_table)) == sorted(
        want_sellers, key=by_key(sales_team_data_mart_table)
    )


def _latest_metadata(instance, key: dg.AssetKey, month: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.mark.timeout(900)
def test_landing_sensor_daily_runs_then_one_mart_refresh_per_month(stack, spark):
    _, defs, res = stack
    expected = _generate(res, date(2023, 1, 30), days=4)
    with dg.instance_for_test() as instance:
        watching = _tick(defs, instance)
        # The landing sensor asks for one daily run per day whose files landed.
        with dg.build_sensor_context(
            instance=instance,
            definitions=defs,
            resources={k: defs.resources[k] for k in ("landing", "warehouse_db")},
        ) as context:
            landed = landing_sensor.evaluate_tick(context)
        days = sorted(r.partition_key for r in landed.run_requests)
        assert days == ["2023-01-30", "2023-01-31", "2023-02-01", "2023-02-02"]
        for request in landed.run_requests:
            result = defs.resolve_job_def("daily_sales_job").execute_in_process(
                instance=instance, partition_key=request.partition_key, tags=request.tags
            )
            assert result.success

        tick = _tick(defs, instance, watching.cursor)
        requests = {r.partition_key: r for r in tick.run_requests}
        assert sorted(requests) == ["2023-01-01", "2023-02-01"]  # four days, two months
        for request in requests.values():
            assert set(request.asset_selection) == set(MART_KEYS)
            _execute(defs, instance, request)
        assert_marts_match_oracle(res, expected, date(2023, 1, 1))
        assert_marts_match_oracle(res, expected, date(2023, 2, 1))

        # The refreshes included every change: nothing more to do.
        assert _tick(defs, instance, tick.cursor).run_requests == []
        meta = _latest_metadata(instance, SALES_TEAM, "2023-01-01")
        assert meta["final"] is True and meta["late_recompute"] is False


@pytest.mark.timeout(900)
def test_month_end_then_a_late_file_changes_the_incentive_winner(stack, spark):
    _, defs, res = stack
    expected = _generate(res, date(2023, 1, 10), days=3, seed=9)
    with dg.instance_for_test() as instance:
        watching = _tick(defs, instance)
        for day in ("2023-01-10", "2023-01-11", "2023-01-12"):
            _run_day(defs, instance, day)
        # The month-end close, as the schedule fires on Feb 1st.
        schedule = defs.resolve_schedule_def("month_end_marts")
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2023, 2, 1, 7, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        ) as context:
            (close,) = schedule.evaluate_tick(context).run_requests
        assert close.partition_key == "2023-01-01"
        _execute(defs, instance, close)
        meta = _latest_metadata(instance, SALES_TEAM, "2023-01-01")
        assert meta["final"] is True
        assert meta["late_recompute"] is False and meta["incentive_winner_changed"] is False
        # The close already read every day: the sensor has nothing to refresh.
        caught_up = _tick(defs, instance, watching.cursor)
        assert caught_up.run_requests == []

        # A late file for January makes the runner-up of a store its top seller.
        store_id, winner, runner_up, gap = _closest_race(res.warehouse_db.engine(), "2023-01")
        late_key = _land_late_sale(
            res, date(2023, 1, 20), store_id, runner_up, gap + Decimal("100.00")
        )
        expected = expected.with_file(res.landing.open(), late_key)
        _run_day(defs, instance, "2023-01-20")

        tick = _tick(defs, instance, caught_up.cursor)
        (refresh,) = tick.run_requests
        assert refresh.partition_key == "2023-01-01"
        _execute(defs, instance, refresh)
        late = _latest_metadata(instance, SALES_TEAM, "2023-01-01")
        late_customers = _latest_metadata(
            instance, dg.AssetKey("customer_monthly_mart"), "2023-01-01"
        )

    assert_marts_match_oracle(res, expected, date(2023, 1, 1))
    assert _winners(res.warehouse_db.engine(), "2023-01", store_id) == {runner_up}
    assert late["final"] is True and late["late_recompute"] is True and "2023-01" in late["note"]
    assert late["incentive_winner_changed"] is True
    change = {"month": "2023-01", "store_id": store_id, "before": [winner], "after": [runner_up]}
    assert change in late["incentive_winner_changes"]
    assert late_customers["final"] is True and late_customers["late_recompute"] is True


def _closest_race(engine: sa.Engine, month: str) -> tuple[int, int, int, Decimal]:
    """(store, its top seller, the runner-up, the gap between them) in the published month."""
    rows = _rows(engine, sales_team_data_mart_table, "sales_month", month)
    by_store: dict[int, list[dict]] = {}
    for row in rows:
        by_store.setdefault(row["store_id"], []).append(row)
    races = []
    for store_id, sellers in by_store.items():
        ranked = sorted(sellers, key=lambda r: r["total_sales"], reverse=True)
        if len(ranked) >= 2 and ranked[0]["total_sales"] > ranked[1]["total_sales"]:
            gap = ranked[0]["total_sales"] - ranked[1]["total_sales"]
            races.append(
                (store_id, ranked[0]["sales_person_id"], ranked[1]["sales_person_id"], gap)
            )
    assert races, "the generated month needs a store with a clear winner"
    return min(races, key=lambda race: race[3])


def _winners(engine: sa.Engine, month: str, store_id: int) -> set[int]:
    rows = _rows(engine, sales_team_data_mart_table, "sales_month", month)
    return {
        r["sales_person_id"] for r in rows if r["store_id"] == store_id and r["sales_rank"] == 1
    }


def _land_late_sale(res, day: date, store_id: int, seller_id: int, amount: Decimal) -> str:
    with res.source_db.engine().connect() as conn:
        customer_id = conn.execute(sa.select(sa.func.min(customer_table.c.customer_id))).scalar()
        product = conn.execute(sa.select(sa.func.min(product_table.c.name))).scalar()
    row = {
        "customer_id": customer_id,
        "store_id": store_id,
        "product_name": product,
        "sales_date": day.isoformat(),
        "sales_person_id": seller_id,
        "price": amount,
        "quantity": 1,
        "total_cost": amount,
    }
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SALES_CSV_COLUMNS)
    writer.writeheader()
    writer.writerow(row)
    key = f"{LANDING_PREFIX}{day:%Y-%m-%d}/sales_{day:%Y-%m-%d}_late.csv"
    res.landing.open().put_bytes(key, text.getvalue().encode())
    return key


@pytest.mark.timeout(900)
def test_the_current_month_refreshes_month_to_date(stack, spark):
    """The daily report: today's month has days that are not partitions yet, and is not final."""
    _, defs, res = stack
    today = today_clear_of_midnight()
    expected = _generate(res, today, days=1)
    with dg.instance_for_test() as instance:
        watching = _tick(defs, instance)
        _run_day(defs, instance, today.isoformat())
        (request,) = _tick(defs, instance, watching.cursor).run_requests
        assert request.partition_key == today.replace(day=1).isoformat()
        assert "sales_platform/final" not in request.tags
        _execute(defs, instance, request)
        meta = _latest_metadata(instance, SALES_TEAM, request.partition_key)
    assert meta["final"] is False and meta["late_recompute"] is False
    assert_marts_match_oracle(res, expected, today.replace(day=1))
