"""Checks of the dimension snapshots: a usable master table has rows and a clean primary key.

Blocking, and evaluated on the rows read from the source before anything is written: a snapshot
with duplicated or missing keys would flag good sales as unknown, or (were joins not
de-duplicated) multiply them, so it never replaces the previous snapshot and the fact does not
build on it.
"""

from __future__ import annotations

from collections import Counter

import dagster as dg

CHECK_NAME = "primary_key_valid"
PRIMARY_KEYS = {"customers": "customer_id", "stores": "id", "products": "id", "sales_team": "id"}


def primary_key_spec(asset: str) -> dg.AssetCheckSpec:
    key = PRIMARY_KEYS[asset]
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=asset,
        blocking=True,
        description=f"The snapshot has rows, and `{key}` is never null and never repeated.",
    )


def primary_key_result(asset: str, rows: list[dict]) -> dg.AssetCheckResult:
    """The check on the source rows: counts only, never a key's value (they can be PII ids)."""
    keys = [r[PRIMARY_KEYS[asset]] for r in rows]
    nulls = sum(1 for k in keys if k is None)
    duplicates = sum(n - 1 for k, n in Counter(keys).items() if k is not None and n > 1)
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=bool(rows) and nulls == 0 and duplicates == 0,
        metadata={"rows": len(rows), "null_keys": nulls, "duplicate_keys": duplicates},
    )
