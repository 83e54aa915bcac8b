"""The platform's one Definitions object; resources follow SALES_PLATFORM_ENV (local | prod)."""

import dagster as dg

from sales_platform.defs.dimensions.assets import dimension_assets
from sales_platform.defs.fact.assets import sales_enriched
from sales_platform.defs.ingest.assets import raw_sales, raw_sales_files
from sales_platform.defs.jobs import daily_sales_job, monthly_marts_job
from sales_platform.defs.marts.assets import customer_monthly_mart, sales_team_monthly_mart
from sales_platform.defs.resources import build_resources
from sales_platform.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[
            raw_sales_files,
            raw_sales,
            *dimension_assets,
            sales_enriched,
            customer_monthly_mart,
            sales_team_monthly_mart,
        ],
        jobs=[daily_sales_job, monthly_marts_job],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
