"""A range run tells each day's truth: every partition's metadata is that day's, not the range's.

One run over three days (a single-run backfill) with different numbers of bad rows per day; each
`raw_sales` and `sales_enriched` partition must show its own day's row count, money, files and
quarantine, compared with what the generator wrote for that day.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from sales_platform.cli import _resources
from sales_platform.definitions import build_definitions
from sales_platform.generate import generate
from sales_platform_tests.support import stack_settings

pytestmark = pytest.mark.integration

FIRST, DAYS = date(2023, 5, 8), 3
RANGE_TAGS = {
    "dagster/asset_partition_range_start": FIRST.isoformat(),
    "dagster/asset_partition_range_end": (FIRST + timedelta(days=DAYS - 1)).isoformat(),
}


def _latest(instance: dg.DagsterInstance, asset: str, day: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]), limit=1
    ).records
    assert records, f"{asset} {day} was not materialized"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_each_partition_of_a_range_run_shows_its_own_day(spark, tmp_path, request, monkeypatch):
    settings = stack_settings("local", tmp_path, request, monkeypatch)
    per_day, totals, read_by_day = {}, {}, {}
    with _resources(settings, "landing", "source_db") as res:
        for n in range(DAYS):
            # Each day its own size, so a range figure copied to every day cannot pass.
            day, rows = FIRST + timedelta(days=n), 200 + 100 * n
            summary = generate(
                res.landing.open(),
                res.source_db.engine(),
                start_date=day,
                days=1,
                rows_per_day=rows,
                seed=5,
                files_per_day=2,
                customers=50,
                stores=3,
                bad_row_fraction=0.03,
                progress=False,
            )
            per_day[day] = summary.accepted_rows_by_day[day]
            totals[day] = summary.accepted_total_by_day[day]
            read_by_day[day] = rows

    with dg.instance_for_test() as instance:
        job = build_definitions(settings).resolve_job_def("daily_sales_job")
        result = job.execute_in_process(instance=instance, tags=RANGE_TAGS)
        assert result.success
        for day, rows in per_day.items():
            key = day.isoformat()
            raw = _latest(instance, "raw_sales", key)
            assert raw["dagster/row_count"] == rows, key
            assert Decimal(raw["total_cost"]) == totals[day], key
            assert raw["total_cost_plot"] == pytest.approx(float(raw["total_cost"]))
            assert raw["files_read"] == 2 and len(raw["files_consumed"]) == 2, key
            assert all(key in f for f in raw["files_consumed"]), raw["files_consumed"]
            assert raw["rows_read"] == rows + raw["rows_quarantined"], key
            rate = raw["rows_quarantined"] / read_by_day[day]
            assert raw["quarantine_rate"] == pytest.approx(rate)
            reasons = {k: v for k, v in raw.items() if k.startswith("quarantined_")}
            assert sum(reasons.values()) == raw["rows_quarantined"] > 0, key
            assert all(reasons.values()), f"zero-count reasons shown: {reasons}"
            assert key in str(raw["lake_uri"])
            # The range's own figures stay under range-level keys.
            assert raw["run_rows"] == sum(per_day.values())
            columns = raw["dagster/column_schema"].columns
            assert all(c.description for c in columns), [c.name for c in columns]

            fact = _latest(instance, "sales_enriched", key)
            assert fact["dagster/row_count"] == rows, key
            assert Decimal(fact["total_cost"]) == totals[day], key
            assert fact["bytes_written"] > 0

        # A check result of a range run is recorded once, for the run: its days are named inside.
        (rate,) = [
            e for e in result.get_asset_check_evaluations() if e.check_name == "quarantine_rate"
        ]
        assert rate.partition is None
        rates = rate.metadata["quarantine_rate_by_day"].value
        assert set(rates) == {d.isoformat() for d in per_day}
