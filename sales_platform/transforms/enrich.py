"""The sales fact: each accepted sale joined to the dimension snapshots it refers to.

A sale is never lost to a join: a customer, store, seller or product missing from its snapshot
leaves the sale in the fact with the matching `*_known` flag False, so totals downstream still add
up and the gap is visible. The fact stays narrow (ids and flags, no names or addresses): customer
PII stays encrypted in the dimension snapshots and the fact is cheaper to write.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sales_platform.schemas import SALES_ENRICHED_SCHEMA


def _known_keys(dimension: DataFrame, key: str, alias: str, flag: str) -> DataFrame:
    """One row per key with a True flag: a duplicated key in a snapshot can't multiply sales."""
    return (
        dimension.select(F.col(key).alias(alias))
        .where(F.col(alias).isNotNull())
        .distinct()
        .withColumn(flag, F.lit(True))
    )


def enrich_sales(
    raw_sales: DataFrame,
    customers: DataFrame,
    stores: DataFrame,
    products: DataFrame,
    sales_team: DataFrame,
) -> DataFrame:
    """Join the day's accepted sales to the dimensions; returns SALES_ENRICHED_SCHEMA's columns.

    `raw_sales` has RAW_SALES_SCHEMA; the dimensions are the snapshots of the source tables
    (CUSTOMER_SCHEMA, STORE_SCHEMA, PRODUCT_SCHEMA, SALES_TEAM_SCHEMA). Products match on the exact
    name; when a name appears under several ids the smallest id wins, so the choice is stable
    from run to run. Row count out = row count in.
    """
    known_customers = _known_keys(customers, "customer_id", "customer_id", "customer_known")
    known_stores = _known_keys(stores, "id", "store_id", "store_known")
    known_sellers = _known_keys(sales_team, "id", "sales_person_id", "sales_person_known")
    product_ids = (
        products.where(F.col("name").isNotNull())
        .groupBy(F.col("name").alias("product_name"))
        .agg(F.min("id").alias("product_id"))
        .withColumn("product_known", F.lit(True))
    )

    # Dimensions are small next to a day of sales: broadcasting them avoids shuffling the fact.
    enriched = (
        raw_sales.join(F.broadcast(known_customers), "customer_id", "left")
        .join(F.broadcast(known_stores), "store_id", "left")
        .join(F.broadcast(known_sellers), "sales_person_id", "left")
        .join(F.broadcast(product_ids), "product_name", "left")
    )
    flags = {"customer_known", "store_known", "sales_person_known", "product_known"}
    return enriched.select(
        *[
            (
                F.coalesce(F.col(field.name), F.lit(False))
                if field.name in flags
                else F.col(field.name).cast(field.dataType)
            ).alias(field.name)
            for field in SALES_ENRICHED_SCHEMA
        ]
    )
