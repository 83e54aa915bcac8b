"""The platform's one Definitions object; resources follow SALES_PLATFORM_ENV (local | prod)."""

import os

import dagster as dg

from sales_platform.defs.dimensions.assets import dimension_assets
from sales_platform.defs.fact.assets import sales_enriched
from sales_platform.defs.fact.freshness import build_files_overdue, with_files_due_policy
from sales_platform.defs.ingest.assets import raw_sales, raw_sales_files
from sales_platform.defs.ingest.sensors import landing_sensor
from sales_platform.defs.jobs import daily_sales_job, monthly_marts_job
from sales_platform.defs.maintenance.vacuum import lake_vacuum_job, lake_vacuum_schedule
from sales_platform.defs.marts.assets import customer_monthly_mart, sales_team_monthly_mart
from sales_platform.defs.marts.automation import marts_follow_fact, with_marts_automation
from sales_platform.defs.marts.month_end import build_month_end_schedule
from sales_platform.defs.resources import build_resources
from sales_platform.launch import QUEUE_ONLY_VAR
from sales_platform.settings import Settings


def build_definitions(
    settings: Settings | None = None, automation_on: bool = True
) -> dg.Definitions:
    settings = settings or Settings.from_env()
    automation = settings.automation
    overdue = build_files_overdue(automation)
    marts = [customer_monthly_mart, sales_team_monthly_mart]
    return dg.Definitions(
        assets=[
            raw_sales_files,
            with_files_due_policy(raw_sales, automation.files_due_hour),
            *dimension_assets,
            sales_enriched,
            *(with_marts_automation(marts) if automation_on else marts),
        ],
        asset_checks=[overdue.check],
        jobs=[daily_sales_job, monthly_marts_job, overdue.job, lake_vacuum_job],
        schedules=[build_month_end_schedule(automation), overdue.schedule, lake_vacuum_schedule]
        if automation_on
        else [],
        sensors=[landing_sensor, marts_follow_fact] if automation_on else [],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(automation_on=os.environ.get(QUEUE_ONLY_VAR) != "1")
