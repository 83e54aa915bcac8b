"""A dimension snapshot is rewritten exactly when its source table changed, on both stacks
(SQLite and a folder; MariaDB and moto's S3 endpoint).

An unchanged source (same rows, same schema, same newest PII key) keeps the lake's current
snapshot and reports the same data version; an insert, an update or a delete is always a new
snapshot with the new rows; so is a new master key (the snapshot is encrypted under it).
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from sales_platform.defs.dimensions.assets import dimension_assets
from sales_platform.defs.resources import build_resources
from sales_platform.generate import generate
from sales_platform.schemas import SOURCE_TABLES
from sales_platform.settings import Settings
from sales_platform.storage.crypto import Keyring
from sales_platform.storage.database import create_engine
from sales_platform.storage.object_store import LocalObjectStore
from sales_platform.transforms.pii import CUSTOMERS_PII, decrypt_columns
from sales_platform_tests.support import stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CUSTOMERS = next(a for a in dimension_assets if a.key.path[-1] == "customers")


def _run(settings: Settings) -> dict:
    """Materialize the customers snapshot; what the run recorded for it."""
    result = dg.materialize([CUSTOMERS], resources=build_resources(settings))
    [materialization] = result.asset_materializations_for_node("customers")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    return {
        "snapshot": meta["iceberg_snapshot_id"],
        "rows": meta["dagster/row_count"],
        "unchanged": meta.get("source_unchanged", False),
        "version": materialization.tags["dagster/data_version"],
        "key_id": meta["pii_key_id"],
    }


def _lake_customers(spark, settings: Settings) -> dict[int, dict]:
    """The lake's current customers snapshot, decrypted: customer_id -> row."""
    with dg.build_resources(
        {k: v for k, v in build_resources(settings).items() if k in ("lake", "pii_keys")}
    ) as res:
        df, _ = res.lake.lake().read(spark, "customers", ["__all__"])
        cipher = res.pii_keys.keyring().field_cipher()
        rows = decrypt_columns(df, CUSTOMERS_PII, cipher).collect()
    return {r.customer_id: r.asDict() for r in rows}


OLD_KEY = Fernet.generate_key().decode()


@pytest.fixture(params=["local", "prod"])
def settings(tmp_path, request, monkeypatch, spark) -> Settings:
    settings = stack_settings(request.param, tmp_path, request, monkeypatch)
    # After the stack's own (prod sets a fresh key): the rotation below keeps this one.
    monkeypatch.setenv("SALES_PLATFORM_MASTER_KEY", OLD_KEY)
    engine = _source(settings)
    generate(
        # Only the source tables matter here: the day's file may stay in a folder on both stacks.
        LocalObjectStore(tmp_path / "data" / "bucket"),
        engine,
        start_date=date(2023, 3, 1),
        days=1,
        rows_per_day=10,
        seed=3,
        customers=30,
        progress=False,
    )
    engine.dispose()
    return settings


def _source(settings: Settings) -> sa.Engine:
    """The stack's source database: `<data dir>/source.db`, or the MariaDB database."""
    url = os.environ.get("SALES_PLATFORM_SOURCE_DB_URL") or settings.local_db_url("source")
    return create_engine(url)


def _execute(settings: Settings, statement) -> None:
    engine = _source(settings)
    with engine.begin() as conn:
        conn.execute(statement)
    engine.dispose()


def test_an_unchanged_source_keeps_the_snapshot_and_every_change_writes_a_new_one(
    settings, spark, monkeypatch
):
    customer = SOURCE_TABLES["customer"]
    first = _run(settings)
    assert not first["unchanged"] and first["rows"] == 30

    again = _run(settings)
    assert again == {**first, "unchanged": True}, "an unchanged source was written again"

    # Insert: a new customer.
    _execute(
        settings,
        customer.insert().values(
            customer_id=10_001,
            first_name="Ada",
            last_name="New",
            address="1 Road",
            pincode="123456",
            phone_number="9000000001",
            customer_joining_date=date(2023, 1, 2),
        ),
    )
    inserted = _run(settings)
    assert not inserted["unchanged"] and inserted["rows"] == 31
    assert inserted["snapshot"] != first["snapshot"]
    assert inserted["version"] != first["version"]
    assert _lake_customers(spark, settings)[10_001]["first_name"] == "Ada"

    # Update: one field of one row (same row count).
    _execute(
        settings,
        customer.update().where(customer.c.customer_id == 10_001).values(phone_number="9000000002"),
    )
    updated = _run(settings)
    assert not updated["unchanged"] and updated["rows"] == 31
    assert updated["snapshot"] != inserted["snapshot"]
    assert updated["version"] != inserted["version"]
    assert _lake_customers(spark, settings)[10_001]["phone_number"] == "9000000002"

    # Delete.
    _execute(settings, customer.delete().where(customer.c.customer_id == 10_001))
    deleted = _run(settings)
    assert not deleted["unchanged"] and deleted["rows"] == 30
    assert deleted["snapshot"] != updated["snapshot"]
    assert 10_001 not in _lake_customers(spark, settings)

    # A new master key (the old one kept for reading): the snapshot is encrypted under it.
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("SALES_PLATFORM_MASTER_KEY", f"{new_key},{OLD_KEY}")
    rotated_settings = Settings.from_env()
    rotated = _run(rotated_settings)
    assert not rotated["unchanged"] and rotated["snapshot"] != deleted["snapshot"]
    new_id = Keyring.from_text(new_key).newest_key_id
    assert rotated["key_id"] == new_id != first["key_id"]
    assert _run(rotated_settings)["unchanged"]
