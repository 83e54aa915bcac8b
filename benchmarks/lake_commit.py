"""Benchmark: what the Iceberg catalog commit costs per published day, next to the Spark write.

    .venv/bin/python benchmarks/lake_commit.py [--days 10] [--rows-per-day 200000]
        [--catalog-url mysql+pymysql://root@127.0.0.1:3306/bench]

Writes --days days of `raw_sales`-shaped rows one publish per day (as daily runs do) into a lake
in a temporary folder, the catalog on SQLite (default) or the given database. Per day it times
the Spark write of the staged Parquet (`stage`), the footer checks and upload, and the catalog
commit (`_commit`: read the current manifests, write the new ones, compare-and-swap); printed as
medians in seconds. The commit grows with the table's manifests (one per publish until a vacuum).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F

from sales_platform.storage import iceberg
from sales_platform.storage.database import create_engine
from sales_platform.storage.lake import Lake
from sales_platform.storage.object_store import LocalObjectStore
from sales_platform.storage.spark import build_spark_session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rows-per-day", type=int, default=200_000)
    parser.add_argument("--catalog-url", default=None)
    args = parser.parse_args()
    spark = build_spark_session()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.catalog_url or f"sqlite:///{Path(tmp) / 'warehouse.db'}"
        catalog = iceberg.open_catalog(
            "sql", create_engine(url), iceberg.file_io_properties(None, None)
        )
        lake = Lake(LocalObjectStore(Path(tmp) / "lake"), catalog)
        commit_times: list[float] = []
        original = Lake._commit

        def timed(self, *a, **k):
            start = time.perf_counter()
            try:
                return original(self, *a, **k)
            finally:
                commit_times.append(time.perf_counter() - start)

        Lake._commit = timed
        stage_t, publish_t = [], []
        for i in range(args.days):
            day = dt.date(2023, 1, 1) + dt.timedelta(days=i)
            df = spark.range(args.rows_per_day).select(
                (F.col("id") % 1000).cast("int").alias("customer_id"),
                (F.col("id") % 20).cast("int").alias("store_id"),
                F.lit("product").alias("product_name"),
                F.lit(day).alias("sales_date"),
                (F.col("id") % 50).cast("int").alias("sales_person_id"),
                F.lit("9.99").cast("decimal(10,2)").alias("price"),
                F.lit(2).alias("quantity"),
                F.lit("19.98").cast("decimal(12,2)").alias("total_cost"),
                F.lit(None).cast("string").alias("additional_column"),
                F.lit("sales_data/x.csv").alias("source_key"),
                (F.col("id") + 2).alias("line_number"),
            )
            start = time.perf_counter()
            staged = lake.stage(df, "raw_sales", [day.isoformat()], "cast(sales_date as string)")
            stage_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            lake.publish(staged)
            publish_t.append(time.perf_counter() - start)
        med = statistics.median
        commit = med(commit_times[1:] or commit_times)
        publish = med(publish_t[1:] or publish_t)
        print(f"catalog: {url.split('://')[0]}, {args.days} day(s) x {args.rows_per_day} rows")
        print(f"spark write (stage) per day: {med(stage_t[1:] or stage_t):.3f} s")
        print(f"publish per day:             {publish:.3f} s")
        print(f"  of which catalog commit:   {commit:.3f} s (last day {commit_times[-1]:.3f} s)")
        print(f"  footer check + upload:     {publish - commit:.3f} s")


if __name__ == "__main__":
    main()
