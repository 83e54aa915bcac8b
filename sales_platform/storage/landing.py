"""The landing zone: which files belong to a business day, inspecting them, reading them in Spark.

Files land under `sales_data/` with the business date in the key: a `YYYY-MM-DD/` or
`sales_date=YYYY-MM-DD/` path segment, or a date in the file name. Once a day is committed its
files move to `sales_data_processed/<date>/<key below sales_data/>`; rejected files move to
`sales_data_error/<date>/…` with a `.reason.json` manifest beside them. A day is always rebuilt
from all of its current files, in landing or archived, so any rerun converges.

Columns are matched by header name in any order; columns beyond the contract are kept as JSON in
`additional_column`. Every line is numbered so a quarantined row can be found in its file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.schemas import (
    ERROR_PREFIX,
    LANDING_PREFIX,
    PROCESSED_PREFIX,
    SALES_CSV_COLUMNS,
)
from sales_platform.storage.object_store import ObjectStore, StoredObject
from sales_platform.storage.spark import FILE_SPLIT_BYTES

_DATE = r"(\d{4}-\d{2}-\d{2})"
_SEGMENT_DATE = re.compile(rf"(?:^|/)(?:sales_date=)?{_DATE}/")
_NAME_DATE = re.compile(_DATE)
# Divides FILE_SPLIT_BYTES, so line counts are known at every split boundary.
_CHUNK = 8 * 1024 * 1024
_EXTRA_FIELD = "__extra_field"


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


def is_sales_file(key: str) -> bool:
    return key.startswith(LANDING_PREFIX) and not key.endswith("/")


def _below_landing(key: str) -> str:
    return key[len(LANDING_PREFIX) :]


def archive_key(key: str, day: date) -> str:
    return f"{PROCESSED_PREFIX}{day.isoformat()}/{_below_landing(key)}"


def error_key(key: str, day: date | None) -> str:
    return f"{ERROR_PREFIX}{day.isoformat() if day else 'undated'}/{_below_landing(key)}"


@dataclass(frozen=True)
class LandedFile:
    """One current file of a business day: where it is now, and the key it landed under."""

    obj: StoredObject
    business_date: date
    landing_key: str

    @property
    def archived(self) -> bool:
        return self.obj.key != self.landing_key


def current_files(store: ObjectStore, days: Iterable[date]) -> dict[date, list[LandedFile]]:
    """Every current file of each day: still in landing, or already archived.

    A key that is in both places was re-uploaded after it was processed: the landing copy is
    the newer content and replaces the archived one.
    """
    wanted = set(days)
    found: dict[date, dict[str, LandedFile]] = defaultdict(dict)
    for day in sorted(wanted):
        prefix = f"{PROCESSED_PREFIX}{day.isoformat()}/"
        for obj in store.list(prefix):
            if obj.key.endswith(".reason.json"):
                continue
            landing_key = LANDING_PREFIX + obj.key[len(prefix) :]
            found[day][landing_key] = LandedFile(obj, day, landing_key)
    for obj in store.list(LANDING_PREFIX):
        day = business_date_from_key(obj.key)
        if day in wanted and is_sales_file(obj.key):
            found[day][obj.key] = LandedFile(obj, day, obj.key)
    return {
        day: sorted(files.values(), key=lambda f: (f.obj.last_modified, f.landing_key))
        for day, files in found.items()
    }


class FileRejected(ValueError):
    """A whole file cannot be read as sales: the message says why."""


@dataclass
class FileFacts:
    """What a pass over a file's bytes established, before Spark reads it."""

    sha256: str
    size: int
    header: tuple[str, ...]
    # Non-empty lines after the header: the rows Spark must account for.
    data_rows: int
    # Newlines before each split boundary k * FILE_SPLIT_BYTES (k >= 1).
    newlines_at_split: list[int] = field(default_factory=list)


