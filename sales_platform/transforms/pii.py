"""Field-level encryption of the personal data in the dimension snapshots.

Which columns are personal data, per lake asset, lives here (`PII_SPECS`). The customers' names,
address, pincode and phone number, and the sales team's address and pincode, are stored in the
lake as `pii1:<key id>:<ciphertext>` values (see `storage.crypto`); they are decrypted only for
the customer mart, right before it is computed.

Vectorised: values are processed a column at a time, in batches: on the driver for rows pulled
from MySQL (`encrypt_records`, so plaintext never enters Spark), and inside Spark's Python
workers one Arrow batch at a time through `mapInArrow` (`encrypt_columns`, `decrypt_columns`,
`reencrypt_columns`). No row-at-a-time UDF, no I/O: the key material comes in as a
`FieldCipher`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import pyarrow as pa
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sales_platform.storage.ciphers import PII_PREFIX, FieldCipher, PiiDecryptionError


@dataclass(frozen=True)
class PiiSpec:
    """The personal-data columns of a lake asset and the key that identifies its rows."""

    asset: str
    row_key: str
    columns: tuple[str, ...]

    def aads(self, column: str, row_keys: list) -> list[bytes]:
        # Binds a ciphertext to its asset, column and row: a value moved elsewhere fails.
        head = f"sales_platform|{self.asset}.{column}|"
        return [f"{head}{k}".encode() for k in row_keys]


CUSTOMERS_PII = PiiSpec(
    "customers",
    "customer_id",
    ("first_name", "last_name", "address", "pincode", "phone_number"),
)
SALES_TEAM_PII = PiiSpec("sales_team", "id", ("address", "pincode"))
PII_SPECS: dict[str, PiiSpec] = {s.asset: s for s in (CUSTOMERS_PII, SALES_TEAM_PII)}
# What the customer mart publishes, so all it decrypts: the pincode stays ciphertext.
CUSTOMER_MART_PII = replace(
    CUSTOMERS_PII, columns=("first_name", "last_name", "address", "phone_number")
)


# --- batches (driver or Spark worker) ------------------------------------------------------


def _encrypt_batch(batch: pa.RecordBatch, spec: PiiSpec, cipher: FieldCipher) -> pa.RecordBatch:
    keys = batch.column(spec.row_key).to_pylist()
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if name in spec.columns:
            values = cipher.encrypt_many(column.to_pylist(), spec.aads(name, keys))
            column = pa.array(values, type=column.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def _decrypt_batch(
    batch: pa.RecordBatch, spec: PiiSpec, cipher: FieldCipher, reencrypt: bool = False
) -> pa.RecordBatch:
    keys = batch.column(spec.row_key).to_pylist()
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if name in spec.columns:
            tokens = column.to_pylist()
            aads = spec.aads(name, keys)
            plain = cipher.decrypt_many(tokens, aads, f"{spec.asset}.{name}", keys)
            if reencrypt:
                plain = _reencrypted(tokens, plain, aads, cipher)
            column = pa.array(plain, type=column.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def _reencrypted(
    tokens: list, plain: list, aads: list[bytes], cipher: FieldCipher
) -> list[str | None]:
    # Every value was authenticated by the decryption; only those on an older key are rewritten.
    newest = cipher.newest_key_id
    stale = [
        i for i, t in enumerate(tokens) if t is not None and FieldCipher.key_id_of(t) != newest
    ]
    fresh = cipher.encrypt_many([plain[i] for i in stale], [aads[i] for i in stale])
    out = list(tokens)
    for i, token in zip(stale, fresh, strict=True):
        out[i] = token
    return out


def _map(batches: Iterator[pa.RecordBatch], fn) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield fn(batch)


def encrypt_records(rows: list[dict], spec: PiiSpec, cipher: FieldCipher) -> list[dict]:
    """Rows (dicts, as read from the source table) with the spec's columns encrypted.

    Used where the rows are already in Python (the MySQL snapshot), so plaintext never reaches
    Spark, its temporary files or the lake. Column by column, like the Arrow path.
    """
    if not rows:
        return rows
    keys = [r[spec.row_key] for r in rows]
    out = [dict(r) for r in rows]
    for column in spec.columns:
        values = cipher.encrypt_many([r.get(column) for r in rows], spec.aads(column, keys))
        for row, value in zip(out, values, strict=True):
            row[column] = value
    return out


# --- Spark ---------------------------------------------------------------------------------


@contextmanager
def _py4j_quiet():
    """py4j's DEBUG log prints every command sent to the JVM, including the pickled function
    (and so the PII key) that mapInArrow hands over. Keep it at INFO while that happens."""
    # list() copies the registry in one step: another thread may be adding a logger.
    names = ["py4j"] + [n for n in list(logging.root.manager.loggerDict) if n.startswith("py4j.")]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _check(df: DataFrame, spec: PiiSpec) -> None:
    missing = [c for c in (spec.row_key, *spec.columns) if c not in df.columns]
    if missing:
        raise ValueError(f"{spec.asset}: column(s) {missing} missing for PII processing")


def encrypt_columns(df: DataFrame, spec: PiiSpec, cipher: FieldCipher) -> DataFrame:
    """df with the spec's columns encrypted under the newest key (schema unchanged)."""
    _check(df, spec)
    with _py4j_quiet():
        return df.mapInArrow(
            partial(_map, fn=partial(_encrypt_batch, spec=spec, cipher=cipher)), df.schema
        )


