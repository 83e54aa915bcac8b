"""The warehouse refuses to be wrong, on the real MariaDB: utf8mb4 tables on a latin1 database,
a strict session whatever the server's default sql_mode, an existing table that differs from
schemas.py detected before anything is written, and `sales-platform db check`."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.defs.marts.finality import days_with_files
from sales_platform.schemas import (
    customers_data_mart_table,
    metadata,
    product_staging_table,
)
from sales_platform.secrets_cli import _db_check
from sales_platform.storage.database import Database, create_engine
from sales_platform.storage.ddl import warehouse_tables
from sales_platform.storage.ledger import FileVersion, Ledger
from sales_platform.storage.spark import spark_resource
from sales_platform.storage.warehouse import WarehouseIOManager, ensure_tables
from sales_platform.storage.warehouse_check import WarehouseSchemaMismatch
from sales_platform_tests.conftest import MARIADB_ADMIN_URL, _mariadb_engine

pytestmark = pytest.mark.integration
UNICODE_KEY = "sales_data/2023-01-05/Zoë_東京_😀.csv"
UNICODE_NAME = "Zoë Ñúñez 😀"
# What a session without strict mode does to a total that does not fit DECIMAL(10,2).
TOO_BIG = Decimal("123456789.99")


@pytest.fixture
def latin1_url():
    """A fresh database whose default charset is latin1 (a common server default)."""
    admin = _mariadb_engine()
    name = f"sp_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET latin1"))
    try:
        yield f"{MARIADB_ADMIN_URL}/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def _charsets(engine: sa.Engine, table: str) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT character_set_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = :t "
                "AND character_set_name IS NOT NULL"
            ),
            {"t": table},
        )
        return {tuple(r) for r in rows}


def test_latin1_database_gets_utf8mb4_tables_and_unicode_is_stored(latin1_url):
    engine = create_engine(latin1_url)
    ensure_tables(engine, warehouse_tables())
    for table in warehouse_tables():
        assert _charsets(engine, table.name) == {("utf8mb4", "utf8mb4_bin")}, table.name

    ledger = Ledger(engine)
    version = FileVersion(
        "s3://b/", UNICODE_KEY, "etag-1", "s3://b/" + UNICODE_KEY, date(2023, 1, 5)
    )
    ledger.start(version, "run-1")
    row = {
        "customer_id": 1,
        "full_name": UNICODE_NAME,
        "address": "Straße 1",
        "phone_number": "1",
        "sales_date_month": date(2023, 1, 1),
        "total_sales": Decimal("10.00"),
        "coupon_tier": "none",
        "discount_percent": 0,
        "coupon_code": None,
    }
    with engine.begin() as conn:
        conn.execute(customers_data_mart_table.insert(), [row])
    with engine.connect() as conn:
        stored_key = conn.execute(sa.select(product_staging_table.c.object_key)).scalar_one()
        stored_name = conn.execute(sa.select(customers_data_mart_table.c.full_name)).scalar_one()
    assert (stored_key, stored_name) == (UNICODE_KEY, UNICODE_NAME)
    # The mart side reads which days have files from the same ledger.
    assert days_with_files(engine, date(2023, 1, 1), date(2023, 1, 31)) == {"2023-01-05"}


def test_a_session_defaulting_to_no_sql_mode_is_strict_anyway(mariadb_url):
    # The server default stands in as the session's initial mode: SET GLOBAL would touch every
    # other database on the server.
    lax_url = f"{mariadb_url}&init_command=SET sql_mode=''"
    with sa.create_engine(lax_url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE narrow (total DECIMAL(10,2))")
    # Before: a plain engine on that session clips the total silently.
    lax = sa.create_engine(lax_url)
    with lax.begin() as conn:
        assert conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() == ""
        conn.execute(sa.text("INSERT INTO narrow VALUES (:t)"), {"t": TOO_BIG})
        assert conn.exec_driver_sql("SELECT total FROM narrow").scalar() == Decimal("99999999.99")
    lax.dispose()
    # The platform's engine: strict whatever the session started with; the insert fails.
    engine = create_engine(lax_url)
    with engine.connect() as conn:
        assert "STRICT_ALL_TABLES" in conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
    with pytest.raises(sa.exc.DataError), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO narrow VALUES (:t)"), {"t": TOO_BIG})


def _narrow_mart(url: str) -> None:
    """customers_data_mart as someone created it by hand: totals as DECIMAL(10,2)."""
    columns = [
        sa.Column(c.name, sa.Numeric(10, 2) if c.name == "total_sales" else c.type)
        for c in customers_data_mart_table.columns
    ]
    narrow = sa.Table(
        customers_data_mart_table.name,
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("sales_date_month", "customer_id"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    narrow.create(create_engine(url))


def test_an_existing_decimal_10_2_mart_fails_the_run_at_start(mariadb_url):
    _narrow_mart(mariadb_url)
    io_manager = WarehouseIOManager(database=Database(url=mariadb_url), pyspark=spark_resource())
    resources = dg.build_resources({"warehouse_io_manager": io_manager})
    # Dagster wraps what a resource raises at its start; the run fails with this cause.
    with pytest.raises(dg.DagsterResourceFunctionError) as caught, resources:
        pass
    assert isinstance(caught.value.user_exception, WarehouseSchemaMismatch)
    message = str(caught.value.user_exception)
    assert "customers_data_mart.total_sales: expected DECIMAL(18,2), found DECIMAL(10,2)" in message
    assert "db check" in message


def test_db_check_prints_the_comparison(mariadb_url, monkeypatch, capsys, tmp_path):
    _narrow_mart(mariadb_url)
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SALES_PLATFORM_WAREHOUSE_DB_URL", mariadb_url)
    monkeypatch.setenv("SALES_PLATFORM_SOURCE_DB_URL", mariadb_url)
    with pytest.raises(SystemExit, match="1 difference"):
        _db_check(None)
    out = capsys.readouterr().out
    assert (
        "MISMATCH customers_data_mart.total_sales: expected DECIMAL(18,2), found DECIMAL(10,2)"
        in out
    )
    assert (
        "ok       customers_data_mart.full_name: expected VARCHAR(101) utf8mb4/utf8mb4_bin" in out
    )


def test_a_mart_table_with_the_old_key_order_is_reported(mariadb_url):
    # The key leading with the customer made a month's DELETE gap-lock the whole table.
    engine = create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE sales_team_data_mart (store_id INTEGER NOT NULL, "
            "sales_person_id INTEGER NOT NULL, full_name VARCHAR(101), "
            "sales_month VARCHAR(7) NOT NULL, total_sales DECIMAL(18,2) NOT NULL, "
            "incentive DECIMAL(18,2) NOT NULL, sales_rank INTEGER NOT NULL, "
            "PRIMARY KEY (store_id, sales_person_id, sales_month)) "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
    with pytest.raises(WarehouseSchemaMismatch, match=r"PRIMARY KEY: expected \(sales_month"):
        ensure_tables(engine, [metadata.tables["sales_team_data_mart"]])
