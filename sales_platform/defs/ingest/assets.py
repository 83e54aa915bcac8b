"""Ingest: the files that land in S3 and the validated rows read from them."""


from datetime import date, timedelta

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import DataFrame

from sales_platform.defs.partitions import daily_partitions
from sales_platform.storage.lake import LakeResource
from sales_platform.storage.landing import (
    FileRejected,
    LandedFile,
    landed_files,
    read_header,
    read_sales_csvs,
)
from sales_platform.storage.object_store import ObjectStoreResource
from sales_platform.transforms.validate import (
    accepted_sales,
    quarantined_sales,
    validate_sales,
)

DAY_EXPR = "date_format({column}, 'yyyy-MM-dd')"

raw_sales_files = dg.AssetSpec(
    "raw_sales_files",
    partitions_def=daily_partitions,
    group_name="ingest",
    kinds={"s3", "csv"},
    description=(
        "The point-of-sale CSV files that landed in S3 for a business day, as reported by the "
        "landing sensor. Outside the platform's control: it only observes them."
    ),
)


def days_of(window: dg.TimeWindow) -> list[date]:
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def _readable(store, files: list[LandedFile], log) -> tuple[list, dict[str, str]]:
    """Split files into (file, header) pairs to read and {key: reason} for rejected files."""
    readable, rejected = [], {}
    for landed in files:
        try:
            header = read_header(store, landed.key)
        except FileRejected as exc:
            rejected[landed.key] = str(exc)
            log.warning(f"rejected file {landed.key!r}: {exc}")
            continue
        if header is not None:
            readable.append((landed, header))
    return readable, rejected


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="lake_io_manager",
    deps=[raw_sales_files],
    group_name="ingest",
    kinds={"spark", "parquet"},
    metadata={"partition_expr": DAY_EXPR.format(column="sales_date")},
)
def raw_sales(
    context: dg.AssetExecutionContext,
    pyspark: LazyPySparkResource,
    landing: ObjectStoreResource,
    lake: LakeResource,
) -> dg.Output[DataFrame]:
    """Every sale of the business day that passed validation, typed (money as DECIMAL).

    Rebuilt from all of the day's files on every run, so a rerun converges. Rows that break a
    rule go to `raw_sales_quarantine` in the lake with a reason code; nothing is dropped.
    """
    days = days_of(context.partition_time_window)
    store = landing.open()
    by_day = landed_files(store, days)
    files = [f for day in days for f in by_day.get(day, [])]
    readable, rejected = _readable(store, files, context.log)

    the_lake = lake.lake()
    raw = read_sales_csvs(pyspark.spark_session, store, readable, the_lake.scratch())
    validated = validate_sales(raw)
    partitions = [d.isoformat() for d in days]
    quarantine = the_lake.write(
        quarantined_sales(validated),
        "raw_sales_quarantine",
        partitions,
        DAY_EXPR.format(column="business_date"),
    )
    quarantined = sum(w.rows for w in quarantine)
    context.log.info(
        f"{len(readable)} file(s) read for {len(days)} day(s); {quarantined} row(s) quarantined; "
        f"{len(rejected)} file(s) rejected"
    )
    return dg.Output(
        accepted_sales(validated),
        metadata={
            "files_read": len(readable),
            "files_rejected": len(rejected),
            "rows_quarantined": quarantined,
            "source_keys": dg.MetadataValue.json(sorted(f.key for f, _ in readable)[:200]),
        },
    )
