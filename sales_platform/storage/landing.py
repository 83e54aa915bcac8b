"""The landing zone: which files belong to a business day, inspecting them, reading them in Spark.

Files land under `sales_data/` with the business date in the key: a `YYYY-MM-DD/` or
`sales_date=YYYY-MM-DD/` path segment, or a date in the file name. Once a day is committed its
files move to `sales_data_processed/<date>/<key below sales_data/>`; rejected files move to
`sales_data_error/<date>/…` with a `.reason.json` manifest beside them; over-long keys are
bounded by a hash. Moved copies carry the landing version's identity as object metadata. A day
is always rebuilt from all of its current files, in landing or archived, so any rerun converges.

Columns are matched by header name in any order; columns beyond the contract are kept as JSON in
`additional_column`. Every line is numbered so a quarantined row can be found in its file: LF,
CRLF and CR-only files are staged for Spark with LF line ends (`_Lines`), so the byte count and
Spark's reader see the same lines.
"""

from __future__ import annotations

import base64
import codecs
import csv
import hashlib
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
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
from sales_platform.transforms.validate import BUSINESS_DAY, MULTILINE_RECORD, STRAY_LINE_BREAK

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


# S3 keys are at most 1,024 bytes; the store's own prefix and `.reason.json` need room too.
MAX_KEY_BYTES = 900


def bounded_key(key: str, limit: int = MAX_KEY_BYTES) -> str:
    """key itself when it fits in `limit` UTF-8 bytes; else its head, then a hash of the whole.

    The hash keeps distinct over-long keys distinct; the extension is kept for whoever opens it.
    """
    raw = key.encode("utf-8")
    if len(raw) <= limit:
        return key
    name = key.rsplit("/", 1)[-1]
    ext = name[name.rfind(".") :] if "." in name and len(name) - name.rfind(".") <= 10 else ""
    tail = f"~{hashlib.sha256(raw).hexdigest()[:32]}{ext}"
    head = raw[: limit - len(tail.encode())].decode("utf-8", errors="ignore")
    return head + tail


def archive_key(key: str, day: date) -> str:
    return bounded_key(f"{PROCESSED_PREFIX}{day.isoformat()}/{_below_landing(key)}")


def error_key(key: str, day: date | None) -> str:
    folder = day.isoformat() if day else "undated"
    return bounded_key(f"{ERROR_PREFIX}{folder}/{_below_landing(key)}")


# Object metadata on an archived or rejected copy: the identity of the version that landed, so
# a rebuild from the archive is the same file version whatever S3 did to the ETag on copy.
META_LANDING_ETAG = "landing-etag"
META_LANDING_KEY = "landing-key"  # base64 of the landing key, only when the copy's key is hashed


def identity_metadata(landing_key: str, landing_etag: str, moved_to: str) -> dict[str, str]:
    meta = {META_LANDING_ETAG: landing_etag}
    if not moved_to.endswith(_below_landing(landing_key)):
        meta[META_LANDING_KEY] = base64.urlsafe_b64encode(landing_key.encode()).decode()
    return meta


@dataclass(frozen=True)
class LandedFile:
    """One current file of a business day: where it is now, and the key it landed under.

    `etag` is the landing version's identity (kept on the archived copy's metadata). `fallback`
    is the archived version of the same key when a re-upload waits in landing: served instead
    of the re-upload if that is rejected (see README, "File identity and re-uploads").
    """

    obj: StoredObject
    business_date: date
    landing_key: str
    etag: str = ""
    fallback: LandedFile | None = None

    @property
    def archived(self) -> bool:
        return self.obj.key != self.landing_key

    @property
    def identity(self) -> str:
        return self.etag or self.obj.etag


def _archived_file(store: ObjectStore, obj: StoredObject, day: date, prefix: str) -> LandedFile:
    meta = store.metadata(obj.key) if hasattr(store, "metadata") else {}
    landing_key = LANDING_PREFIX + obj.key[len(prefix) :]
    if META_LANDING_KEY in meta:
        landing_key = base64.urlsafe_b64decode(meta[META_LANDING_KEY]).decode()
    return LandedFile(obj, day, landing_key, meta.get(META_LANDING_ETAG, obj.etag))