def parse_header(first_line: bytes) -> tuple[str, ...]:
    text = first_line.rstrip(b"\r").decode("utf-8-sig")
    header = tuple(c.strip() for c in next(csv.reader(io.StringIO(text)), []))
    missing = [c for c in SALES_CSV_COLUMNS if c not in header]
    if missing:
        raise FileRejected(f"missing mandatory column(s): {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise FileRejected("duplicate column names in the header")
    return header


def inspect_file(path: Path) -> FileFacts:
    """One pass over the bytes: SHA-256, strict UTF-8, header, and a count of the data rows.

    Raises FileRejected for an empty, header-only, undecodable or header-less file.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    lines = empty = 0
    tail = b"\n\n"  # as if the file followed a blank line: a leading blank line counts as empty
    first_line = b""
    newlines_at_split: list[int] = []
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise FileRejected(
                    f"not UTF-8 text: undecodable byte at offset {offset + exc.start}"
                ) from exc
            if offset == 0:
                first_line = chunk.split(b"\n", 1)[0]
            buf = np.frombuffer(tail + chunk, dtype=np.uint8)
            at = np.flatnonzero(buf[2:] == 10) + 2
            before = buf[at - 1]
            # An empty line: nothing (or only a CR) between two newlines.
            empty += int(np.count_nonzero((before == 10) | ((before == 13) & (buf[at - 2] == 10))))
            lines += len(at)
            offset += len(chunk)
            tail = (tail + chunk)[-2:]
            if offset % FILE_SPLIT_BYTES == 0:
                newlines_at_split.append(lines)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise FileRejected("not UTF-8 text: truncated character at the end") from exc
    if offset == 0:
        raise FileRejected("empty file (zero bytes)")
    if tail[-1:] != b"\n" and tail[-1:] != b"\r":
        lines += 1  # a last line without a newline
    header = parse_header(first_line)
    data_rows = lines - empty - 1
    if data_rows <= 0:
        raise FileRejected("header only: no rows")
    return FileFacts(digest.hexdigest(), offset, header, data_rows, newlines_at_split)


def stage_file(store: ObjectStore, key: str, target: Path) -> Path:
    """Put the object where local Spark can read it: a link to a local file, or a download."""
    source = store.local_path(key)
    if source is not None:
        os.symlink(source, target)
    else:
        store.download(key, target)
    return target


def _ddl(columns: list[str]) -> str:
    return ", ".join(f"`{c.replace('`', '``')}` STRING" for c in columns)


@dataclass(frozen=True)
class StagedFile:
    landed: LandedFile
    path: Path
    facts: FileFacts


def read_sales_csvs(spark: SparkSession, files: list[StagedFile]) -> DataFrame:
    """All data rows of the staged files as raw text, numbered, in one DataFrame.

    Columns: the contract's columns as strings, `additional_column`, `malformed` (more fields
    than the header), `source_key` (the landing key), `business_date`, `file_index`,
    `split_start` and `line_in_split` (see `with_line_numbers`). Files are staged as `<n>.csv`,
    so a hostile key never reaches a path or a Spark option.
    """
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for staged in files:
        groups[staged.facts.header].append(str(staged.path))

    frames = []
    for header, paths in groups.items():
        lines = spark.read.text(paths).select(
            "value",
            F.regexp_extract(F.col("_metadata.file_name"), r"^(\d+)\.csv$", 1)
            .cast("int")
            .alias("file_index"),
            F.col("_metadata.file_block_start").alias("split_start"),
            # One split per task (storage/spark.py): the row's index in its task is its
            # line's index in the split.
            F.monotonically_increasing_id().bitwiseAND((1 << 33) - 1).alias("line_in_split"),
        )
        data = lines.where(
            ~((F.col("split_start") == 0) & (F.col("line_in_split") == 0)) & (F.col("value") != "")
        )
        # RFC 4180: a quote inside a quoted field is doubled (Spark's default escape is `\`).
        parsed = F.from_csv(
            F.col("value"), _ddl([*header, _EXTRA_FIELD]), {"mode": "PERMISSIVE", "escape": '"'}
        )
        extras = [c for c in header if c not in SALES_CSV_COLUMNS]
        row = data.select(parsed.alias("r"), "file_index", "split_start", "line_in_split")
        additional = (
            F.to_json(F.struct(*[F.col("r").getField(c).alias(c) for c in extras]))
            if extras
            else F.lit(None).cast("string")
        )
        frames.append(
            row.select(
                *[F.col("r").getField(c).alias(c) for c in SALES_CSV_COLUMNS],
                additional.alias("additional_column"),
                F.col("r").getField(_EXTRA_FIELD).isNotNull().alias("malformed"),
                "file_index",
                "split_start",
                "line_in_split",
            )
        )
    index = _file_index(spark, files)
    if not frames:
        schema = T.StructType(
            [T.StructField(c, T.StringType()) for c in SALES_CSV_COLUMNS]
            + [
                T.StructField("additional_column", T.StringType()),
                T.StructField("malformed", T.BooleanType()),
                T.StructField("file_index", T.IntegerType()),
                T.StructField("split_start", T.LongType()),
                T.StructField("line_in_split", T.LongType()),
            ]
        )
        return spark.createDataFrame([], schema).join(index, "file_index")
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows.join(F.broadcast(index), "file_index")


def _file_index(spark: SparkSession, files: list[StagedFile]) -> DataFrame:
    return spark.createDataFrame(
        [(int(s.path.stem), s.landed.landing_key, s.landed.business_date) for s in files],
        "file_index INT, source_key STRING, business_date DATE",
    )


def with_line_numbers(spark: SparkSession, rows: DataFrame, files: list[StagedFile]) -> DataFrame:
    """Add `line_number` (1-based, the header is line 1) to rows from `read_sales_csvs`.

    A split that starts at byte s > 0 begins after the first newline at or after s (Hadoop's
    line reader), so the lines before it are the newlines before s, plus one.
    """
    splits = []
    for staged in files:
        n = int(staged.path.stem)
        splits.append((n, 0, 0))
        for k, newlines in enumerate(staged.facts.newlines_at_split, start=1):
            splits.append((n, k * FILE_SPLIT_BYTES, newlines + 1))
    table = spark.createDataFrame(splits, "file_index INT, split_start LONG, lines_before LONG")
    return rows.join(F.broadcast(table), ["file_index", "split_start"], "left").withColumn(
        "line_number", F.col("lines_before") + F.col("line_in_split") + 1
    )
