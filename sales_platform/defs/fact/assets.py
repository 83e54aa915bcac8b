"""Fact: the day's sales joined to every dimension."""

from collections.abc import Iterator

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import DataFrame

from sales_platform.defs.fact.checks import BLOCKING, CHECK_SPECS, fact_checks, measure
from sales_platform.defs.ingest.assets import days_of
from sales_platform.defs.ingest.daily_load import DAY_EXPR
from sales_platform.defs.partitions import daily_partitions
from sales_platform.defs.quality import (
    QualityThresholds,
    StageTimer,
    blocking_failure,
)
from sales_platform.schemas import SALES_ENRICHED_SCHEMA
from sales_platform.storage.lake import LakeResource, lake_metadata, table_schema
from sales_platform.transforms.enrich import enrich_sales

ASSET = "sales_enriched"


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="lake_io_manager",
    group_name="fact",
    kinds={"spark", "parquet"},
    owners=["team:data-platform"],
    metadata={
        # A day without any sales file has no partition; a month's report reads it as empty.
        "missing_partitions_are_empty": True,
    },
    check_specs=CHECK_SPECS,
)
def sales_enriched(
    context: dg.AssetExecutionContext,
    raw_sales: DataFrame,
    customers: DataFrame,
    stores: DataFrame,
    products: DataFrame,
    sales_team: DataFrame,
    pyspark: LazyPySparkResource,
    lake: LakeResource,
    quality: QualityThresholds,
) -> Iterator:
    """The sales fact: each accepted sale with its customer, store, seller and product resolved.

    A sale whose customer, store, seller or product is unknown to the master data is kept and
    flagged (`*_known = false`), never dropped, so every accepted sale counts in the reports.
    Checked before it is published: same total and row count as `raw_sales`, no duplicates,
    and not too many unknown keys.
    """
    timer = StageTimer()
    the_lake = lake.lake()
    partitions = [d.isoformat() for d in days_of(context.partition_time_window)]
    with timer.stage("join_and_stage"):
        staged = the_lake.stage(
            enrich_sales(raw_sales, customers, stores, products, sales_team),
            ASSET,
            partitions,
            DAY_EXPR.format(column="sales_date"),
        )
    with timer.stage("checks"):
        figures = measure(the_lake.read_staged(pyspark.spark_session, staged), raw_sales)
        checks = fact_checks(figures, quality)
    failure = blocking_failure(ASSET, checks, BLOCKING)
    if failure is not None:
        the_lake.discard(staged)
        yield from checks
        raise failure
    with timer.stage("publish"):
        writes = the_lake.publish(staged)
    unknown_table = "\n".join(
        ["| dimension | unknown keys |", "|---|---|"]
        + [f"| {d} | {n} |" for d, n in figures.unknown.items()]
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(w.rows for w in writes),
            "dagster/column_schema": table_schema(SALES_ENRICHED_SCHEMA),
            "partitions": f"{partitions[0]}..{partitions[-1]}",
            "bytes_written": sum(w.bytes for w in writes),
            "total_cost": dg.MetadataValue.text(str(figures.total_cost)),
            "total_cost_plot": float(figures.total_cost),
            "preview": dg.MetadataValue.md(unknown_table),
            "lake_uri": dg.MetadataValue.path(the_lake.uri(ASSET, partitions[0])),
            **lake_metadata(writes),
            **timer.metadata(),
        },
        check_results=checks,
    )
