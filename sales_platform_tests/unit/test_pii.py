"""PII columns in Spark: encrypted field by field, vectorised, decrypted only on request, and a
bad value fails loudly instead of becoming a null."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.schemas import CUSTOMER_SCHEMA, SALES_ENRICHED_SCHEMA
from sales_platform.storage.crypto import Keyring, PiiDecryptionError, generate_master_key
from sales_platform.transforms import marts, pii

HOSTILE_NAME = "Robert'); DROP TABLE customer;--"
CUSTOMERS = [
    {
        "customer_id": 1,
        "first_name": HOSTILE_NAME,
        "last_name": 'O\'Brien \\ "Zoë" 👩‍💻',
        "address": "12 Main St,\nFlat %s; :name",
        "pincode": "560001",
        "phone_number": "+91 9000000001",
        "customer_joining_date": date(2023, 1, 1),
    },
    {
        "customer_id": 2,
        "first_name": "Asha",
        "last_name": None,
        "address": "",
        "pincode": None,
        "phone_number": "+91 9000000002",
        "customer_joining_date": None,
    },
]


@pytest.fixture
def keyring():
    return Keyring.from_text(generate_master_key())


def _snapshot(spark, keyring):
    rows = pii.encrypt_records(CUSTOMERS, pii.CUSTOMERS_PII, keyring.field_cipher())
    return spark.createDataFrame(rows, CUSTOMER_SCHEMA)


def _plain(rows) -> list[dict]:
    return sorted((r.asDict() for r in rows), key=lambda r: r["customer_id"])


def test_records_are_encrypted_field_by_field_with_the_key_id(keyring):
    rows = pii.encrypt_records(CUSTOMERS, pii.CUSTOMERS_PII, keyring.field_cipher())
    for before, after in zip(CUSTOMERS, rows, strict=True):
        for column, value in before.items():
            if column in pii.CUSTOMERS_PII.columns and value is not None:
                assert after[column].startswith(f"pii1:{keyring.newest_key_id}:")
                assert value == "" or value not in after[column]
            else:
                assert after[column] == value  # ids, dates and nulls are left alone


def test_spark_decrypt_round_trips_verbatim_and_is_vectorised(spark, keyring):
    encrypted = _snapshot(spark, keyring)
    decrypted = pii.decrypt_columns(encrypted, pii.CUSTOMERS_PII, keyring.field_cipher())
    assert decrypted.schema == encrypted.schema
    assert _plain(decrypted.collect()) == CUSTOMERS
    # Arrow batches through mapInArrow, not a row-at-a-time Python UDF.
    plan = decrypted._jdf.queryExecution().executedPlan().toString()
    assert "MapInArrow" in plan and "BatchEvalPython" not in plan


def test_spark_encrypt_matches_the_driver_path(spark, keyring):
    plain = spark.createDataFrame(CUSTOMERS, CUSTOMER_SCHEMA)
    cipher = keyring.field_cipher()
    encrypted = pii.encrypt_columns(plain, pii.CUSTOMERS_PII, cipher)
    stored = _plain(encrypted.collect())
    assert all(r["phone_number"].startswith("pii1:") for r in stored)
    assert _plain(pii.decrypt_columns(encrypted, pii.CUSTOMERS_PII, cipher).collect()) == CUSTOMERS


def test_a_tampered_value_fails_with_a_clear_message_not_a_null(spark, keyring):
    encrypted = _snapshot(spark, keyring)
    tampered = encrypted.withColumn(
        "phone_number",
        F.when(
            F.col("customer_id") == 2,
            F.concat(F.expr("substring(phone_number, 1, length(phone_number) - 4)"), F.lit("AAAA")),
        ).otherwise(F.col("phone_number")),
    )
    with pytest.raises(PiiDecryptionError) as info:
        pii.decrypted_now(tampered, pii.CUSTOMERS_PII, keyring.field_cipher())
    message = str(info.value)
    assert "customers.phone_number (row key 2)" in message and "failed authentication" in message
    assert "9000000002" not in message


def test_a_wrong_master_key_fails_with_the_key_id(spark, keyring):
    encrypted = _snapshot(spark, keyring)
    wrong = Keyring.from_text(generate_master_key()).field_cipher()
    with pytest.raises(PiiDecryptionError, match=f"key id {keyring.newest_key_id}"):
        pii.decrypted_now(encrypted, pii.CUSTOMERS_PII, wrong)


def test_plaintext_in_the_snapshot_is_refused(spark, keyring):
    plain = spark.createDataFrame(CUSTOMERS, CUSTOMER_SCHEMA)
    with pytest.raises(PiiDecryptionError, match="not a PII ciphertext"):
        pii.decrypted_now(plain, pii.CUSTOMERS_PII, keyring.field_cipher())


def test_reencrypt_moves_old_values_to_the_newest_key(spark):
    old_key, new_key = generate_master_key(), generate_master_key()
    old, new = Keyring.from_text(old_key), Keyring.from_text(new_key)
    both = Keyring.from_text(f"{new_key},{old_key}")
    encrypted = _snapshot(spark, old)
    assert pii.key_id_counts(encrypted, pii.CUSTOMERS_PII) == {old.newest_key_id: 8}

    rotated = pii.reencrypt_columns(encrypted, pii.CUSTOMERS_PII, both.field_cipher()).cache()
    assert pii.key_id_counts(rotated, pii.CUSTOMERS_PII) == {new.newest_key_id: 8}
    # The new key alone reads the rotated snapshot: the old key can be retired.
    back = pii.decrypt_columns(rotated, pii.CUSTOMERS_PII, new.field_cipher())
    assert _plain(back.collect()) == CUSTOMERS
    # Values already on the newest key keep their ciphertext.
    again = pii.reencrypt_columns(rotated, pii.CUSTOMERS_PII, both.field_cipher())
    assert _plain(again.collect()) == _plain(rotated.collect())
    rotated.unpersist()


def test_py4j_debug_log_never_sees_the_pickled_key(spark, keyring, caplog):
    """py4j at DEBUG logs every JVM command, the pickled function (and so the key) included."""
    snapshot = _snapshot(spark, keyring)
    py4j = logging.getLogger("py4j")
    saved = py4j.level
    py4j.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="py4j"):
            pii.decrypt_columns(snapshot, pii.CUSTOMERS_PII, keyring.field_cipher())
            guarded = [r.getMessage() for r in caplog.records]
            caplog.clear()
            snapshot.mapInArrow(lambda batches: batches, snapshot.schema)  # unguarded
            unguarded = [r.getMessage() for r in caplog.records]
        assert py4j.level == logging.DEBUG  # restored after the guarded call
    finally:
        py4j.setLevel(saved)
    assert any("PythonFunction" in m for m in unguarded)  # the leak the guard prevents
    assert not any("PythonFunction" in m for m in guarded)


def test_customer_mart_from_decrypted_snapshot_keeps_hostile_values_verbatim(spark, keyring):
    customers = pii.decrypted_now(
        _snapshot(spark, keyring), pii.CUSTOMERS_PII, keyring.field_cipher()
    )
    sale = {
        "sales_date": date(2023, 1, 5),
        "customer_id": 1,
        "store_id": 121,
        "sales_person_id": 1,
        "product_name": "Tea",
        "product_id": 1,
        "price": Decimal("10.00"),
        "quantity": 1,
        "total_cost": Decimal("10.00"),
        "additional_column": None,
        "source_key": "k",
        "customer_known": True,
        "store_known": True,
        "sales_person_known": True,
        "product_known": True,
    }
    # Columns the fact may gain later get a neutral value: this test is about the names.
    neutral = {T.IntegerType: 1, T.LongType: 1, T.StringType: "x", T.BooleanType: True}
    row = {
        f.name: sale.get(f.name, neutral.get(type(f.dataType)))
        for f in SALES_ENRICHED_SCHEMA.fields
    }
    fact = spark.createDataFrame([row], SALES_ENRICHED_SCHEMA)
    [mart] = marts.customer_monthly_mart(fact, customers).collect()
    assert mart["full_name"] == f"{HOSTILE_NAME} {CUSTOMERS[0]['last_name']}"
    assert mart["address"] == CUSTOMERS[0]["address"]
    assert mart["phone_number"] == CUSTOMERS[0]["phone_number"]
