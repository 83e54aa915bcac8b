"""The lake's Iceberg catalog, and registering Spark's Parquet files as Iceberg data files.

The catalog is pyiceberg's `SqlCatalog` on the warehouse database (SQLite locally, MySQL in prod;
its tables `iceberg_tables` and `iceberg_namespace_properties` follow Iceberg's JDBC catalog, so
other engines can use the same catalog), or AWS Glue for Athena users. Table metadata is written
by pyiceberg's FileIO under the table's location; data files are uploaded by the object store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from pyiceberg.catalog import Catalog, MetastoreCatalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
from pyiceberg.io import S3_RETRY_STRATEGY_IMPL
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import Table, TableProperties
from pyiceberg.typedef import Record
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

NAMESPACE = "sales_platform"
CATALOG_NAME = "sales_platform"
CATALOG_TYPES = ("sql", "glue")

# The day column of each daily table: the table's identity partition, and a column of every file.
DAY_COLUMNS = {
    "raw_sales": "sales_date",
    "sales_enriched": "sales_date",
    "raw_sales_quarantine": "business_date",
}


class FooterMismatch(ValueError):
    """A file's own statistics say it holds rows of another day than the one being replaced."""


class EngineSqlCatalog(SqlCatalog):
    """pyiceberg's SqlCatalog on an engine we already have: the warehouse's, with its TLS
    settings and its decrypted URL, so the catalog needs no second copy of the credentials."""

    def __init__(self, name: str, engine: sa.Engine, **properties: str):
        MetastoreCatalog.__init__(self, name, **properties)
        self.engine = engine
        self._init_catalog()


def file_io_properties(
    endpoint_url: str | None,
    region: str | None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
    max_attempts: int | None = None,
) -> dict[str, str]:
    """pyiceberg FileIO settings for the lake's object store (credentials: boto's default
    chain); metadata written to S3 gets the same server-side encryption as every object, and
    every S3 call, read or write, retries throttling and 5xx (iceberg_io)."""
    from sales_platform.storage import iceberg_io

    props = {
        "py-io-impl": "sales_platform.storage.iceberg_io.LakeFileIO",
        S3_RETRY_STRATEGY_IMPL: "sales_platform.storage.iceberg_io.ReadRetries",
    }
    if max_attempts is not None:
        props[iceberg_io.MAX_ATTEMPTS] = str(max_attempts)
    if endpoint_url:
        props["s3.endpoint"] = endpoint_url
    if region:
        props["s3.region"] = region
    if sse:
        props[iceberg_io.SSE] = sse
    if sse_kms_key_id:
        props[iceberg_io.SSE_KMS_KEY_ID] = sse_kms_key_id
    return props


def open_catalog(
    kind: str,
    engine: sa.Engine | None,
    io_props: dict[str, str],
    name: str = CATALOG_NAME,
    glue_region: str | None = None,
) -> Catalog:
    if kind == "sql":
        if engine is None:
            raise ValueError("the sql catalog needs a database (the warehouse_db resource)")
        catalog: Catalog = EngineSqlCatalog(name, engine, **io_props)
    elif kind == "glue":
        props = dict(io_props, type="glue")
        if glue_region:
            props["glue.region"] = glue_region
        catalog = load_catalog(name, **props)
    else:
        raise ValueError(f"lake catalog must be one of {CATALOG_TYPES}, not {kind!r}")
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(NAMESPACE)
    return catalog


def identifier(asset: str) -> str:
    return f"{NAMESPACE}.{asset}"


def arrow_schema(schema: T.StructType) -> pa.Schema:
    # Every column optional in the table: Spark decides nullability per plan, and a required
    # table column would refuse a file whose writer marked it nullable.
    # Spark writes TIMESTAMP_MICROS adjusted to UTC: Iceberg timestamptz.
    arrow = to_arrow_schema(schema, timezone="UTC")
    return pa.schema([f.with_nullable(True) for f in arrow])


def ensure_table(catalog: Catalog, asset: str, schema: T.StructType, location: str) -> Table:
    ident = identifier(asset)
    if catalog.table_exists(ident):
        return catalog.load_table(ident)
    try:
        tx = catalog.create_table_transaction(ident, schema=arrow_schema(schema), location=location)
        day = DAY_COLUMNS.get(asset)
        if day is not None:
            with tx.update_spec() as spec:
                spec.add_identity(day)
        # Spark's files carry no Iceberg field ids: readers map columns by name.
        mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
        tx.set_properties(
            {
                TableProperties.DEFAULT_NAME_MAPPING: mapping,
                # Backfills of different days commit concurrently: retry on the newer snapshot.
                TableProperties.COMMIT_NUM_RETRIES: "10",
            }
        )
        tx.commit_transaction()
    except TableAlreadyExistsError:
        pass
    return catalog.load_table(ident)


def check_footer(path: Path, column: str, day: dt.date) -> int:
    """The file's row count, after its footer statistics proved every row is of `day`."""
    meta = pq.read_metadata(path)
    names = meta.schema.names
    if column not in names:
        raise FooterMismatch(f"{path.name}: no column {column!r}; the day must be inside the file")
    index = names.index(column)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if group.num_rows == 0:
            continue
        stats = group.column(index).statistics
        if stats is None or not stats.has_min_max:
            raise FooterMismatch(f"{path.name}: no statistics for {column!r}")
        if stats.min != day or stats.max != day or (stats.null_count or 0) > 0:
            raise FooterMismatch(
                f"{path.name}: {column} spans {stats.min}..{stats.max} "
                f"({stats.null_count} null), expected exactly {day}"
            )
    return meta.num_rows


def data_file(table: Table, local: Path, remote: str, day: dt.date | None) -> DataFile:
    """An Iceberg DataFile for a Parquet file staged at `local` and uploaded to `remote`,
    its statistics read from the local footer (no read back from the object store)."""
    meta = pq.read_metadata(local)
    schema = table.metadata.schema()
    quiet = logging.getLogger("pyiceberg.io.pyarrow")
    level = quiet.level
    if meta.num_rows == 0:
        quiet.setLevel(logging.ERROR)  # a day marker has no statistics, by design
    try:
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=meta,
            stats_columns=compute_statistics_plan(schema, table.metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(schema),
        )
    finally:
        quiet.setLevel(level)
    # The day itself (checked against the footer): a file of no rows has no statistics.
    partition = Record() if day is None else Record((day - dt.date(1970, 1, 1)).days)
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=remote,
        file_format=FileFormat.PARQUET,
        partition=partition,
        file_size_in_bytes=local.stat().st_size,
        sort_order_id=None,
        spec_id=table.metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )


def empty_file(table: Table, path: Path) -> Path:
    """A Parquet file of no rows in the table's schema: marks a day as written and empty."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    pq.write_table(schema_to_pyarrow(table.schema(), include_field_ids=False).empty_table(), path)
    return path
