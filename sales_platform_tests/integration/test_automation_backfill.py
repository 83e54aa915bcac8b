"""A 10-day backfill launched the way the UI launches one (an asset backfill run by Dagster's
backfill daemon) is one run over the whole range, materializes every day, and leads to one mart
refresh per month whose marts equal the independent recompute.
"""

import logging
from datetime import date, timedelta

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.backfill import execute_backfill_iteration

from sales_platform_tests.integration.test_automation import (
    FACT,
    RANGE_END,
    RANGE_START,
    RAW,
    _execute,
    _generate,
    _tick,
    assert_marts_match_oracle,
    stack,  # noqa: F401 - the fixture
)
from sales_platform_tests.support import add_asset_backfill

pytestmark = pytest.mark.integration

FIRST_DAY, DAYS = date(2023, 1, 27), 10  # across a month end: two months of marts
DIMENSIONS = ["customers", "stores", "products", "sales_team"]
LOG = logging.getLogger("backfill")


@pytest.fixture
def instance():
    # Runs the daemon launches execute synchronously in this process (one Spark session).
    launcher = {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    }
    coordinator = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    overrides = {"run_launcher": launcher, "run_coordinator": coordinator}
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def _code_location():
    target = LoadableTargetOrigin(
        module_name="sales_platform_tests.integration.test_automation",
        attribute="definitions_from_env",
    )
    origin = InProcessCodeLocationOrigin(target, location_name="sales_platform")
    return InProcessTestWorkspaceLoadTarget(origin)


@pytest.mark.timeout(900)
def test_ten_day_backfill_is_one_run_then_one_refresh_per_month(stack, instance, spark):  # noqa: F811
    _, defs, res = stack
    expected = _generate(res, FIRST_DAY, days=DAYS)
    days = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(DAYS)]
    watching = _tick(defs, instance)
    # The dimension snapshots are not partitioned: the backfill covers the days.
    snapshot = defs.resolve_job_def("daily_sales_job").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(k) for k in DIMENSIONS]
    )
    assert snapshot.success

    with create_test_daemon_workspace_context(_code_location(), instance) as workspace:
        add_asset_backfill(
            instance,
            workspace.create_request_context().asset_graph,
            "ten-days",
            days,
            [RAW, FACT],
        )
        # New snapshots are no reason to refresh a month.
        waiting = _tick(defs, instance, watching.cursor)
        assert waiting.run_requests == []
        for _ in range(5):
            errors = [e for e in execute_backfill_iteration(workspace, LOG) if e is not None]
            assert not errors, errors[0].to_string()
            if instance.get_backfill("ten-days").status != BulkActionStatus.REQUESTED:
                break
    assert instance.get_backfill("ten-days").status == BulkActionStatus.COMPLETED_SUCCESS

    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: "ten-days"}))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert (run.tags[RANGE_START], run.tags[RANGE_END]) == (days[0], days[-1])
    for key in (RAW, FACT):
        records = instance.fetch_materializations(key, limit=100).records
        assert sorted(r.partition_key for r in records) == days
        assert {r.run_id for r in records} == {run.run_id}

    # The marts follow: ten new days, one refresh per month.
    tick = _tick(defs, instance, waiting.cursor)
    assert sorted(r.partition_key for r in tick.run_requests) == ["2023-01-01", "2023-02-01"]
    for request in tick.run_requests:
        _execute(defs, instance, request)
    assert_marts_match_oracle(res, expected, date(2023, 1, 1))
    assert_marts_match_oracle(res, expected, date(2023, 2, 1))
