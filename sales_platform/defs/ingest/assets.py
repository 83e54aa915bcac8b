"""Ingest: the files that land in S3 and the validated rows read from them."""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from sales_platform.defs.ingest.checks import BLOCKING, CHECK_SPECS, raw_sales_checks
from sales_platform.defs.ingest.daily_load import (
    REPROCESS_REASON_TAG,
    REPROCESS_TAG,
    DayLoad,
    commit,
    reprocess,
    stage_days,
)
from sales_platform.defs.partitions import daily_partitions
from sales_platform.defs.quality import (
    QualityThresholds,
    StageTimer,
    blocking_failure,
)
from sales_platform.log_config import get_logger
from sales_platform.schemas import RAW_SALES_SCHEMA
from sales_platform.storage.database import Database
from sales_platform.storage.lake import LakeResource, PartitionWrite, lake_metadata, table_schema
from sales_platform.storage.ledger import Ledger
from sales_platform.storage.object_store import ObjectStoreResource
from sales_platform.transforms.validate import REASON_CODES

log = get_logger(__name__)

raw_sales_files = dg.AssetSpec(
    "raw_sales_files",
    partitions_def=daily_partitions,
    group_name="ingest",
    kinds={"s3", "csv"},
    owners=["team:data-platform"],
    description=(
        "The point-of-sale CSV files that landed in S3 for a business day, as reported by the "
        "landing sensor. Outside the platform's control: it only observes them."
    ),
)


def days_of(window: dg.TimeWindow) -> list[date]:
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def _preview(load: DayLoad, accepted: list[PartitionWrite], quarantine: list[PartitionWrite]):
    """Per-day aggregates as markdown: counts and money, never rows."""
    totals: dict[str, object] = {}
    for f in load.read:
        key = f.landed.business_date.isoformat()
        totals[key] = totals.get(key, 0) + f.rows_read
    q_rows = {w.partition: w.rows for w in quarantine}
    lines = ["| day | files | rows read | accepted | quarantined |", "|---|---|---|---|---|"]
    for w in accepted:
        files = sum(1 for f in load.read if f.landed.business_date.isoformat() == w.partition)
        lines.append(
            f"| {w.partition} | {files} | {totals.get(w.partition, 0)} | {w.rows} "
            f"| {q_rows.get(w.partition, 0)} |"
        )
    return dg.MetadataValue.md("\n".join(lines[:40]))


def _metadata(load, accepted, quarantine, timer, lake_uri) -> dict:
    return {
        "dagster/row_count": sum(w.rows for w in accepted),
        "dagster/column_schema": table_schema(RAW_SALES_SCHEMA),
        "partitions": f"{load.days[0]}..{load.days[-1]}",
        "rows_read": sum(f.rows_read for f in load.read),
        "rows_quarantined": sum(w.rows for w in quarantine),
        # Every reason, every run (zeros included): the UI plots each one over time.
        **{f"quarantined_{code}": load.quarantine_reasons.get(code, 0) for code in REASON_CODES},
        "files_read": len(load.read),
        "files_rejected": len(load.rejected),
        "rejected_files": dg.MetadataValue.json(
            {f.landed.landing_key: f.reason for f in load.rejected[:50]}
        ),
        "files_consumed": dg.MetadataValue.json(
            sorted(f.landed.landing_key for f in load.read)[:200]
        ),
        # Exact money as text; the float copy exists only so the UI can plot it over time.
        "total_cost": dg.MetadataValue.text(str(load.total_cost)),
        "total_cost_plot": float(load.total_cost),
        "bytes_written": sum(w.bytes for w in accepted) + sum(w.bytes for w in quarantine),
        "preview": _preview(load, accepted, quarantine),
        "lake_uri": dg.MetadataValue.path(lake_uri),
        **lake_metadata(accepted),
        **timer.metadata(),
    }


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="lake_io_manager",
    deps=[raw_sales_files],
    group_name="ingest",
    kinds={"spark", "parquet"},
    owners=["team:data-platform"],
    check_specs=CHECK_SPECS,
)
def raw_sales(
    context: dg.AssetExecutionContext,
    pyspark: LazyPySparkResource,
    landing: ObjectStoreResource,
    lake: LakeResource,
    warehouse_db: Database,
    quality: QualityThresholds,
) -> Iterator:
    """Every sale of the business day that passed validation, typed (money as DECIMAL).

    Rebuilt from all of the day's files (still in landing or already archived) on every run, so
    a rerun converges. Rows that break a rule go to `raw_sales_quarantine` with a reason code and
    their line number; whole files that cannot be sales go to `sales_data_error/` with a reason.
    Each file version is recorded in the ledger table `product_staging_table`.
    """
    timer = StageTimer()
    days = days_of(context.partition_time_window)
    store, the_lake, ledger = landing.open(), lake.lake(), Ledger(warehouse_db.engine())
    run_id = context.run.run_id
    if context.run.tags.get(REPROCESS_TAG):  # `sales-platform files reprocess`, from the UI
        reason = context.run.tags.get(REPROCESS_REASON_TAG) or f"requested by run {run_id}"
        reprocess(store, ledger, context.run.tags[REPROCESS_TAG], reason)
    with timer.stage("stage"):
        load = stage_days(pyspark.spark_session, store, the_lake, ledger, days, run_id)
    checks = raw_sales_checks(load, quality)
    failure = blocking_failure("raw_sales", checks, BLOCKING)
    if failure is not None:
        # Nothing is published: the lake keeps its previous partitions and the files stay put.
        the_lake.discard(load.accepted)
        the_lake.discard(load.quarantine)
        yield from checks
        raise failure

    with timer.stage("publish_and_move"):
        accepted, quarantine = commit(store, the_lake, ledger, load, run_id)
    for f in load.rejected:
        log.warning(f"rejected file {f.landed.landing_key!r}: {f.reason}")
    log.info(
        f"{len(load.read)} file(s) read for {len(days)} day(s): "
        f"{sum(w.rows for w in accepted)} row(s) accepted, "
        f"{sum(w.rows for w in quarantine)} quarantined; {len(load.rejected)} file(s) rejected"
    )
    yield dg.MaterializeResult(
        metadata=_metadata(
            load, accepted, quarantine, timer, the_lake.uri("raw_sales", days[0].isoformat())
        ),
        check_results=checks,
    )
