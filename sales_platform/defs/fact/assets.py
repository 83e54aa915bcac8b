"""Fact: the day's sales joined to every dimension."""

from collections.abc import Iterator
from decimal import Decimal

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import DataFrame

from sales_platform.defs.fact.checks import (
    BLOCKING,
    CHECK_SPECS,
    DIMENSIONS,
    TOTAL_MATCHES_RAW,
    DayFigures,
    fact_checks,
    measure,
)
from sales_platform.defs.ingest.assets import days_of
from sales_platform.defs.partitions import daily_partitions
from sales_platform.defs.quality import (
    QualityThresholds,
    StageTimer,
    blocking_failure,
)
from sales_platform.schemas import SALES_ENRICHED_SCHEMA
from sales_platform.storage.lake import LakeResource, PartitionWrite, lake_metadata, table_schema
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
    with lake.write_lock(ASSET, partitions):
        with timer.stage("join_and_stage"):
            staged = the_lake.stage(
                enrich_sales(raw_sales, customers, stores, products, sales_team),
                ASSET,
                partitions,
                "sales_date",
            )
        with timer.stage("checks"):
            figures = measure(the_lake.read_staged(pyspark.spark_session, staged), raw_sales)
            checks = [
                # A range run's check result is the run's: each day's figures named beside it.
                c.with_metadata({**c.metadata, "by_day": _by_day(figures)})
                if c.check_name == TOTAL_MATCHES_RAW
                else c
                for c in fact_checks(figures, quality)
            ]
        failure = blocking_failure(ASSET, checks, BLOCKING)
        if failure is not None:
            the_lake.discard(staged)
            yield from checks
            raise failure
        with timer.stage("publish"):
            writes = the_lake.publish(staged)
    writes_by_day = {w.partition: w for w in writes}
    for day in partitions:
        context.add_asset_metadata(
            day_metadata(figures.by_day.get(day), writes_by_day.get(day), the_lake.uri(ASSET, day)),
            partition_key=day,
        )
    yield dg.MaterializeResult(
        # The run as a whole: copied to every day of the range, so only range-level keys.
        metadata={
            "dagster/column_schema": table_schema(SALES_ENRICHED_SCHEMA),
            "partitions": f"{partitions[0]}..{partitions[-1]}",
            "run_rows": sum(w.rows for w in writes),
            "run_total_cost": dg.MetadataValue.text(str(figures.total_cost)),
            **lake_metadata(writes),
            **{f"run_{k}": v for k, v in timer.metadata().items()},
        },
        check_results=checks,
    )


def day_metadata(figures: DayFigures | None, write: PartitionWrite | None, lake_uri: str) -> dict:
    """What one business day of the fact holds: rows, money, unknown keys, bytes."""
    unknown = figures.unknown if figures else dict.fromkeys(DIMENSIONS, 0)
    total = figures.total_cost if figures else Decimal("0.00")
    return {
        "dagster/row_count": write.rows if write else 0,
        "bytes_written": write.bytes if write else 0,
        # Exact money as text; the float copy exists only so the UI can plot it over time.
        "total_cost": dg.MetadataValue.text(str(total)),
        "total_cost_plot": float(total),
        **{f"unknown_{d}": n for d, n in unknown.items()},
        "preview": dg.MetadataValue.md(
            "\n".join(
                ["| dimension | unknown keys |", "|---|---|"]
                + [f"| {d} | {n} |" for d, n in unknown.items()]
            )
        ),
        "lake_uri": dg.MetadataValue.path(lake_uri),
    }


def _by_day(figures) -> dg.MetadataValue:
    return dg.MetadataValue.json(
        {d: {"rows": f.rows, "total_cost": str(f.total_cost)} for d, f in figures.by_day.items()}
    )
