"""Jobs: the daily load (dimensions, validated sales, fact) and the monthly marts.

Spark steps run in one process (in-process executor) so a run starts one JVM, not one per step.
"""

import dagster as dg

DAILY_ASSETS = ["customers", "stores", "products", "sales_team", "raw_sales", "sales_enriched"]
MART_ASSETS = ["customer_monthly_mart", "sales_team_monthly_mart"]

daily_sales_job = dg.define_asset_job(
    "daily_sales_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    executor_def=dg.in_process_executor,
    description="Snapshot the master data, validate the day's files and build the sales fact.",
)

monthly_marts_job = dg.define_asset_job(
    "monthly_marts_job",
    selection=dg.AssetSelection.assets(*MART_ASSETS),
    executor_def=dg.in_process_executor,
    description="Publish the month's customer and sales-team marts to MySQL.",
)
