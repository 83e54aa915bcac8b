"""Ingest: the files that land in S3 and the validated rows read from them."""

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from sales_platform.defs.ingest.checks import (
    BLOCKING,
    CHECK_SPECS,
    QUARANTINE_RATE,
    raw_sales_checks,
)
from sales_platform.defs.ingest.daily_load import (
    REPROCESS_REASON_TAG,
    REPROCESS_TAG,
    DayLoad,
    FileOutcome,
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
    """Per-day aggregates of the whole run as markdown: counts and money, never rows."""
    q_rows = {w.partition: w.rows for w in quarantine}
    lines = ["| day | files | rows read | accepted | quarantined |", "|---|---|---|---|---|"]
    for w in accepted:
        files = [f for f in load.read if f.landed.business_date.isoformat() == w.partition]
        lines.append(
            f"| {w.partition} | {len(files)} | {sum(f.rows_read for f in files)} | {w.rows} "
            f"| {q_rows.get(w.partition, 0)} |"
        )
    return dg.MetadataValue.md("\n".join(lines[:40]))


def day_metadata(
    files: list[FileOutcome],
    accepted: PartitionWrite | None,
    quarantine: PartitionWrite | None,
    lake_uri: str,
) -> dict:
    """What one business day's partition holds: its rows, files, money and quarantine."""
    read = [f for f in files if f.reason is None]
    rejected = [f for f in files if f.reason is not None]
    rows_read = sum(f.rows_read for f in read)
    quarantined = quarantine.rows if quarantine else 0
    reasons = sum((f.quarantine_reasons for f in read), Counter())
    total = sum((f.total_cost for f in read), Decimal("0.00"))
    return {
        "dagster/row_count": accepted.rows if accepted else 0,
        "rows_read": rows_read,
        "rows_quarantined": quarantined,
        "quarantine_rate": quarantined / rows_read if rows_read else 0.0,
        # Only the reasons that occurred: eleven all-zero series would crowd out the real ones.
        **{f"quarantined_{code}": reasons[code] for code in REASON_CODES if reasons[code]},
        "files_read": len(read),
        "files_rejected": len(rejected),
        "rejected_files": dg.MetadataValue.json(
            {f.landed.landing_key: f.reason for f in rejected[:50]}
        ),
        "files_consumed": dg.MetadataValue.json(sorted(f.landed.landing_key for f in read)[:200]),
        # Exact money as text; the float copy exists only so the UI can plot it over time.
        "total_cost": dg.MetadataValue.text(str(total)),
        "total_cost_plot": float(total),
        "bytes_written": (accepted.bytes if accepted else 0)
        + (quarantine.bytes if quarantine else 0),
        "lake_uri": dg.MetadataValue.path(lake_uri),
    }


def _range_metadata(load, accepted, quarantine, timer) -> dict:
    """The run as a whole: the same on every day of the range, so only range-level keys."""
    return {
        "dagster/column_schema": table_schema(RAW_SALES_SCHEMA),
        "partitions": f"{load.days[0]}..{load.days[-1]}",
        "run_rows": sum(w.rows for w in accepted),
        "run_rows_quarantined": sum(w.rows for w in quarantine),
        "run_files_read": len(load.read),
        "run_total_cost": dg.MetadataValue.text(str(load.total_cost)),
        "run_preview": _preview(load, accepted, quarantine),
        **lake_metadata(accepted),
        **{f"run_{k}": v for k, v in timer.metadata().items()},
    }


def add_day_metadata(context, load: DayLoad, accepted, quarantine, the_lake) -> None:
    """Each day of the run gets its own figures (a range run would otherwise copy the range's)."""
    accepted_by_day = {w.partition: w for w in accepted}
    quarantine_by_day = {w.partition: w for w in quarantine}
    for day in load.days:
        key = day.isoformat()
        context.add_asset_metadata(
            day_metadata(
                [f for f in load.files if f.landed.business_date == day],
                accepted_by_day.get(key),
                quarantine_by_day.get(key),
                the_lake.uri("raw_sales", key),
            ),
            partition_key=key,
        )


def with_rates_by_day(checks: list[dg.AssetCheckResult], load: DayLoad) -> list:
    """The quarantine check of a range run with each day's rate beside the range's.

    A check result in a range run belongs to the run, not to a partition (Dagster 1.13 records
    it once, without a partition): the day that went bad is named here.
    """
    rates = {}
    for day in load.days:
        read = [f for f in load.read if f.landed.business_date == day]
        rows = sum(f.rows_read for f in read)
        rates[day.isoformat()] = sum(f.rows_quarantined for f in read) / rows if rows else 0.0
    return [
        c.with_metadata({**c.metadata, "quarantine_rate_by_day": dg.MetadataValue.json(rates)})
        if c.check_name == QUARANTINE_RATE
        else c
        for c in checks
    ]


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
    # From the listing to the last move, one run at a time per day: a second run of the day
    # (a backfill beside the sensor's run) lists what the first one left and rebuilds the same.
    with lake.write_lock("raw_sales", [d.isoformat() for d in days]):
        with timer.stage("stage"):
            load = stage_days(pyspark.spark_session, store, the_lake, ledger, days, run_id)
        checks = with_rates_by_day(raw_sales_checks(load, quality), load)
        failure = blocking_failure("raw_sales", checks, BLOCKING)
        if failure is not None:
            # Nothing is published: the lake keeps its previous partitions and the files stay.
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
    add_day_metadata(context, load, accepted, quarantine, the_lake)
    yield dg.MaterializeResult(
        metadata=_range_metadata(load, accepted, quarantine, timer), check_results=checks
    )
