"""The marts: exact decimal totals per month, coupon tiers at thresholds, rank and incentive."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sales_platform.business_rules import CouponTier, coupon_code
from sales_platform.schemas import (
    CUSTOMER_MART_SCHEMA,
    CUSTOMER_SCHEMA,
    SALES_ENRICHED_SCHEMA,
    SALES_TEAM_MART_SCHEMA,
    SALES_TEAM_SCHEMA,
)
from sales_platform.transforms.marts import customer_monthly_mart, sales_team_monthly_mart

MARCH = date(2023, 3, 10)


def _line(total: str, customer_id=1, store_id=1, seller=1, day=MARCH):
    """One fact row; only the keys, the date and total_cost matter to the marts."""
    amount = Decimal(total)
    return (
        day,
        customer_id,
        store_id,
        seller,
        "oats",
        7,
        amount,
        1,
        amount,
        None,
        "k",
        1,
        True,
        True,
        True,
        True,
    )


@pytest.fixture(scope="module")
def customers(spark):
    return spark.createDataFrame(
        [
            (1, "Ann", "Lee", "1 Main St", "111", "555-0001", None),
            (2, "Bob", "Ray", "2 Main St", "222", "555-0002", None),
            (3, "Cy", None, "3 Main St", "333", "555-0003", None),
        ],
        CUSTOMER_SCHEMA,
    )


@pytest.fixture(scope="module")
def sales_team(spark):
    return spark.createDataFrame(
        [
            (1, "Sam", "Roe", None, "N", None, None, None),
            (2, "Tia", "Fox", None, "N", None, None, None),
            (3, "Uma", "Kay", None, "N", None, None, None),
        ],
        SALES_TEAM_SCHEMA,
    )


def _fact(spark, lines):
    return spark.createDataFrame(lines, SALES_ENRICHED_SCHEMA)


def _by_customer_month(mart):
    return {(r["customer_id"], r["sales_date_month"]): r for r in mart.collect()}


# --- customer mart -------------------------------------------------------------------------


def test_customer_mart_shape_and_values(spark, customers):
    fact = _fact(spark, [_line("10.00"), _line("2.50", day=date(2023, 3, 31))])
    mart = customer_monthly_mart(fact, customers)
    assert mart.columns == CUSTOMER_MART_SCHEMA.fieldNames()
    assert [f.dataType for f in mart.schema] == [f.dataType for f in CUSTOMER_MART_SCHEMA]
    [row] = mart.collect()
    assert row.asDict() == {
        "customer_id": 1,
        "full_name": "Ann Lee",
        "address": "1 Main St",
        "phone_number": "555-0001",
        "sales_date_month": date(2023, 3, 1),
        "total_sales": Decimal("12.50"),
        "coupon_tier": "NONE",
        "discount_percent": 0,
        "coupon_code": None,
    }


def test_customer_totals_are_exact_decimals(spark, customers):
    # 0.1 has no exact binary form: as floats, 30 x 0.10 would not sum to 3.00.
    mart = customer_monthly_mart(_fact(spark, [_line("0.10")] * 30), customers)
    [row] = mart.collect()
    assert row["total_sales"] == Decimal("3.00")
    assert str(row["total_sales"]) == "3.00"


def test_month_boundaries_and_several_months(spark, customers):
    fact = _fact(
        spark,
        [
            _line("1.00", day=date(2023, 1, 1)),
            _line("2.00", day=date(2023, 1, 31)),
            _line("4.00", day=date(2023, 2, 1)),
            _line("8.00", customer_id=2, day=date(2023, 2, 28)),
        ],
    )
    rows = _by_customer_month(customer_monthly_mart(fact, customers))
    assert {k: r["total_sales"] for k, r in rows.items()} == {
        (1, date(2023, 1, 1)): Decimal("3.00"),
        (1, date(2023, 2, 1)): Decimal("4.00"),
        (2, date(2023, 2, 1)): Decimal("8.00"),
    }


THRESHOLDS = [
    ("0.00", "NONE", 0),
    ("4999.99", "NONE", 0),
    ("5000.00", "SILVER", 5),
    ("9999.99", "SILVER", 5),
    ("10000.00", "GOLD", 10),
    ("19999.99", "GOLD", 10),
    ("20000.00", "PLATINUM", 15),
    ("250000.00", "PLATINUM", 15),
]


@pytest.fixture(scope="module")
def threshold_rows(spark, customers):
    # One customer per threshold case (customer_id = case index + 1), all in one mart run.
    fact = _fact(spark, [_line(t, customer_id=i + 1) for i, (t, _, _) in enumerate(THRESHOLDS)])
    return {r["customer_id"]: r for r in customer_monthly_mart(fact, customers).collect()}


@pytest.mark.parametrize(("index", "case"), list(enumerate(THRESHOLDS)))
def test_coupon_tier_thresholds(threshold_rows, index, case):
    total, tier, discount = case
    row = threshold_rows[index + 1]
    assert row["total_sales"] == Decimal(total)
    assert (row["coupon_tier"], row["discount_percent"]) == (tier, discount)
    assert row["coupon_code"] == coupon_code(tier, date(2023, 3, 1), index + 1)


def test_coupon_code_format(spark, customers):
    fact = _fact(spark, [_line("5000.00", customer_id=3, day=date(2023, 11, 30))])
    [row] = customer_monthly_mart(fact, customers).collect()
    assert row["coupon_code"] == "SILVER-202311-3"
    # A missing last name does not blank the whole name.
    assert row["full_name"] == "Cy"


def test_custom_coupon_tiers(spark, customers):
    tiers = (CouponTier("NONE", Decimal("0"), 0), CouponTier("VIP", Decimal("100.50"), 20))
    fact = _fact(spark, [_line("100.50"), _line("100.49", customer_id=2)])
    rows = _by_customer_month(customer_monthly_mart(fact, customers, coupon_tiers=tiers))
    march = date(2023, 3, 1)
    assert (rows[(1, march)]["coupon_tier"], rows[(1, march)]["discount_percent"]) == ("VIP", 20)
    assert rows[(1, march)]["coupon_code"] == "VIP-202303-1"
    assert rows[(2, march)]["coupon_tier"] == "NONE"


def test_unknown_customer_keeps_its_row_and_the_total(spark, customers):
    fact = _fact(spark, [_line("1.25"), _line("3.75", customer_id=404)])
    rows = _by_customer_month(customer_monthly_mart(fact, customers))
    unknown = rows[(404, date(2023, 3, 1))]
    assert (unknown["full_name"], unknown["address"], unknown["phone_number"]) == (None, None, None)
    assert sum(r["total_sales"] for r in rows.values()) == Decimal("5.00")


def test_duplicated_customer_does_not_duplicate_mart_rows(spark, customers):
    doubled = customers.unionAll(customers)
    assert customer_monthly_mart(_fact(spark, [_line("1.00")]), doubled).count() == 1


# --- sales-team mart -----------------------------------------------------------------------


def test_sales_team_mart_rank_ties_and_incentive(spark, sales_team):
    fact = _fact(
        spark,
        [
            # Store 1, March: sellers 1 and 2 tie at the top, seller 3 is behind.
            _line("300.00", store_id=1, seller=1),
            _line("200.00", store_id=1, seller=1),
            _line("500.00", store_id=1, seller=2),
            _line("100.00", store_id=1, seller=3),
            # Store 2, March: 1234.55 x 0.01 = 12.3455 -> 12.35 (half-up); rank 2 gets nothing.
            _line("1234.55", store_id=2, seller=3),
            _line("999.99", store_id=2, seller=404),
            # Store 1, April: a second month in the same input is ranked on its own.
            _line("50.00", store_id=1, seller=3, day=date(2023, 4, 1)),
        ],
    )
    # Collected rows, not assertDataFrameEqual: that one imports pyspark.pandas, broken on pandas 3.
    expected = [
        (1, 1, "Sam Roe", "2023-03", Decimal("500.00"), Decimal("5.00"), 1),
        (1, 2, "Tia Fox", "2023-03", Decimal("500.00"), Decimal("5.00"), 1),
        (1, 3, "Uma Kay", "2023-03", Decimal("100.00"), Decimal("0.00"), 3),
        (2, 3, "Uma Kay", "2023-03", Decimal("1234.55"), Decimal("12.35"), 1),
        (2, 404, None, "2023-03", Decimal("999.99"), Decimal("0.00"), 2),
        (1, 3, "Uma Kay", "2023-04", Decimal("50.00"), Decimal("0.50"), 1),
    ]
    mart = sales_team_monthly_mart(fact, sales_team)
    assert mart.columns == SALES_TEAM_MART_SCHEMA.fieldNames()
    assert [f.dataType for f in mart.schema] == [f.dataType for f in SALES_TEAM_MART_SCHEMA]
    assert sorted(tuple(r) for r in mart.collect()) == sorted(expected)


@pytest.mark.parametrize(
    ("rate", "total", "incentive"),
    [
        (Decimal("0.025"), "1000.20", "25.01"),  # 25.005 rounds half-up
        (Decimal("0.05"), "0.10", "0.01"),  # 0.005 rounds half-up
        (Decimal("0"), "999.99", "0.00"),
    ],
)
def test_custom_incentive_rate(spark, sales_team, rate, total, incentive):
    fact = _fact(spark, [_line(total)])
    [row] = sales_team_monthly_mart(fact, sales_team, incentive_rate=rate).collect()
    assert row["incentive"] == Decimal(incentive)
    assert str(row["incentive"]) == incentive


def test_negative_incentive_rate_is_refused(spark, sales_team):
    with pytest.raises(ValueError, match="incentive_rate"):
        sales_team_monthly_mart(_fact(spark, [_line("1.00")]), sales_team, Decimal("-0.01"))
