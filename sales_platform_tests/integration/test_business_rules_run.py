"""Business rules other than the defaults reach the marts in the warehouse, through a real run.

The incentive rate is 5 % and the coupon tiers are two made-up ones, with the upper threshold at
exactly one known customer's month total (a total at the threshold earns the tier). Both marts
must equal the independent oracle computed with the same rules from the landing bytes read
before the run, and differ from what the default rules would give.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform import definitions
from sales_platform.business_rules import CouponTier
from sales_platform.cli import _resources, materialize
from sales_platform.defs.resources import BusinessRules
from sales_platform.generate import generate
from sales_platform.schemas import customers_data_mart_table, sales_team_data_mart_table
from sales_platform.settings import Settings
from sales_platform_tests.datasets import in_key_order
from sales_platform_tests.oracle import expect_before_run
from sales_platform_tests.support import stack_environ

pytestmark = pytest.mark.integration

START, END = date(2023, 9, 14), date(2023, 9, 15)
MONTH = date(2023, 9, 1)
RATE = Decimal("0.05")


def _mart(engine: sa.Engine, table: sa.Table, column: str, value) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c[column] == value)).mappings()
        return in_key_order(table, (dict(r) for r in rows))


def test_a_non_default_rate_and_tiers_reach_both_marts(spark, tmp_path, monkeypatch):
    for key, value in stack_environ("local", tmp_path / "data").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SALES_PLATFORM_ENV", raising=False)
    settings = Settings.from_env()
    with (
        _resources(settings, "landing", "source_db", "warehouse_db") as res,
        dg.instance_for_test() as instance,
    ):
        store, source = res.landing.open(), res.source_db.engine()
        summary = generate(
            store,
            source,
            start_date=START,
            days=2,
            rows_per_day=300,
            seed=31,
            customers=40,
            stores=3,
            sellers_per_store=3,
            progress=False,
        )
        expected = expect_before_run(store, source, summary.written)
        default_customers = expected.customer_mart(MONTH)
        # The known customer: the median month total, so customers fall on both sides of it.
        known = sorted(default_customers, key=lambda r: (r["total_sales"], r["customer_id"]))[
            len(default_customers) // 2
        ]
        tiers = (
            CouponTier("FRIEND", known["total_sales"], 12),
            CouponTier("NONE", Decimal("0"), 0),
        )
        rules = BusinessRules(
            incentive_rate=str(RATE),
            coupon_tiers=[
                {
                    "name": t.name,
                    "min_total": str(t.min_total),
                    "discount_percent": t.discount_percent,
                }
                for t in tiers
            ],
        )
        build = definitions.build_resources
        monkeypatch.setattr(
            definitions, "build_resources", lambda s: {**build(s), "business_rules": rules}
        )
        assert all(r.success for r in materialize(START, END, settings, instance))

        warehouse = res.warehouse_db.engine()
        customers = _mart(warehouse, customers_data_mart_table, "sales_date_month", MONTH)
        sellers = _mart(warehouse, sales_team_data_mart_table, "sales_month", f"{MONTH:%Y-%m}")
        want_customers = in_key_order(
            customers_data_mart_table, expected.customer_mart(MONTH, tiers=tiers)
        )
        want_sellers = in_key_order(
            sales_team_data_mart_table, expected.sales_team_mart(MONTH, incentive_rate=RATE)
        )
        assert customers == want_customers
        assert sellers == want_sellers

    # The rules made a difference the defaults would not: the known customer, at the threshold,
    # earns FRIEND; the one just below it does not; the top sellers earn 5 % of their total.
    by_id = {r["customer_id"]: r for r in customers}
    mine = by_id[known["customer_id"]]
    assert (mine["coupon_tier"], mine["discount_percent"]) == ("FRIEND", 12)
    assert mine["coupon_code"] == f"FRIEND-202309-{known['customer_id']}"
    assert {r["coupon_tier"] for r in customers} == {"FRIEND", "NONE"}
    assert customers != in_key_order(customers_data_mart_table, default_customers)
    winners = [r for r in sellers if r["sales_rank"] == 1]
    assert winners
    assert all(abs(r["incentive"] - r["total_sales"] * RATE) <= Decimal("0.005") for r in winners)
    assert all(r["incentive"] > 0 for r in winners)
