"""Key rotation of the lake's PII, and the failures an operator must see: a wrong master key and
a tampered snapshot fail the mart run with a clear message, and publish nothing.

Local stack (folder + SQLite), one small day, the master key from the environment.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from sales_platform.cli import _resources, main, materialize
from sales_platform.definitions import build_definitions
from sales_platform.generate import generate
from sales_platform.schemas import customers_data_mart_table
from sales_platform.settings import Settings
from sales_platform.storage.crypto import MASTER_KEY_VAR, Keyring, generate_master_key

pytestmark = pytest.mark.integration

DAY = date(2023, 4, 3)
MONTH = "2023-04-01"


def _mart(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(customers_data_mart_table).order_by(customers_data_mart_table.c.customer_id)
        ).mappings()
        return [dict(r) for r in rows]


def _run_marts(settings: Settings, instance) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def("monthly_marts_job")
    return job.execute_in_process(instance=instance, partition_key=MONTH, raise_on_error=False)


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every message in the failed step's error chain."""
    [failure] = result.get_step_failure_events()
    error, texts = failure.step_failure_data.error, []
    while error is not None:
        texts.append(error.message)
        error = error.cause
    return "\n".join(texts)


def _customer_files(settings: Settings) -> list:
    """The files of the customers table's current snapshot (older ones stay until vacuumed)."""
    with _resources(settings, "lake") as res:
        lake = res.lake.lake()
        live = lake.live_files(lake.table("customers"))
        return sorted(lake.store.local_path(lake.key_of(f.file_path)) for f in live)


def test_wrong_key_and_tampering_fail_loudly_and_rotation_retires_the_old_key(
    spark, tmp_path, monkeypatch, capsys
):
    old_key, new_key = generate_master_key(), generate_master_key()
    old_id = Keyring.from_text(old_key).newest_key_id
    new_id = Keyring.from_text(new_key).newest_key_id
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(MASTER_KEY_VAR, old_key)
    settings = Settings.from_env()
    with _resources(settings, "landing", "source_db", "warehouse_db") as res:
        generate(
            res.landing.open(),
            res.source_db.engine(),
            start_date=DAY,
            days=1,
            rows_per_day=200,
            seed=3,
            customers=25,
            progress=False,
        )
        warehouse = res.warehouse_db.engine()

        with dg.instance_for_test() as instance:
            assert all(r.success for r in materialize(DAY, DAY, settings, instance))
            published = _mart(warehouse)
            assert published and all(r["phone_number"].startswith("+91") for r in published)

            # 1. A master key that is not the one the snapshot was encrypted with.
            monkeypatch.setenv(MASTER_KEY_VAR, new_key)
            result = _run_marts(settings, instance)
            assert not result.success
            message = _failure_text(result)
            assert "PiiDecryptionError" in message or "key id" in message
            assert f"encrypted with key id {old_id}" in message
            assert "customers." in message and "(row key " in message
            assert _mart(warehouse) == published  # nothing was published from it

            # 2. Rotation: the new key in front, the old one still listed.
            monkeypatch.setenv(MASTER_KEY_VAR, f"{new_key},{old_key}")
            assert main(["secrets", "rotate"]) == 0
            report = capsys.readouterr().out
            assert f"newest key id {new_id}" in report and "customers: 25 row(s)" in report
            assert main(["secrets", "status"]) == 0
            status = capsys.readouterr().out
            assert "still on older key" not in status and new_id in status

            # 3. The old key retired: the rotated snapshot reads with the new key alone.
            monkeypatch.setenv(MASTER_KEY_VAR, new_key)
            assert _run_marts(settings, instance).success
            assert _mart(warehouse) == published

            # 4. One byte of one phone number's ciphertext changed in the lake.
            path = next(p for p in _customer_files(settings) if pq.read_metadata(p).num_rows)
            table = pq.read_table(path)
            phones = table.column("phone_number").to_pylist()
            phones[0] = phones[0][:-3] + ("A" if phones[0][-3] != "A" else "B") + phones[0][-2:]
            index = table.schema.get_field_index("phone_number")
            table = table.set_column(index, table.field(index), pa.array(phones, pa.string()))
            pq.write_table(table, path)
            assert pc.sum(pc.equal(table.column("phone_number"), phones[0])).as_py() == 1
            result = _run_marts(settings, instance)
            assert not result.success
            message = _failure_text(result)
            assert "customers.phone_number" in message and "failed authentication" in message
            assert _mart(warehouse) == published
