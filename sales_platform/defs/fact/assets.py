"""Fact: the day's sales joined to every dimension."""


import dagster as dg
from pyspark.sql import DataFrame

from sales_platform.defs.ingest.daily_load import DAY_EXPR
from sales_platform.defs.partitions import daily_partitions
from sales_platform.transforms.enrich import enrich_sales


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="lake_io_manager",
    group_name="fact",
    kinds={"spark", "parquet"},
    metadata={
        "partition_expr": DAY_EXPR.format(column="sales_date"),
        # A day without any sales file has no partition; a month's report reads it as empty.
        "missing_partitions_are_empty": True,
    },
)
def sales_enriched(
    raw_sales: DataFrame,
    customers: DataFrame,
    stores: DataFrame,
    products: DataFrame,
    sales_team: DataFrame,
) -> DataFrame:
    """The sales fact: each accepted sale with its customer, store, seller and product resolved.

    A sale whose customer, store, seller or product is unknown to the master data is kept and
    flagged (`*_known = false`), never dropped, so every accepted sale counts in the reports.
    """
    return enrich_sales(raw_sales, customers, stores, products, sales_team)
