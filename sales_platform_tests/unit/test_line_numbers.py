"""Quarantined rows point at their real line, also in files Spark splits across tasks."""

from datetime import date

import pytest
from pyspark.sql import functions as F

from sales_platform.storage import landing
from sales_platform.storage.landing import (
    LandedFile,
    StagedFile,
    inspect_file,
    read_sales_csvs,
)
from sales_platform.storage.object_store import StoredObject
from sales_platform.transforms.validate import validate_sales

DAY = date(2023, 5, 1)
HEADER = "customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost"
SPLIT = 64 * 1024


@pytest.fixture
def small_splits(spark, monkeypatch):
    """Splits of 64 KiB instead of 128 MiB, so a small file spans many tasks."""
    monkeypatch.setattr(landing, "FILE_SPLIT_BYTES", SPLIT)
    monkeypatch.setattr(landing, "_CHUNK", 8 * 1024)
    previous = {
        k: spark.conf.get(k)
        for k in ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    }
    for key in previous:
        spark.conf.set(key, str(SPLIT))
    yield
    for key, value in previous.items():
        spark.conf.set(key, value)


def _file(tmp_path, n: int, lines: list[str]) -> StagedFile:
    path = tmp_path / f"{n}.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    obj = StoredObject(f"sales_data/{DAY}/f{n}.csv", path.stat().st_size, "e", None)
    return StagedFile(LandedFile(obj, DAY, obj.key), path, inspect_file(path))


def test_line_numbers_survive_split_boundaries(spark, tmp_path, small_splits):
    lines, bad = [], {}
    for i in range(6000):  # about 230 KiB: four splits
        if i % 997 == 0:
            lines.append(f"bad{i},121,Sugar,{DAY},1,1.00,1,1.00")
            bad[f"bad{i}"] = i + 2  # the header is line 1
        elif i % 1500 == 7:
            lines.append("")  # blank lines are skipped but still numbered
        else:
            lines.append(f"{i + 1},121,Sugar,{DAY},1,1.00,1,1.00")
    files = [_file(tmp_path, 0, lines), _file(tmp_path, 1, lines[:50])]
    assert files[0].facts.size > 3 * SPLIT

    rows = read_sales_csvs(spark, files)
    validated = validate_sales(rows)
    quarantined = (
        validated.where(F.col("reject_reason").isNotNull())
        .where(F.col("source_key").endswith("f0.csv"))
        .select(F.get_json_object("raw_record", "$.customer_id").alias("id"), "line_number")
        .collect()
    )
    assert {r.id: r.line_number for r in quarantined} == bad
    counts = {r.source_key: r["count"] for r in validated.groupBy("source_key").count().collect()}
    assert counts == {f.landed.landing_key: f.facts.data_rows for f in files}


def test_cells_are_trimmed_of_the_whole_set_wherever_the_whitespace_sits(spark, tmp_path):
    """Through the reader: spaces, tabs, form feeds and vertical tabs at a cell's ends go;
    whitespace inside a quoted cell stays."""
    lines = [
        " 1 , 121 ,Sugar,  2023-05-01,1,1.00,1 ,1.00 ",
        "2,121,\tSugar,2023-05-01,1,1.00,1,1.00",
        '3,121,"Su\tgar",2023-05-01\x0b,1,1.00,1,1.00',
        "4,121,Sugar,2023-05-01,1,1.00\x0c,1,1.00",
    ]
    files = [_file(tmp_path, 0, lines)]
    rows = read_sales_csvs(spark, files)
    validated = validate_sales(rows).orderBy("line_number").collect()
    assert [r.reject_reason for r in validated] == [None] * 4
    assert [r.product_name for r in validated] == ["Sugar", "Sugar", "Su\tgar", "Sugar"]
