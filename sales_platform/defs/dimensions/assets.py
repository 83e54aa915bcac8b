"""Dimensions: snapshots of the master data tables kept in MySQL by the business."""

from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa
from dagster_pyspark import LazyPySparkResource

from sales_platform.defs.dimensions.checks import primary_key_result, primary_key_spec
from sales_platform.defs.quality import blocking_failure
from sales_platform.schemas import SOURCE_SPARK_SCHEMAS, SOURCE_TABLES
from sales_platform.storage.crypto import KeyringResource
from sales_platform.storage.database import Database
from sales_platform.transforms.pii import PII_SPECS, encrypt_records

_DESCRIPTIONS = {
    "customers": "Snapshot of the customer master (table `customer`): who buys, and how to "
    "reach them for coupons. Holds personal data.",
    "stores": "Snapshot of the store master (table `store`): every shop that sells.",
    "products": "Snapshot of the product catalogue (table `product`), matched to sales by name.",
    "sales_team": "Snapshot of the sales team (table `sales_team`): who sells, for the "
    "incentive report.",
}
_SOURCE_TABLE = {
    "customers": "customer",
    "stores": "store",
    "products": "product",
    "sales_team": "sales_team",
}


def _rows(source_db: Database, table_name: str) -> list[dict]:
    with source_db.engine().connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(SOURCE_TABLES[table_name])).mappings()]


def snapshot_asset(name: str) -> dg.AssetsDefinition:
    table_name = _SOURCE_TABLE[name]
    schema = SOURCE_SPARK_SCHEMAS[table_name]
    spec = PII_SPECS.get(name)
    decorate = dg.asset(
        name=name,
        group_name="dimensions",
        io_manager_key="lake_io_manager",
        kinds={"mysql", "spark", "parquet"},
        description=_DESCRIPTIONS[name],
        check_specs=[primary_key_spec(name)],
    )

    def checked(pyspark, rows: list[dict], metadata: dict) -> Iterator:
        # Checked before the output exists: a failing snapshot never replaces the lake's.
        result = primary_key_result(name, rows)
        failure = blocking_failure(name, [result], {result.check_name})
        if failure is not None:
            yield result
            raise failure
        yield dg.Output(pyspark.spark_session.createDataFrame(rows, schema), metadata=metadata)
        yield result

    if spec is None:

        @decorate
        def _snapshot(pyspark: LazyPySparkResource, source_db: Database) -> Iterator:
            yield from checked(pyspark, _rows(source_db, table_name), {})

        return _snapshot

    # Only the snapshots holding personal data get the key.
    @decorate
    def _pii_snapshot(
        pyspark: LazyPySparkResource, source_db: Database, pii_keys: KeyringResource
    ) -> Iterator:
        # Encrypted field by field before it reaches Spark or the lake.
        cipher = pii_keys.keyring().field_cipher()
        rows = encrypt_records(_rows(source_db, table_name), spec, cipher)
        metadata = {
            "pii_columns_encrypted": ", ".join(spec.columns),
            "pii_key_id": cipher.newest_key_id,
        }
        yield from checked(pyspark, rows, metadata)

    return _pii_snapshot


dimension_assets = [snapshot_asset(name) for name in _SOURCE_TABLE]
