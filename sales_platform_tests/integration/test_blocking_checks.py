"""A blocking check that fails inside a real run publishes nothing and stops what depends on it.

One local stack is loaded once (two days of May 2023, both marts). Each test then breaks one
input so that one blocking check fails in a real run, and asserts: the run fails with a message
naming the check, the previously published lake data or MySQL month is unchanged, and the assets
downstream did not run. Each test restores the source tables it broke.
"""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform import schemas
from sales_platform.cli import _resources, materialize
from sales_platform.definitions import build_definitions
from sales_platform.generate import generate
from sales_platform.schemas import (
    SOURCE_TABLES,
    customer_table,
    customers_data_mart_table,
    sales_team_data_mart_table,
    store_table,
)
from sales_platform.settings import Settings
from sales_platform.storage.lake import UNPARTITIONED
from sales_platform_tests.datasets import in_key_order
from sales_platform_tests.support import stack_environ

pytestmark = pytest.mark.integration

START, END = date(2023, 5, 10), date(2023, 5, 11)
MONTH = date(2023, 5, 1)


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory):
    """(settings, resources, instance) of a local stack with both days and the month published."""
    root = tmp_path_factory.mktemp("blocking")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in stack_environ("local", root / "data").items():
            mp.setenv(key, value)
        mp.delenv("SALES_PLATFORM_ENV", raising=False)
        settings = Settings.from_env()
        with (
            _resources(settings, "landing", "lake", "source_db", "warehouse_db") as res,
            dg.instance_for_test() as instance,
        ):
            generate(
                res.landing.open(),
                res.source_db.engine(),
                start_date=START,
                days=2,
                rows_per_day=300,
                seed=23,
                customers=60,
                stores=3,
                sellers_per_store=3,
                progress=False,
            )
            assert all(r.success for r in materialize(START, END, settings, instance))
            yield settings, res, instance


def _run(settings, instance, job: str, partition: str) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False
    )


def _failure_messages(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(e.step_failure_data.error.message) for e in result.get_step_failure_events()
    )


def _started(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def _lake_rows(spark, res, asset: str, partition: str) -> list[tuple]:
    df, _ = res.lake.lake().read(spark, asset, [partition])
    return sorted(tuple(r) for r in df.collect())


def _marts(res) -> tuple[list[dict], list[dict]]:
    with res.warehouse_db.engine().connect() as conn:
        customers = conn.execute(
            sa.select(customers_data_mart_table).where(
                customers_data_mart_table.c.sales_date_month == MONTH
            )
        ).mappings()
        customers = in_key_order(customers_data_mart_table, (dict(r) for r in customers))
        sellers = conn.execute(
            sa.select(sales_team_data_mart_table).where(
                sales_team_data_mart_table.c.sales_month == f"{MONTH:%Y-%m}"
            )
        ).mappings()
        sellers = in_key_order(sales_team_data_mart_table, (dict(r) for r in sellers))
    return customers, sellers


@contextlib.contextmanager
def _source_restored(res, table: sa.Table):
    """Put the source table back as it was (schema and rows) after the test broke it."""
    engine = res.source_db.engine()
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))  # noqa: S608 - fixed name
        schemas.metadata.create_all(engine, tables=[SOURCE_TABLES[table.name]])
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)


def test_unknown_keys_block_the_fact_and_keep_the_published_day(loaded, spark):
    settings, res, instance = loaded
    day = START.isoformat()
    before = _lake_rows(spark, res, "sales_enriched", day)
    with _source_restored(res, customer_table) as engine:
        with engine.begin() as conn:
            # Master data out of sync: most customers are missing from the customer table.
            conn.execute(customer_table.delete().where(customer_table.c.customer_id > 5))
        result = _run(settings, instance, "daily_sales_job", day)
    assert not result.success
    assert "unknown_keys" in _failure_messages(result)
    assert _lake_rows(spark, res, "sales_enriched", day) == before


def test_a_repeated_store_key_blocks_the_snapshot_and_the_fact(loaded, spark):
    settings, res, instance = loaded
    day = START.isoformat()
    stores_before = _lake_rows(spark, res, "stores", UNPARTITIONED)
    fact_before = _lake_rows(spark, res, "sales_enriched", day)
    with _source_restored(res, store_table) as engine:
        with engine.begin() as conn:
            # An operational copy of the table without its primary key, and a store id twice.
            conn.execute(sa.text("DROP TABLE store"))
            conn.execute(
                sa.text(
                    "CREATE TABLE store (id INTEGER, address TEXT, store_pincode TEXT, "
                    "store_manager_name TEXT, store_opening_date DATE, reviews TEXT)"
                )
            )
            conn.execute(sa.text("INSERT INTO store (id, address) VALUES (121, 'a'), (121, 'b')"))
        result = _run(settings, instance, "daily_sales_job", day)
    assert not result.success
    assert "primary_key_valid" in _failure_messages(result)
    assert not any(step.startswith("sales_enriched") for step in _started(result))
    assert _lake_rows(spark, res, "sales_enriched", day) == fact_before
    assert _lake_rows(spark, res, "stores", UNPARTITIONED) == stores_before


MART_TABLES = {
    "customer_monthly_mart": (customers_data_mart_table, "sales_date_month", MONTH),
    "sales_team_monthly_mart": (sales_team_data_mart_table, "sales_month", f"{MONTH:%Y-%m}"),
}


@pytest.mark.parametrize("mart", sorted(MART_TABLES))
def test_a_mart_that_does_not_add_up_keeps_the_published_month(loaded, monkeypatch, mart):
    settings, res, instance = loaded
    table, column, value = MART_TABLES[mart]
    marker = table.update().where(table.c[column] == value)
    engine = res.warehouse_db.engine()
    # A mark on the published month: a rewrite of the month, even with equal rows, removes it.
    with engine.begin() as conn:
        conn.execute(marker.values(total_sales=table.c.total_sales + 1000))
    before = _marts(res)
    from sales_platform.defs.marts import assets as mart_assets

    real = mart_assets.fact_month_totals

    def off_by_a_cent(sales_enriched):
        # The fact's month total as the mart's check sees it: one cent more than the mart.
        return {m: t + Decimal("0.01") for m, t in real(sales_enriched).items()}

    monkeypatch.setattr(mart_assets, "fact_month_totals", off_by_a_cent)
    try:
        result = (
            build_definitions(settings)
            .resolve_job_def("monthly_marts_job")
            .execute_in_process(
                instance=instance,
                partition_key=MONTH.isoformat(),
                asset_selection=[dg.AssetKey(mart)],
                raise_on_error=False,
            )
        )
        assert not result.success
        assert "month_total_matches_fact" in _failure_messages(result)
        assert mart in _failure_messages(result)
        assert _marts(res) == before
    finally:
        with engine.begin() as conn:
            conn.execute(marker.values(total_sales=table.c.total_sales - 1000))