def current_files(store: ObjectStore, days: Iterable[date]) -> dict[date, list[LandedFile]]:
    """Every current file of each day: still in landing, or already archived.

    A key that is in both places was re-uploaded after it was processed: the landing copy is
    the newer content and replaces the archived one, which stays its fallback.
    """
    wanted = set(days)
    found: dict[date, dict[str, LandedFile]] = defaultdict(dict)
    for day in sorted(wanted):
        prefix = f"{PROCESSED_PREFIX}{day.isoformat()}/"
        for obj in store.list(prefix):
            if obj.key.endswith(".reason.json"):
                continue
            landed = _archived_file(store, obj, day, prefix)
            found[day][landed.landing_key] = landed
    for obj in store.list(LANDING_PREFIX):
        day = business_date_from_key(obj.key)
        if day in wanted and is_sales_file(obj.key):
            archived = found[day].get(obj.key)
            found[day][obj.key] = LandedFile(obj, day, obj.key, obj.etag, archived)
    return {
        day: sorted(files.values(), key=lambda f: (f.obj.last_modified, f.landing_key))
        for day, files in found.items()
    }


class FileRejected(ValueError):
    """A whole file cannot be read as sales: the message says why."""


# Beyond these a file is not a sales export with a few odd lines: it is rejected whole.
MAX_FLAGGED_LINES = 10_000
MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_HEADER_COLUMNS = 1_000
_LF, _CR, _QUOTE, _SPACE = 10, 13, 34, 32


@dataclass
class FileFacts:
    """What a pass over a file's bytes established, before Spark reads it.

    Counts and offsets are of the staged copy: the file's lines, each ended by one LF.
    """

    sha256: str
    size: int
    header: tuple[str, ...]
    # Non-empty lines after the header: the rows Spark must account for.
    data_rows: int
    # Newlines before each split boundary k * FILE_SPLIT_BYTES (k >= 1).
    newlines_at_split: list[int] = field(default_factory=list)
    # Line number -> reason, for the rows the byte pass already knows are broken.
    flagged_lines: dict[int, str] = field(default_factory=dict)
    # The staged copy differs from the original bytes (CR line ends, joined records).
    rewritten: bool = False


