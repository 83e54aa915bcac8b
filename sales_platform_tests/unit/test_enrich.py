"""The fact keeps every sale: unknown keys are flagged, duplicated dimension keys don't multiply."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sales_platform.schemas import (
    CUSTOMER_SCHEMA,
    PRODUCT_SCHEMA,
    RAW_SALES_SCHEMA,
    SALES_ENRICHED_SCHEMA,
    SALES_TEAM_SCHEMA,
    STORE_SCHEMA,
)
from sales_platform.transforms.enrich import enrich_sales

DAY = date(2023, 3, 15)


def _sale(key, customer_id=1, store_id=1, sales_person_id=1, product="oats", extra=None):
    return (
        customer_id,
        store_id,
        product,
        DAY,
        sales_person_id,
        Decimal("2.50"),
        2,
        Decimal("5.00"),
        extra,
        key,
        1,
    )


@pytest.fixture(scope="module")
def dimensions(spark):
    customers = spark.createDataFrame(
        [
            (1, "Ann", "Lee", "1 Main St", "111", "555-0001", None),
            # A duplicated key in a snapshot must not double the sale.
            (2, "Bob", "Ray", "2 Main St", "222", "555-0002", None),
            (2, "Bob", "Ray", "2 Main St", "222", "555-0002", None),
        ],
        CUSTOMER_SCHEMA,
    )
    stores = spark.createDataFrame(
        [(1, "Mall", "111", "Mia", None, None), (1, "Mall", "111", "Mia", None, None)],
        STORE_SCHEMA,
    )
    products = spark.createDataFrame(
        [
            (7, "oats", Decimal("2.50"), None, None, None, None),
            # The same name under two ids: the smallest id wins, once.
            (4, "rice", Decimal("1.00"), None, None, None, None),
            (9, "rice", Decimal("1.00"), None, None, None, None),
            (12, None, None, None, None, None, None),
        ],
        PRODUCT_SCHEMA,
    )
    sales_team = spark.createDataFrame(
        [(1, "Sam", "Roe", None, "N", None, None, None)] * 2, SALES_TEAM_SCHEMA
    )
    return customers, stores, products, sales_team


@pytest.fixture(scope="module")
def enriched(spark, dimensions):
    sales = spark.createDataFrame(
        [
            _sale("all_known", extra='{"promo": "X"}'),
            _sale("dup_customer", customer_id=2),
            _sale("dup_product", product="rice"),
            _sale("unknown_customer", customer_id=99),
            _sale("unknown_store", store_id=99),
            _sale("unknown_seller", sales_person_id=99),
            _sale("unknown_product", product="caviar"),
        ],
        RAW_SALES_SCHEMA,
    )
    return enrich_sales(sales, *dimensions)


@pytest.fixture(scope="module")
def rows(enriched):
    collected = enriched.collect()
    assert len(collected) == 7, "a join dropped or multiplied sales"
    return {r["source_key"]: r for r in collected}


def _flags(row):
    return (
        row["customer_known"],
        row["store_known"],
        row["sales_person_known"],
        row["product_known"],
    )


def test_schema_is_the_fact_contract(enriched):
    assert enriched.columns == SALES_ENRICHED_SCHEMA.fieldNames()
    assert [f.dataType for f in enriched.schema] == [f.dataType for f in SALES_ENRICHED_SCHEMA]


def test_fact_carries_no_dimension_attributes(enriched):
    assert not {"first_name", "last_name", "address", "phone_number"} & set(enriched.columns)


def test_known_sale_is_fully_flagged_and_keeps_its_values(rows):
    row = rows["all_known"]
    assert _flags(row) == (True, True, True, True)
    assert row["product_id"] == 7
    assert (row["price"], row["quantity"], row["total_cost"]) == (
        Decimal("2.50"),
        2,
        Decimal("5.00"),
    )
    assert row["additional_column"] == '{"promo": "X"}'
    assert row["sales_date"] == DAY


@pytest.mark.parametrize(
    ("key", "flags"),
    [
        ("unknown_customer", (False, True, True, True)),
        ("unknown_store", (True, False, True, True)),
        ("unknown_seller", (True, True, False, True)),
        ("unknown_product", (True, True, True, False)),
    ],
)
def test_unknown_key_is_kept_and_flagged(rows, key, flags):
    assert _flags(rows[key]) == flags


def test_unknown_product_has_no_id(rows):
    assert rows["unknown_product"]["product_id"] is None
    assert rows["unknown_product"]["product_name"] == "caviar"


def test_duplicated_dimension_keys_do_not_multiply_sales(rows):
    # The row count is checked by the `rows` fixture; here the duplicates still match.
    assert _flags(rows["dup_customer"]) == (True, True, True, True)
    assert rows["dup_product"]["product_id"] == 4
