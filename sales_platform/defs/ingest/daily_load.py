"""Loading business days from landing: the steps behind the `raw_sales` asset.

For each day, every current file is inspected (hash, encoding, header, row count) and recorded
in the ledger; whole files that cannot be sales are rejected with a reason; the rest are read in
one Spark pass, validated row by row, and staged as `raw_sales` plus `raw_sales_quarantine`.
Only when every file's rows are accounted for (read = accepted + quarantined) are the
partitions published; then, and only then, files move to the archive or the error prefix.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sales_platform.storage.lake import Lake, PartitionWrite, StagedWrite
from sales_platform.storage.landing import (
    FileRejected,
    LandedFile,
    StagedFile,
    archive_key,
    current_files,
    error_key,
    inspect_file,
    read_sales_csvs,
    stage_file,
    with_line_numbers,
)
from sales_platform.storage.ledger import FileVersion, Ledger
from sales_platform.storage.object_store import ObjectStore
from sales_platform.transforms.validate import accepted_sales, quarantined_sales, validate_sales

DAY_EXPR = "date_format({column}, 'yyyy-MM-dd')"
QUARANTINE_ASSET = "raw_sales_quarantine"


@dataclass
class FileOutcome:
    landed: LandedFile
    version: FileVersion
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    reason: str | None = None  # set when the whole file is rejected
    first_sales_date: date | None = None
    last_sales_date: date | None = None
    # The file's accepted money and quarantined rows per reason: per-day figures in the UI.
    total_cost: Decimal = Decimal("0.00")
    quarantine_reasons: Counter = field(default_factory=Counter)

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_accepted + self.rows_quarantined


@dataclass
class DayLoad:
    """What a load staged, before anything is published."""

    days: list[date]
    files: list[FileOutcome]
    accepted: StagedWrite
    quarantine: StagedWrite
    quarantine_reasons: Counter = field(default_factory=Counter)
    total_cost: Decimal = Decimal("0.00")

    @property
    def read(self) -> list[FileOutcome]:
        return [f for f in self.files if f.reason is None]

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.reason is not None]

    @property
    def unreconciled(self) -> list[FileOutcome]:
        return [f for f in self.read if not f.reconciles]


def _version(store: ObjectStore, landed: LandedFile) -> FileVersion:
    return FileVersion(
        bucket=store.uri(""),
        key=landed.landing_key,
        etag=landed.obj.etag,
        location=store.uri(landed.obj.key),
        business_date=landed.business_date,
        size=landed.obj.size,
    )


def _inspect(store, ledger, lake, files, run_id) -> tuple[list[FileOutcome], list[StagedFile]]:
    """Stage and inspect every file; reject unusable files and duplicates of accepted content."""
    scratch = lake.scratch()
    outcomes, staged = [], []
    first_with_content: dict[str, str] = {}
    for n, landed in enumerate(files):
        outcome = FileOutcome(landed, _version(store, landed))
        outcomes.append(outcome)
        path = stage_file(store, landed.obj.key, scratch / f"{n}.csv")
        try:
            facts = inspect_file(path)
        except FileRejected as exc:
            ledger.start(outcome.version, run_id)
            outcome.reason = str(exc)
            continue
        ledger.start(outcome.version, run_id, facts.sha256)
        outcome.rows_read = facts.data_rows
        original = first_with_content.get(facts.sha256) or ledger.original_of(
            facts.sha256, landed.landing_key, outcome.version.bucket
        )
        if original is not None and original != landed.landing_key:
            outcome.reason = f"duplicate: same content as {original!r}"
            continue
        first_with_content[facts.sha256] = landed.landing_key
        staged.append(StagedFile(landed, path, facts))
    return outcomes, staged


def stage_days(
    spark: SparkSession,
    store: ObjectStore,
    lake: Lake,
    ledger: Ledger,
    days: list[date],
    run_id: str,
) -> DayLoad:
    by_day = current_files(store, days)
    files = [f for day in days for f in by_day.get(day, [])]
    outcomes, good = _inspect(store, ledger, lake, files, run_id)

    raw = with_line_numbers(spark, read_sales_csvs(spark, good), good)
    # Both stages below read the validated rows: cached on local disk (encrypted, see
    # storage/spark.py), the CSV is parsed once instead of twice (raw_sales -30 % measured,
    # benchmarks/end_to_end.py). Disk, not memory, so a 15 GB day keeps memory flat.
    validated = validate_sales(raw).persist(StorageLevel.DISK_ONLY)
    partitions = [d.isoformat() for d in days]
    try:
        quarantine = lake.stage(
            quarantined_sales(validated),
            QUARANTINE_ASSET,
            partitions,
            DAY_EXPR.format(column="business_date"),
        )
        accepted = lake.stage(
            accepted_sales(validated),
            "raw_sales",
            partitions,
            DAY_EXPR.format(column="sales_date"),
        )
    finally:
        validated.unpersist()
    load = DayLoad(days, outcomes, accepted, quarantine)
    _count(spark, lake, load)
    return load


def _count(spark: SparkSession, lake: Lake, load: DayLoad) -> None:
    """Per-file counts from the staged Parquet: a cheap columnar read, not another CSV pass."""
    by_key = {f.landed.landing_key: f for f in load.read}
    accepted = (
        lake.read_staged(spark, load.accepted)
        .groupBy("source_key")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum("total_cost").alias("total"),
            F.min("sales_date").alias("first"),
            F.max("sales_date").alias("last"),
        )
        .collect()
    )
    for row in accepted:
        outcome = by_key[row.source_key]
        outcome.rows_accepted = row.n
        outcome.first_sales_date, outcome.last_sales_date = row.first, row.last
        outcome.total_cost = row.total or Decimal("0")
        load.total_cost += outcome.total_cost
    quarantined = (
        lake.read_staged(spark, load.quarantine).groupBy("source_key", "reason").count().collect()
    )
    for row in quarantined:
        by_key[row.source_key].rows_quarantined += row["count"]
        by_key[row.source_key].quarantine_reasons[row.reason] += row["count"]
        load.quarantine_reasons[row.reason] += row["count"]


def commit(
    store: ObjectStore, lake: Lake, ledger: Ledger, load: DayLoad, run_id: str
) -> tuple[list[PartitionWrite], list[PartitionWrite]]:
    """Publish the staged partitions, close the ledger, then move the files.

    Moves come last and by exact version: a run killed before them leaves files in landing, and
    the rerun rebuilds the same partitions from them.
    """
    quarantine = lake.publish(load.quarantine)
    accepted = lake.publish(load.accepted)
    for outcome in load.files:
        if outcome.reason is None:
            ledger.complete(
                outcome.version,
                outcome.rows_read,
                outcome.rows_accepted,
                outcome.rows_quarantined,
            )
        else:
            ledger.reject(outcome.version, outcome.reason, outcome.rows_read or None)
    for outcome in load.files:
        landed = outcome.landed
        if outcome.reason is not None:
            move_to_error(
                store,
                landed.obj.key,
                landed.landing_key,
                landed.business_date,
                outcome.reason,
                landed.obj.etag,
                run_id,
            )
        elif not landed.archived:
            target = archive_key(landed.landing_key, landed.business_date)
            if store.move(landed.obj.key, target, if_etag=landed.obj.etag):
                ledger.archived(outcome.version, target)
    return accepted, quarantine


def move_to_error(
    store: ObjectStore,
    key: str,
    landing_key: str,
    day: date | None,
    reason: str,
    etag: str | None,
    run_id: str | None,
) -> str | None:
    """Move a rejected file to the error prefix with a `.reason.json` manifest beside it."""
    target = error_key(landing_key, day)
    if not store.move(key, target, if_etag=etag):
        return None
    manifest = {
        "landing_key": landing_key,
        "etag": etag,
        "business_date": day.isoformat() if day else None,
        "reason": reason,
        "run_id": run_id,
        "rejected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store.put_bytes(f"{target}.reason.json", json.dumps(manifest, indent=2).encode())
    return target
