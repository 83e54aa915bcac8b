"""Checks of the monthly marts, evaluated on the computed rows before they replace the month."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

DAYS_HAVE_FACT = "days_with_files_have_fact"
MONTH_TOTAL = "month_total_matches_fact"
UNIQUE_KEYS = "no_duplicate_keys"
WINNER_PER_STORE = "winner_per_store"
INCENTIVE_RULE = "incentive_rule"
CENT = Decimal("0.01")


def spec(asset: str, name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)


def _days_spec(asset: str) -> dg.AssetCheckSpec:
    return spec(
        asset,
        DAYS_HAVE_FACT,
        "Every day of the month with sales files (in the ledger) has its sales_enriched "
        "partition; a day with files is never read as empty. Failed: rebuild the days in "
        "missing_days (README, Rebuild a day whose fact failed).",
    )


def days_have_fact_result(missing_days: list[str], empty_days: list[str], with_fact: int):
    return dg.AssetCheckResult(
        check_name=DAYS_HAVE_FACT,
        passed=not missing_days,
        metadata={
            "missing_days": dg.MetadataValue.json(missing_days),
            "empty_days": dg.MetadataValue.json(empty_days),
            "days_with_fact": with_fact,
        },
    )


def customer_mart_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        _days_spec(asset),
        spec(asset, MONTH_TOTAL, "The month's total equals the sales fact's, to the cent."),
        spec(asset, UNIQUE_KEYS, "One row per customer and month."),
    ]


def sales_team_mart_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        _days_spec(asset),
        spec(asset, MONTH_TOTAL, "The month's total equals the sales fact's, to the cent."),
        spec(asset, UNIQUE_KEYS, "One row per store, seller and month."),
        spec(asset, WINNER_PER_STORE, "Every store with sales in the month has a top seller."),
        spec(
            asset,
            INCENTIVE_RULE,
            "Top sellers earn round(total x rate, 2); everyone else earns 0.",
        ),
    ]


def fact_month_totals(sales_enriched: DataFrame) -> dict[str, Decimal]:
    """The fact's total per month ('YYYY-MM'): one aggregate over one column."""
    rows = (
        sales_enriched.groupBy(F.trunc("sales_date", "month").alias("month"))
        .agg(F.sum("total_cost").alias("total"))
        .collect()
    )
    return {f"{r.month:%Y-%m}": r.total for r in rows}


def _month_total_result(mart_totals: dict[str, Decimal], fact_totals: dict[str, Decimal]):
    months = sorted(set(mart_totals) | set(fact_totals))
    off = {
        m: (str(mart_totals.get(m, Decimal("0"))), str(fact_totals.get(m, Decimal("0"))))
        for m in months
        if mart_totals.get(m, Decimal("0")) != fact_totals.get(m, Decimal("0"))
    }
    return dg.AssetCheckResult(
        check_name=MONTH_TOTAL,
        passed=not off,
        metadata={
            "months": len(months),
            "mart_total": dg.MetadataValue.text(str(sum(mart_totals.values(), Decimal("0")))),
            "fact_total": dg.MetadataValue.text(str(sum(fact_totals.values(), Decimal("0")))),
            "months_off": dg.MetadataValue.json(off),
        },
    )


def _unique_result(keys: list[tuple]) -> dg.AssetCheckResult:
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    return dg.AssetCheckResult(
        check_name=UNIQUE_KEYS,
        passed=not repeated,
        metadata={"rows": len(keys), "duplicate_keys": len(repeated)},
    )


def customer_mart_checks(rows: list[dict], fact_totals: dict[str, Decimal]):
    totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
    for r in rows:
        totals[f"{r['sales_date_month']:%Y-%m}"] += r["total_sales"]
    return [
        _month_total_result(dict(totals), fact_totals),
        _unique_result([(r["customer_id"], r["sales_date_month"]) for r in rows]),
    ]


def sales_team_mart_checks(rows: list[dict], fact_totals: dict[str, Decimal], rate: Decimal):
    totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
    winners: dict[tuple, int] = defaultdict(int)
    stores: set[tuple] = set()
    wrong_incentive = 0
    for r in rows:
        totals[r["sales_month"]] += r["total_sales"]
        store_month = (r["store_id"], r["sales_month"])
        stores.add(store_month)
        top = r["sales_rank"] == 1
        winners[store_month] += top
        due = (r["total_sales"] * rate).quantize(CENT, ROUND_HALF_UP) if top else Decimal("0")
        wrong_incentive += r["incentive"] != due
    without_winner = sorted(s for s in stores if winners[s] == 0)
    return [
        _month_total_result(dict(totals), fact_totals),
        _unique_result([(r["store_id"], r["sales_person_id"], r["sales_month"]) for r in rows]),
        dg.AssetCheckResult(
            check_name=WINNER_PER_STORE,
            passed=not without_winner,
            metadata={
                "store_months": len(stores),
                "winners": sum(winners.values()),
                "store_months_without_winner": dg.MetadataValue.json(
                    [list(s) for s in without_winner[:20]]
                ),
            },
        ),
        dg.AssetCheckResult(
            check_name=INCENTIVE_RULE,
            passed=wrong_incentive == 0,
            metadata={"rows_with_wrong_incentive": wrong_incentive, "rate": str(rate)},
        ),
    ]
