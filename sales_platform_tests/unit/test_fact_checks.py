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


def test_measure_counts_a_sale_repeated_anywhere_once_per_extra_row(spark):
    """Distinct sales are counted per (file, line) whatever else differs: across days, across
    blocks of line numbers, in another file, or without a line number."""
    from collections import Counter

    from pyspark.sql import types as T

    nullable = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in SALES_ENRICHED_SCHEMA.fields]
    )
    days = (date(2023, 3, 14), date(2023, 3, 15))
    sales = [
        ("a", 1, days[0]),
        ("a", 32768, days[0]),  # the last line of the first block
        ("a", 32769, days[0]),  # the first of the next: not a repeat of line 1
        ("a", 32769, days[1]),  # the same sale under another day: a repeat
        ("a", 65537, days[0]),
        ("b", 1, days[0]),  # line 1 of another file
        ("b", 1, days[0]),
        ("b", 1, days[0]),
        ("a", 10**12, days[1]),
        ("a", None, days[0]),  # no line number: one sale of its file however many rows
        ("a", None, days[1]),
        ("b", None, days[0]),
    ]
    rows = [
        (d, 1, 2, 3, "oats", 4, Decimal("0.10"), 1, Decimal("0.10"), None, key, line) + (True,) * 4
        for key, line, d in sales
    ]
    figures = measure(
        spark.createDataFrame(rows, nullable), spark.createDataFrame([], RAW_SALES_SCHEMA)
    )
    distinct = len(Counter((key, line) for key, line, _ in sales))
    assert (figures.rows, figures.distinct_sales) == (len(sales), distinct) == (12, 8)
    per_day = Counter(d.isoformat() for _, _, d in sales)
    assert (
        {d: f.rows for d, f in figures.by_day.items()}
        == per_day
        == {
            "2023-03-14": 9,
            "2023-03-15": 3,
        }
    )
