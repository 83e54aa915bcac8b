"""One source of truth for the shapes the platform reads and writes.

The landing CSV columns, the Spark schemas of the lake assets and the DDL of every table
(source dimensions, ledger, marts) live here, so a column is renamed in one place.
Table and column names are the origin pipeline's (the contract of docs/architecture.md §3).
Money is DECIMAL everywhere: a float never touches a price or a total.
"""

from __future__ import annotations

import sqlalchemy as sa
from pyspark.sql import types as T

# --- Money ---------------------------------------------------------------------------------
PRICE_PRECISION, PRICE_SCALE = 10, 2
TOTAL_PRECISION, TOTAL_SCALE = 12, 2
# Monthly totals over a whole store / customer need more integer digits than one line.
MART_PRECISION, MART_SCALE = 18, 2

PRICE_TYPE = T.DecimalType(PRICE_PRECISION, PRICE_SCALE)
LINE_TOTAL_TYPE = T.DecimalType(TOTAL_PRECISION, TOTAL_SCALE)
MART_MONEY_TYPE = T.DecimalType(MART_PRECISION, MART_SCALE)

# --- Landing CSV ---------------------------------------------------------------------------
LANDING_PREFIX = "sales_data/"
PROCESSED_PREFIX = "sales_data_processed/"
ERROR_PREFIX = "sales_data_error/"

SALES_CSV_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "store_id",
    "product_name",
    "sales_date",
    "sales_person_id",
    "price",
    "quantity",
    "total_cost",
)

# --- Lake (Spark) --------------------------------------------------------------------------
RAW_SALES_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.IntegerType(), False),
        T.StructField("store_id", T.IntegerType(), False),
        T.StructField("product_name", T.StringType(), False),
        T.StructField("sales_date", T.DateType(), False),
        T.StructField("sales_person_id", T.IntegerType(), False),
        T.StructField("price", PRICE_TYPE, False),
        T.StructField("quantity", T.IntegerType(), False),
        T.StructField("total_cost", LINE_TOTAL_TYPE, False),
        # Columns beyond the contract, as a JSON object {header: value}; null when none.
        T.StructField("additional_column", T.StringType(), True),
        T.StructField("source_key", T.StringType(), False),
        # Where the sale came from: (source_key, line_number) identifies it.
        T.StructField("line_number", T.LongType(), False),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source_key", T.StringType(), False),
        # 1-based line of the file (the header is line 1).
        T.StructField("line_number", T.LongType(), False),
        T.StructField("business_date", T.DateType(), False),
        T.StructField("reason", T.StringType(), False),
        # The row as it arrived, as a JSON object {header: raw text}.
        T.StructField("raw_record", T.StringType(), False),
    ]
)

SALES_ENRICHED_SCHEMA = T.StructType(
    [
        T.StructField("sales_date", T.DateType(), False),
        T.StructField("customer_id", T.IntegerType(), False),
        T.StructField("store_id", T.IntegerType(), False),
        T.StructField("sales_person_id", T.IntegerType(), False),
        T.StructField("product_name", T.StringType(), False),
        T.StructField("product_id", T.IntegerType(), True),
        T.StructField("price", PRICE_TYPE, False),
        T.StructField("quantity", T.IntegerType(), False),
        T.StructField("total_cost", LINE_TOTAL_TYPE, False),
        T.StructField("additional_column", T.StringType(), True),
        T.StructField("source_key", T.StringType(), False),
        T.StructField("line_number", T.LongType(), False),
        # False when the key has no row in its dimension snapshot: the sale is kept, flagged.
        T.StructField("customer_known", T.BooleanType(), False),
        T.StructField("store_known", T.BooleanType(), False),
        T.StructField("sales_person_known", T.BooleanType(), False),
        T.StructField("product_known", T.BooleanType(), False),
    ]
)

CUSTOMER_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.IntegerType(), False),
        T.StructField("first_name", T.StringType(), True),
        T.StructField("last_name", T.StringType(), True),
        T.StructField("address", T.StringType(), True),
        T.StructField("pincode", T.StringType(), True),
        T.StructField("phone_number", T.StringType(), True),
        T.StructField("customer_joining_date", T.DateType(), True),
    ]
)

STORE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType(), False),
        T.StructField("address", T.StringType(), True),
        T.StructField("store_pincode", T.StringType(), True),
        T.StructField("store_manager_name", T.StringType(), True),
        T.StructField("store_opening_date", T.DateType(), True),
        T.StructField("reviews", T.StringType(), True),
    ]
)

