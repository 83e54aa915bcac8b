"""The month-end close: the previous month's marts, published as the final monthly report.

It fires after the files of the month's last day are due (`files_due_hour` on the 1st), so the
final report includes them: the settings refuse a cron that fires earlier. What the close
publishes is then final only if it is complete: every day of the month that has files has its
fact (see `finality.month_completeness`); otherwise the mart run fails naming the days, and the
marts follow the fact again once those days are rebuilt.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from sales_platform.defs.jobs import monthly_marts_job
from sales_platform.defs.marts.automation import MART_KEYS, TRIGGER_TAG
from sales_platform.defs.marts.finality import FINAL_TAG
from sales_platform.defs.partitions import START_DATE
from sales_platform.settings import AutomationSettings

FILES_DUE_TAG = "sales_platform/last_files_due"


def previous_month(moment: datetime) -> str:
    first = moment.astimezone(UTC).date().replace(day=1)
    year, month = (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
    return date(year, month, 1).isoformat()


def last_day_of(month: str) -> date:
    first = date.fromisoformat(month)
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return following - timedelta(days=1)


def build_month_end_schedule(automation: AutomationSettings) -> dg.ScheduleDefinition:
    """The month-end close at `automation.month_end_cron` (UTC), after the files deadline."""

    @dg.schedule(
        name="month_end_marts",
        cron_schedule=automation.month_end_cron,
        job=monthly_marts_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "The month-end close: once the last day's files are due, publishes both marts of "
            "the month that just closed as the final monthly report (run tag "
            "sales_platform/final=true). A day with files but no fact fails the close, naming "
            "the day. Sales of that month arriving later republish it, marked as a late "
            "correction."
        ),
    )
    def month_end_marts(context: dg.ScheduleEvaluationContext):
        now = context.scheduled_execution_time or datetime.now(UTC)
        month = previous_month(now)
        if month < START_DATE:
            return dg.SkipReason(f"{month} is before the first month of data ({START_DATE})")
        due = automation.files_deadline(last_day_of(month))
        if now < due:
            # Only a tick requested by hand can get here: the settings refuse such a cron.
            return dg.SkipReason(
                f"the files of {last_day_of(month)} are due by {due:%Y-%m-%d %H:%M} UTC; "
                f"closing {month[:7]} before then would miss them"
            )
        return dg.RunRequest(
            partition_key=month,
            run_key=f"month-end:{month}",
            asset_selection=MART_KEYS,
            tags={
                FINAL_TAG: "true",
                TRIGGER_TAG: "month_end",
                FILES_DUE_TAG: due.isoformat(timespec="minutes"),
            },
        )

    return month_end_marts
