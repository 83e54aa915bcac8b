"""The generator against a real S3 API (moto server) and the real MariaDB; the oracle reads back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import boto3
import pytest
import sqlalchemy as sa

from sales_platform import schemas
from sales_platform.generate import generate
from sales_platform.storage.object_store import LocalObjectStore, S3ObjectStore
from sales_platform_tests import oracle

pytestmark = pytest.mark.integration

ARGS = dict(
    start_date=date(2023, 2, 26),
    days=5,
    rows_per_day=2000,
    seed=2023,
    files_per_day=2,
    customers=80,
    stores=3,
    products=30,
    sellers_per_store=4,
    unknown_key_fraction=0.03,
    bad_row_fraction=0.04,
    bad_file_fraction=0.4,
    progress=False,
)


def test_generate_into_s3_and_mariadb_then_oracle_reads_it_back(
    s3_endpoint, s3_bucket, mariadb_url, tmp_path
):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    store = S3ObjectStore(client, s3_bucket)
    engine = sa.create_engine(mariadb_url)
    try:
        summary = generate(store, engine, **ARGS)

        # Every file landed under its key, with the sizes the summary reports.
        listed = {o.key: o.size for o in store.list("sales_data/")}
        assert sorted(listed) == summary.files and len(listed) == 10
        assert sum(listed.values()) == summary.bytes
        assert len(summary.bad_files) == 4

        # Same seed, local folder + SQLite: byte-identical files, identical table rows.
        local = LocalObjectStore(tmp_path / "store")
        lite = sa.create_engine(f"sqlite:///{tmp_path / 'source.sqlite'}")
        generate(local, lite, **ARGS)
        for key in summary.files:
            assert store.get_bytes(key) == local.get_bytes(key), key
        with engine.connect() as maria, lite.connect() as sqlite:
            for name, table in schemas.SOURCE_TABLES.items():
                query = sa.select(table).order_by(*table.primary_key)
                a = [dict(r) for r in maria.execute(query).mappings()]
                b = [dict(r) for r in sqlite.execute(query).mappings()]
                if name == "product":  # SQLite hands NUMERIC back as float
                    for r in b:
                        for c in ("current_price", "old_price"):
                            r[c] = Decimal(str(r[c])).quantize(Decimal("0.01"))
                assert a == b, name

        # MariaDB keeps prices as DECIMAL, and the files use them.
        with engine.connect() as conn:
            product = schemas.product_table
            query = sa.select(product.c.name, product.c.current_price)
            prices = {name: price for name, price in conn.execute(query)}
        assert all(isinstance(p, Decimal) for p in prices.values())

        # The oracle reads S3 + MariaDB back and agrees with the summary.
        results, sales = oracle.scan(store)
        assert {r.key for r in results if not r.valid} == set(summary.bad_files)
        assert len(sales) == summary.accepted_rows
        assert oracle.expected_accepted_rows(store) == {
            d: n for d, n in summary.accepted_rows_by_day.items() if n
        }
        assert oracle.expected_daily_totals(store) == {
            d: t
            for d, t in summary.accepted_total_by_day.items()
            if summary.accepted_rows_by_day[d]
        }
        assert sum(s.total_cost for s in sales) == summary.accepted_total
        known = [s for s in sales if s.product_name in prices]
        assert len(sales) - len(known) > 0
        assert all(s.price == prices[s.product_name] for s in known)

        for month in (date(2023, 2, 1), date(2023, 3, 1)):
            customers, team = oracle.expected_marts(store, engine, month)
            month_total = sum(
                t for d, t in summary.accepted_total_by_day.items() if d.month == month.month
            )
            assert sum(r["total_sales"] for r in customers) == month_total
            assert sum(r["total_sales"] for r in team) == month_total
            assert any(r["full_name"] is None for r in customers)  # unknown customers kept
            assert all(r["full_name"] for r in customers if r["customer_id"] <= 80)
            leaders = [r for r in team if r["sales_rank"] == 1]
            assert {r["store_id"] for r in leaders} >= {121, 122, 123}
            assert all(r["incentive"] > 0 for r in leaders)
    finally:
        engine.dispose()
