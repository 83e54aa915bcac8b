"""What each column means to the business: the descriptions on every asset's column schema.

Kept beside `schemas.py` (which says what the columns are) rather than in it, keyed by column
name: a name means the same thing in every table that carries it. `column_schema` turns a Spark
schema into the `dagster/column_schema` metadata the UI shows under Columns.
"""

from __future__ import annotations

import dagster as dg
from pyspark.sql import types as T

COLUMN_DOCS: dict[str, str] = {
    # Sales, as sent by the stores.
    "customer_id": "Customer who bought (customer master data id).",
    "store_id": "Store where the sale happened (store master data id).",
    "product_name": "Product as named on the receipt; matched to the product master by name.",
    "product_id": "Product master data id, null when the name is unknown to the master data.",
    "sales_date": "Business day of the sale (UTC); the daily partition.",
    "sales_person_id": "Seller credited with the sale (sales team id).",
    "price": "Unit price, DECIMAL, as sent.",
    "quantity": "Units sold.",
    "total_cost": "Line total (price x quantity), DECIMAL, to the cent.",
    "additional_column": "Free text the point-of-sale export may add; kept as sent.",
    "source_key": "Landing key of the file the sale came from.",
    "line_number": "Line of the sale in its file (the header is line 1).",
    # Quarantine.
    "business_date": "Business day of the file the row came from.",
    "reason": "Why the row was quarantined (a validation reason code).",
    "raw_record": "The row's fields as sent, as JSON.",
    # Fact flags.
    "customer_known": "False when the customer id is unknown to the master data.",
    "store_known": "False when the store id is unknown to the master data.",
    "sales_person_known": "False when the seller id is unknown to the sales team.",
    "product_known": "False when the product name is unknown to the product master.",
    # Master data snapshots.
    "id": "Master data id.",
    "first_name": "First name (personal data: encrypted in the lake).",
    "last_name": "Last name (personal data: encrypted in the lake).",
    "full_name": "First and last name (personal data).",
    "address": "Postal address (personal data for customers and sellers: encrypted in the lake).",
    "pincode": "Postal code (personal data: encrypted in the lake).",
    "phone_number": "Phone number (personal data: encrypted in the lake).",
    "customer_joining_date": "Day the customer joined.",
    "store_pincode": "Postal code of the store.",
    "store_manager_name": "Store manager's name.",
    "store_opening_date": "Day the store opened.",
    "reviews": "Customer reviews of the store, as free text.",
    "name": "Product name, unique; what sales files name.",
    "current_price": "Current list price, DECIMAL.",
    "old_price": "Previous list price, DECIMAL.",
    "created_date": "When the product was created in the master data.",
    "updated_date": "When the product was last changed in the master data.",
    "expiry_date": "Day the product expires from the catalogue.",
    "manager_id": "The seller's manager (sales team id).",
    "is_manager": "Y when the seller manages others.",
    "joining_date": "Day the seller joined.",
    # Marts.
    "sales_date_month": "Month of the purchases (its first day).",
    "sales_month": "Month of the sales, YYYY-MM.",
    "total_sales": "Sum of the month's line totals, DECIMAL, to the cent.",
    "coupon_tier": "Coupon tier earned by the month's total (PLATINUM, GOLD, SILVER, NONE).",
    "discount_percent": "Discount of the coupon tier, in percent.",
    "coupon_code": "<TIER>-<YYYYMM>-<customer_id>; null for tier NONE.",
    "incentive": "Incentive paid: the incentive rate of total_sales for each store's top "
    "seller (rounded half-up to the cent), 0 for everyone else.",
    "sales_rank": "Seller's rank in the store for the month by total_sales (1 = top, ties share).",
}


def describe(column: str) -> str | None:
    return COLUMN_DOCS.get(column)


def column_schema(schema: T.StructType) -> dg.TableSchema:
    """A Spark schema as Dagster's column schema, each column with its description."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, f.dataType.simpleString(), description=describe(f.name))
            for f in schema.fields
        ]
    )
