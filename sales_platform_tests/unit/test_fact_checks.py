"""Each sales_enriched check passes on good figures and fails on crafted bad ones."""

from datetime import date
from decimal import Decimal

import pytest

from sales_platform.defs.fact.checks import (
    NO_DUPLICATE_SALES,
    TOTAL_MATCHES_RAW,
    UNKNOWN_KEYS,
    FactFigures,
    fact_checks,
    measure,
)
from sales_platform.defs.quality import QualityThresholds
from sales_platform.schemas import RAW_SALES_SCHEMA, SALES_ENRICHED_SCHEMA

GOOD = FactFigures(
    rows=1000,
    distinct_sales=1000,
    total_cost=Decimal("12345.67"),
    unknown={"customer": 3, "store": 0, "sales_person": 0, "product": 1},
    raw_rows=1000,
    raw_total_cost=Decimal("12345.67"),
)


def _passed(figures: FactFigures, **thresholds) -> dict[str, bool]:
    return {r.check_name: r.passed for r in fact_checks(figures, QualityThresholds(**thresholds))}


def test_good_fact_passes():
    assert all(_passed(GOOD).values())


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"unknown": {**GOOD.unknown, "store": 50}}, UNKNOWN_KEYS),
        ({"total_cost": Decimal("12345.66")}, TOTAL_MATCHES_RAW),
        ({"rows": 1001, "distinct_sales": 1001}, TOTAL_MATCHES_RAW),
        ({"distinct_sales": 999}, NO_DUPLICATE_SALES),
    ],
)
def test_crafted_bad_fact_fails_its_check(change, failing):
    figures = FactFigures(**{**GOOD.__dict__, **change})
    passed = _passed(figures)
    assert not passed[failing]
    assert all(ok for name, ok in passed.items() if name != failing)


def test_unknown_share_is_configuration():
    figures = FactFigures(**{**GOOD.__dict__, "unknown": {**GOOD.unknown, "store": 50}})
    assert _passed(figures, max_unknown_key_share=0.1)[UNKNOWN_KEYS]


def test_measure_counts_duplicates_unknowns_and_money_exactly(spark):
    day = date(2023, 4, 2)

    def fact_row(line, customer_known=True):
        return (
            day,
            1,
            2,
            3,
            "oats",
            4,
            Decimal("0.10"),
            1,
            Decimal("0.10"),
            None,
            "k",
            line,
            customer_known,
            True,
            True,
            True,
        )

    fact = spark.createDataFrame(
        [fact_row(1), fact_row(2, customer_known=False), fact_row(2)], SALES_ENRICHED_SCHEMA
    )
    raw = spark.createDataFrame(
        [(1, 2, "oats", day, 3, Decimal("0.10"), 1, Decimal("0.10"), None, "k", n) for n in (1, 2)],
        RAW_SALES_SCHEMA,
    )
    figures = measure(fact, raw)
    assert (figures.rows, figures.distinct_sales) == (3, 2)
    assert figures.total_cost == Decimal("0.30") and figures.raw_total_cost == Decimal("0.20")
    assert figures.unknown == {"customer": 1, "store": 0, "sales_person": 0, "product": 0}
    passed = _passed(figures)
    assert not passed[NO_DUPLICATE_SALES] and not passed[TOTAL_MATCHES_RAW]
