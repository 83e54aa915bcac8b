"""Weekly upkeep of the lake: old Iceberg snapshots expired, unreferenced files deleted."""

import dagster as dg

from sales_platform.lake_cli import DEFAULT_OLDER_THAN, run_vacuum
from sales_platform.storage.lake import LakeResource


class VacuumConfig(dg.Config):
    older_than: str = DEFAULT_OLDER_THAN
    dry_run: bool = False


@dg.op
def lake_vacuum(context: dg.OpExecutionContext, config: VacuumConfig, lake: LakeResource):
    """Expire snapshots older than `older_than` (never a table's current one) and delete the
    data and metadata files no remaining snapshot names, crashed runs' uploads included."""
    reports = run_vacuum(lake.lake(), config.older_than, config.dry_run, log=context.log.info)
    context.add_output_metadata(
        {
            "snapshots_expired": sum(len(r.expired_snapshots) for r in reports),
            "files_deleted": sum(len(r.deleted) for r in reports),
            "unmigrated_partitions": sum(len(r.unmigrated) for r in reports),
        }
    )


@dg.job(description="Expire old lake snapshots and delete files no snapshot references.")
def lake_vacuum_job():
    lake_vacuum()


lake_vacuum_schedule = dg.ScheduleDefinition(
    job=lake_vacuum_job,
    cron_schedule="0 3 * * 0",  # Sundays 03:00 UTC, outside the daily loads
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
