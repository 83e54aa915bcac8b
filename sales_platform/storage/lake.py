"""The lake: Spark DataFrames stored as Parquet, one folder per asset partition.

Layout, under the lake's location (a local folder or s3://bucket/prefix):

    <asset>/<partition>/_manifest.json       which version is current, its files, rows, schema
    <asset>/<partition>/<version>/part-*.parquet

A write stages Parquet on local disk (local-mode Spark cannot reach S3 here: architecture.md §5),
moves the files under a new version, then replaces the manifest: one object put, so a reader sees
the old partition or the new one, never half of one. Old versions are deleted afterwards.
Writing some partitions never touches the others. Staging between S3 and local Spark lives only
in this module.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.column_docs import column_schema
from sales_platform.schemas import LAKE_SCHEMAS
from sales_platform.storage.object_store import ObjectStore, ObjectStoreResource, staging_dir

MANIFEST = "_manifest.json"
UNPARTITIONED = "__all__"
PARTITION_COLUMN = "__partition"


@dataclass(frozen=True)
class PartitionWrite:
    partition: str
    version: str
    rows: int
    bytes: int
    files: int


@dataclass(frozen=True)
class StagedWrite:
    asset: str
    partitions: list[str]
    folder: Path
    schema_json: str

    @property
    def data(self) -> Path:
        return self.folder / "data"


class Lake:
    def __init__(self, store: ObjectStore, staging_root: Path | None = None):
        self.store = store
        self._staging_root = staging_root
        self._read_stages: list[Path] = []

    def _stage(self) -> Path:
        # Same disk as a local lake, so staged files move in by rename.
        hint = self._staging_root
        if hint is None and (root := self.store.local_path("")) is not None:
            hint = root / ".staging"
        return staging_dir(hint)

    @staticmethod
    def _manifest_key(asset: str, partition: str) -> str:
        return f"{asset}/{partition}/{MANIFEST}"

    def manifest(self, asset: str, partition: str) -> dict | None:
        key = self._manifest_key(asset, partition)
        if self.store.head(key) is None:
            return None
        return json.loads(self.store.get_bytes(key))

    def uri(self, asset: str, partition: str = UNPARTITIONED) -> str:
        return self.store.uri(f"{asset}/{partition}/")

    def write(
        self,
        df: DataFrame,
        asset: str,
        partitions: list[str],
        partition_expr: str | None = None,
    ) -> list[PartitionWrite]:
        """Replace `partitions` of `asset` with the rows of df, in one Spark job.

        partition_expr is a Spark SQL expression giving each row's partition key (for example
        "date_format(sales_date, 'yyyy-MM-dd')"); without it df is the single partition given.
        Every partition named gets a new version, empty if df has no rows for it, so a rerun
        that finds no data clears what an earlier run wrote.
        """
        staged = self.stage(df, asset, partitions, partition_expr)
        try:
            return self.publish(staged)
        finally:
            self.discard(staged)

    def stage(
        self,
        df: DataFrame,
        asset: str,
        partitions: list[str],
        partition_expr: str | None = None,
    ) -> StagedWrite:
        """Write df as Parquet on local disk only; `publish` makes it the current partitions.

        Staging first lets a step check what it wrote before anyone can read it.
        """
        if partition_expr is None and len(partitions) != 1:
            raise ValueError(f"{asset}: several partitions need a partition_expr")
        staged = StagedWrite(asset, list(partitions), self._stage(), df.schema.json())
        try:
            key_col = F.expr(partition_expr) if partition_expr else F.lit(partitions[0])
            (
                df.withColumn(PARTITION_COLUMN, key_col.cast("string"))
                .write.partitionBy(PARTITION_COLUMN)
                .parquet(str(staged.data))
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

    def publish(self, staged: StagedWrite) -> list[PartitionWrite]:
        writes = [
            self._publish(
                staged.asset,
                p,
                staged.data / f"{PARTITION_COLUMN}={p}",
                staged.schema_json,
            )
            for p in staged.partitions
        ]
        self.discard(staged)
        return writes

    @staticmethod
    def discard(staged: StagedWrite) -> None:
        shutil.rmtree(staged.folder, ignore_errors=True)

    def _publish(self, asset: str, partition: str, folder: Path, schema_json: str):
        version = f"v-{uuid.uuid4().hex}"
        files = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        keys, rows, size = [], 0, 0
        for i, path in enumerate(files):
            rows += pq.ParquetFile(path).metadata.num_rows
            size += path.stat().st_size
            key = f"{asset}/{partition}/{version}/part-{i:05d}.parquet"
            self.store.put_file(path, key)
            keys.append(key)
        previous = self.manifest(asset, partition)
        manifest = {
            "version": version,
            "files": keys,
            "rows": rows,
            "bytes": size,
            "schema": json.loads(schema_json),
        }
        self.store.put_bytes(self._manifest_key(asset, partition), json.dumps(manifest).encode())
        if previous is not None:
            self.store.delete(previous["files"])
        return PartitionWrite(partition, version, rows, size, len(keys))

    def read(
        self,
        spark: SparkSession,
        asset: str,
        partitions: list[str],
        schema: T.StructType | None = None,
        allow_missing: bool = False,
    ) -> tuple[DataFrame, list[str]]:
        """Rows of the given partitions as one DataFrame, and the partitions that were missing.

        A missing partition is an error unless allow_missing (then it reads as no rows).
        """
        files: list[str] = []
        missing: list[str] = []
        for partition in partitions:
            manifest = self.manifest(asset, partition)
            if manifest is None:
                missing.append(partition)
                continue
            schema = schema or T.StructType.fromJson(manifest["schema"])
            files.extend(manifest["files"])
        if missing and not allow_missing:
            raise FileNotFoundError(
                f"{asset}: partition(s) {missing[:5]} not in the lake at {self.store.uri(asset)}; "
                "materialize them first"
            )
        if schema is None:
            raise FileNotFoundError(f"{asset}: none of {len(partitions)} partition(s) exist")
        if not files:
            return spark.createDataFrame([], schema), missing
        return spark.read.schema(schema).parquet(*self._local_paths(files)), missing

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


def table_schema(schema: T.StructType) -> dg.TableSchema:
    """A Spark schema as Dagster's column schema metadata (shown on the asset's page)."""
    return column_schema(schema)


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives; hands out a `Lake` for the run."""

    store: ObjectStoreResource
    staging_dir: str | None = Field(
        default=None, description="local folder for staging Parquet (default: system temp)"
    )

    _lake: Lake | None = PrivateAttr(default=None)

    def lake(self) -> Lake:
        if self._lake is None:
            staging = Path(self.staging_dir) if self.staging_dir else None
            self._lake = Lake(self.store.open(), staging)
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

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        asset = context.asset_key.to_python_identifier()
        partitions = self._partitions(context)
        expr = (context.definition_metadata or {}).get("partition_expr")
        writes = self.lake_resource.lake().write(
            obj, asset, partitions, expr if context.has_asset_partitions else None
        )
        rows = sum(w.rows for w in writes)
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "dagster/column_schema": table_schema(obj.schema),
                "bytes_written": sum(w.bytes for w in writes),
                "partitions_written": len(writes),
                "lake_uri": dg.MetadataValue.path(
                    self.lake_resource.lake().uri(asset, partitions[0])
                ),
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
