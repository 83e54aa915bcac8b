"""End to end: generated files -> every asset -> both marts, equal to an independent recompute.

Run twice: on the embedded local stack (folder + SQLite) and on the production stack (S3 through
moto's HTTP server, MariaDB for the source tables and the marts, the lake on S3).
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.cli import _resources, materialize
from sales_platform.generate import generate
from sales_platform.schemas import (
    LANDING_PREFIX,
    PROCESSED_PREFIX,
    customers_data_mart_table,
    sales_team_data_mart_table,
)
from sales_platform_tests.oracle import expected_marts
from sales_platform_tests.support import stack_settings

# Four days across a month end, so two monthly partitions are built from one daily range.
START, END = date(2023, 1, 30), date(2023, 2, 2)
MONTHS = (date(2023, 1, 1), date(2023, 2, 1))
# Processed files move to the archive prefix: the oracle reads both.
PREFIXES = (LANDING_PREFIX, PROCESSED_PREFIX)


def _mart_rows(engine: sa.Engine, table: sa.Table, column: str, value) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c[column] == value)).mappings()
        return [dict(r) for r in rows]


def _key(table: sa.Table):
    pk = [c.name for c in table.primary_key.columns]
    return lambda row: tuple(row[c] for c in pk)


@pytest.mark.integration
@pytest.mark.parametrize("stack", ["local", "prod"])
def test_marts_equal_independent_recompute(stack, spark, tmp_path, request, monkeypatch):
    settings = stack_settings(stack, tmp_path, request, monkeypatch)
    with _resources(settings, "landing", "source_db", "warehouse_db") as res:
        store, source = res.landing.open(), res.source_db.engine()
        summary = generate(
            store,
            source,
            start_date=START,
            days=(END - START).days + 1,
            rows_per_day=1500,
            seed=11,
            files_per_day=2,
            customers=120,
            unknown_key_fraction=0.01,
            bad_row_fraction=0.01,
            progress=False,
        )
        assert summary.rows > 0

        with dg.instance_for_test() as instance:
            results = materialize(START, END, settings=settings, instance=instance)
        assert all(r.success for r in results)

        warehouse = res.warehouse_db.engine()
        for month in MONTHS:
            want_customers, want_sellers = expected_marts(store, source, month, prefixes=PREFIXES)
            assert want_customers and want_sellers
            got_customers = _mart_rows(
                warehouse, customers_data_mart_table, "sales_date_month", month
            )
            got_sellers = _mart_rows(
                warehouse, sales_team_data_mart_table, "sales_month", f"{month:%Y-%m}"
            )
            by_c, by_s = _key(customers_data_mart_table), _key(sales_team_data_mart_table)
            assert sorted(got_customers, key=by_c) == sorted(want_customers, key=by_c)
            assert sorted(got_sellers, key=by_s) == sorted(want_sellers, key=by_s)

        # A rerun of the same range converges: same marts, no duplicates.
        with dg.instance_for_test() as instance:
            materialize(START, END, settings=settings, instance=instance)
        want_customers, _ = expected_marts(store, source, MONTHS[0], prefixes=PREFIXES)
        got = _mart_rows(warehouse, customers_data_mart_table, "sales_date_month", MONTHS[0])
        assert len(got) == len(want_customers)
