"""The warehouse IO manager through real Dagster runs, on SQLite (MariaDB: integration/).

A downstream asset reads a mart month back with `load_input`: it must get that month's rows only
(the window filter, on a DATE month column and on a 'YYYY-MM' text one), typed as the mart's
Spark schema with money still Decimal. A mart that hands the IO manager a row outside its month
window fails the run and leaves the published month as it was (`replace_window`'s guard).

The checks are functions of a database URL so the MariaDB test runs exactly the same ones.
"""

from datetime import date
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_pyspark import LazyPySparkResource

from sales_platform.defs.partitions import monthly_partitions
from sales_platform.schemas import MART_SPARK_SCHEMAS, MART_TABLES
from sales_platform.storage.database import Database
from sales_platform.storage.warehouse import WarehouseIOManager, ensure_tables

MONTHS = (date(2023, 4, 1), date(2023, 5, 1), date(2023, 6, 1))
MONTH_KEY = "2023-05-01"
MONTH_COLUMN = {"customers_data_mart": "sales_date_month", "sales_team_data_mart": "sales_month"}


def _row(table: str, n: int, month: date) -> dict:
    # Cents that a float would lose (…0.10 + …0.20): load_input must keep them exact.
    money = Decimal(f"{1000 + n}.{10 + n:02d}") + Decimal("12345678.20")
    if table == "customers_data_mart":
        return {
            "customer_id": n,
            "full_name": f"Customer {n}",
            "address": None,
            "phone_number": None,
            "sales_date_month": month,
            "total_sales": money,
            "coupon_tier": "NONE",
            "discount_percent": 0,
            "coupon_code": None,
        }
    return {
        "store_id": 1,
        "sales_person_id": n,
        "full_name": f"Seller {n}",
        "sales_month": f"{month:%Y-%m}",
        "total_sales": money,
        "incentive": Decimal("0.00"),
        "sales_rank": n,
    }


def _published(engine: sa.Engine, table: str) -> list[dict]:
    t = MART_TABLES[table]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t)).mappings()
        return sorted((dict(r) for r in rows), key=lambda r: sorted(r.items(), key=str))


def _assets(table: str, rows: list[dict], loaded: list[dict]):
    """A stand-in mart publishing `rows` to `table`, and a reader of it (appends to `loaded`)."""

    @dg.asset(
        partitions_def=monthly_partitions,
        io_manager_key="warehouse_io_manager",
        metadata={"table": table, "partition_expr": MONTH_COLUMN[table]},
    )
    def mart(pyspark: LazyPySparkResource):
        return pyspark.spark_session.createDataFrame(rows, MART_SPARK_SCHEMAS[table])

    @dg.asset(partitions_def=monthly_partitions)
    def reader(mart) -> None:
        assert mart.schema == MART_SPARK_SCHEMAS[table]
        loaded.extend(r.asDict() for r in mart.collect())

    return mart, reader


def _materialize(url: str, table: str, rows: list[dict], selection: str, loaded: list[dict]):
    pyspark = LazyPySparkResource(spark_config={})
    mart, reader = _assets(table, rows, loaded)
    return dg.materialize(
        [mart, reader],
        selection=[selection],
        partition_key=MONTH_KEY,
        resources={
            "pyspark": pyspark,
            "warehouse_io_manager": WarehouseIOManager(database=Database(url=url), pyspark=pyspark),
        },
        raise_on_error=False,
    )


def _seeded(url: str, table: str) -> tuple[sa.Engine, dict[date, list[dict]]]:
    """The table with two rows in each of April, May and June (the months either side too)."""
    engine = sa.create_engine(url)
    ensure_tables(engine, list(MART_TABLES.values()))
    by_month = {
        m: [_row(table, 2 * i + 1, m), _row(table, 2 * i + 2, m)] for i, m in enumerate(MONTHS)
    }
    with engine.begin() as conn:
        conn.execute(MART_TABLES[table].insert(), [r for rows in by_month.values() for r in rows])
    return engine, by_month


def check_load_input_reads_its_month_only(url: str, table: str) -> None:
    engine, by_month = _seeded(url, table)
    loaded: list[dict] = []
    result = _materialize(url, table, [], "reader", loaded)
    assert result.success, result.get_step_failure_events()
    key = next(iter(MART_TABLES[table].primary_key.columns)).name
    assert sorted(loaded, key=lambda r: (r[key], str(r))) == sorted(
        by_month[date(2023, 5, 1)], key=lambda r: (r[key], str(r))
    )
    assert all(type(r["total_sales"]) is Decimal for r in loaded)
    engine.dispose()


def check_a_row_outside_the_month_is_refused(url: str, table: str) -> None:
    engine, by_month = _seeded(url, table)
    before = _published(engine, table)
    # May's rewrite carries one June row: published, it would sit in June's month, where the
    # next June replace would not expect it (and May's delete would never remove it).
    rows = [_row(table, 50, date(2023, 5, 1)), _row(table, 51, date(2023, 6, 1))]
    result = _materialize(url, table, rows, "mart", [])
    assert not result.success
    messages = "\n".join(
        e.step_failure_data.error.to_string() for e in result.get_step_failure_events()
    )
    assert "outside" in messages and "1 row(s)" in messages, messages
    assert _published(engine, table) == before
    # The same month without the stray row is published: the guard refuses only strays.
    result = _materialize(url, table, rows[:1], "mart", [])
    assert result.success
    assert _published(engine, table) == sorted(
        [*by_month[date(2023, 4, 1)], *by_month[date(2023, 6, 1)], rows[0]],
        key=lambda r: sorted(r.items(), key=str),
    )
    engine.dispose()


@pytest.mark.parametrize("table", sorted(MART_TABLES))
def test_load_input_reads_its_month_only(spark, tmp_path, table):
    check_load_input_reads_its_month_only(f"sqlite:///{tmp_path / 'warehouse.db'}", table)


@pytest.mark.parametrize("table", sorted(MART_TABLES))
def test_a_row_outside_the_month_is_refused(spark, tmp_path, table):
    check_a_row_outside_the_month_is_refused(f"sqlite:///{tmp_path / 'warehouse.db'}", table)
