"""Staging a write with rows set aside: one Spark job, the asset's rows alone in its files."""

from datetime import date

import pyarrow.parquet as pq
import pytest

from sales_platform.storage.lake import Lake
from sales_platform.storage.object_store import LocalObjectStore

ROWS = [
    (1, date(2023, 5, 1), None),
    (2, date(2023, 5, 1), "invalid_price"),
    (3, date(2023, 5, 2), None),
    (4, date(2023, 5, 2), "invalid_price"),
    (5, date(2023, 5, 2), "malformed_row"),
]


@pytest.fixture
def staged(spark, tmp_path):
    lake = Lake(LocalObjectStore(tmp_path / "lake"), catalog=None, staging_root=tmp_path / "stage")
    df = spark.createDataFrame(ROWS, "id INT, sales_date DATE, reason STRING")
    write = lake.stage(df, "raw_sales", ["2023-05-01", "2023-05-02"], "sales_date", "reason")
    yield lake, write
    lake.discard(write)
    assert not write.folder.exists()


def test_only_the_rows_without_a_value_are_the_assets(spark, staged):
    lake, write = staged
    rows = lake.read_staged(spark, write).collect()
    assert sorted((r.id, r["__partition"]) for r in rows) == [(1, "2023-05-01"), (3, "2023-05-02")]
    # The files hold the asset's columns and nothing else: the set-aside column is not in them.
    files = list(write.data.rglob("*.parquet"))
    assert files
    assert {tuple(pq.read_schema(f).names) for f in files} == {("id", "sales_date")}


def test_the_rows_set_aside_are_read_back_with_their_value(spark, staged):
    lake, write = staged
    aside = lake.read_set_aside(spark, write).collect()
    assert sorted((r.id, r.reason) for r in aside) == [
        (2, "invalid_price"),
        (4, "invalid_price"),
        (5, "malformed_row"),
    ]


def test_nothing_set_aside_reads_as_no_rows(spark, tmp_path):
    lake = Lake(LocalObjectStore(tmp_path / "lake"), catalog=None, staging_root=tmp_path / "stage")
    df = spark.createDataFrame(
        [(1, date(2023, 5, 1), None)], "id INT, sales_date DATE, reason STRING"
    )
    write = lake.stage(df, "raw_sales", ["2023-05-01"], "sales_date", "reason")
    try:
        assert lake.read_set_aside(spark, write).count() == 0
        assert lake.read_staged(spark, write).count() == 1
    finally:
        lake.discard(write)
