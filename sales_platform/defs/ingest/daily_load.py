"""Loading business days from landing: the steps behind the `raw_sales` asset.

For each day, every current file is inspected (hash, encoding, header, row count) and recorded
in the ledger; whole files that cannot be sales are rejected with a reason naming the key (any
failure reading one file's content is that file's alone); the rest are read in one Spark pass,
validated row by row, and staged as `raw_sales` plus `raw_sales_quarantine`. A file whose rows
are not all accounted for (read = accepted + quarantined) is rejected and the days are staged
again without it. Then the partitions are published, and only then do files move to the archive
or the error prefix.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sales_platform.faults import fault
from sales_platform.schemas import ERROR_PREFIX
from sales_platform.storage.lake import Lake, PartitionWrite, StagedWrite
from sales_platform.storage.landing import (
    FileRejected,
    LandedFile,
    StagedFile,
    archive_key,
    current_files,
    error_key,
    identity_metadata,
    read_sales_csvs,
    stage_file,
)
from sales_platform.storage.ledger import FileVersion, Ledger
from sales_platform.storage.object_store import ObjectStore
from sales_platform.transforms.validate import (
    REJECT_REASON,
    quarantined_sales,
    staged_sales,
    validate_sales,
)

QUARANTINE_ASSET = "raw_sales_quarantine"
# Up to this many rejected rows (a few tens of MB of keys) are broadcast to find their lines.
BROADCAST_REJECTED_ROWS = 500_000


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
        etag=landed.identity,
        location=store.uri(landed.obj.key),
        business_date=landed.business_date,
        size=landed.obj.size,
    )


class _Inspector:
    """Stages and inspects files one by one; whatever goes wrong with one file's content is
    that file's rejection alone (a failure to reach the store still fails the run)."""

    def __init__(self, store, ledger, lake, run_id):
        self.store, self.ledger, self.run_id = store, ledger, run_id
        self.scratch = lake.scratch()
        self.count = 0
        # (sha256, business date) -> the first key with that content in this run
        self.first_with_content: dict[tuple[str, date], str] = {}

    def inspect(self, landed: LandedFile) -> tuple[FileOutcome, StagedFile | None]:
        outcome = FileOutcome(landed, _version(self.store, landed))
        path = self.scratch / f"{self.count}.csv"
        self.count += 1
        key = landed.landing_key
        try:
            facts = stage_file(self.store, landed.obj.key, path)
        except FileRejected as exc:
            self.ledger.start(outcome.version, self.run_id)
            outcome.reason = f"{key!r}: {exc}"
            return outcome, None
        bucket = outcome.version.bucket
        forced = self.ledger.reprocess_reason(bucket, key, facts.sha256)
        self.ledger.start(outcome.version, self.run_id, facts.sha256, forced)
        outcome.rows_read = facts.data_rows
        content = (facts.sha256, landed.business_date)
        original = self.first_with_content.get(content) or self.ledger.original_of(
            facts.sha256, key, bucket, landed.business_date
        )
        if forced is None and original is not None and original != key:
            outcome.reason = (
                f"{key!r}: duplicate: same content as {original!r}, which already gave "
                f"accepted sales to {landed.business_date}"
            )
            return outcome, None
        self.first_with_content.setdefault(content, key)
        return outcome, StagedFile(landed, path, facts)


def _admit(
    inspector: _Inspector, files: list[LandedFile]
) -> tuple[list[FileOutcome], list[StagedFile]]:
    """Inspect the files; a rejected re-upload of an archived key is replaced by the archived
    version it would have superseded (README, "File identity and re-uploads")."""
    outcomes, staged = [], []
    for landed in files:
        outcome, good = inspector.inspect(landed)
        outcomes.append(outcome)
        if good is not None:
            staged.append(good)
        elif landed.fallback is not None:
            more, more_staged = _admit(inspector, [landed.fallback])
            outcomes.extend(more)
            staged.extend(more_staged)
    return outcomes, staged


def stage_days(
    spark: SparkSession,
    store: ObjectStore,
    lake: Lake,
    ledger: Ledger,
    days: list[date],
    run_id: str,
) -> DayLoad:
    """Stage the days' accepted and quarantined rows from every current file.

    A file whose rows do not add up (read != accepted + quarantined) is rejected on its own and
    the days are staged again without it, so one file never holds back the others.
    """
    by_day = current_files(store, days)
    fault("landing.listed")
    files = [f for day in days for f in by_day.get(day, [])]
    inspector = _Inspector(store, ledger, lake, run_id)
    outcomes, good = _admit(inspector, files)
    while True:
        load = _stage(spark, lake, days, outcomes, good)
        unreconciled = load.unreconciled
        if not unreconciled:
            return load
        lake.discard(load.accepted)
        lake.discard(load.quarantine)
        dropped = {f.landed for f in unreconciled}
        for f in unreconciled:
            f.reason = (
                f"{f.landed.landing_key!r}: rows do not reconcile: {f.rows_read} read, "
                f"{f.rows_accepted} accepted + {f.rows_quarantined} quarantined"
            )
        good = [g for g in good if g.landed not in dropped]
        fallbacks = [f.fallback for f in dropped if f.fallback is not None]
        more, more_staged = _admit(inspector, fallbacks)
        outcomes.extend(more)
        good.extend(more_staged)


