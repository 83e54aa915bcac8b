"""Marts: the monthly reports the business reads, published to MySQL."""

from collections import Counter
from collections.abc import Callable, Iterator

import dagster as dg
from pyspark.sql import DataFrame

from sales_platform.defs.marts.checks import (
    customer_mart_checks,
    customer_mart_specs,
    days_have_fact_result,
    fact_month_totals,
    sales_team_mart_checks,
    sales_team_mart_specs,
)
from sales_platform.defs.marts.finality import (
    Completeness,
    computed_winners,
    finality_metadata,
    month_completeness,
    published_winners,
    winner_change_metadata,
)
from sales_platform.defs.marts.plots import add_month_plots
from sales_platform.defs.partitions import monthly_partitions
from sales_platform.defs.quality import blocking_failure
from sales_platform.defs.resources import BusinessRules
from sales_platform.storage.crypto import KeyringResource
from sales_platform.storage.database import Database
from sales_platform.storage.lake import LakeResource
from sales_platform.transforms import marts
from sales_platform.transforms.pii import CUSTOMER_MART_PII, decrypted_now

# Mart writes queue on this pool (limit 1 in dagster.yaml): two runs never write marts at once.
MART_POOL = "mart_writes"
# The current month maps to its days so far: days after today are not partitions yet.
MONTH_TO_DATE = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)


def _mart_spec(table: str, month_column: str, checks: list[dg.AssetCheckSpec]) -> dict:
    return {
        "check_specs": checks,
        "owners": ["team:data-platform"],
        "partitions_def": monthly_partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "io_manager_key": "warehouse_io_manager",
        "group_name": "marts",
        "kinds": {"spark", "mysql"},
        "metadata": {"table": table, "partition_expr": month_column},
        "pool": MART_POOL,
        "ins": {"sales_enriched": dg.AssetIn(partition_mapping=MONTH_TO_DATE)},
    }


def _completeness(
    context: dg.AssetExecutionContext, asset: str, lake: LakeResource, warehouse_db: Database
) -> tuple[Completeness, dg.AssetCheckResult]:
    """Which days of the months have files and fact; fails the step, before any Spark work,
    when a day with files has no fact: the mart would read that day as empty."""
    done = month_completeness(lake.lake(), warehouse_db.engine(), context.partition_time_window)
    result = days_have_fact_result(done.missing_days, done.empty_days, len(done.with_fact))
    return done, result


def _incomplete(asset: str, done: Completeness) -> dg.Failure:
    days = done.missing_days
    return dg.Failure(
        description=(
            f"{asset} not published: {len(days)} day(s) have sales files but no sales_enriched "
            f"partition, and would be read as empty: {', '.join(days[:31])}. Rebuild them "
            "(README: Rebuild a day whose fact failed); the marts then refresh by themselves."
        ),
        metadata={"missing_days": dg.MetadataValue.json(days)},
    )


def _checked(
    asset: str,
    mart: DataFrame,
    sales_enriched: DataFrame,
    check: Callable[[list[dict], dict], list[dg.AssetCheckResult]],
    metadata: dict,
    preview: Callable[[list[dict]], dg.MetadataValue],
    days_check: dg.AssetCheckResult,
) -> Iterator:
    """Check the computed month before the IO manager replaces it in MySQL.

    A failed check fails the step before any output: the published month stays as it was.
    """
    mart = mart.persist()  # small; collected here for the checks and again by the IO manager
    rows = [r.asDict() for r in mart.collect()]
    results = [days_check, *check(rows, fact_month_totals(sales_enriched))]
    failure = blocking_failure(asset, results, {r.check_name for r in results})
    if failure is not None:
        yield from results
        raise failure
    add_month_plots(rows)  # each month's totals (and incentive paid), plots.py
    yield dg.Output(mart, metadata={**metadata, "preview": preview(rows)})
    yield from results


def _winners_preview(rows: list[dict]) -> dg.MetadataValue:
    winners = [r for r in rows if r["sales_rank"] == 1]
    incentive = sum((r["incentive"] for r in winners), start=0)
    lines = ["| stores | sellers | winners | incentive paid |", "|---|---|---|---|"]
    stores = len({(r["store_id"], r["sales_month"]) for r in rows})
    return dg.MetadataValue.md(
        "\n".join([*lines, f"| {stores} | {len(rows)} | {len(winners)} | {incentive} |"])
    )


def _tier_preview(rows: list[dict]) -> dg.MetadataValue:
    tiers = Counter(r["coupon_tier"] for r in rows)
    lines = ["| coupon tier | customers |", "|---|---|"]
    return dg.MetadataValue.md(
        "\n".join(lines + [f"| {t} | {n} |" for t, n in sorted(tiers.items())])
    )


@dg.asset(
    **_mart_spec(
        "customers_data_mart", "sales_date_month", customer_mart_specs("customer_monthly_mart")
    )
)
def customer_monthly_mart(
    context: dg.AssetExecutionContext,
    sales_enriched: DataFrame,
    customers: DataFrame,
    business_rules: BusinessRules,
    pii_keys: KeyringResource,
    lake: LakeResource,
    warehouse_db: Database,
) -> Iterator:
    """Each customer's purchases for the month, with the coupon tier and discount they earned.

    Table `customers_data_mart`. Refreshed daily for the month so far; final once the month
    closes. Drives the coupon and discount campaigns.
    """
    done, days_check = _completeness(context, "customer_monthly_mart", lake, warehouse_db)
    if not days_check.passed:
        yield days_check
        raise _incomplete("customer_monthly_mart", done)
    # The only place customer PII is decrypted: right before the mart that publishes it.
    plain = decrypted_now(customers, CUSTOMER_MART_PII, pii_keys.keyring().field_cipher())
    mart = marts.customer_monthly_mart(sales_enriched, plain, business_rules.tiers())
    yield from _checked(
        "customer_monthly_mart",
        mart,
        sales_enriched,
        customer_mart_checks,
        finality_metadata(context, done),
        _tier_preview,
        days_check,
    )


@dg.asset(
    **_mart_spec(
        "sales_team_data_mart", "sales_month", sales_team_mart_specs("sales_team_monthly_mart")
    )
)
def sales_team_monthly_mart(
    context: dg.AssetExecutionContext,
    sales_enriched: DataFrame,
    sales_team: DataFrame,
    business_rules: BusinessRules,
    warehouse_db: Database,
    lake: LakeResource,
) -> Iterator:
    """Each seller's sales for the month per store, their rank in the store, and the incentive.

    Table `sales_team_data_mart`. The top seller of each store (all of them on a tie) earns
    the incentive rate (1 % by default) of their month's sales; everyone else earns 0. When a
    final month is corrected, the metadata says whether the incentive went to other sellers.
    """
    done, days_check = _completeness(context, "sales_team_monthly_mart", lake, warehouse_db)
    if not days_check.passed:
        yield days_check
        raise _incomplete("sales_team_monthly_mart", done)
    rate = business_rules.rate()
    mart = marts.sales_team_monthly_mart(sales_enriched, sales_team, rate).persist()
    # Read before the IO manager replaces the month; the pool keeps other writers out meanwhile.
    before = published_winners(warehouse_db.engine(), [m[:7] for m in context.partition_keys])
    metadata = finality_metadata(context, done) | winner_change_metadata(
        before, computed_winners(mart)
    )
    yield from _checked(
        "sales_team_monthly_mart",
        mart,
        sales_enriched,
        lambda rows, fact: sales_team_mart_checks(rows, fact, rate),
        metadata,
        _winners_preview,
        days_check,
    )
