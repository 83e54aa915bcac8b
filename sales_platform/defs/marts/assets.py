"""Marts: the monthly reports the business reads, published to MySQL."""


import dagster as dg
from pyspark.sql import DataFrame

from sales_platform.defs.partitions import monthly_partitions
from sales_platform.defs.resources import BusinessRules
from sales_platform.transforms import marts


def _mart_spec(table: str, month_column: str) -> dict:
    return {
        "partitions_def": monthly_partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "io_manager_key": "warehouse_io_manager",
        "group_name": "marts",
        "kinds": {"spark", "mysql"},
        "metadata": {"table": table, "partition_expr": month_column},
    }


@dg.asset(**_mart_spec("customers_data_mart", "sales_date_month"))
def customer_monthly_mart(
    sales_enriched: DataFrame, customers: DataFrame, business_rules: BusinessRules
) -> DataFrame:
    """Each customer's purchases for the month, with the coupon tier and discount they earned.

    Table `customers_data_mart`. Refreshed daily for the month so far; final once the month
    closes. Drives the coupon and discount campaigns.
    """
    return marts.customer_monthly_mart(sales_enriched, customers, business_rules.tiers())


@dg.asset(**_mart_spec("sales_team_data_mart", "sales_month"))
def sales_team_monthly_mart(
    sales_enriched: DataFrame, sales_team: DataFrame, business_rules: BusinessRules
) -> DataFrame:
    """Each seller's sales for the month per store, their rank in the store, and the incentive.

    Table `sales_team_data_mart`. The top seller of each store (all of them on a tie) earns
    the incentive rate (1 % by default) of their month's sales; everyone else earns 0.
    """
    return marts.sales_team_monthly_mart(sales_enriched, sales_team, business_rules.rate())