def _stage(
    spark: SparkSession,
    lake: Lake,
    days: list[date],
    outcomes: list[FileOutcome],
    good: list[StagedFile],
) -> DayLoad:
    for outcome in outcomes:  # counted afresh from what is staged now
        outcome.rows_accepted = outcome.rows_quarantined = 0
        outcome.first_sales_date = outcome.last_sales_date = None
    raw = read_sales_csvs(spark, good)
    partitions = [d.isoformat() for d in days]
    # One pass over the CSV writes the accepted rows and sets the rejected ones aside (keyed by
    # file and line); only those lines are read again, to stage the quarantine with their raw
    # text. Before, the validated rows were cached on local disk for two writes (README,
    # Performance, has both figures).
    accepted = lake.stage(
        staged_sales(validate_sales(raw)),
        "raw_sales",
        partitions,
        "sales_date",
        set_aside=REJECT_REASON,
    )
    try:
        rejected = lake.read_set_aside(spark, accepted).select("source_key", "line_number")
        per_file = {
            r.source_key: r["count"] for r in rejected.groupBy("source_key").count().collect()
        }
        again = [g for g in good if g.landed.landing_key in per_file]
        # Sent to every task when it is small: a shuffle join moved every line of the files
        # (8 000 rejected of 8 M lines: 7-9 s -> 2-3 s); a bad day's many are joined as usual.
        if sum(per_file.values()) <= BROADCAST_REJECTED_ROWS:
            rejected = F.broadcast(rejected)
        lines = read_sales_csvs(spark, again, only=rejected)
        quarantine = lake.stage(
            quarantined_sales(validate_sales(lines)),
            QUARANTINE_ASSET,
            partitions,
            "business_date",
        )
    except BaseException:
        lake.discard(accepted)
        raise
    load = DayLoad(days, outcomes, accepted, quarantine)
    _count(spark, lake, load)
    return load


def _count(spark: SparkSession, lake: Lake, load: DayLoad) -> None:
    """Per-file counts from the staged Parquet: a cheap columnar read, not another CSV pass."""
    # One staged version per landing key: the one read (a rejected re-upload is not).
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
    fault("ingest.quarantine_published")
    accepted = lake.publish(load.accepted)
    fault("ingest.accepted_published")
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
        fault("ledger.settled")
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
                identity=landed.identity,
            )
        elif not landed.archived:
            target = archive_key(landed.landing_key, landed.business_date)
            meta = identity_metadata(landed.landing_key, landed.identity, target)
            if store.move(landed.obj.key, target, if_etag=landed.obj.etag, metadata=meta):
                fault("ingest.archived")
                ledger.archived(outcome.version, target)
        else:
            # A run killed between its move and the record above left the row without it.
            ledger.archived(outcome.version, landed.obj.key)
    return accepted, quarantine


def move_to_error(
    store: ObjectStore,
    key: str,
    landing_key: str,
    day: date | None,
    reason: str,
    etag: str | None,
    run_id: str | None,
    identity: str | None = None,
) -> str | None:
    """Move a rejected file to the error prefix with a `.reason.json` manifest beside it.

    `etag` is the object's current version (the move happens only while it holds it);
    `identity` the landing version's, when the object was already moved once.
    """
    target = error_key(landing_key, day)
    identity = identity or etag
    meta = identity_metadata(landing_key, identity, target) if identity else None
    if not store.move(key, target, if_etag=etag, metadata=meta):
        return None
    manifest = {
        "landing_key": landing_key,
        "etag": identity,
        "business_date": day.isoformat() if day else None,
        "reason": reason,
        "run_id": run_id,
        "rejected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store.put_bytes(f"{target}.reason.json", json.dumps(manifest, indent=2).encode())
    return target


# Run tags that push a file through from the UI: launch the day with both set.
REPROCESS_TAG = "sales_platform/reprocess"
REPROCESS_REASON_TAG = "sales_platform/reprocess_reason"


def reprocess(store: ObjectStore, ledger: Ledger, key: str, reason: str) -> str:
    """Let a rejected file's content be loaded by the next run of its day.

    `key` is the landing key or the key of its copy under `sales_data_error/`. The operator's
    reason is recorded on the file's ledger rows; the file goes back to its landing key, and
    its next load skips the duplicate rule (every other check still applies). Returns the
    landing key.
    """
    if not reason.strip():
        raise ValueError("a reason is required: it is recorded in the ledger")
    bucket = store.uri("")
    landing_key = key
    if key.startswith(ERROR_PREFIX):
        manifest = json.loads(store.get_bytes(f"{key}.reason.json"))
        landing_key = manifest["landing_key"]
    entry = ledger.latest(bucket, landing_key)
    if entry is None or not entry["sha256"]:
        raise ValueError(f"{landing_key!r}: no ledger row with the file's content hash")
    ledger.allow_reprocess(bucket, landing_key, entry["sha256"], reason)
    rejected = key if key != landing_key else error_key(landing_key, entry["business_date"])
    obj = store.head(rejected)
    if obj is not None and store.move(rejected, landing_key, if_etag=obj.etag):
        store.delete([f"{rejected}.reason.json"])
    return landing_key
