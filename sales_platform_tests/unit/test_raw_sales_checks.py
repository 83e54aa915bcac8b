"""Each raw_sales check passes on good data and fails on crafted bad data."""

from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import types as T

from sales_platform.defs.ingest.checks import (
    QUARANTINE_RATE,
    ROWS_RECONCILE,
    SALES_DATES_IN_PARTITION,
    SCHEMA_CONFORMS,
    raw_sales_checks,
)
from sales_platform.defs.ingest.daily_load import DayLoad, FileOutcome
from sales_platform.defs.quality import QualityThresholds
from sales_platform.schemas import RAW_SALES_SCHEMA
from sales_platform.storage.lake import StagedWrite
from sales_platform.storage.landing import LandedFile
from sales_platform.storage.ledger import FileVersion
from sales_platform.storage.object_store import StoredObject

DAY = date(2023, 4, 2)


def _outcome(
    key="sales_data/2023-04-02/a.csv", read=100, accepted=99, quarantined=1, first=DAY, last=DAY
) -> FileOutcome:
    obj = StoredObject(key, 10, "etag", None)
    return FileOutcome(
        LandedFile(obj, DAY, key),
        FileVersion("b", key, "etag", key, DAY),
        rows_read=read,
        rows_accepted=accepted,
        rows_quarantined=quarantined,
        first_sales_date=first,
        last_sales_date=last,
    )


def _load(*outcomes, schema: T.StructType = RAW_SALES_SCHEMA) -> DayLoad:
    staged = StagedWrite("raw_sales", [DAY.isoformat()], Path("/nonexistent"), schema.json())
    return DayLoad([DAY], list(outcomes), staged, staged)


def _results(load, **thresholds) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for r in raw_sales_checks(load, QualityThresholds(**thresholds))}


def test_good_day_passes_every_check():
    results = _results(_load(_outcome(quarantined=0, accepted=100)))
    assert all(r.passed for r in results.values())


def test_rows_unaccounted_for_fail_reconciliation():
    results = _results(_load(_outcome(read=100, accepted=90, quarantined=5)))
    assert not results[ROWS_RECONCILE].passed
    assert results[ROWS_RECONCILE].metadata["files_unreconciled"].value == 1


def test_a_changed_column_type_fails_the_schema_check():
    wrong = T.StructType(
        [
            T.StructField(f.name, T.DoubleType() if f.name == "price" else f.dataType)
            for f in RAW_SALES_SCHEMA
        ]
    )
    assert not _results(_load(_outcome(), schema=wrong))[SCHEMA_CONFORMS].passed


def test_a_sale_of_another_day_fails_the_partition_check():
    bad = _outcome(first=date(2023, 4, 1))
    assert not _results(_load(bad))[SALES_DATES_IN_PARTITION].passed


@pytest.mark.parametrize(
    ("quarantined", "passed", "severity"),
    [
        (0, True, dg.AssetCheckSeverity.WARN),
        (1, False, dg.AssetCheckSeverity.WARN),  # 1 % > 0.5 %: warn
        (6, False, dg.AssetCheckSeverity.ERROR),  # 6 % > 5 %: error
    ],
)
def test_quarantine_rate_warns_then_errors(quarantined, passed, severity):
    result = _results(_load(_outcome(accepted=100 - quarantined, quarantined=quarantined)))[
        QUARANTINE_RATE
    ]
    assert (result.passed, result.severity) == (passed, severity)


def test_quarantine_thresholds_are_configuration():
    result = _results(_load(_outcome(accepted=98, quarantined=2)), quarantine_warn_rate=0.05)[
        QUARANTINE_RATE
    ]
    assert result.passed
