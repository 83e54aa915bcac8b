"""Checks of the dimension snapshots: a usable master table has rows and a clean primary key.

Blocking: a snapshot with duplicated or missing keys would flag good sales as unknown, or
(were joins not de-duplicated) multiply them, so the fact does not build on it.
"""

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import functions as F

from sales_platform.storage.lake import UNPARTITIONED, LakeResource

PRIMARY_KEYS = {"customers": "customer_id", "stores": "id", "products": "id", "sales_team": "id"}


def snapshot_check(asset: str) -> dg.AssetChecksDefinition:
    key = PRIMARY_KEYS[asset]

    @dg.asset_check(
        asset=asset,
        name="primary_key_valid",
        blocking=True,
        description=f"The snapshot has rows, and `{key}` is never null and never repeated.",
    )
    def _check(pyspark: LazyPySparkResource, lake: LakeResource) -> dg.AssetCheckResult:
        df, _ = lake.lake().read(pyspark.spark_session, asset, [UNPARTITIONED])
        figures = df.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct(key).alias("distinct"),
            F.sum(F.col(key).isNull().cast("int")).alias("nulls"),
        ).first()
        rows, distinct, nulls = figures["rows"], figures["distinct"], figures["nulls"] or 0
        return dg.AssetCheckResult(
            passed=rows > 0 and nulls == 0 and distinct == rows,
            metadata={
                "rows": rows,
                "null_keys": nulls,
                # count_distinct ignores nulls: rows - nulls - distinct are repeats.
                "duplicate_keys": rows - nulls - distinct,
            },
        )

    return _check


dimension_checks = [snapshot_check(name) for name in PRIMARY_KEYS]
