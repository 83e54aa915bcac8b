"""Benchmark: what PII encryption costs, as a share of a pipeline run.

    .venv/bin/python benchmarks/pii_encryption.py                       # ~2 min here
    .venv/bin/python benchmarks/pii_encryption.py --days 2 --rows-per-day 1000000 --customers 50000

Generates a local data set (folder + SQLite) in a temporary directory, runs the whole pipeline
once in-process (`sales-platform materialize`: daily job, then the month's marts), then times, on
the same data and Spark session, exactly the PII work a run does:

- encrypt: the customer and sales-team rows, field by field, as the snapshot assets do
  (driver, before Spark);
- decrypt: the customers snapshot read from the lake and decrypted through mapInArrow, every
  value checked (`decrypted_now`), as the customer mart does; and the same read without
  decryption, so the difference is decryption's own cost;
- the start of Spark's Python workers, which only the decryption needs (measured cold vs warm
  before the run, in the same session).

Each is the median of --repeat timings. The share is (encrypt + read and decrypt + worker start)
/ run. PII cost grows with the number of customers, the run with the day's sales: the cipher
throughput printed last lets you project other sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--rows-per-day", type=int, default=500_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the data")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-pii-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        os.environ["SALES_PLATFORM_DATA_DIR"] = str(root / "data")
        os.environ.pop("SALES_PLATFORM_ENV", None)
        os.environ.setdefault("DAGSTER_HOME", str(root / "dagster_home"))
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        run(args)


def run(args: argparse.Namespace) -> None:
    import dagster as dg

    from sales_platform.cli import _resources, materialize
    from sales_platform.generate import generate
    from sales_platform.schemas import LAKE_SCHEMAS, SOURCE_TABLES
    from sales_platform.settings import Settings
    from sales_platform.storage.lake import UNPARTITIONED
    from sales_platform.storage.spark import build_spark_session
    from sales_platform.transforms import pii

    start = date(2023, 1, 1)
    end = start + timedelta(days=args.days - 1)
    settings = Settings.from_env()
    with _resources(settings, "landing", "source_db") as res:
        summary = generate(
            res.landing.open(),
            res.source_db.engine(),
            start_date=start,
            days=args.days,
            rows_per_day=args.rows_per_day,
            seed=1,
            customers=args.customers,
            progress=False,
        )
    print(
        f"data: {summary.bytes / 1e6:.0f} MB of CSV, {summary.rows:,} sales rows, "
        f"{args.customers:,} customers"
    )

    # Spark's Python workers start on the first mapInArrow of a process (the mart's decryption:
    # nothing else in a run uses Python workers), so their start is a per-run cost of PII.
    spark = build_spark_session()
    probe = spark.range(4).repartition(2)
    for _ in range(3):  # the JVM's own first-job warm-up is not a PII cost
        probe.collect()
    started = time.perf_counter()
    probe.mapInArrow(lambda batches: batches, probe.schema).collect()
    cold = time.perf_counter() - started
    warm = _median_seconds(
        lambda: probe.mapInArrow(lambda batches: batches, probe.schema).collect(), args.repeat
    )
    worker_start = max(cold - warm, 0.0)

    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        materialize(start, end, settings=settings, instance=instance)
        # Add back the worker start the warm-up above took out of the run.
        run_seconds = time.perf_counter() - started + worker_start
    print(f"run (daily job + marts, in-process): {run_seconds:.1f} s")
    with _resources(settings, "source_db", "lake", "pii_keys") as res:
        cipher = res.pii_keys.keyring().field_cipher()
        tables = {}
        with res.source_db.engine().connect() as conn:
            for asset, table in (("customers", "customer"), ("sales_team", "sales_team")):
                rows = conn.execute(sa.select(SOURCE_TABLES[table])).mappings()
                tables[asset] = [dict(r) for r in rows]
        values = sum(
            sum(1 for r in tables[a] for c in pii.PII_SPECS[a].columns if r[c] is not None)
            for a in tables
        )

        def encrypt_all():
            for asset, rows in tables.items():
                pii.encrypt_records(rows, pii.PII_SPECS[asset], cipher)

        encrypt_seconds = _median_seconds(encrypt_all, args.repeat)

        lake = res.lake.lake()
        spec = pii.CUSTOMER_MART_PII  # what the mart decrypts

        def snapshot():
            df, _ = lake.read(spark, "customers", [UNPARTITIONED], schema=LAKE_SCHEMAS["customers"])
            return df

        def read_only():
            snapshot().localCheckpoint(eager=True).unpersist()

        def read_and_decrypt():
            pii.decrypted_now(snapshot(), spec, cipher).unpersist()

        read_and_decrypt()  # Python workers start once per session: not a per-run cost
        read_seconds = _median_seconds(read_only, args.repeat)
        decrypt_total = _median_seconds(read_and_decrypt, args.repeat)
        decrypt_seconds = max(decrypt_total - read_seconds, 0.0)
        customer_values = sum(
            1 for r in tables["customers"] for c in spec.columns if r[c] is not None
        )

        tokens = pii.encrypt_records(tables["customers"], spec, cipher)
        keys = [r[spec.row_key] for r in tokens]

        def driver_decrypt():
            for column in spec.columns:
                cipher.decrypt_many([r[column] for r in tokens], spec.aads(column, keys), column)

        driver_decrypt_seconds = _median_seconds(driver_decrypt, args.repeat)

    pii_seconds = encrypt_seconds + decrypt_total + worker_start
    print(f"encrypt {values:,} values (customers + sales team): {encrypt_seconds:.2f} s")
    print(
        f"customers snapshot read + decrypt {customer_values:,} values in Spark: "
        f"{decrypt_total:.2f} s (read alone {read_seconds:.2f} s, decryption "
        f"{decrypt_seconds:.2f} s); Python workers' start {worker_start:.2f} s"
    )
    print(
        f"PII encryption share of the run: {pii_seconds / run_seconds:.1%} "
        f"({pii_seconds:.2f} s of {run_seconds:.1f} s; without the snapshot read the mart "
        f"does anyway: {(pii_seconds - read_seconds) / run_seconds:.1%})"
    )
    print(
        f"cipher throughput on the driver: encrypt {values / encrypt_seconds:,.0f} values/s, "
        f"decrypt {customer_values / driver_decrypt_seconds:,.0f} values/s"
    )


if __name__ == "__main__":
    sys.exit(main())