PRODUCT_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType(), False),
        T.StructField("name", T.StringType(), True),
        T.StructField("current_price", PRICE_TYPE, True),
        T.StructField("old_price", PRICE_TYPE, True),
        T.StructField("created_date", T.TimestampType(), True),
        T.StructField("updated_date", T.TimestampType(), True),
        T.StructField("expiry_date", T.DateType(), True),
    ]
)

SALES_TEAM_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType(), False),
        T.StructField("first_name", T.StringType(), True),
        T.StructField("last_name", T.StringType(), True),
        T.StructField("manager_id", T.IntegerType(), True),
        T.StructField("is_manager", T.StringType(), True),
        T.StructField("address", T.StringType(), True),
        T.StructField("pincode", T.StringType(), True),
        T.StructField("joining_date", T.DateType(), True),
    ]
)

CUSTOMER_MART_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.IntegerType(), False),
        T.StructField("full_name", T.StringType(), True),
        T.StructField("address", T.StringType(), True),
        T.StructField("phone_number", T.StringType(), True),
        T.StructField("sales_date_month", T.DateType(), False),
        T.StructField("total_sales", MART_MONEY_TYPE, False),
        T.StructField("coupon_tier", T.StringType(), False),
        T.StructField("discount_percent", T.IntegerType(), False),
        T.StructField("coupon_code", T.StringType(), True),
    ]
)

SALES_TEAM_MART_SCHEMA = T.StructType(
    [
        T.StructField("store_id", T.IntegerType(), False),
        T.StructField("sales_person_id", T.IntegerType(), False),
        T.StructField("full_name", T.StringType(), True),
        T.StructField("sales_month", T.StringType(), False),
        T.StructField("total_sales", MART_MONEY_TYPE, False),
        T.StructField("incentive", MART_MONEY_TYPE, False),
        T.StructField("sales_rank", T.IntegerType(), False),
    ]
)

# --- SQL tables ----------------------------------------------------------------------------
metadata = sa.MetaData()

# Every platform table on MySQL / MariaDB: utf8mb4 whatever the database's default (latin1 and
# utf8mb3 cannot hold every customer name or S3 key), and binary collation, so keys compare as
# the bytes they are (S3 keys, ETags and hashes are case- and accent-sensitive). SQLite ignores
# these options. `warehouse_check` compares existing tables with them.
TABLE_CHARSET, TABLE_COLLATION = "utf8mb4", "utf8mb4_bin"
TEXT_OPTIONS = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("charset", TABLE_CHARSET), ("collate", TABLE_COLLATION))
}

customer_table = sa.Table(
    "customer",
    metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_name", sa.String(50)),
    sa.Column("last_name", sa.String(50)),
    sa.Column("address", sa.String(255)),
    sa.Column("pincode", sa.String(10)),
    sa.Column("phone_number", sa.String(20)),
    sa.Column("customer_joining_date", sa.Date),
    **TEXT_OPTIONS,
)

store_table = sa.Table(
    "store",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("address", sa.String(255)),
    sa.Column("store_pincode", sa.String(10)),
    sa.Column("store_manager_name", sa.String(100)),
    sa.Column("store_opening_date", sa.Date),
    sa.Column("reviews", sa.Text),
    **TEXT_OPTIONS,
)

product_table = sa.Table(
    "product",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(255), unique=True),
    sa.Column("current_price", sa.Numeric(PRICE_PRECISION, PRICE_SCALE)),
    sa.Column("old_price", sa.Numeric(PRICE_PRECISION, PRICE_SCALE)),
    sa.Column("created_date", sa.DateTime),
    sa.Column("updated_date", sa.DateTime),
    sa.Column("expiry_date", sa.Date),
    **TEXT_OPTIONS,
)

sales_team_table = sa.Table(
    "sales_team",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_name", sa.String(50)),
    sa.Column("last_name", sa.String(50)),
    sa.Column("manager_id", sa.Integer),
    sa.Column("is_manager", sa.String(1)),
    sa.Column("address", sa.String(255)),
    sa.Column("pincode", sa.String(10)),
    sa.Column("joining_date", sa.Date),
    **TEXT_OPTIONS,
)

