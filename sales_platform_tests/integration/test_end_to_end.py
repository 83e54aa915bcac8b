"""End to end on the shared data set of each stack: generated files -> every asset -> both marts.

The expected marts come from the landing bytes read before the first run (and agree with the
generator's record of every file it wrote), so a file the platform mishandles cannot vanish from
both sides. After the first run and after a rerun of the same range, both marts of every month
equal the expectation; every file's ledger row says what the generator meant for it.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import dagster as dg
import pytest

from sales_platform.schemas import customers_data_mart_table, sales_team_data_mart_table
from sales_platform.storage.ledger import COMPLETED, REJECTED
from sales_platform_tests.datasets import DAYS, MONTHS, in_key_order

pytestmark = pytest.mark.integration

OUTCOMES = ("first run", "rerun")


def test_every_run_succeeds(dataset):
    for name, outcome in dataset.outcomes.items():
        assert [r.success for r in outcome.results] == [True, True], name


def test_the_data_set_crosses_a_month_and_a_year_with_bad_files_and_rows(dataset):
    summary = dataset.summary
    assert {d.year for d in DAYS} == {2023, 2024} and len(MONTHS) == 2
    assert len(summary.bad_files) == 1 and summary.bad_rows > 0 and summary.unknown_key_rows > 0
    assert dataset.expected.months == MONTHS


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_both_marts_of_every_month_equal_the_pre_run_oracle(dataset, outcome):
    got = dataset.outcomes[outcome]
    for month in MONTHS:
        want_customers = dataset.expected.customer_mart(month)
        want_sellers = dataset.expected.sales_team_mart(month)
        assert want_customers and want_sellers
        customers = in_key_order(customers_data_mart_table, want_customers)
        sellers = in_key_order(sales_team_data_mart_table, want_sellers)
        assert got.customer_mart[month] == customers, month
        assert got.sales_team_mart[month] == sellers, month


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_file_has_the_ledger_status_the_generator_meant(dataset, outcome):
    ledger = dataset.outcomes[outcome].ledger
    by_key = defaultdict(list)
    for row in ledger:
        by_key[row["object_key"]].append(row)
    assert set(by_key) == {w.key for w in dataset.summary.written}
    for w in dataset.summary.written:
        # One file version each: the rerun re-processes it, it does not add a second row.
        (row,) = by_key[w.key]
        assert row["business_date"] == w.business_date, w.key
        if w.is_bad:
            assert row["status"] == REJECTED, (w.key, w.bad_kind, row["status"])
            assert row["reason"], w.key
        else:
            assert row["status"] == COMPLETED, (w.key, row["status"], row["reason"])
            assert row["rows_accepted"] == w.accepted_rows, w.key
            assert row["rows_quarantined"] == sum(w.bad_row_kinds.values()), w.key
            assert row["rows_read"] == w.rows, w.key


def test_ledger_counts_add_up_to_the_generator_totals(dataset):
    accepted = Counter()
    for row in dataset.first.ledger:
        accepted[row["business_date"]] += row["rows_accepted"] or 0
    assert dict(accepted) == dataset.summary.accepted_rows_by_day


def _mart_metadata(dataset, outcome: str, asset: str, month) -> dict:
    run_id = dataset.outcomes[outcome].results[1].run_id
    records = dataset.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[month.isoformat()]),
        limit=10,
    ).records
    (record,) = [r for r in records if r.run_id == run_id]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.mark.parametrize("asset", ["customer_monthly_mart", "sales_team_monthly_mart"])
def test_closed_months_are_final_and_their_rerun_is_a_late_recompute(dataset, asset):
    for month in MONTHS:
        first = _mart_metadata(dataset, "first run", asset, month)
        assert first["final"] is True and first["late_recompute"] is False, month
        # The rerun republished the days after the months were published final.
        rerun = _mart_metadata(dataset, "rerun", asset, month)
        assert rerun["final"] is True and rerun["late_recompute"] is True, month
