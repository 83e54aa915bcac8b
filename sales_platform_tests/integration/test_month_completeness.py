"""Final means complete: a day whose fact failed after its files were archived is never read as
empty. The month-end close fails naming the day (a failed blocking check on both marts), nothing
is published as final; once the cause is fixed and the day rebuilt, the close publishes it.

Local stack (folder + SQLite); the ledger query on MariaDB is in test_warehouse_strict.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from sales_platform.cli import _resources
from sales_platform.defs.jobs import daily_sales_job
from sales_platform.defs.marts.checks import DAYS_HAVE_FACT
from sales_platform.defs.quality import QualityThresholds
from sales_platform.generate import generate
from sales_platform.settings import Settings
from sales_platform_tests.integration.test_automation import definitions_from_env

MARTS = [dg.AssetKey("customer_monthly_mart"), dg.AssetKey("sales_team_monthly_mart")]


@pytest.fixture
def local_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    for name in ("SALES_PLATFORM_ENV", "SALES_PLATFORM_WAREHOUSE_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    with _resources(Settings.from_env(), "landing", "source_db", "lake") as res:
        yield definitions_from_env(), res


def _run_day(defs, instance, day: str, share: float):
    """A daily run with the business's tolerance for unknown keys set to the given share."""
    tolerant = dg.Definitions(
        assets=list(defs.assets),
        jobs=[daily_sales_job],
        resources={**defs.resources, "quality": QualityThresholds(max_unknown_key_share=share)},
        executor=dg.in_process_executor,
    )
    return tolerant.resolve_job_def("daily_sales_job").execute_in_process(
        instance=instance, partition_key=day, raise_on_error=False
    )


def _close(defs, instance) -> dg.ExecuteInProcessResult:
    schedule = defs.resolve_schedule_def("month_end_marts")
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2023, 2, 1, 7, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    ) as context:
        (request,) = schedule.evaluate_tick(context).run_requests
    return defs.resolve_job_def("monthly_marts_job").execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        asset_selection=list(request.asset_selection),
        tags=request.tags,
        raise_on_error=False,
    )


def _check(result: dg.ExecuteInProcessResult, asset: dg.AssetKey) -> dg.AssetCheckEvaluation:
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == asset and e.check_name == DAYS_HAVE_FACT
    ]
    return evaluation


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_day_with_archived_files_and_no_fact_is_never_final(local_stack, spark):
    defs, res = local_stack
    generate(
        res.landing.open(),
        res.source_db.engine(),
        start_date=date(2023, 1, 30),
        days=2,
        rows_per_day=300,
        seed=5,
        customers=60,
        stores=3,
        sellers_per_store=3,
        unknown_key_fraction=0.05,
        progress=False,
    )
    lake = res.lake.lake()
    with dg.instance_for_test() as instance:
        assert _run_day(defs, instance, "2023-01-30", 0.5).success
        # The first build of the 31st: too many unknown keys, the fact is not published, but
        # raw_sales is and the files are archived.
        failed = _run_day(defs, instance, "2023-01-31", 0.0)
        assert not failed.success
        assert lake.existing_partitions("raw_sales", ["2023-01-31"]) == {"2023-01-31"}
        assert lake.existing_partitions("sales_enriched", ["2023-01-30", "2023-01-31"]) == {
            "2023-01-30"
        }

        close = _close(defs, instance)
        assert not close.success
        for mart in MARTS:
            evaluation = _check(close, mart)
            assert not evaluation.passed
            assert evaluation.metadata["missing_days"].value == ["2023-01-31"]
            # Nothing published for January: no final report that misses the 31st.
            assert not instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=mart, asset_partitions=["2023-01-01"]), limit=1
            ).records
        failure = close.failure_data_for_node("customer_monthly_mart")
        assert "2023-01-31" in failure.error.message

        # The cause is fixed (for the test: the tolerance), the day is rebuilt, the close reruns.
        assert _run_day(defs, instance, "2023-01-31", 0.5).success
        close = _close(defs, instance)
        assert close.success
        for mart in MARTS:
            assert _check(close, mart).passed
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=mart, asset_partitions=["2023-01-01"]), limit=1
            ).records
            meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
            assert meta["final"] is True
            assert meta["missing_days"] == []
            assert meta["days_with_fact"] == 2
            assert len(meta["empty_days"]) == 29 and meta["empty_days"][0] == "2023-01-01"
