"""Each day of a range run carries its own figures: what the UI shows for a day is that day's.

Read from the shared data set's first run (one run over four days, two months): every daily
partition's materialization of `raw_sales` and `sales_enriched` holds that day's row count,
quarantine count and money total as the generator wrote them, not the range's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

import dagster as dg
import pytest

from sales_platform_tests.datasets import DAYS

pytestmark = pytest.mark.integration


def _day_figures(dataset) -> dict:
    """Per day, from the generator's record: accepted rows, quarantined rows, rows read, money."""
    figures = defaultdict(lambda: Counter(total=Decimal("0.00")))
    for w in dataset.summary.written:
        day = figures[w.business_date.isoformat()]
        if not w.is_bad:
            day["accepted"] += w.accepted_rows
            day["quarantined"] += sum(w.bad_row_kinds.values())
            day["read"] += w.rows
            day["total"] += w.accepted_total
    return figures


def _materializations(dataset, asset: str) -> dict[str, dg.AssetMaterialization]:
    """The first run's materialization of each daily partition of `asset`."""
    run_id = dataset.first.results[0].run_id
    found = {}
    for day in DAYS:
        records = dataset.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day.isoformat()]),
            limit=10,
        ).records
        (record,) = [r for r in records if r.run_id == run_id]
        found[day.isoformat()] = record.asset_materialization
    return found


def _value(mat: dg.AssetMaterialization, name: str):
    return mat.metadata[name].value


def test_raw_sales_figures_are_per_day(dataset):
    want = _day_figures(dataset)
    for day, mat in _materializations(dataset, "raw_sales").items():
        assert _value(mat, "dagster/row_count") == want[day]["accepted"], day
        assert _value(mat, "rows_quarantined") == want[day]["quarantined"], day
        assert _value(mat, "rows_read") == want[day]["read"], day
        assert Decimal(_value(mat, "total_cost")) == want[day]["total"], day


def test_sales_enriched_figures_are_per_day(dataset):
    want = _day_figures(dataset)
    for day, mat in _materializations(dataset, "sales_enriched").items():
        assert _value(mat, "dagster/row_count") == want[day]["accepted"], day
        assert Decimal(_value(mat, "total_cost")) == want[day]["total"], day
