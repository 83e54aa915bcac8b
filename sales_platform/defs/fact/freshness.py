"""Visible gaps: a business day whose files have not landed by the deadline shows as overdue.

Two signals, because they answer different questions:
- a freshness policy on `raw_sales` (evaluated by the freshness daemon): nothing was loaded in
  the 24 hours before today's deadline. It looks at the asset as a whole, so a rerun of an old
  day also counts as fresh;
- the `files_landed_on_time` check on `raw_sales_files`: which recent business days have no file
  at all (in landing or archived) after their deadline. It names the days, so it is the one to
  alert on. It runs every hour from the deadline on, and turns green when the file arrives.
A business day's files are due by `files_due_hour` (UTC) of the following day.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from sales_platform.defs.partitions import START_DATE
from sales_platform.settings import AutomationSettings
from sales_platform.storage.landing import current_files
from sales_platform.storage.object_store import ObjectStoreResource

RAW_SALES_KEY = dg.AssetKey("raw_sales")
RAW_SALES_FILES_KEY = dg.AssetKey("raw_sales_files")
CHECK_NAME = "files_landed_on_time"


def files_due_policy(due_hour: int) -> dg.FreshnessPolicy:
    """raw_sales must have loaded something in the 24 hours before each day's deadline."""
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"0 {due_hour} * * *", lower_bound_delta=timedelta(hours=24)
    )


def with_files_due_policy(assets_def: dg.AssetsDefinition, due_hour: int) -> dg.AssetsDefinition:
    policy = files_due_policy(due_hour)
    return assets_def.map_asset_specs(
        lambda spec: (
            spec.replace_attributes(freshness_policy=policy) if spec.key == RAW_SALES_KEY else spec
        )
    )


def due_days(now: datetime, due_hour: int, lookback_days: int) -> list[date]:
    """The business days whose deadline has passed at `now`, newest last, at most lookback."""
    latest = (now.astimezone(UTC) - timedelta(hours=due_hour)).date() - timedelta(days=1)
    first = max(latest - timedelta(days=lookback_days - 1), date.fromisoformat(START_DATE))
    return [first + timedelta(days=i) for i in range((latest - first).days + 1)]


class FilesOverdueConfig(dg.Config):
    as_of: str | None = Field(
        default=None,
        description="evaluate as if it were this UTC time (ISO 8601); default: now",
    )


@dataclass(frozen=True)
class FilesOverdueAutomation:
    check: dg.AssetChecksDefinition
    # What dg.define_asset_job returns; Dagster does not export that class publicly.
    job: object
    schedule: dg.ScheduleDefinition


def build_files_overdue(settings: AutomationSettings) -> FilesOverdueAutomation:
    due_hour, lookback = settings.files_due_hour, settings.overdue_lookback_days

    @dg.asset_check(
        asset=RAW_SALES_FILES_KEY,
        name=CHECK_NAME,
        description=(
            f"Every business day of the last {lookback} has at least one sales file, in landing "
            f"or archived, by {due_hour:02d}:00 UTC of the following day. Fails naming the "
            "overdue days: a store that sent nothing is a gap in the reports, not a quiet day."
        ),
    )
    def files_landed_on_time(
        config: FilesOverdueConfig, landing: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        days = due_days(now, due_hour, lookback)
        found = current_files(landing.open(), days)
        overdue = [d.isoformat() for d in days if not found.get(d)]
        return dg.AssetCheckResult(
            passed=not overdue,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"no file for {', '.join(overdue)} after the {due_hour:02d}:00 UTC deadline"
                if overdue
                else f"files landed for each of {len(days)} due day(s)"
            ),
            metadata={
                "overdue_days": dg.MetadataValue.json(overdue),
                "days_checked": len(days),
                "latest_due_day": days[-1].isoformat() if days else "",
                "evaluated_at": now.isoformat(timespec="seconds"),
            },
        )

    job = dg.define_asset_job(
        "files_overdue_check_job",
        selection=dg.AssetSelection.checks(files_landed_on_time),
        description="Check that every recent business day's sales files landed on time.",
    )
    # Hourly from the deadline to midnight: a gap shows at the deadline, clears when files land.
    hours = f"{due_hour}-23" if due_hour < 23 else "23"
    schedule = dg.ScheduleDefinition(
        name="files_overdue_check",
        cron_schedule=f"5 {hours} * * *",
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Flags business days with no sales file after their deadline.",
    )
    return FilesOverdueAutomation(files_landed_on_time, job, schedule)