def parse_header(first_line: bytes) -> tuple[str, ...]:
    text = first_line.rstrip(b"\r").decode("utf-8-sig")
    try:
        header = tuple(c.strip() for c in next(csv.reader(io.StringIO(text)), []))
    except csv.Error as exc:  # e.g. a column name longer than the csv module's field limit
        raise FileRejected(f"the header is not readable as CSV: {exc}") from exc
    if len(header) > MAX_HEADER_COLUMNS:
        raise FileRejected(f"{len(header)} columns in the header (at most {MAX_HEADER_COLUMNS})")
    missing = [c for c in SALES_CSV_COLUMNS if c not in header]
    if missing:
        raise FileRejected(f"missing mandatory column(s): {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise FileRejected("duplicate column names in the header")
    return header


def _ends_in_quote(line: bytes, in_quote: bool) -> bool:
    """Whether an RFC 4180 line ends inside a quoted field (a quote opens one only at a
    field's start; a doubled quote inside one is a quote)."""
    i, n, field_start = 0, len(line), not in_quote
    while i < n:
        if in_quote:
            j = line.find(b'"', i)
            if j < 0:
                return True
            if j + 1 < n and line[j + 1] == _QUOTE:
                i = j + 2
                continue
            in_quote, field_start, i = False, False, j + 1
        elif field_start and line[i] == _QUOTE:
            in_quote, field_start, i = True, False, i + 1
        else:
            j = line.find(b",", i)
            if j < 0:
                return False
            i, field_start = j + 1, True
    return in_quote


class _Lines:
    """Turns a file's bytes, chunk by chunk, into the staged copy's lines, each ended by LF.

    The line end is the file's own: LF (CRLF counts as LF) or, when the first line ends with a
    lone CR, CR (Excel's "CSV (Macintosh)"). The other one alone inside a line is a stray: it
    becomes a space and the line is flagged `stray_line_break`. A line end inside a quoted field
    joins the record's lines (with a space) and the record is flagged `multiline_record`; as
    many empty lines follow it as it had line ends, so every later line keeps its number. Spark's
    reader then meets LF only, so it and this pass agree on every line by construction.
    """

    def __init__(self, sink=None):
        self.sink = sink
        self.style: int | None = None
        self.tail = b""  # raw bytes of an unfinished line
        self.open_record = b""  # normalised lines of a record whose quoted field is still open
        self.lines = self.empty = self.size = 0
        self.last_byte = _LF  # as if the file followed a newline
        self.first_line: bytes | None = None
        self.newlines_at_split: list[int] = []
        self.flagged: dict[int, str] = {}
        self.rewritten = False

    def feed(self, chunk: bytes, final: bool = False) -> None:
        data = self.tail + chunk
        if final:
            body, self.tail = data, b""
        else:
            # A trailing CR may be the first half of a CRLF: it waits for the next chunk.
            limit = len(data) - 1 if data.endswith(b"\r") else len(data)
            cut = max(data.rfind(b"\n", 0, limit), data.rfind(b"\r", 0, limit))
            body, self.tail = data[: cut + 1], data[cut + 1 :]
            if len(self.tail) > MAX_LINE_BYTES:
                raise FileRejected(f"a line longer than {MAX_LINE_BYTES} bytes")
        text = self._normalise(body, final) if body else b""
        if text or final:
            text = self.open_record + text
            self.open_record = b""
            self._emit(self._join_quoted(text, final) if b'"' in text else text)

    def _normalise(self, body: bytes, final: bool) -> bytes:
        if self.style is None:
            first_cr, first_lf = body.find(b"\r"), body.find(b"\n")
            lone_cr = first_cr >= 0 and (first_lf < 0 or first_cr < first_lf - 1)
            self.style = _CR if lone_cr else _LF
        # Most files: LF line ends and no CR at all, so nothing to rewrite (a byte search).
        if self.style == _LF and b"\r" not in body:
            return body
        arr = np.frombuffer(body, dtype=np.uint8)
        cr = arr == _CR
        self.rewritten = True
        lf = arr == _LF
        cr_lf = np.zeros_like(cr)
        cr_lf[:-1] = cr[:-1] & lf[1:]
        if self.style == _LF:
            drop, stray, ends_cr = cr_lf, cr & ~cr_lf, np.zeros_like(cr)
            if final and cr[-1]:  # a CR ending the file ends its last line
                stray[-1], ends_cr[-1] = False, True
        else:
            drop = np.zeros_like(lf)
            drop[1:] = cr_lf[:-1]
            stray, ends_cr = lf & ~drop, cr
        out = arr.copy()
        out[stray] = _SPACE
        out[ends_cr] = _LF
        keep = ~drop
        out, stray = out[keep], stray[keep]
        if stray.any():
            # Numbered in the stream that follows any open record.
            newlines = np.flatnonzero(out == _LF)
            before = self.open_record.count(b"\n")
            for pos in np.flatnonzero(stray):
                line = self.lines + before + int(np.searchsorted(newlines, pos)) + 1
                self._flag(line, STRAY_LINE_BREAK)
        return out.tobytes()

    def _flag(self, line: int, reason: str) -> None:
        self.flagged[line] = reason
        if len(self.flagged) > MAX_FLAGGED_LINES:
            raise FileRejected(
                f"more than {MAX_FLAGGED_LINES} lines with stray line breaks or line breaks "
                "inside quoted fields"
            )

    def _join_quoted(self, text: bytes, final: bool) -> bytes:
        arr = np.frombuffer(text, dtype=np.uint8)
        newlines = np.flatnonzero(arr == _LF)
        quotes = np.flatnonzero(arr == _QUOTE)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.append(newlines, len(arr))
        # Only a line with an odd number of quotes can end inside a quoted field.
        per_line = np.searchsorted(quotes, ends) - np.searchsorted(quotes, starts)
        odd = np.flatnonzero(per_line % 2 == 1)
        ended = len(newlines)  # lines 0..ended-1 have a line end; line `ended` is the rest

        def line(k: int) -> bytes:
            return text[starts[k] : ends[k]]

        pieces, copied, resume = [], 0, 0
        for j in (int(j) for j in odd):
            if j < resume or j >= ended or not _ends_in_quote(line(j), False):
                continue
            k = j + 1
            while k < ended and _ends_in_quote(line(k), True):
                k += 1
            if k < ended or (k == ended and starts[k] < len(arr)):
                last = k  # the line that closes the field, or the file's unterminated last line
            elif final:
                last = k - 1  # the file ends inside the quoted field
            else:  # the field may close in the next chunk: keep the record for then
                self.open_record = text[starts[j] :]
                if len(self.open_record) > MAX_LINE_BYTES:
                    raise FileRejected(
                        f"a quoted field is not closed within {MAX_LINE_BYTES} bytes"
                    )
                pieces.append(text[copied : starts[j]])
                return b"".join(pieces)
            line_ends = min(last + 1, ended) - j
            pieces.append(text[copied : starts[j]])
            pieces.append(b" ".join(line(n) for n in range(j, last + 1)) + b"\n" * line_ends)
            copied = min(int(ends[last]) + 1, len(arr))
            resume = last + 1
            self.rewritten = True
            self._flag(self.lines + j + 1, MULTILINE_RECORD)
        pieces.append(text[copied:])
        return b"".join(pieces)

    def _emit(self, text: bytes) -> None:
        if not text:
            return
        arr = np.frombuffer(text, dtype=np.uint8)
        newlines = np.flatnonzero(arr == _LF)
        if self.first_line is None:
            self.first_line = text[: newlines[0]] if len(newlines) else text
        # An empty line: a newline right after a newline (or at the start of the file).
        before = arr[np.maximum(newlines - 1, 0)]
        if len(newlines) and newlines[0] == 0:
            before[0] = self.last_byte
        self.empty += int(np.count_nonzero(before == _LF))
        k = self.size // FILE_SPLIT_BYTES + 1
        while k * FILE_SPLIT_BYTES < self.size + len(text):
            at = k * FILE_SPLIT_BYTES - self.size
            self.newlines_at_split.append(self.lines + int(np.searchsorted(newlines, at)))
            k += 1
        self.lines += len(newlines)
        self.size += len(text)
        self.last_byte = int(arr[-1])
        if self.sink is not None:
            self.sink.write(text)

    def finish(self) -> None:
        self.feed(b"", final=True)
        if self.size and self.last_byte != _LF:
            self.lines += 1  # a last line without a newline


def _read_lines(path: Path, sink=None) -> tuple[_Lines, str, int]:
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    lines = _Lines(sink)
    offset = 0
    # The hash runs beside the line scan (hashlib and numpy release the GIL): a quarter of
    # the pass's time.
    with path.open("rb") as f, ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher:
        hashed = None
        while chunk := f.read(_CHUNK):
            if sink is None:
                if hashed is not None:
                    hashed.result()
                hashed = hasher.submit(digest.update, chunk)
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise FileRejected(
                        f"not UTF-8 text: undecodable byte at offset {offset + exc.start}"
                    ) from exc
            lines.feed(chunk)
            offset += len(chunk)
        if hashed is not None:
            hashed.result()
        if sink is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise FileRejected("not UTF-8 text: truncated character at the end") from exc
    lines.finish()
    return lines, digest.hexdigest(), offset


def inspect_file(path: Path) -> FileFacts:
    """One pass over the bytes: SHA-256 (of the original bytes), strict UTF-8, header, and a
    count of the data rows as Spark will read them from the staged copy (see `_Lines`).

    Raises FileRejected for an empty, header-only, undecodable or header-less file.
    """
    lines, sha256, size = _read_lines(path)
    if size == 0:
        raise FileRejected("empty file (zero bytes)")
    header = parse_header(lines.first_line or b"")
    data_rows = lines.lines - lines.empty - 1
    if data_rows <= 0:
        raise FileRejected("header only: no rows")
    flagged = {n: r for n, r in lines.flagged.items() if n > 1}
    return FileFacts(
        sha256, size, header, data_rows, lines.newlines_at_split, flagged, lines.rewritten
    )


def write_staged_copy(source: Path, target: Path) -> None:
    """The staged copy Spark reads: the file's lines, each ended by LF (see `_Lines`)."""
    with target.open("wb") as sink:
        _read_lines(source, sink)


def stage_file(store: ObjectStore, key: str, target: Path) -> FileFacts:
    """Inspect the object and put it where local Spark can read it as `target`.

    A file whose staged copy equals its bytes is a link to a local file, or the download
    itself; otherwise the staged copy is written from them (`write_staged_copy`). Raises
    FileRejected (or whatever reading its content raised) for a file that cannot be sales.
    """
    source = store.local_path(key)
    raw = source if source is not None else target.with_name(f"{target.name}.download")
    try:
        if source is None:
            store.download(key, raw)
        try:
            facts = inspect_file(raw)
            if facts.rewritten:
                write_staged_copy(raw, target)
        except (FileRejected, OSError):
            raise  # OSError: the disk or the store, not the file's content
        except Exception as exc:  # noqa: BLE001 - any content failure is this file's alone
            raise FileRejected(f"cannot be read: {type(exc).__name__}: {exc}") from exc
        if not facts.rewritten and source is not None:
            os.symlink(source, target)
        elif not facts.rewritten:
            os.replace(raw, target)
    finally:
        if source is None:
            raw.unlink(missing_ok=True)
    return facts


def _ddl(columns: list[str]) -> str:
    return ", ".join(f"`{c.replace('`', '``')}` STRING" for c in columns)


@dataclass(frozen=True)
class StagedFile:
    landed: LandedFile
    path: Path
    facts: FileFacts


def _fields(lines: DataFrame, header: tuple[str, ...]) -> tuple[DataFrame, dict[str, Column]]:
    """Each line's fields by header name, as the CSV text they are (null for an empty field),
    and `__extra_field`: whether the line has more fields than the header.

    A line without a quote whose comma count matches the header is split on its commas; only
    the others go through Spark's CSV parser (RFC 4180 quoting, a quote inside a quoted field
    doubled). Both give the same fields for such a line; the split is the cheaper (README,
    Performance). Returns the lines with the columns the fields are computed from.
    """
    cells = lines.select("*", F.split(F.col("value"), ",", -1).alias("_cells"))
    cells = cells.select(
        "*",
        (~F.col("value").contains('"') & (F.size("_cells") == len(header))).alias("_plain"),
    )
    quoted = F.from_csv(
        F.col("value"), _ddl([*header, _EXTRA_FIELD]), {"mode": "PERMISSIVE", "escape": '"'}
    )
    # Parsed only where the split does not do: CASE evaluates a branch only for its rows.
    row = cells.select("*", F.when(~F.col("_plain"), quoted).alias("_csv"))
    plain, csv_row = F.col("_plain"), F.col("_csv")
    fields = {
        name: F.when(plain, F.nullif(F.col("_cells").getItem(i), F.lit(""))).otherwise(
            csv_row.getField(name)
        )
        for i, name in enumerate(header)
    }
    fields[_EXTRA_FIELD] = ~plain & csv_row.getField(_EXTRA_FIELD).isNotNull()
    return row, fields


def read_sales_csvs(
    spark: SparkSession, files: list[StagedFile], only: DataFrame | None = None
) -> DataFrame:
    """All data rows of the staged files as raw text, numbered, in one DataFrame.

    Columns: the contract's columns as strings, `additional_column`, `malformed` (more fields
    than the header), `source_key` (the landing key), `business_date` (and as text,
    `business_day`), `file_index`, `line_number` and `line_problem` (see `_numbered`). With
    `only` (columns `source_key`, `line_number`): those lines alone, picked before any line is
    parsed (the quarantine reads its rejected lines again). Files are staged as `<n>.csv`, so
    a hostile key never reaches a path or a Spark option.
    """
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for staged in files:
        groups[staged.facts.header].append(str(staged.path))

    index = _file_index(spark, files)
    frames = []
    for header, paths in groups.items():
        lines = spark.read.text(paths).select(
            "value",
            # Joined to the file index by name: a regex over it costs 3-5 s per 8 M rows.
            F.col("_metadata.file_name").alias("file_name"),
            F.col("_metadata.file_block_start").alias("split_start"),
            # One split per task (storage/spark.py): the row's index in its task is its
            # line's index in the split.
            F.monotonically_increasing_id().bitwiseAND((1 << 33) - 1).alias("line_in_split"),
        )
        data = lines.where(
            ~((F.col("split_start") == 0) & (F.col("line_in_split") == 0)) & (F.col("value") != "")
        )
        data = _numbered(spark, data.join(F.broadcast(index), "file_name"), files)
        if only is not None:
            # Kept apart from their parsing: in one stage with the text scan, the
            # validation's code for the few picked lines grew too long to be compiled, and
            # every line of the files was read interpreted (8 000 of 8 M lines: 16 s -> 4 s).
            data = data.join(only, ["source_key", "line_number"], "left_semi").localCheckpoint()
        extras = [c for c in header if c not in SALES_CSV_COLUMNS]
        row, fields = _fields(data, header)
        additional = (
            F.to_json(F.struct(*[fields[c].alias(c) for c in extras]))
            if extras
            else F.lit(None).cast("string")
        )
        frames.append(
            row.select(
                *[fields[c].alias(c) for c in SALES_CSV_COLUMNS],
                additional.alias("additional_column"),
                fields[_EXTRA_FIELD].alias("malformed"),
                *_READ_COLUMNS,
            )
        )
    if not frames:
        schema = T.StructType(
            [T.StructField(c, T.StringType()) for c in SALES_CSV_COLUMNS]
            + [
                T.StructField("additional_column", T.StringType()),
                T.StructField("malformed", T.BooleanType()),
                T.StructField("source_key", T.StringType()),
                T.StructField("business_date", T.DateType()),
                T.StructField(BUSINESS_DAY, T.StringType()),
                T.StructField("file_index", T.IntegerType()),
                T.StructField("line_number", T.LongType()),
                T.StructField("line_problem", T.StringType()),
            ]
        )
        return spark.createDataFrame([], schema)
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows


# What a read row carries beside its fields.
_READ_COLUMNS = (
    "source_key",
    "business_date",
    BUSINESS_DAY,
    "file_index",
    "line_number",
    "line_problem",
)


def _file_index(spark: SparkSession, files: list[StagedFile]) -> DataFrame:
    return spark.createDataFrame(
        [
            (
                s.path.name,
                int(s.path.stem),
                s.landed.landing_key,
                s.landed.business_date,
                s.landed.business_date.isoformat(),
            )
            for s in files
        ],
        f"file_name STRING, file_index INT, source_key STRING, business_date DATE, "
        f"{BUSINESS_DAY} STRING",
    )


def _numbered(spark: SparkSession, rows: DataFrame, files: list[StagedFile]) -> DataFrame:
    """Add `line_number` (1-based, the header is line 1) to lines with `file_index`,
    `split_start` and `line_in_split`, and `line_problem`, the byte pass's reason for a line.

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
    numbered = rows.join(F.broadcast(table), ["file_index", "split_start"], "left").withColumn(
        "line_number", F.col("lines_before") + F.col("line_in_split") + 1
    )
    flagged = [
        (int(s.path.stem), line, reason)
        for s in files
        for line, reason in s.facts.flagged_lines.items()
    ]
    if not flagged:
        return numbered.withColumn("line_problem", F.lit(None).cast("string"))
    problems = spark.createDataFrame(
        flagged, "file_index INT, line_number LONG, line_problem STRING"
    )
    return numbered.join(F.broadcast(problems), ["file_index", "line_number"], "left")
