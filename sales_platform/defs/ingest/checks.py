"""Checks of `raw_sales`, evaluated on the staged data before it is published."""

from __future__ import annotations

import json

import dagster as dg
from pyspark.sql import types as T

from sales_platform.defs.ingest.daily_load import DayLoad
from sales_platform.defs.quality import QualityThresholds, same_columns
from sales_platform.schemas import RAW_SALES_SCHEMA

ROWS_RECONCILE = "rows_reconcile"
SCHEMA_CONFORMS = "schema_conforms"
SALES_DATES_IN_PARTITION = "sales_dates_in_partition"
QUARANTINE_RATE = "quarantine_rate"

# Checks whose failure means the day must not be published.
BLOCKING = {ROWS_RECONCILE, SCHEMA_CONFORMS, SALES_DATES_IN_PARTITION}

CHECK_SPECS = [
    dg.AssetCheckSpec(
        ROWS_RECONCILE,
        asset="raw_sales",
        blocking=True,
        description="For every file: rows read (counted from its bytes) = accepted + quarantined.",
    ),
    dg.AssetCheckSpec(
        SCHEMA_CONFORMS,
        asset="raw_sales",
        blocking=True,
        description="The written columns and types are exactly the contract's.",
    ),
    dg.AssetCheckSpec(
        SALES_DATES_IN_PARTITION,
        asset="raw_sales",
        blocking=True,
        description="Every accepted sale's sales_date is its file's business date.",
    ),
    dg.AssetCheckSpec(
        QUARANTINE_RATE,
        asset="raw_sales",
        description="Share of rows quarantined: warns above the warn rate, errors above the "
        "error rate (QualityThresholds).",
    ),
]


def raw_sales_checks(load: DayLoad, quality: QualityThresholds) -> list[dg.AssetCheckResult]:
    read = load.read
    unreconciled = load.unreconciled
    off_dates = [
        f.landed.landing_key
        for f in read
        if f.rows_accepted
        and not (f.first_sales_date == f.last_sales_date == f.landed.business_date)
    ]
    schema = T.StructType.fromJson(json.loads(load.accepted.schema_json))
    differences = same_columns(schema, RAW_SALES_SCHEMA)
    rows_read = sum(f.rows_read for f in read)
    quarantined = sum(f.rows_quarantined for f in read)
    rate = quarantined / rows_read if rows_read else 0.0
    severity = (
        dg.AssetCheckSeverity.ERROR
        if rate > quality.quarantine_error_rate
        else dg.AssetCheckSeverity.WARN
    )
    return [
        dg.AssetCheckResult(
            check_name=ROWS_RECONCILE,
            passed=not unreconciled,
            metadata={
                "files_checked": len(read),
                "files_unreconciled": len(unreconciled),
                "first_unreconciled": dg.MetadataValue.json(
                    [
                        {
                            "key": f.landed.landing_key,
                            "read": f.rows_read,
                            "accepted": f.rows_accepted,
                            "quarantined": f.rows_quarantined,
                        }
                        for f in unreconciled[:10]
                    ]
                ),
            },
        ),
        dg.AssetCheckResult(
            check_name=SCHEMA_CONFORMS,
            passed=not differences,
            metadata={"differences": dg.MetadataValue.json(differences)},
        ),
        dg.AssetCheckResult(
            check_name=SALES_DATES_IN_PARTITION,
            passed=not off_dates,
            metadata={
                "files_with_other_dates": len(off_dates),
                "first_files": dg.MetadataValue.json(off_dates[:10]),
            },
        ),
        dg.AssetCheckResult(
            check_name=QUARANTINE_RATE,
            passed=rate <= quality.quarantine_warn_rate,
            severity=severity,
            metadata={
                "quarantine_rate": rate,
                "rows_quarantined": quarantined,
                "rows_read": rows_read,
                "warn_above": quality.quarantine_warn_rate,
                "error_above": quality.quarantine_error_rate,
            },
        ),
    ]
