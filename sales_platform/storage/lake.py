"""The lake: Spark DataFrames stored as Apache Iceberg tables, readable by any Iceberg engine.

One table per asset, `sales_platform.<asset>`, located at `<lake>/<asset>/` (data files under
`data/`, Iceberg metadata under `metadata/`), in the catalog of storage/iceberg.py. Daily tables
are partitioned by identity on their day column (`sales_date`, `business_date` for the
quarantine); snapshots of the source tables are unpartitioned and replaced whole.

A write stages Parquet on local disk (local-mode Spark cannot reach S3 here: docs/architecture.md),
checks each file's footer says exactly its day, uploads the files, then commits "replace these
days' files" in one catalog transaction: a reader sees the old days or the new ones, never half.
Old files stay until `sales-platform lake vacuum` expires the snapshots naming them, so a reader
holding an older snapshot never hits a missing file. Staging between S3 and local Spark lives only
in this module.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException
from pyiceberg.expressions import AlwaysTrue, In
from pyiceberg.expressions.visitors import inclusive_projection, manifest_evaluator
from pyiceberg.table import Table
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.column_docs import column_schema
from sales_platform.faults import fault
from sales_platform.schemas import LAKE_SCHEMAS
from sales_platform.storage import iceberg
from sales_platform.storage.database import Database
from sales_platform.storage.object_store import ObjectStore, ObjectStoreResource, staging_dir
from sales_platform.storage.write_lock import write_locks

UNPARTITIONED = "__all__"
PARTITION_COLUMN = "__partition"
SPARK_SCHEMA_PROPERTY = "sales-platform.spark-schema"
EPOCH = dt.date(1970, 1, 1)
WRITE_ID = "sales-platform.write-id"
# On a snapshot of a source table: the version of the source it holds (dimensions/assets.py).
SOURCE_VERSION = "sales-platform.source-version"


class LakeConflict(RuntimeError):
    """Another run replaced the same day(s) of the table first; this write was not committed."""


@dataclass(frozen=True)
class PartitionWrite:
    partition: str
    rows: int
    bytes: int
    files: int
    # The Iceberg snapshot that made this partition current, in table `table`: time travel
    # to exactly what a downstream asset read.
    snapshot_id: int
    table: str


@dataclass(frozen=True)
class SourceSnapshot:
    """What a dimension asset hands the IO manager: `rows`, the snapshot of `version` of its
    source table (as they are to be stored: personal data already encrypted), or None when the
    table's current snapshot already holds that version (then nothing is written and the
    current snapshot stays)."""

    version: str
    rows: list[dict] | None
    schema: T.StructType


# The folder name Spark gives rows whose partition value is null.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class StagedWrite:
    asset: str
    partitions: list[str]
    folder: Path
    schema_json: str
    # Recorded in the Iceberg snapshot's summary when published.
    summary: dict[str, str] = field(default_factory=dict)
    # With `stage(set_aside=column)`: that column; the asset's rows are those where it is null.
    set_aside: str | None = None

    @property
    def data(self) -> Path:
        if self.set_aside is None:
            return self.folder / "data"
        return self.folder / "data" / f"{self.set_aside}={NULL_PARTITION}"


class Lake:
    def __init__(self, store: ObjectStore, catalog: Catalog, staging_root: Path | None = None):
        self.store = store
        self.catalog = catalog
        self._staging_root = staging_root
        self._read_stages: list[Path] = []

    def _stage(self) -> Path:
        # Same disk as a local lake, so staged files move in by rename.
        hint = self._staging_root
        if hint is None and (root := self.store.local_path("")) is not None:
            hint = root / ".staging"
        return staging_dir(hint)

    # --- tables ---------------------------------------------------------------------------

    def table(self, asset: str) -> Table | None:
        try:
            return self.catalog.load_table(iceberg.identifier(asset))
        except NoSuchTableError:
            return None

    def _ensure_table(self, asset: str, schema: T.StructType) -> Table:
        table = self.table(asset)
        if table is None:
            table = iceberg.ensure_table(self.catalog, asset, schema, self.store.uri(asset))
        if SPARK_SCHEMA_PROPERTY not in table.properties:
            # The Spark schema as written, so a read never infers one.
            with table.transaction() as tx:
                tx.set_properties({SPARK_SCHEMA_PROPERTY: schema.json()})
            table = self.catalog.load_table(iceberg.identifier(asset))
        return table

    def uri(self, asset: str, partition: str = UNPARTITIONED) -> str:
        day = iceberg.DAY_COLUMNS.get(asset)
        if day is None or partition == UNPARTITIONED:
            return self.store.uri(f"{asset}/")
        return self.store.uri(f"{asset}/data/{day}={partition}/")

    def key_of(self, file_path: str) -> str:
        """The object-store key of a data file named by the catalog."""
        root = self.store.uri("").rstrip("/") + "/"
        spellings = (root, root.replace("s3a://", "s3://", 1), root.replace("s3://", "s3a://", 1))
        for prefix in spellings:
            if file_path.startswith(prefix):
                return file_path[len(prefix) :]
        raise ValueError(f"{file_path} is not under the lake at {root}")

    @staticmethod
    def _day(partition: str) -> dt.date:
        return dt.date.fromisoformat(partition)

    def live_files(self, table: Table, partitions: list[str] | None = None) -> list:
        """The data files of the table's current snapshot (of the given days), zero-row day
        markers included: a scan with a filter would skip those."""
        snapshot = table.current_snapshot()
        if snapshot is None:
            return []
        days, relevant = None, None
        if partitions is not None and table.spec().fields:
            days = {(self._day(p) - EPOCH).days for p in partitions}
            # Manifests whose partition summary cannot hold these days are not opened.
            wanted = In(table.spec().fields[0].name, [self._day(p) for p in partitions])
            schema, spec = table.schema(), table.spec()
            projected = inclusive_projection(schema, spec)(wanted)
            relevant = manifest_evaluator(spec, schema, projected)
        files = []
        for manifest in snapshot.manifests(table.io):
            if relevant is not None and not relevant(manifest):
                continue
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                if days is None or entry.data_file.partition[0] in days:
                    files.append(entry.data_file)
        return files

    def existing_partitions(self, asset: str, partitions: list[str]) -> set[str]:
        """Which of the given partitions the table's current snapshot holds (empty days too)."""
        table = self.table(asset)
        if table is None or table.current_snapshot() is None:
            return set()
        if not table.spec().fields:
            return set(partitions) & {UNPARTITIONED}
        present = {
            (EPOCH + dt.timedelta(days=f.partition[0])).isoformat()
            for f in self.live_files(table, partitions)
        }
        return present & set(partitions)

    # --- writing ------------------------------------------------------------------------

    def write(
        self,
        df: DataFrame,
        asset: str,
        partitions: list[str],
        partition_expr: str | None = None,
        summary: dict[str, str] | None = None,
    ) -> list[PartitionWrite]:
        """Replace `partitions` of `asset` with the rows of df, in one Spark job.

        partition_expr is a Spark SQL expression giving each row's partition key, a string or
        a date (for example "sales_date"); without it df is the single partition given.
        Every partition named is replaced, by no rows if df has none for it, so a rerun that
        finds no data clears what an earlier run wrote.
        """
        staged = replace(self.stage(df, asset, partitions, partition_expr), summary=summary or {})
        try:
            return self.publish(staged)
        finally:
            self.discard(staged)

    def write_rows(
        self, rows: list[dict], asset: str, schema: T.StructType, summary: dict[str, str]
    ) -> list[PartitionWrite]:
        """Replace an unpartitioned table with `rows`, written as Parquet in this process.

        For the snapshots of the source tables: a few thousand rows already in memory, for
        which a Spark job cost a run seconds of a cold engine (README, Performance).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        write_id = uuid.uuid4().hex
        folder = self._stage()
        try:
            path = folder / "part-00000.parquet"
            pq.write_table(pa.Table.from_pylist(rows, schema=iceberg.arrow_schema(schema)), path)
            target = f"{asset}/data/{write_id}-00000.parquet"
            files = {UNPARTITIONED: [(path, target)]}
            return self.replace(asset, schema, files, True, write_id, summary)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def stage(
        self,
        df: DataFrame,
        asset: str,
        partitions: list[str],
        partition_expr: str | None = None,
        set_aside: str | None = None,
    ) -> StagedWrite:
        """Write df as Parquet on local disk only; `publish` makes it the current partitions.

        Staging first lets a step check what it wrote before anyone can read it. The day
        column stays inside each file (Iceberg takes a file's partition from its contents).
        With `set_aside`, a column of df, only the rows where it is null are the asset's; the
        others are written beside them in the same Spark job, without that column
        (`read_set_aside`), and are never published.
        """
        if partition_expr is None and len(partitions) != 1:
            raise ValueError(f"{asset}: several partitions need a partition_expr")
        kept = df.drop(set_aside) if set_aside else df
        staged = StagedWrite(
            asset, list(partitions), self._stage(), kept.schema.json(), set_aside=set_aside
        )
        try:
            key_col = F.expr(partition_expr) if partition_expr else F.lit(partitions[0])
            (
                # A date is named yyyy-MM-dd by Spark once per folder; formatting it per row
                # (date_format) cost 1-2 s per 8 M rows.
                df.withColumn(PARTITION_COLUMN, key_col)
                .write.partitionBy(*([set_aside] if set_aside else []), PARTITION_COLUMN)
                .parquet(str(staged.folder / "data"))
            )
            written = {p.name.split("=", 1)[1] for p in staged.data.glob(f"{PARTITION_COLUMN}=*")}
            unexpected = written - set(partitions)
            if unexpected:
                raise ValueError(
                    f"{asset}: rows for partitions {sorted(unexpected)[:5]} outside the ones "
                    f"being written ({partitions[0]}..{partitions[-1]})"
                )
        except BaseException:
            self.discard(staged)
            raise
        return staged

    def read_staged(self, spark: SparkSession, staged: StagedWrite) -> DataFrame:
        """The staged rows, with their partition key as column `__partition`."""
        schema = T.StructType.fromJson(json.loads(staged.schema_json)).add(
            PARTITION_COLUMN, T.StringType()
        )
        if not any(staged.data.glob(f"{PARTITION_COLUMN}=*")):
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).parquet(str(staged.data))

    def read_set_aside(self, spark: SparkSession, staged: StagedWrite) -> DataFrame:
        """The rows `stage(set_aside=…)` set aside, with the set-aside column (never null)."""
        schema = (
            T.StructType.fromJson(json.loads(staged.schema_json))
            .add(staged.set_aside, T.StringType())
            .add(PARTITION_COLUMN, T.StringType())
        )
        aside = [
            p for p in (staged.folder / "data").glob(f"{staged.set_aside}=*") if p != staged.data
        ]
        if not aside:
            return spark.createDataFrame([], schema)
        return (
            spark.read.schema(schema)
            .parquet(str(staged.folder / "data"))
            .where(F.col(staged.set_aside).isNotNull())
        )

    def publish(self, staged: StagedWrite) -> list[PartitionWrite]:
        """Upload the staged files and make them the partitions' current data in one commit."""
        try:
            return self._publish(staged)
        finally:
            self.discard(staged)

    @staticmethod
    def discard(staged: StagedWrite) -> None:
        shutil.rmtree(staged.folder, ignore_errors=True)

    def _publish(self, staged: StagedWrite) -> list[PartitionWrite]:
        asset, partitions = staged.asset, staged.partitions
        run = uuid.uuid4().hex
        day_column = iceberg.DAY_COLUMNS.get(asset)
        files: dict[str, list[tuple[Path, str]]] = {}
        for p in partitions:
            folder = staged.data / f"{PARTITION_COLUMN}={p}"
            target = f"{asset}/data/{day_column}={p}" if day_column else f"{asset}/data"
            local = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
            files[p] = [(path, f"{target}/{run}-{i:05d}.parquet") for i, path in enumerate(local)]
        schema = T.StructType.fromJson(json.loads(staged.schema_json))
        return self.replace(asset, schema, files, upload=True, write_id=run, summary=staged.summary)

    def replace(
        self,
        asset: str,
        schema: T.StructType,
        files: dict[str, list[tuple[Path, str]]],
        upload: bool,
        write_id: str,
        summary: dict[str, str] | None = None,
    ) -> list[PartitionWrite]:
        """Make `files` ({partition: [(local copy, key in the store)]}) the partitions' data in
        one commit, after each footer proved its day; `upload` puts the local copies first."""
        partitions = list(files)
        table = self._ensure_table(asset, schema)
        day_column = iceberg.DAY_COLUMNS.get(asset)
        if day_column is None and partitions != [UNPARTITIONED]:
            raise ValueError(f"{asset} is not a daily table; it is written whole")
        files = dict(files)
        marker = self._stage()
        try:
            for p, entries in files.items():
                if not entries:
                    # A day with no rows is still a day written: a zero-row file marks it.
                    target = f"{asset}/data/{day_column}={p}" if day_column else f"{asset}/data"
                    path = iceberg.empty_file(table, marker / f"{p}.parquet")
                    files[p] = [(path, f"{target}/{write_id}-empty.parquet")]
            # Footers first: nothing is uploaded for a write that would register a wrong day.
            rows = {
                p: sum(
                    iceberg.check_footer(path, day_column, self._day(p))
                    if day_column
                    else _rows(path)
                    for path, _ in entries
                )
                for p, entries in files.items()
            }
            added, sizes = [], {}
            for p, entries in files.items():
                day = self._day(p) if day_column else None
                sizes[p] = 0
                for path, key in entries:
                    # Described before the upload: a local store moves the file in.
                    added.append(iceberg.data_file(table, path, self.store.uri(key), day))
                    sizes[p] += path.stat().st_size
                    if upload or key.endswith("-empty.parquet"):
                        self.store.put_file(path, key)
                        fault("lake.uploaded", asset)
        finally:
            shutil.rmtree(marker, ignore_errors=True)
        snapshot_id = self._commit(table, asset, partitions, added, write_id, summary)
        fault("lake.committed", asset)
        ident = iceberg.identifier(asset)
        return [
            PartitionWrite(p, rows[p], sizes[p], len(files[p]), snapshot_id, ident)
            for p in partitions
        ]

    def _commit(
        self,
        table: Table,
        asset: str,
        partitions: list[str],
        added: list,
        write_id: str,
        summary: dict[str, str] | None = None,
    ) -> int:
        day_column = iceberg.DAY_COLUMNS.get(asset)
        days = [self._day(p) for p in partitions] if day_column else None
        replaced = self.live_files(table, partitions if day_column else None)
        what = f"{iceberg.identifier(asset)} {_span(partitions)}"
        try:
            with table.transaction() as tx:
                properties = {
                    **(summary or {}),
                    "sales-platform.partitions": _span(partitions),
                    WRITE_ID: write_id,
                }
                with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                    # The days replaced: a concurrent commit that added or removed files of
                    # these days fails this one (other days are retried on the newer snapshot).
                    overwrite.delete_by_predicate(
                        In(day_column, days) if day_column else AlwaysTrue()
                    )
                    for f in replaced:
                        overwrite.delete_data_file(f)
                    for f in added:
                        overwrite.append_data_file(f)
        except (CommitFailedException, ValidationException) as e:
            raise LakeConflict(
                f"{what}: another run replaced the same partition(s) first; this run's files "
                f"were not committed (the winner's data stays current). Rerun to replace them "
                f"again. ({type(e).__name__}: {e})"
            ) from e
        # The write id finds our snapshot even when other commits landed right after it.
        for snap in reversed(self.catalog.load_table(iceberg.identifier(asset)).snapshots()):
            if (snap.summary or {}).get(WRITE_ID) == write_id:
                return snap.snapshot_id
        raise RuntimeError(f"{what}: committed, but snapshot {write_id} is not in the table")

    def current_write(self, asset: str) -> tuple[PartitionWrite, dict[str, str]] | None:
        """An unpartitioned table's current snapshot, as the write that made it, with its
        summary properties; None for a missing or never written table."""
        table = self.table(asset)
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is None:
            return None
        summary = dict((snapshot.summary or {}).additional_properties)
        files = [f for f in self.live_files(table) if f.record_count > 0]
        write = PartitionWrite(
            UNPARTITIONED,
            sum(f.record_count for f in files),
            sum(f.file_size_in_bytes for f in files),
            len(files),
            snapshot.snapshot_id,
            iceberg.identifier(asset),
        )
        return write, summary

    def delete_partitions(self, asset: str, partitions: list[str]) -> None:
        """Remove days from the table's current snapshot (the files stay until vacuumed)."""
        table = self.table(asset)
        if table is None:
            return
        self._commit(table, asset, partitions, [], uuid.uuid4().hex)

    # --- reading ------------------------------------------------------------------------

    def read(
        self,
        spark: SparkSession,
        asset: str,
        partitions: list[str],
        schema: T.StructType | None = None,
        allow_missing: bool = False,
    ) -> tuple[DataFrame, list[str]]:
        """Rows of the given partitions in the table's current snapshot, and the partitions
        that were missing. A missing partition is an error unless allow_missing (then it reads
        as no rows)."""
        table = self.table(asset)
        if table is None or table.current_snapshot() is None:
            missing = list(partitions)
            files = []
        else:
            live = self.live_files(table, None if not table.spec().fields else partitions)
            present = (
                {UNPARTITIONED}
                if not table.spec().fields
                else {(EPOCH + dt.timedelta(days=f.partition[0])).isoformat() for f in live}
            )
            missing = [p for p in partitions if p not in present]
            files = [f.file_path for f in live if f.record_count > 0]
            if schema is None and SPARK_SCHEMA_PROPERTY in table.properties:
                schema = T.StructType.fromJson(json.loads(table.properties[SPARK_SCHEMA_PROPERTY]))
        schema = schema or LAKE_SCHEMAS.get(asset)
        if missing and not allow_missing:
            raise FileNotFoundError(
                f"{asset}: partition(s) {missing[:5]} not in table "
                f"{iceberg.identifier(asset)} at {self.store.uri(asset)}; materialize them first"
            )
        if schema is None:
            raise FileNotFoundError(f"{asset}: none of {len(partitions)} partition(s) exist")
        if not files:
            return spark.createDataFrame([], schema), missing
        keys = [self.key_of(f) for f in files]
        return spark.read.schema(schema).parquet(*self._local_paths(keys)), missing

    def scratch(self) -> Path:
        """A local folder for files Spark reads lazily; removed when the run's resources close."""
        stage = self._stage()
        self._read_stages.append(stage)
        return stage

    def _local_paths(self, keys: list[str]) -> list[str]:
        local = [self.store.local_path(k) for k in keys]
        if all(p is not None for p in local):
            return [str(p) for p in local]
        # Spark reads lazily, so staged copies must outlive this call.
        stage = self.scratch()
        paths = []
        for i, key in enumerate(keys):
            target = stage / f"{i:06d}.parquet"
            self.store.download(key, target)
            paths.append(str(target))
        return paths

    def cleanup(self) -> None:
        for stage in self._read_stages:
            shutil.rmtree(stage, ignore_errors=True)
        self._read_stages.clear()


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def _span(partitions: list[str]) -> str:
    return partitions[0] if len(partitions) == 1 else f"{partitions[0]}..{partitions[-1]}"


def lake_metadata(writes: list[PartitionWrite]) -> dict[str, object]:
    """The Iceberg table and snapshot a materialization wrote: time travel to exactly it."""
    if not writes:
        return {}
    return {
        "iceberg_table": writes[0].table,
        "iceberg_snapshot_id": dg.MetadataValue.int(writes[-1].snapshot_id),
    }


def table_schema(schema: T.StructType) -> dg.TableSchema:
    """A Spark schema as Dagster's column schema metadata (shown on the asset's page)."""
    return column_schema(schema)


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives and its Iceberg catalog; hands out a `Lake` for the run.

    The catalog is `SqlCatalog` on `catalog_db` (the warehouse database: SQLite locally, MySQL
    in prod, tables `iceberg_tables` / `iceberg_namespace_properties`) or AWS Glue.
    """

    store: ObjectStoreResource
    catalog_db: Database | None = Field(
        default=None, description="database holding the sql catalog (the warehouse)"
    )
    catalog: str = Field(default="sql", description="sql (catalog_db) or glue")
    glue_region: str | None = Field(default=None, description="AWS region of the Glue catalog")
    staging_dir: str | None = Field(
        default=None, description="local folder for staging Parquet (default: system temp)"
    )

    _lake: Lake | None = PrivateAttr(default=None)

    def open_catalog(self) -> Catalog:
        store = self.store
        io = iceberg.file_io_properties(
            store.endpoint_url,
            store.region_name,
            store.server_side_encryption,
            store.sse_kms_key_id,
            store.max_attempts,
        )
        engine = self.catalog_db.engine() if self.catalog_db is not None else None
        return iceberg.open_catalog(self.catalog, engine, io, glue_region=self.glue_region)

    def write_lock(self, asset: str, partitions: list[str]) -> AbstractContextManager:
        """Hold the write lock of each partition of `asset` until the block ends: two runs of
        the same days (a backfill beside the sensor's run, two backfills) take turns instead of
        failing each other's commit (`LakeConflict`), and the second builds on what the first
        left. The locks live in the catalog's database (MySQL user locks); none on SQLite or
        with Glue."""
        if self.catalog_db is None:
            return nullcontext()
        return write_locks(self.catalog_db.engine(), [f"{asset}/{p}" for p in partitions])

    def lake(self) -> Lake:
        if self._lake is None:
            staging = Path(self.staging_dir) if self.staging_dir else None
            self._lake = Lake(self.store.open(), self.open_catalog(), staging)
        return self._lake

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lake is not None:
            self._lake.cleanup()


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores Spark DataFrame outputs in the lake; loads one partition, a range, or all.

    An asset's definition metadata `partition_expr` (a Spark SQL expression) says which
    partition each row belongs to, so a multi-day output is written in one Spark job.
    """

    lake_resource: LakeResource
    pyspark: LazyPySparkResource

    @staticmethod
    def _partitions(context: dg.OutputContext | dg.InputContext) -> list[str]:
        return (
            list(context.asset_partition_keys) if context.has_asset_partitions else [UNPARTITIONED]
        )

    def handle_output(self, context: dg.OutputContext, obj: DataFrame | SourceSnapshot) -> None:
        asset = context.asset_key.to_python_identifier()
        partitions = self._partitions(context)
        expr = (context.definition_metadata or {}).get("partition_expr")
        lake = self.lake_resource.lake()
        schema, written = obj.schema, True
        with self.lake_resource.write_lock(asset, partitions):
            if isinstance(obj, SourceSnapshot) and obj.rows is None:
                current = lake.current_write(asset)
                if current is None:
                    raise RuntimeError(
                        f"{asset}: the snapshot found unchanged is gone from the lake"
                    )
                writes, written = [current[0]], False  # the source is unchanged: it stays
            elif isinstance(obj, SourceSnapshot):
                writes = lake.write_rows(
                    obj.rows, asset, obj.schema, summary={SOURCE_VERSION: obj.version}
                )
            else:
                writes = lake.write(
                    obj, asset, partitions, expr if context.has_asset_partitions else None
                )
        rows = sum(w.rows for w in writes)
        context.add_output_metadata(
            {
                **lake_metadata(writes),
                "dagster/row_count": rows,
                "dagster/column_schema": table_schema(schema),
                "bytes_written": sum(w.bytes for w in writes) if written else 0,
                "partitions_written": len(writes) if written else 0,
                "lake_uri": dg.MetadataValue.path(lake.uri(asset, partitions[0])),
            }
        )

    def load_input(self, context: dg.InputContext) -> DataFrame:
        upstream = context.upstream_output
        asset = context.asset_key.to_python_identifier()
        # A month's report reads the days that exist: a day with no sales file has no partition.
        allow_missing = bool(
            upstream is not None
            and (upstream.definition_metadata or {}).get("missing_partitions_are_empty")
        )
        df, missing = self.lake_resource.lake().read(
            self.pyspark.spark_session,
            asset,
            self._partitions(context),
            schema=LAKE_SCHEMAS.get(asset),
            allow_missing=allow_missing,
        )
        if missing:
            context.log.info(
                f"{asset}: {len(missing)} of {len(self._partitions(context))} partition(s) not "
                f"materialized, read as no rows: {missing[0]}..{missing[-1]}"
            )
        return df
