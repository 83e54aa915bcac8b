"""Yardstick: the platform's transform as one plain PySpark script (no Dagster, no checks).

    .venv/bin/python benchmarks/plain_spark.py --data-dir DIR --out DIR

What a competent engineer would write for the same job, on the same landing files and source
tables as the platform (`DIR/bucket/sales_data/**.csv`, `DIR/source.db`): read the CSVs with an
explicit schema (all text), validate with the platform's row rules as column expressions, left-join
the four dimensions (broadcast), write the accepted sales as Parquet, then compute both marts and
write them to a SQLite file. No hashing, line numbers, quarantine, ledger, PII encryption or checks:
that extra work is what the platform must earn back. Prints the seconds of the whole script,
Spark's start included, as `plain_spark_s=<s>` on its last line.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
from pyspark.sql import SparkSession, Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from sales_platform.schemas import SALES_CSV_COLUMNS  # noqa: E402

# The contract's header: the same columns the platform reads.
COLUMNS = SALES_CSV_COLUMNS
DIGITS, MONEY = r"^[0-9]+$", r"^-?[0-9]+(\.[0-9]{1,2})?$"


def _source(spark: SparkSession, db: Path, query: str, schema: str):
    with sqlite3.connect(db) as conn:
        rows = conn.execute(query).fetchall()
    return spark.createDataFrame(rows, schema)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    spark = (
        SparkSession.builder.master("local[*]")
        .config("spark.driver.memory", "4g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", "-XX:+UseParallelGC")
        .getOrCreate()
    )
    schema = T.StructType([T.StructField(c, T.StringType()) for c in COLUMNS])
    landing = str(args.data_dir / "bucket" / "sales_data")
    raw = (
        spark.read.schema(schema)
        .option("header", "true")
        .option("recursiveFileLookup", "true")
        .csv(landing)
        .withColumn("file_date", F.regexp_extract(F.input_file_name(), r"(\d{4}-\d{2}-\d{2})", 1))
    )
    t = {c: F.trim(F.col(c)) for c in COLUMNS}

    def integer(c):
        return F.when(t[c].rlike(DIGITS), t[c].try_cast("int"))

    typed = raw.select(
        integer("customer_id").alias("customer_id"),
        integer("store_id").alias("store_id"),
        t["product_name"].alias("product_name"),
        F.try_to_date(t["sales_date"], "yyyy-MM-dd").alias("sales_date"),
        integer("sales_person_id").alias("sales_person_id"),
        F.when(t["price"].rlike(MONEY), t["price"].try_cast("decimal(10,2)")).alias("price"),
        integer("quantity").alias("quantity"),
        F.when(t["total_cost"].rlike(MONEY), t["total_cost"].try_cast("decimal(12,2)")).alias(
            "total_cost"
        ),
        F.to_date("file_date").alias("file_date"),
    )
    valid = typed.where(
        (F.col("customer_id") > 0)
        & (F.col("store_id") > 0)
        & (F.col("sales_person_id") > 0)
        & (F.col("product_name") != "")
        & (F.col("sales_date") == F.col("file_date"))
        & (F.col("price") >= 0)
        & (F.col("quantity") > 0)
        & (F.col("total_cost") == F.col("price") * F.col("quantity").cast("decimal(10,0)"))
    ).drop("file_date")

    db = args.data_dir / "source.db"
    customers = _source(
        spark,
        db,
        "SELECT customer_id, first_name, last_name, address, phone_number FROM customer",
        "customer_id INT, first_name STRING, last_name STRING, address STRING, phone_number STRING",
    )
    stores = _source(spark, db, "SELECT id FROM store", "store_id INT")
    sellers = _source(
        spark,
        db,
        "SELECT id, first_name, last_name FROM sales_team",
        "sales_person_id INT, s_first STRING, s_last STRING",
    )
    products = _source(
        spark, db, "SELECT id, name FROM product", "product_id INT, product_name STRING"
    )

    fact = (
        valid.join(F.broadcast(customers.select("customer_id")), "customer_id", "left")
        .join(F.broadcast(stores), "store_id", "left")
        .join(F.broadcast(sellers.select("sales_person_id")), "sales_person_id", "left")
        .join(F.broadcast(products), "product_name", "left")
    )
    fact_path = str(args.out / "fact")
    fact.write.mode("overwrite").partitionBy("sales_date").parquet(fact_path)
    fact = spark.read.parquet(fact_path)

    customer_mart = (
        fact.groupBy("customer_id", F.trunc("sales_date", "month").alias("sales_date_month"))
        .agg(F.sum("total_cost").cast("decimal(18,2)").alias("total_sales"))
        .join(F.broadcast(customers), "customer_id", "left")
        .select(
            "customer_id",
            F.concat_ws(" ", "first_name", "last_name").alias("full_name"),
            "address",
            "phone_number",
            "sales_date_month",
            "total_sales",
        )
    )
    ranked = Window.partitionBy("store_id", "sales_month").orderBy(F.col("total_sales").desc())
    team_mart = (
        fact.groupBy(
            "store_id",
            "sales_person_id",
            F.date_format("sales_date", "yyyy-MM").alias("sales_month"),
        )
        .agg(F.sum("total_cost").cast("decimal(18,2)").alias("total_sales"))
        .join(F.broadcast(sellers), "sales_person_id", "left")
        .withColumn("sales_rank", F.rank().over(ranked))
        .withColumn(
            "incentive",
            F.when(
                F.col("sales_rank") == 1,
                F.round(F.col("total_sales") * F.lit(0.01).cast("decimal(3,2)"), 2),
            ).otherwise(F.lit(0).cast("decimal(18,2)")),
        )
    )
    with sqlite3.connect(args.out / "marts.db") as conn:
        for name, mart in (
            ("customers_data_mart", customer_mart),
            ("sales_team_data_mart", team_mart),
        ):
            rows = [tuple(None if v is None else str(v) for v in r) for r in mart.collect()]
            pd.DataFrame(rows, columns=mart.columns).to_sql(name, conn, if_exists="replace")
    print(f"plain_spark_s={time.perf_counter() - T0:.1f}")


if __name__ == "__main__":
    main()
