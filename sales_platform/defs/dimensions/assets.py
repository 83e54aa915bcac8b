"""Dimensions: snapshots of the master data tables kept in MySQL by the business."""


import dagster as dg
import sqlalchemy as sa
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import DataFrame

from sales_platform.schemas import SOURCE_SPARK_SCHEMAS, SOURCE_TABLES
from sales_platform.storage.database import Database

_DESCRIPTIONS = {
    "customers": "Snapshot of the customer master (table `customer`): who buys, and how to "
    "reach them for coupons. Holds personal data.",
    "stores": "Snapshot of the store master (table `store`): every shop that sells.",
    "products": "Snapshot of the product catalogue (table `product`), matched to sales by name.",
    "sales_team": "Snapshot of the sales team (table `sales_team`): who sells, for the "
    "incentive report.",
}
_SOURCE_TABLE = {
    "customers": "customer",
    "stores": "store",
    "products": "product",
    "sales_team": "sales_team",
}


def snapshot_asset(name: str) -> dg.AssetsDefinition:
    table_name = _SOURCE_TABLE[name]

    @dg.asset(
        name=name,
        group_name="dimensions",
        io_manager_key="lake_io_manager",
        kinds={"mysql", "spark", "parquet"},
        description=_DESCRIPTIONS[name],
    )
    def _snapshot(pyspark: LazyPySparkResource, source_db: Database) -> DataFrame:
        table = SOURCE_TABLES[table_name]
        with source_db.engine().connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
        return pyspark.spark_session.createDataFrame(rows, SOURCE_SPARK_SCHEMAS[table_name])

    return _snapshot


dimension_assets = [snapshot_asset(name) for name in _SOURCE_TABLE]