def decrypt_columns(df: DataFrame, spec: PiiSpec, cipher: FieldCipher) -> DataFrame:
    """df with the spec's columns in plaintext. A bad value fails the Spark job with a
    PiiDecryptionError (see `surface_pii_errors`); none is ever turned into a null."""
    _check(df, spec)
    with _py4j_quiet():
        return df.mapInArrow(
            partial(_map, fn=partial(_decrypt_batch, spec=spec, cipher=cipher)), df.schema
        )


def reencrypt_columns(df: DataFrame, spec: PiiSpec, cipher: FieldCipher) -> DataFrame:
    """df with every PII value authenticated and those on an older key re-encrypted under the
    newest one (key rotation)."""
    _check(df, spec)
    with _py4j_quiet():
        return df.mapInArrow(
            partial(_map, fn=partial(_decrypt_batch, spec=spec, cipher=cipher, reencrypt=True)),
            df.schema,
        )


def key_id_counts(df: DataFrame, spec: PiiSpec) -> dict[str, int]:
    """How many non-null PII values each key id protects ('plaintext' for unencrypted ones).

    Column expressions only (no Python worker), one Spark job for all the spec's columns.
    """
    _check(df, spec)
    kids = F.array(
        *[
            F.when(F.col(c).isNull(), F.lit(None))
            .when(F.col(c).startswith(f"{PII_PREFIX}:"), F.split(F.col(c), ":").getItem(1))
            .otherwise(F.lit("plaintext"))
            for c in spec.columns
        ]
    )
    rows = (
        df.select(F.explode(kids).alias("kid"))
        .where(F.col("kid").isNotNull())
        .groupBy("kid")
        .count()
        .collect()
    )
    return {row["kid"]: row["count"] for row in rows}


_ERROR_LINE = re.compile(r"PiiDecryptionError: (.+)")


@contextmanager
def surface_pii_errors():
    """Turn a Spark job failure caused by a PiiDecryptionError in a worker into that error,
    with its own message, instead of a JVM stack trace."""
    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        match = _ERROR_LINE.search(str(exc))
        if match is None:
            raise
        raise PiiDecryptionError(match.group(1).strip()) from exc


def decrypted_now(df: DataFrame, spec: PiiSpec, cipher: FieldCipher) -> DataFrame:
    """df with the spec's columns decrypted and every value checked now: a bad value fails
    here, with its own message, before anything is computed or published from it.

    For dimension snapshots (small): pulled into this process as Arrow, decrypted here a batch
    at a time, and handed back to Spark from memory. No Python worker starts (their start was
    2-2.6 s of every mart run, SECURITY.md), the key never leaves this process, and the
    plaintext never reaches a file: it lives in this run's memory and Spark's until the run
    drops the DataFrame (each run decrypts, so checks, again).
    """
    _check(df, spec)
    table = df.toArrow()
    plain = pa.Table.from_batches(
        [_decrypt_batch(batch, spec, cipher) for batch in table.to_batches()], schema=table.schema
    )
    return df.sparkSession.createDataFrame(plain, schema=df.schema)
