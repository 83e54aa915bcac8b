"""The landing zone: which files belong to which business day, and reading them into Spark.

Files land under `sales_data/` with the business date in the key: a `YYYY-MM-DD/` or
`sales_date=YYYY-MM-DD/` path segment, or a date in the file name. Columns are matched by header
name in any order; columns beyond the contract are kept as JSON in `additional_column`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.schemas import LANDING_PREFIX, SALES_CSV_COLUMNS
from sales_platform.storage.object_store import ObjectStore, StoredObject

_DATE = r"(\d{4}-\d{2}-\d{2})"
_SEGMENT_DATE = re.compile(rf"(?:^|/)(?:sales_date=)?{_DATE}/")
_NAME_DATE = re.compile(_DATE)
# Enough bytes for any sane header line.
HEADER_PROBE_BYTES = 64 * 1024


def business_date_from_key(key: str) -> date | None:
    """The business date a landing key names, or None when it names none (or an impossible one)."""
    match = _SEGMENT_DATE.search(key)
    if match is None:
        match = _NAME_DATE.search(key.rsplit("/", 1)[-1])
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


@dataclass(frozen=True)
class LandedFile:
    obj: StoredObject
    business_date: date

    @property
    def key(self) -> str:
        return self.obj.key


def landed_files(store: ObjectStore, days: Iterable[date]) -> dict[date, list[LandedFile]]:
    """The CSV files in landing for each of `days` (one listing of the prefix)."""
    wanted = set(days)
    found: dict[date, list[LandedFile]] = defaultdict(list)
    for obj in store.list(LANDING_PREFIX):
        if not obj.key.lower().endswith(".csv"):
            continue
        day = business_date_from_key(obj.key)
        if day in wanted:
            found[day].append(LandedFile(obj, day))
    return dict(found)


class FileRejected(ValueError):
    """A whole file cannot be read as sales: the reason says why."""


def read_header(store: ObjectStore, key: str) -> tuple[str, ...] | None:
    """The file's header columns; None for an empty file. Raises FileRejected when unusable."""
    probe = store.get_bytes(key, (0, HEADER_PROBE_BYTES - 1))
    if not probe:
        return None
    first_line = probe.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"header is not UTF-8 text ({exc.reason})") from exc
    header = tuple(c.strip() for c in next(csv.reader(io.StringIO(text)), []))
    missing = [c for c in SALES_CSV_COLUMNS if c not in header]
    if missing:
        raise FileRejected(f"missing mandatory column(s): {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise FileRejected("duplicate column names in the header")
    return header


def _stage_file(store: ObjectStore, key: str, target: Path) -> None:
    source = store.local_path(key)
    if source is not None:
        os.symlink(source, target)
    else:
        store.download(key, target)


def read_sales_csvs(
    spark: SparkSession,
    store: ObjectStore,
    files: list[tuple[LandedFile, tuple[str, ...]]],
    stage: Path,
) -> DataFrame:
    """All rows of the given files (with their headers) as raw text, in one DataFrame.

    Columns: the contract's columns as strings, `additional_column`, `source_key`,
    `business_date`. Files are staged as `<n>.csv` so a hostile key never reaches a path or a
    Spark option; the number maps each row back to its key.
    """
    index_rows = []
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for n, (landed, header) in enumerate(files):
        target = stage / f"{n}.csv"
        _stage_file(store, landed.key, target)
        groups[header].append(str(target))
        index_rows.append((n, landed.key, landed.business_date))

    frames = []
    for header, paths in groups.items():
        raw = spark.read.csv(
            paths,
            schema=T.StructType([T.StructField(c, T.StringType()) for c in header]),
            header=True,
            enforceSchema=True,
            mode="PERMISSIVE",
            encoding="UTF-8",
        )
        extras = [c for c in header if c not in SALES_CSV_COLUMNS]
        additional = (
            F.to_json(F.struct(*[F.col(f"`{c}`") for c in extras]))
            if extras
            else F.lit(None).cast("string")
        )
        frames.append(
            raw.select(
                *[F.col(c) for c in SALES_CSV_COLUMNS],
                additional.alias("additional_column"),
                F.regexp_extract(F.input_file_name(), r"/(\d+)\.csv$", 1)
                .cast("int")
                .alias("file_index"),
            )
        )
    index = spark.createDataFrame(
        index_rows,
        T.StructType(
            [
                T.StructField("file_index", T.IntegerType(), False),
                T.StructField("source_key", T.StringType(), False),
                T.StructField("business_date", T.DateType(), False),
            ]
        ),
    )
    if not frames:
        empty = T.StructType(
            [T.StructField(c, T.StringType()) for c in SALES_CSV_COLUMNS]
            + [T.StructField("additional_column", T.StringType())]
        )
        return spark.createDataFrame([], empty).crossJoin(index.drop("file_index")).limit(0)
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows.join(F.broadcast(index), "file_index").drop("file_index")