customers_data_mart_table = sa.Table(
    "customers_data_mart",
    metadata,
    sa.Column("customer_id", sa.Integer, nullable=False, autoincrement=False),
    sa.Column("full_name", sa.String(101)),
    sa.Column("address", sa.String(255)),
    sa.Column("phone_number", sa.String(20)),
    # The month's first day: the origin's type, and what the monthly partition key is.
    sa.Column("sales_date_month", sa.Date, nullable=False),
    sa.Column("total_sales", sa.Numeric(MART_PRECISION, MART_SCALE), nullable=False),
    sa.Column("coupon_tier", sa.String(16), nullable=False),
    sa.Column("discount_percent", sa.Integer, nullable=False),
    sa.Column("coupon_code", sa.String(64)),
    # The month leads the key: a month's replace (DELETE ... WHERE month) locks that month's
    # range of the index only, not the whole table.
    sa.PrimaryKeyConstraint("sales_date_month", "customer_id", name="pk_customers_data_mart"),
    **TEXT_OPTIONS,
)

sales_team_data_mart_table = sa.Table(
    "sales_team_data_mart",
    metadata,
    sa.Column("store_id", sa.Integer, nullable=False, autoincrement=False),
    sa.Column("sales_person_id", sa.Integer, nullable=False, autoincrement=False),
    sa.Column("full_name", sa.String(101)),
    # 'YYYY-MM', as the origin stored it.
    sa.Column("sales_month", sa.String(7), nullable=False),
    sa.Column("total_sales", sa.Numeric(MART_PRECISION, MART_SCALE), nullable=False),
    sa.Column("incentive", sa.Numeric(MART_PRECISION, MART_SCALE), nullable=False),
    sa.Column("sales_rank", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint(
        "sales_month", "store_id", "sales_person_id", name="pk_sales_team_data_mart"
    ),
    **TEXT_OPTIONS,
)

# The file ledger: the origin's audit table, one row per file version (bucket, key, ETag).
# `etag` is the version's landing ETag, also when the file is read back from the archive (the
# archived copy carries it as metadata), so a rebuild from the archive adds no row.
# Status: A = being processed (or failed mid-way), I = completed, E = rejected (see `reason`).
product_staging_table = sa.Table(
    "product_staging_table",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("file_location", sa.Text, nullable=False),
    sa.Column("bucket", sa.String(255), nullable=False),
    sa.Column("object_key", sa.Text, nullable=False),
    # Keys can be longer than an index allows: uniqueness is on their SHA-256.
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("etag", sa.String(128), nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("business_date", sa.Date),
    sa.Column("rows_read", sa.Integer),
    sa.Column("rows_accepted", sa.Integer),
    sa.Column("rows_quarantined", sa.Integer),
    sa.Column("run_id", sa.String(64)),
    sa.Column("status", sa.String(1), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("archived_key", sa.Text),
    # Why an operator pushed this content through (`sales-platform files reprocess`).
    sa.Column("reprocess_reason", sa.Text),
    sa.Column("created_date", sa.DateTime, nullable=False),
    sa.Column("updated_date", sa.DateTime, nullable=False),
    sa.UniqueConstraint("bucket", "key_hash", "etag", name="uq_file_version"),
    sa.Index("ix_staging_sha256", "sha256"),
    sa.Index("ix_staging_business_date", "business_date"),
    **TEXT_OPTIONS,
)

SOURCE_TABLES: dict[str, sa.Table] = {
    t.name: t for t in (customer_table, store_table, product_table, sales_team_table)
}
MART_TABLES: dict[str, sa.Table] = {
    t.name: t for t in (customers_data_mart_table, sales_team_data_mart_table)
}

# Spark schema of each source table's lake snapshot.
SOURCE_SPARK_SCHEMAS: dict[str, T.StructType] = {
    "customer": CUSTOMER_SCHEMA,
    "store": STORE_SCHEMA,
    "product": PRODUCT_SCHEMA,
    "sales_team": SALES_TEAM_SCHEMA,
}

# Spark schema of each lake asset, by asset name: reads never infer a schema.
LAKE_SCHEMAS: dict[str, T.StructType] = {
    "raw_sales": RAW_SALES_SCHEMA,
    "raw_sales_quarantine": QUARANTINE_SCHEMA,
    "sales_enriched": SALES_ENRICHED_SCHEMA,
    "customers": CUSTOMER_SCHEMA,
    "stores": STORE_SCHEMA,
    "products": PRODUCT_SCHEMA,
    "sales_team": SALES_TEAM_SCHEMA,
}

MART_SPARK_SCHEMAS: dict[str, T.StructType] = {
    "customers_data_mart": CUSTOMER_MART_SCHEMA,
    "sales_team_data_mart": SALES_TEAM_MART_SCHEMA,
}
