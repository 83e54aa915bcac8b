"""Yardstick: the same transform in Polars, the engine-independent floor on one machine.

    .venv/bin/python benchmarks/polars_yardstick.py --data-dir DIR --out DIR

Same input and rules as `plain_spark.py` (explicit all-text schema, the platform's row rules,
left joins to the four dimensions, the fact as Parquet, both marts to SQLite). Prints
`polars_s=<s>` on its last line.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import time
from pathlib import Path

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402

from sales_platform.schemas import SALES_CSV_COLUMNS  # noqa: E402

# The contract's header: the same columns the platform reads.
COLUMNS = SALES_CSV_COLUMNS
DIGITS, MONEY = r"^[0-9]+$", r"^-?[0-9]+(\.[0-9]{1,2})?$"


def _source(db: Path, query: str, names: list[str]) -> pl.DataFrame:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(query).fetchall()
    return pl.DataFrame(rows, schema=names, orient="row")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    files = sorted((args.data_dir / "bucket" / "sales_data").rglob("*.csv"))
    frames = [
        pl.scan_csv(f, schema={c: pl.String for c in COLUMNS}).with_columns(
            pl.lit(re.search(r"\d{4}-\d{2}-\d{2}", f.as_posix()).group(0)).alias("file_date")
        )
        for f in files
    ]
    t = {c: pl.col(c).str.strip_chars() for c in COLUMNS}

    def integer(c):
        return pl.when(t[c].str.contains(DIGITS)).then(t[c].cast(pl.Int32, strict=False))

    def money(c, precision):
        return pl.when(t[c].str.contains(MONEY)).then(
            t[c].cast(pl.Decimal(precision, 2), strict=False)
        )

    typed = pl.concat(frames).select(
        integer("customer_id").alias("customer_id"),
        integer("store_id").alias("store_id"),
        t["product_name"].alias("product_name"),
        t["sales_date"].str.to_date("%Y-%m-%d", strict=False).alias("sales_date"),
        integer("sales_person_id").alias("sales_person_id"),
        money("price", 10).alias("price"),
        integer("quantity").alias("quantity"),
        money("total_cost", 12).alias("total_cost"),
        pl.col("file_date").str.to_date("%Y-%m-%d").alias("file_date"),
    )
    valid = typed.filter(
        (pl.col("customer_id") > 0)
        & (pl.col("store_id") > 0)
        & (pl.col("sales_person_id") > 0)
        & (pl.col("product_name") != "")
        & (pl.col("sales_date") == pl.col("file_date"))
        & (pl.col("price") >= 0)
        & (pl.col("quantity") > 0)
        & (pl.col("total_cost") == pl.col("price") * pl.col("quantity").cast(pl.Decimal(10, 0)))
    ).drop("file_date")

    db = args.data_dir / "source.db"
    customers = _source(
        db,
        "SELECT customer_id, first_name, last_name, address, phone_number FROM customer",
        ["customer_id", "first_name", "last_name", "address", "phone_number"],
    ).with_columns(pl.col("customer_id").cast(pl.Int32))
    stores = _source(db, "SELECT id FROM store", ["store_id"]).with_columns(
        pl.col("store_id").cast(pl.Int32), pl.lit(True).alias("store_known")
    )
    sellers = _source(
        db, "SELECT id, first_name, last_name FROM sales_team", ["sales_person_id", "sf", "sl"]
    ).with_columns(pl.col("sales_person_id").cast(pl.Int32))
    products = _source(db, "SELECT id, name FROM product", ["product_id", "product_name"])

    fact = (
        valid.join(
            customers.select("customer_id", pl.lit(True).alias("customer_known")).lazy(),
            "customer_id",
            "left",
        )
        .join(stores.lazy(), "store_id", "left")
        .join(
            sellers.select("sales_person_id", pl.lit(True).alias("seller_known")).lazy(),
            "sales_person_id",
            "left",
        )
        .join(products.lazy(), "product_name", "left")
        .collect()
    )
    fact.write_parquet(args.out / "fact.parquet")

    customer_mart = (
        fact.group_by("customer_id", pl.col("sales_date").dt.truncate("1mo").alias("month"))
        .agg(pl.col("total_cost").sum().alias("total_sales"))
        .join(customers, "customer_id", "left")
    )
    team = fact.group_by(
        "store_id", "sales_person_id", pl.col("sales_date").dt.strftime("%Y-%m").alias("month")
    ).agg(pl.col("total_cost").sum().alias("total_sales"))
    team_mart = (
        team.with_columns(
            pl.col("total_sales")
            .rank("min", descending=True)
            .over("store_id", "month")
            .alias("sales_rank")
        )
        .with_columns(
            pl.when(pl.col("sales_rank") == 1)
            .then((pl.col("total_sales") * pl.lit(1).cast(pl.Decimal(3, 2)) / 100).round(2))
            .otherwise(0)
            .alias("incentive")
        )
        .join(sellers, "sales_person_id", "left")
    )
    with sqlite3.connect(args.out / "marts.db") as conn:
        for name, mart in (
            ("customers_data_mart", customer_mart),
            ("sales_team_data_mart", team_mart),
        ):
            rows = [tuple(None if v is None else str(v) for v in r) for r in mart.iter_rows()]
            pd.DataFrame(rows, columns=mart.columns).to_sql(name, conn, if_exists="replace")
    print(f"polars_s={time.perf_counter() - T0:.1f}")


if __name__ == "__main__":
    main()
