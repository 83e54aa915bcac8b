"""Each mart check passes on good rows and fails on crafted bad ones."""

from datetime import date
from decimal import Decimal

import pytest

from sales_platform.defs.marts.checks import (
    INCENTIVE_RULE,
    MONTH_TOTAL,
    UNIQUE_KEYS,
    WINNER_PER_STORE,
    customer_mart_checks,
    fact_month_totals,
    sales_team_mart_checks,
)
from sales_platform.schemas import SALES_ENRICHED_SCHEMA

RATE = Decimal("0.01")
FACT = {"2023-01": Decimal("300.05")}


def _seller(store, seller, total, rank, incentive):
    return {
        "store_id": store,
        "sales_person_id": seller,
        "full_name": None,
        "sales_month": "2023-01",
        "total_sales": Decimal(total),
        "incentive": Decimal(incentive),
        "sales_rank": rank,
    }


GOOD_SELLERS = [
    _seller(121, 1, "200.05", 1, "2.00"),  # 2.0005 rounds half-up to 2.00
    _seller(121, 2, "100.00", 2, "0.00"),
]


def _customer(customer, total):
    return {
        "customer_id": customer,
        "sales_date_month": date(2023, 1, 1),
        "total_sales": Decimal(total),
    }


def _passed(results) -> dict[str, bool]:
    return {r.check_name: r.passed for r in results}


def test_good_marts_pass():
    assert all(_passed(sales_team_mart_checks(GOOD_SELLERS, FACT, RATE)).values())
    customers = [_customer(1, "300.00"), _customer(2, "0.05")]
    assert all(_passed(customer_mart_checks(customers, FACT)).values())


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        ([GOOD_SELLERS[0], _seller(121, 2, "100.01", 2, "0.00")], MONTH_TOTAL),
        ([GOOD_SELLERS[0], GOOD_SELLERS[1], GOOD_SELLERS[1]], UNIQUE_KEYS),
        ([_seller(121, 1, "200.05", 2, "0.00"), GOOD_SELLERS[1]], WINNER_PER_STORE),
        ([_seller(121, 1, "200.05", 1, "2.01"), GOOD_SELLERS[1]], INCENTIVE_RULE),
        ([GOOD_SELLERS[0], _seller(121, 2, "100.00", 2, "1.00")], INCENTIVE_RULE),
    ],
)
def test_crafted_bad_sales_team_mart_fails(rows, failing):
    assert not _passed(sales_team_mart_checks(rows, FACT, RATE))[failing]


def test_crafted_bad_customer_mart_fails():
    assert not _passed(customer_mart_checks([_customer(1, "300.00")], FACT))[MONTH_TOTAL]
    twice = [_customer(1, "300.00"), _customer(1, "0.05")]
    assert not _passed(customer_mart_checks(twice, FACT))[UNIQUE_KEYS]


def test_fact_month_totals_are_exact_per_month(spark):
    def line(day, amount):
        return (
            day,
            1,
            2,
            3,
            "oats",
            4,
            Decimal(amount),
            1,
            Decimal(amount),
            None,
            "k",
            1,
            True,
            True,
            True,
            True,
        )

    fact = spark.createDataFrame(
        [
            line(date(2023, 1, 31), "0.10"),
            line(date(2023, 1, 1), "0.20"),
            line(date(2023, 2, 1), "5.00"),
        ],
        SALES_ENRICHED_SCHEMA,
    )
    assert fact_month_totals(fact) == {"2023-01": Decimal("0.30"), "2023-02": Decimal("5.00")}
