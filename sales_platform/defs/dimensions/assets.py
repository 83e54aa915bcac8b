"""Dimensions: snapshots of the master data tables kept in MySQL by the business.

A snapshot is written only when its source changed: each run reads the whole table (cheap next
to Spark) and hashes it; when the lake's current snapshot holds that version, nothing is
encrypted or written, and the materialization reports the same data version. A changed
snapshot is written as Parquet by the run itself: a few thousand rows need no Spark job.
"""

import hashlib
import json
from collections.abc import Callable, Iterator

import dagster as dg
import sqlalchemy as sa

from sales_platform.defs.dimensions.checks import primary_key_result, primary_key_spec
from sales_platform.defs.quality import blocking_failure
from sales_platform.schemas import SOURCE_SPARK_SCHEMAS, SOURCE_TABLES
from sales_platform.storage.crypto import KeyringResource
from sales_platform.storage.database import Database
from sales_platform.storage.lake import SOURCE_VERSION, LakeResource, SourceSnapshot
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


def source_version(rows: list[dict], schema, key_id: str | None) -> str:
    """A digest of the source table's rows (in any order), of the snapshot's schema and of the
    PII key that would encrypt it: any insert, update or delete, a schema change or a new key
    gives another version."""
    digest = hashlib.sha256(schema.json().encode())
    digest.update(f"|key:{key_id}|".encode())
    for line in sorted(json.dumps(r, sort_keys=True, default=repr) for r in rows):
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def snapshot_asset(name: str) -> dg.AssetsDefinition:
    table_name = _SOURCE_TABLE[name]
    schema = SOURCE_SPARK_SCHEMAS[table_name]
    spec = PII_SPECS.get(name)
    decorate = dg.asset(
        name=name,
        group_name="dimensions",
        io_manager_key="lake_io_manager",
        kinds={"mysql", "parquet"},
        description=_DESCRIPTIONS[name],
        check_specs=[primary_key_spec(name)],
    )

    def checked(
        lake: LakeResource,
        rows: list[dict],
        protect: Callable[[list[dict]], list[dict]],
        key_id: str | None,
        metadata: dict,
    ) -> Iterator:
        # Checked before the output exists: a failing snapshot never replaces the lake's.
        result = primary_key_result(name, rows)
        failure = blocking_failure(name, [result], {result.check_name})
        if failure is not None:
            yield result
            raise failure
        version = source_version(rows, schema, key_id)
        current = lake.lake().current_write(name)
        if current is not None and current[1].get(SOURCE_VERSION) == version:
            snapshot = SourceSnapshot(version, None, schema)
        else:
            snapshot = SourceSnapshot(version, protect(rows), schema)
        yield dg.Output(
            snapshot,
            data_version=dg.DataVersion(version),
            metadata={**metadata, "source_unchanged": snapshot.rows is None},
        )
        yield result

    if spec is None:

        @decorate
        def _snapshot(source_db: Database, lake: LakeResource) -> Iterator:
            yield from checked(lake, _rows(source_db, table_name), list, None, {})

        return _snapshot

    # Only the snapshots holding personal data get the key.
    @decorate
    def _pii_snapshot(
        source_db: Database,
        lake: LakeResource,
        pii_keys: KeyringResource,
    ) -> Iterator:
        cipher = pii_keys.keyring().field_cipher()
        metadata = {
            "pii_columns_encrypted": ", ".join(spec.columns),
            "pii_key_id": cipher.newest_key_id,
        }
        yield from checked(
            lake,
            _rows(source_db, table_name),
            # Encrypted field by field before it reaches the lake.
            lambda rows: encrypt_records(rows, spec, cipher),
            cipher.newest_key_id,
            metadata,
        )

    return _pii_snapshot


dimension_assets = [snapshot_asset(name) for name in _SOURCE_TABLE]
