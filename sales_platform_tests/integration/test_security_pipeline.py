"""The production stack run the way an auditor would want it, once, then checked from every side.

Setup (as an administrator): a fresh MariaDB database with the tables (`ddl.create_tables`),
generated data with hostile values planted (a customer named `Robert'); DROP TABLE customer;--`,
a product name and a landing file name full of quotes, semicolons and non-ASCII), and the
least-privilege runtime user from `deploy/mysql/runtime_user.sql`. The pipeline then runs as that
user, its URL given as an `enc:` token, the master key from the environment, the lake on S3
(moto), with every log line and byte written to stdout / stderr captured.

Checks: the run succeeds with the runtime user, who cannot DROP, CREATE or ALTER; the hostile
values reach the mart verbatim; no phone number, name, address, password or key appears in the
logs, the Dagster event log (asset metadata included), the instance's files, or any object in the
bucket (Parquet decoded column by column); every object carries server-side encryption.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import secrets
import subprocess
import sys
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import boto3
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value
from sqlalchemy.engine import URL, make_url

from sales_platform.generate import generate
from sales_platform.schemas import (
    SALES_CSV_COLUMNS,
    customer_table,
    customers_data_mart_table,
    product_table,
    sales_team_table,
    store_table,
)
from sales_platform.storage import ddl
from sales_platform.storage.ciphers import Keyring, _derive_pii_key
from sales_platform.storage.crypto import generate_master_key
from sales_platform.storage.object_store import S3ObjectStore
from sales_platform_tests.conftest import MARIADB_ADMIN_URL, _mariadb_engine

pytestmark = pytest.mark.integration

START, END = date(2023, 3, 1), date(2023, 3, 2)
MONTH = date(2023, 3, 1)
HOSTILE_NAME = "Robert'); DROP TABLE customer;--"
HOSTILE_ADDRESS = 'Flat 7 "B", O\'Hara Rd;\n`x` %s :name \\ 東京 👩‍💻'
HOSTILE_PHONE = "+91 9'0;--\"7"
HOSTILE_PRODUCT = 'Tea "Masala"; DROP TABLE product;-- ✓'
HOSTILE_KEY = "sales_data/2023-03-01/O'Brien; DROP TABLE product_staging_table;-- ünï €.csv"


@dataclass
class SecuredRun:
    admin: sa.Engine
    database: str
    runtime_url: str
    bucket: str
    client: object
    instance: dg.DagsterInstance
    exit_code: int
    captured: str
    marker: str
    data_dir: Path
    hostile_customer: int
    secrets: list[str] = field(default_factory=list)
    needles: set[str] = field(default_factory=set)  # PII: never in plaintext outside the mart
    cells: set[str] = field(default_factory=set)  # PII values, compared whole to stored cells


# The secured run, in its own process: everything it and its children (the JVM, Spark's Python
# workers) write to file descriptors 1 and 2 lands in files the tests scan. After the run, a marker
# printed by the JVM and one by a Python worker prove those streams were captured.
RUN_SCRIPT = """
import logging, sys
from datetime import date
from sales_platform.cli import materialize
from sales_platform.storage.spark import build_spark_session

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
# INFO on sqlalchemy.engine logs every statement with its parameters unless they are hidden.
logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
# The run's own Spark session, started first so the markers come from the JVM the run uses.
spark = build_spark_session()
system = spark.sparkContext._jvm.java.lang.System
system.out.println(sys.argv[3] + "-jvm-out")
system.err.println(sys.argv[3] + "-jvm-err")
marker = sys.argv[3] + "-worker"
spark.sparkContext.parallelize([1], 1).foreach(lambda _: print(marker, file=sys.stderr, flush=True))
# In this process (the instance in DAGSTER_HOME records the runs), so the run's JVM and Python
# workers are the ones whose output is captured; the CLI's launch through the code location
# runs the same assets in a run worker (covered by test_ui and test_cli_errors).
materialize(date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2]))
"""


def _run_in_subprocess(environ: dict[str, str], logs: Path, marker: str) -> tuple[int, str]:
    """(exit code, everything written to stdout and stderr) of a `materialize` in a new process."""
    env = {**os.environ, **environ}
    out, err = logs / "stdout.log", logs / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = subprocess.run(
            [sys.executable, "-c", RUN_SCRIPT, START.isoformat(), END.isoformat(), marker],
            env=env,
            stdout=stdout,
            stderr=stderr,
            timeout=600,
            check=False,
        ).returncode
    text = out.read_text("utf-8", "replace") + "\n" + err.read_text("utf-8", "replace")
    return code, text


def _secret_forms(master_key: str, password: str, pii_key: bytes) -> list[str]:
    """Each secret raw, URL-quoted, and in halves (a log line may cut or quote it)."""
    forms = []
    for secret in (master_key, password):
        forms += [secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)]
        half = len(secret) // 2
        forms += [secret[:half], secret[half:]]
    return [*dict.fromkeys(forms), *_b64_forms(pii_key)]


def _b64_forms(raw: bytes) -> set[str]:
    """The stretches of base64 text that `raw` produces at any alignment (std and url-safe)."""
    forms = set()
    for pad in range(3):
        text = base64.b64encode(b"\0" * pad + raw + b"\0\0").decode()
        inner = text[4:-8]  # drop chars that mix with the neighbours
        forms |= {inner, inner.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= 16}


def _plant_hostile_values(admin_db: sa.Engine, store: S3ObjectStore) -> int:
    with admin_db.begin() as conn:
        customer_id = conn.execute(sa.select(sa.func.min(customer_table.c.customer_id))).scalar()
        conn.execute(
            customer_table.update()
            .where(customer_table.c.customer_id == customer_id)
            .values(first_name=HOSTILE_NAME, address=HOSTILE_ADDRESS, phone_number=HOSTILE_PHONE)
        )
        product_id = conn.execute(sa.select(sa.func.max(product_table.c.id))).scalar() + 1
        conn.execute(
            product_table.insert().values(
                id=product_id, name=HOSTILE_PRODUCT, current_price=Decimal("12.50")
            )
        )
        store_id = conn.execute(sa.select(sa.func.min(store_table.c.id))).scalar()
        seller_id = conn.execute(sa.select(sa.func.min(sales_team_table.c.id))).scalar()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SALES_CSV_COLUMNS)
    writer.writerow(
        [customer_id, store_id, HOSTILE_PRODUCT, "2023-03-01", seller_id, "12.50", 2, "25.00"]
    )
    store.put_bytes(HOSTILE_KEY, text.getvalue().encode("utf-8"))
    return customer_id


def _sensitive(admin_db: sa.Engine) -> tuple[set[str], set[str]]:
    """(needles, cells): every encrypted column's plaintext (customer names, address, pincode,
    phone; the sales team's address and pincode), minus values public elsewhere (a seller or
    store manager who shares a customer's name, a store's address or pincode). Needles are
    searched for inside any text, so only values of 8+ characters; cells are compared whole."""
    with admin_db.connect() as conn:
        customers = conn.execute(sa.select(customer_table)).mappings().all()
        sellers = conn.execute(sa.select(sales_team_table)).mappings().all()
        public = set()
        for row in sellers:
            first, last = row["first_name"], row["last_name"]
            public |= {first, last, f"{first} {last}"}
        for row in conn.execute(sa.select(store_table)).mappings():
            public |= {row["store_manager_name"], row["address"], row["store_pincode"]}
        public |= set(conn.execute(sa.select(product_table.c.name)).scalars())
    needles, cells = set(), set()
    for c in customers:
        full = f"{c['first_name']} {c['last_name']}"
        needles |= {c["phone_number"], c["address"], full}
        cells |= {c["first_name"], c["last_name"], c["phone_number"], c["address"], full}
        cells.add(c["pincode"])
    for p in sellers:
        needles.add(p["address"])
        cells |= {p["address"], p["pincode"]}
    needles = {n for n in needles if n and len(n) >= 8 and n not in public}
    cells = {v for v in cells if v and v not in public}
    return needles, cells


# Session-scoped: the most expensive set-up of the suite (a subprocess run), made once.
@pytest.fixture(scope="session")
def secured_run(spark, s3_endpoint, tmp_path_factory):
    admin = _mariadb_engine()
    database = f"sp_sec_{uuid.uuid4().hex[:10]}"
    user = f"sp_rt_{uuid.uuid4().hex[:10]}"
    bucket = f"sp-sec-{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("secured")
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
    admin_db = sa.create_engine(f"{MARIADB_ADMIN_URL}/{database}?charset=utf8mb4")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    try:
        ddl.create_tables(admin_db, admin_db)
        generate(
            S3ObjectStore(client, bucket),
            admin_db,
            start_date=START,
            days=2,
            rows_per_day=300,
            seed=5,
            files_per_day=2,
            customers=40,
            stores=2,
            products=10,
            sellers_per_store=2,
            bad_file_fraction=0.25,
            progress=False,
        )
        hostile_customer = _plant_hostile_values(admin_db, S3ObjectStore(client, bucket))
        # A password with quotes and a percent sign: the grant binds it, the URL encodes it.
        password = secrets.token_urlsafe(18) + "'\"%;"
        ddl.grant_runtime_user(admin, user, password, database, database)
        admin_url = make_url(MARIADB_ADMIN_URL)
        runtime_url = URL.create(
            "mysql+pymysql",
            username=user,
            password=password,
            host=admin_url.host,
            port=admin_url.port,
            database=database,
            query={"charset": "utf8mb4"},
        ).render_as_string(hide_password=False)
        master_key = generate_master_key()
        token = Keyring.from_text(master_key).encrypt_secret(runtime_url)
        environ = {
            "SALES_PLATFORM_ENV": "prod",
            "SALES_PLATFORM_DATA_DIR": str(tmp / "data"),
            "SALES_PLATFORM_S3_BUCKET": bucket,
            "SALES_PLATFORM_S3_ENDPOINT_URL": s3_endpoint,
            "SALES_PLATFORM_SOURCE_DB_URL": token,
            "SALES_PLATFORM_WAREHOUSE_DB_URL": token,
            "SALES_PLATFORM_MASTER_KEY": master_key,
        }
        needles, cells = _sensitive(admin_db)
        home = tmp / "dagster_home"
        home.mkdir()
        environ["DAGSTER_HOME"] = str(home)
        marker = f"captured-{uuid.uuid4().hex}"
        exit_code, text = _run_in_subprocess(environ, tmp, marker)
        pii_key = _derive_pii_key(base64.urlsafe_b64decode(master_key))
        # The run's instance, read without touching the environment: the fixture lives for the
        # whole session.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield SecuredRun(
                admin=admin_db,
                database=database,
                runtime_url=runtime_url,
                bucket=bucket,
                client=client,
                instance=instance,
                exit_code=exit_code,
                captured=text,
                marker=marker,
                data_dir=tmp / "data",
                hostile_customer=hostile_customer,
                secrets=_secret_forms(master_key, password, pii_key),
                needles=needles,
                cells=cells,
            )
    finally:
        admin_db.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
            conn.exec_driver_sql("DROP USER IF EXISTS %(user)s@'%%'", {"user": user})
        admin.dispose()


def _leaks(run: SecuredRun, text: str) -> list[str]:
    found = [f"secret #{i}" for i, s in enumerate(run.secrets) if s in text]
    found += [f"PII {n[:3]}…" for n in sorted(run.needles) if n in text]
    return found


def _objects(run: SecuredRun) -> list[str]:
    keys = []
    for page in run.client.get_paginator("list_objects_v2").paginate(Bucket=run.bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _string_cells(table: pa.Table):
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield from (v for v in column.to_pylist() if v is not None)


# --- the run ---------------------------------------------------------------------------------


def test_the_pipeline_runs_as_the_least_privilege_user(secured_run):
    assert secured_run.exit_code == 0, secured_run.captured[-3000:]
    runs = secured_run.instance.get_runs()
    assert len(runs) == 2 and all(r.is_success for r in runs)
    with secured_run.admin.connect() as conn:
        rows = conn.execute(
            sa.select(sa.func.count()).where(customers_data_mart_table.c.sales_date_month == MONTH)
        ).scalar()
    assert rows > 0


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE customers_data_mart",
        "DROP TABLE customer",
        "CREATE TABLE intruder (id INT)",
        "ALTER TABLE product_staging_table ADD COLUMN x INT",
        "TRUNCATE TABLE sales_team_data_mart",
        "DELETE FROM customer",
        "UPDATE customer SET phone_number = NULL",
        "INSERT INTO product (id, name) VALUES (999999, 'x')",
        "SELECT user, authentication_string FROM mysql.user",
        "GRANT SELECT ON *.* TO CURRENT_USER()",
    ],
)
def test_the_runtime_user_cannot_change_the_schema_or_the_source(secured_run, statement):
    engine = sa.create_engine(secured_run.runtime_url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
            conn.exec_driver_sql(statement)
        assert info.value.orig.args[0] in (1044, 1045, 1142, 1143, 1227, 1410)  # denied
    finally:
        engine.dispose()
    with secured_run.admin.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(customer_table)).scalar() > 0


# --- hostile values ----------------------------------------------------------------------------


def test_hostile_values_reach_the_mart_verbatim(secured_run):
    with secured_run.admin.connect() as conn:
        last = conn.execute(
            sa.select(customer_table.c.last_name).where(
                customer_table.c.customer_id == secured_run.hostile_customer
            )
        ).scalar()
        mart = (
            conn.execute(
                sa.select(customers_data_mart_table).where(
                    customers_data_mart_table.c.customer_id == secured_run.hostile_customer,
                    customers_data_mart_table.c.sales_date_month == MONTH,
                )
            )
            .mappings()
            .one()
        )
        # The source tables are intact: the name was data, never SQL.
        assert conn.execute(sa.select(sa.func.count()).select_from(customer_table)).scalar() == 40
    assert mart["full_name"] == f"{HOSTILE_NAME} {last}"
    assert mart["address"] == HOSTILE_ADDRESS
    assert mart["phone_number"] == HOSTILE_PHONE
    assert mart["total_sales"] >= Decimal("25.00")


def _enriched_rows_of(run: SecuredRun, source_key: str) -> list[dict]:
    rows = []
    for key in _objects(run):
        if key.startswith("lake/sales_enriched/") and key.endswith(".parquet"):
            body = run.client.get_object(Bucket=run.bucket, Key=key)["Body"]
            rows += pq.read_table(io.BytesIO(body.read())).to_pylist()
    return [r for r in rows if r["source_key"] == source_key]


def test_hostile_file_name_round_trips_verbatim(secured_run):
    assert len(_enriched_rows_of(secured_run, HOSTILE_KEY)) == 1
    ledger = ddl.metadata.tables[ddl.LEDGER_TABLE]
    with secured_run.admin.connect() as conn:
        keys = set(conn.execute(sa.select(ledger.c.object_key)).scalars())
    assert HOSTILE_KEY in keys


def test_hostile_field_value_with_double_quotes_round_trips_verbatim(secured_run):
    [row] = _enriched_rows_of(secured_run, HOSTILE_KEY)
    assert row["product_name"] == HOSTILE_PRODUCT and row["product_known"]


# --- nothing leaked ---------------------------------------------------------------------------


def test_the_scan_finds_pii_where_it_belongs(secured_run):
    """Positive control: the mart is where names and phones are published, and the scan sees
    them there; so its silence elsewhere means something."""
    with secured_run.admin.connect() as conn:
        mart = conn.execute(sa.select(customers_data_mart_table)).mappings().all()
    assert _leaks(secured_run, json.dumps([dict(r) for r in mart], default=str))
    assert secured_run.needles and secured_run.cells and len(secured_run.secrets) >= 4


def test_logs_and_console_output_hold_no_pii_or_secret(secured_run):
    # Positive control: what the JVM and a Python worker printed was captured too.
    for stream in ("jvm-out", "jvm-err", "worker"):
        assert f"{secured_run.marker}-{stream}" in secured_run.captured, stream
    assert HOSTILE_NAME not in secured_run.captured
    assert len(secured_run.captured) > 1000
    assert "[SQL parameters hidden due to hide_parameters=True]" in secured_run.captured
    assert _leaks(secured_run, secured_run.captured) == []


def test_event_log_and_asset_metadata_hold_no_pii_or_secret(secured_run):
    instance = secured_run.instance
    records = []
    for run in instance.get_runs():
        records.append(serialize_value(run))
        records += [serialize_value(entry) for entry in instance.all_logs(run.run_id)]
    assert len(records) > 50
    text = "\n".join(records)
    assert _leaks(secured_run, text) == []
    # Whole string values (names are short): compared one by one.
    strings = set()

    def walk(value):
        if isinstance(value, str):
            strings.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for record in records:
        walk(json.loads(record))
    assert not strings & secured_run.cells
    materialized = [
        e for e in text.split("\n") if '"ASSET_MATERIALIZATION"' in e and "pii_key_id" in e
    ]
    assert materialized, "the customers snapshot reports which key encrypted it"
    # The instance's own files (SQLite event log, run storage, compute logs).
    for path in Path(instance.root_directory).rglob("*"):
        if path.is_file():
            assert _leaks(secured_run, path.read_bytes().decode("utf-8", "replace")) == [], path


def test_no_object_in_the_bucket_holds_pii_or_secret_in_plaintext(secured_run):
    keys = _objects(secured_run)
    parquet = [k for k in keys if k.endswith(".parquet")]
    assert any(k.startswith("lake/customers/") for k in parquet)
    for key in keys:
        data = secured_run.client.get_object(Bucket=secured_run.bucket, Key=key)["Body"].read()
        assert _leaks(secured_run, data.decode("utf-8", "replace")) == [], key
        if key.endswith(".parquet"):
            # Compressed pages hide plaintext from a byte scan: decode every string cell.
            cells = set(_string_cells(pq.read_table(io.BytesIO(data))))
            assert not cells & secured_run.cells, key
            assert _leaks(secured_run, "\n".join(cells)) == [], key
    for path in secured_run.data_dir.rglob("*"):
        if path.is_file():
            assert _leaks(secured_run, path.read_bytes().decode("utf-8", "replace")) == [], path


def _spark_scratch_files(spark) -> list[Path]:
    scratch = Path(spark.sparkContext.getConf().get("spark.local.dir"))
    return [p for p in scratch.rglob("*") if p.is_file()]


def test_spark_scratch_files_hold_no_plaintext(spark, secured_run):
    """Shuffle files, spills and blocks cached on disk are encrypted (`spark.io.encryption`):
    plaintext forced through a shuffle and a disk cache is not readable in the scratch dir,
    nor is any PII from the secured run (whose customer mart decrypts names and phones)."""
    from pyspark import StorageLevel

    marker = f"scratch-{uuid.uuid4().hex}"
    rows = spark.createDataFrame([(i, f"{marker} {i}") for i in range(2000)], "id INT, v STRING")
    cached = rows.repartition(2, "id").persist(StorageLevel.DISK_ONLY)
    try:
        assert cached.count() == 2000
        files = _spark_scratch_files(spark)
        assert files, "the shuffle and the cache wrote to the scratch dir"
        for path in files:
            data = path.read_bytes()
            assert marker.encode() not in data, path
            assert _leaks(secured_run, data.decode("utf-8", "replace")) == [], path
    finally:
        cached.unpersist(blocking=True)


@pytest.mark.parametrize(
    ("table", "count", "columns"),
    [
        ("customers", 40, ("first_name", "last_name", "address", "pincode", "phone_number")),
        ("sales_team", 4, ("address", "pincode")),
    ],
)
def test_pii_snapshots_hold_ciphertext_with_the_key_id(secured_run, table, count, columns):
    master_key = secured_run.secrets[0]
    kid = Keyring.from_text(master_key).newest_key_id
    rows = []
    for key in _objects(secured_run):
        if key.startswith(f"lake/{table}/") and key.endswith(".parquet"):
            body = secured_run.client.get_object(Bucket=secured_run.bucket, Key=key)["Body"]
            rows += pq.read_table(io.BytesIO(body.read())).to_pylist()
    assert len(rows) == count
    for row in rows:
        for column in columns:
            assert row[column] is not None, column
            assert row[column].startswith(f"pii1:{kid}:"), column


def test_every_object_is_encrypted_at_rest_by_s3(secured_run):
    keys = _objects(secured_run)
    prefixes = {k.split("/", 1)[0] for k in keys}
    # The lake, and landing moves to the archive and error prefixes, all went through puts.
    assert {"lake", "sales_data_processed", "sales_data_error"} <= prefixes
    for key in keys:
        head = secured_run.client.head_object(Bucket=secured_run.bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
