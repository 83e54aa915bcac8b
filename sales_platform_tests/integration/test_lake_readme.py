"""README's worked example (pyiceberg + DuckDB reading `sales_enriched` for one day), run as
written against a lake the platform wrote, and compared with the platform's own totals."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from sales_platform.schemas import SALES_ENRICHED_SCHEMA
from sales_platform.storage import iceberg
from sales_platform.storage.database import create_engine
from sales_platform.storage.lake import Lake
from sales_platform.storage.object_store import LocalObjectStore

README = Path(__file__).resolve().parents[2] / "README.md"
DAY = dt.date(2023, 1, 31)


def _example() -> str:
    text = README.read_text()
    block = re.search(r"<!-- lake-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its lake example"
    return block.group(1)


def _sale(day: dt.date, line: int, price: str, quantity: int) -> tuple:
    p = Decimal(price)
    known = (True, True, True, True)
    return (day, 1, 1, 1, "p", 1, p, quantity, p * quantity, None, "k", line, *known)


@pytest.mark.integration
def test_readme_duckdb_example_matches_the_platform_totals(spark, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    io_props = iceberg.file_io_properties(None, None)
    catalog = iceberg.open_catalog("sql", create_engine(url), io_props)
    lake = Lake(LocalObjectStore(tmp_path / "lake"), catalog)
    rows = [_sale(DAY, i, "3.25", 1 + i % 3) for i in range(40)]
    rows += [_sale(DAY + dt.timedelta(days=1), i, "99.99", 1) for i in range(5)]
    lake.write(
        spark.createDataFrame(rows, SALES_ENRICHED_SCHEMA),
        "sales_enriched",
        [DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()],
        "date_format(sales_date, 'yyyy-MM-dd')",
    )
    df, _ = lake.read(spark, "sales_enriched", [DAY.isoformat()])
    platform = df.agg(F.count(F.lit(1)).alias("n"), F.sum("total_cost").alias("t")).first()

    monkeypatch.setenv("SALES_PLATFORM_WAREHOUSE_DB_URL", url)
    monkeypatch.setenv("DAY", DAY.isoformat())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_example(), "README.md", "exec"), {})
    assert out.getvalue().strip() == f"{DAY}: {platform['n']} sales, total {platform['t']}"
    assert platform["n"] == 40
