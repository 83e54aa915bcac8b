"""Ingest: the files that land in S3 and the validated rows read from them."""

from datetime import date, timedelta

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from sales_platform.defs.ingest.daily_load import commit, stage_days
from sales_platform.defs.partitions import daily_partitions
from sales_platform.storage.database import Database
from sales_platform.storage.lake import LakeResource
from sales_platform.storage.ledger import Ledger
from sales_platform.storage.object_store import ObjectStoreResource

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

ROWS_RECONCILE = "rows_reconcile"


def days_of(window: dg.TimeWindow) -> list[date]:
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    io_manager_key="lake_io_manager",
    deps=[raw_sales_files],
    group_name="ingest",
    kinds={"spark", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            ROWS_RECONCILE,
            asset="raw_sales",
            blocking=True,
            description="Every row read from every file is either accepted or quarantined.",
        )
    ],
)
def raw_sales(
    context: dg.AssetExecutionContext,
    pyspark: LazyPySparkResource,
    landing: ObjectStoreResource,
    lake: LakeResource,
    warehouse_db: Database,
) -> dg.MaterializeResult:
    """Every sale of the business day that passed validation, typed (money as DECIMAL).

    Rebuilt from all of the day's files (still in landing or already archived) on every run, so
    a rerun converges. Rows that break a rule go to `raw_sales_quarantine` with a reason code and
    their line number; whole files that cannot be sales go to `sales_data_error/` with a reason.
    Each file version is recorded in the ledger table `product_staging_table`.
    """
    days = days_of(context.partition_time_window)
    store, the_lake, ledger = landing.open(), lake.lake(), Ledger(warehouse_db.engine())
    run_id = context.run.run_id
    load = stage_days(pyspark.spark_session, store, the_lake, ledger, days, run_id)

    unreconciled = load.unreconciled
    check_metadata = {
        "files_checked": len(load.read),
        "files_unreconciled": len(unreconciled),
    }
    if unreconciled:
        # Nothing is published: the lake keeps its previous partitions and the files stay put.
        the_lake.discard(load.accepted)
        the_lake.discard(load.quarantine)
        for f in unreconciled[:5]:
            context.log.error(
                f"{f.landed.landing_key!r}: read {f.rows_read} row(s) but accepted "
                f"{f.rows_accepted} + quarantined {f.rows_quarantined}"
            )
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name=ROWS_RECONCILE,
                    passed=False,
                    metadata={
                        **check_metadata,
                        "first_unreconciled": dg.MetadataValue.json(
                            [f.landed.landing_key for f in unreconciled[:20]]
                        ),
                    },
                )
            ]
        )

    accepted, quarantine = commit(store, the_lake, ledger, load, run_id)
    for f in load.rejected:
        context.log.warning(f"rejected file {f.landed.landing_key!r}: {f.reason}")
    rows_accepted = sum(w.rows for w in accepted)
    rows_quarantined = sum(w.rows for w in quarantine)
    context.log.info(
        f"{len(load.read)} file(s) read for {len(days)} day(s): {rows_accepted} row(s) accepted, "
        f"{rows_quarantined} quarantined; {len(load.rejected)} file(s) rejected"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows_accepted,
            "rows_read": sum(f.rows_read for f in load.read),
            "rows_quarantined": rows_quarantined,
            "quarantine_by_reason": dg.MetadataValue.json(dict(load.quarantine_reasons)),
            "files_read": len(load.read),
            "files_rejected": len(load.rejected),
            "rejected_files": dg.MetadataValue.json(
                {f.landed.landing_key: f.reason for f in load.rejected[:50]}
            ),
            "source_keys": dg.MetadataValue.json(
                sorted(f.landed.landing_key for f in load.read)[:200]
            ),
            "total_cost": dg.MetadataValue.text(str(load.total_cost)),
            "bytes_written": sum(w.bytes for w in accepted),
            "lake_uri": dg.MetadataValue.path(the_lake.uri("raw_sales", days[0].isoformat())),
        },
        check_results=[
            dg.AssetCheckResult(check_name=ROWS_RECONCILE, passed=True, metadata=check_metadata)
        ],
    )
