"""The automation's decisions, on a test instance without Spark: which months the marts'
declarative automation refreshes and when it waits, what the month-end schedule asks for, when
a day counts as overdue.

Fact materializations are reported as runless events; in-flight work is a run created through
the instance (which records the partitions it plans to build, as a launched run does) or a
backfill record. The sensor is evaluated as the sensor daemon evaluates it; the pipeline itself
runs in the integration tests.
"""

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.definitions.freshness_evaluator import CronFreshnessPolicyEvaluator
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.test_utils import BasicLoadingContext, freeze_time

from sales_platform.definitions import build_definitions
from sales_platform.defs.fact.freshness import due_days, files_due_policy
from sales_platform.defs.marts.automation import MART_KEYS, MARTS_FOLLOW_FACT, marts_follow_fact
from sales_platform.defs.marts.month_end import previous_month
from sales_platform.settings import AutomationSettings, Settings
from sales_platform.storage.object_store import LocalObjectStore
from sales_platform_tests.support import add_asset_backfill

FACT = dg.AssetKey("sales_enriched")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _defs(tmp_path, automation: AutomationSettings, automation_on: bool = True) -> dg.Definitions:
    settings = Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(tmp_path)})
    defs = build_definitions(dataclasses.replace(settings, automation=automation), automation_on)
    # Resolved while an instance is current: Dagster otherwise reaches for the state storage of
    # whichever test instance was created last, closed by now.
    with dg.instance_for_test():
        defs.get_repository_def()
    return defs


@pytest.fixture
def defs(tmp_path):
    return _defs(tmp_path, AutomationSettings())


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _fact_days(instance: dg.DagsterInstance, *days: str) -> None:
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(FACT, partition=day))


def _marts_built(instance: dg.DagsterInstance, month: str, run: dg.DagsterRun | None = None):
    """Both marts of the month written, by the run (else by something outside any run)."""
    for key in MART_KEYS:
        materialization = dg.AssetMaterialization(key, partition=month)
        if run is None:
            instance.report_runless_asset_event(materialization)
            continue
        event = DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=run.job_name,
            event_specific_data=StepMaterializationData(materialization),
        )
        instance.report_dagster_event(event, run_id=run.run_id)


def _in_flight(defs, instance, job: str, tags: dict, assets=None) -> dg.DagsterRun:
    """A run that is queued, as launched runs are: the instance records what it plans to build."""
    return instance.create_run_for_job(
        job_def=defs.resolve_job_def(job),
        tags=tags,
        asset_selection=frozenset(assets) if assets else None,
        status=dg.DagsterRunStatus.NOT_STARTED,
    )


def _succeeded(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    event = DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
    instance.report_dagster_event(event, run_id=run.run_id)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS


def _tick(defs, instance, cursor=None) -> dg.SensorResult:
    """One evaluation of the sensor, as the sensor daemon runs it in the code location."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return marts_follow_fact.evaluate_tick(context)


def _months(result) -> list[str]:
    return sorted(r.partition_key for r in result.run_requests)


def _clause_months(result: dg.SensorResult, label: str) -> set[str]:
    """The months for which a labelled clause held in this evaluation (what the UI shows)."""

    def find(node):
        if node.condition_snapshot.label == label:
            return node
        return next(filter(None, map(find, node.child_evaluations)), None)

    found = {}
    for evaluation in result.automation_condition_evaluations:
        node = find(evaluation)
        found[evaluation.key] = set(node.true_subset.value.get_partition_keys())
    assert set(found) == set(MART_KEYS)
    (months,) = {frozenset(m) for m in found.values()}  # both marts, the same months
    return set(months)


@pytest.fixture
def first(defs, instance) -> str:
    """The cursor of the sensor's first evaluation (it starts watching from there)."""
    result = _tick(defs, instance)
    assert result.run_requests == []
    return result.cursor


def test_both_marts_carry_the_condition_the_sensor_evaluates(defs, tmp_path):
    graph = defs.resolve_asset_graph()
    for key in MART_KEYS:
        assert graph.get(key).automation_condition == MARTS_FOLLOW_FACT
    assert set(marts_follow_fact.asset_selection.resolve(graph)) == set(MART_KEYS)
    # Where no sensor may launch runs (the daemon that only drains the queue), the marts carry
    # no condition, so Dagster adds no default automation sensor either.
    quiet = _defs(tmp_path, AutomationSettings(), automation_on=False)
    assert quiet.get_repository_def().sensor_defs == []
    assert all(quiet.resolve_asset_graph().get(k).automation_condition is None for k in MART_KEYS)


def test_a_batch_of_days_gives_one_refresh_per_month(defs, instance, first):
    _fact_days(instance, "2023-01-30", "2023-01-31", "2023-02-01", "2023-01-30")
    result = _tick(defs, instance, first)

    assert _months(result) == ["2023-01-01", "2023-02-01"]  # one run per month
    for request in result.run_requests:
        assert set(request.asset_selection) == set(MART_KEYS)
        assert request.tags["sales_platform/trigger"] == "fact_update"
        # Finality is the mart's decision at run time (closed, due and complete), not a tag.
        assert "sales_platform/final" not in request.tags
    # The next tick has nothing new: no second refresh of the same batch.
    again = _tick(defs, instance, result.cursor)
    assert again.run_requests == []
    # A rerun of one day refreshes only its month; new dimension snapshots refresh nothing.
    _fact_days(instance, "2023-02-01")
    for name in ("customers", "sales_team"):
        instance.report_runless_asset_event(dg.AssetMaterialization(name))
    rerun = _tick(defs, instance, again.cursor)
    assert _months(rerun) == ["2023-02-01"]
    instance.report_runless_asset_event(dg.AssetMaterialization("customers"))
    assert _tick(defs, instance, rerun.cursor).run_requests == []


def test_a_month_waits_for_its_in_flight_days(defs, instance, first):
    _fact_days(instance, "2023-01-05", "2023-02-03")
    # Another day of January is still queued, as the landing sensor's runs are.
    loading = _in_flight(defs, instance, "daily_sales_job", {"dagster/partition": "2023-01-06"})
    result = _tick(defs, instance, first)
    assert _months(result) == ["2023-02-01"]
    # Each evaluation says why January waits.
    assert _clause_months(result, "days of the month in progress") == {"2023-01-01"}
    assert _clause_months(result, "days of the month updated") == {"2023-01-01", "2023-02-01"}

    still = _tick(defs, instance, result.cursor)
    assert still.run_requests == []

    instance.report_run_failed(loading)  # finished, either way
    after = _tick(defs, instance, still.cursor)
    assert _months(after) == ["2023-01-01"]
    assert _tick(defs, instance, after.cursor).run_requests == []


def test_a_month_waits_for_a_range_run_and_a_backfill(defs, instance, first):
    _fact_days(instance, "2023-03-10", "2023-04-10", "2023-05-10")
    ranged = _in_flight(
        defs,
        instance,
        "daily_sales_job",
        {RANGE_START: "2023-02-25", RANGE_END: "2023-03-02"},
        assets=[FACT],
    )
    # An asset backfill whose runs do not exist yet.
    backfill = add_asset_backfill(
        instance, defs.resolve_asset_graph(), "bf1", ["2023-04-20", "2023-04-21"], [FACT]
    )
    result = _tick(defs, instance, first)
    assert _months(result) == ["2023-05-01"]

    instance.report_run_failed(ranged)
    instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    after = _tick(defs, instance, result.cursor)
    assert _months(after) == ["2023-03-01", "2023-04-01"]


def test_a_day_that_lands_while_a_refresh_runs_gets_one_more(defs, instance, first):
    _fact_days(instance, "2023-01-05")
    result = _tick(defs, instance, first)
    (request,) = result.run_requests
    # The requested refresh is launched; meanwhile another day of January lands.
    refresh = _in_flight(defs, instance, "monthly_marts_job", request.tags)
    _fact_days(instance, "2023-01-06")
    waiting = _tick(defs, instance, result.cursor)
    assert waiting.run_requests == []  # the month's marts are still being built
    # The refresh ends after the day landed, but may have read the fact before it.
    _marts_built(instance, "2023-01-01", refresh)
    _succeeded(instance, refresh)
    again = _tick(defs, instance, waiting.cursor)
    assert _months(again) == ["2023-01-01"]
    assert _tick(defs, instance, again.cursor).run_requests == []


def test_a_day_that_lands_while_another_run_rebuilds_the_marts(defs, instance, first):
    # The month-end close (not the sensor's request) is building January when a day lands.
    close = _in_flight(defs, instance, "monthly_marts_job", {"dagster/partition": "2023-01-01"})
    _fact_days(instance, "2023-01-31")
    building = _tick(defs, instance, first)
    assert building.run_requests == []
    _marts_built(instance, "2023-01-01", close)
    _succeeded(instance, close)
    waited = _tick(defs, instance, building.cursor)
    assert _months(waited) == ["2023-01-01"]


def test_marts_rebuilt_after_the_change_are_not_refreshed_again(defs, instance, first):
    # `sales-platform materialize` and the month-end close build the marts themselves.
    _fact_days(instance, "2023-01-05", "2023-02-03")
    close = _in_flight(defs, instance, "monthly_marts_job", {"dagster/partition": "2023-01-01"})
    _marts_built(instance, "2023-01-01", close)
    _succeeded(instance, close)
    result = _tick(defs, instance, first)
    assert _months(result) == ["2023-02-01"]


def test_a_day_outside_the_partitions_does_not_fail_the_tick(defs, instance, first):
    _fact_days(instance, "2999-01-05", "2023-06-02")
    assert _months(_tick(defs, instance, first)) == ["2023-06-01"]


def test_cursor_stays_small(defs, instance, first):
    # Sensor cursors are TEXT on the MySQL instance storage: 64 KB at most.
    days = [(date(2023, 1, 1) + timedelta(days=i)).isoformat() for i in range(400)]
    _fact_days(instance, *days)
    busy = _in_flight(
        defs, instance, "monthly_marts_job", {RANGE_START: "2023-01-01", RANGE_END: "2024-02-01"}
    )
    result = _tick(defs, instance, first)
    assert result.run_requests == []  # Jan 2023 .. Feb 2024, all waiting on the mart run
    assert len(result.cursor) < 8192
    instance.report_run_failed(busy)
    after = _tick(defs, instance, result.cursor)
    assert len(after.run_requests) == 14
    assert len(after.cursor) < 8192


@pytest.mark.parametrize(
    ("scheduled", "month"),
    [
        (datetime(2023, 3, 1, 7, tzinfo=UTC), "2023-02-01"),
        (datetime(2024, 1, 1, 7, tzinfo=UTC), "2023-12-01"),
        (datetime(2024, 3, 1, 7, tzinfo=UTC), "2024-02-01"),
    ],
)
def test_month_end_schedule_requests_the_month_that_closed(defs, scheduled, month):
    schedule = defs.resolve_schedule_def("month_end_marts")
    assert schedule.cron_schedule == "0 7 1 * *"
    assert schedule.execution_timezone == "UTC"
    # The context closes before the instance: it enters an instance of its own.
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=scheduled,
            repository_def=defs.get_repository_def(),
        ) as context,
    ):
        (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == month
    assert set(request.asset_selection) == set(MART_KEYS)
    assert request.tags["sales_platform/final"] == "true"
    assert previous_month(scheduled) == month


def test_month_end_schedule_skips_before_the_first_month(defs):
    schedule = defs.resolve_schedule_def("month_end_marts")
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2023, 1, 1, 7, tzinfo=UTC),
            repository_def=defs.get_repository_def(),
        ) as context,
    ):
        data = schedule.evaluate_tick(context)
    assert not data.run_requests and data.skip_message


def test_schedule_times_come_from_the_environment(tmp_path):
    # Read with every other setting by Settings.from_env, the one reader of the environment.
    automation = Settings.from_env(
        {"SALES_PLATFORM_MONTH_END_CRON": "30 5 2 * *", "SALES_PLATFORM_FILES_DUE_HOUR": "9"}
    ).automation
    defs = _defs(tmp_path, automation)
    assert defs.resolve_schedule_def("month_end_marts").cron_schedule == "30 5 2 * *"
    assert defs.resolve_schedule_def("files_overdue_check").cron_schedule == "5 9-23 * * *"
    policy = defs.resolve_asset_graph().get(dg.AssetKey("raw_sales")).freshness_policy
    assert policy == files_due_policy(9)
    with pytest.raises(ValueError, match="cron"):
        AutomationSettings.from_env({"SALES_PLATFORM_MONTH_END_CRON": "monthly"})
    with pytest.raises(ValueError, match="0..23"):
        AutomationSettings.from_env({"SALES_PLATFORM_FILES_DUE_HOUR": "24"})


def test_due_days_follow_the_deadline():
    # Files of the 4th are due by 06:00 on the 5th.
    assert due_days(datetime(2024, 5, 5, 5, 59, tzinfo=UTC), 6, 2) == [
        date(2024, 5, 2),
        date(2024, 5, 3),
    ]
    assert due_days(datetime(2024, 5, 5, 6, 0, tzinfo=UTC), 6, 2) == [
        date(2024, 5, 3),
        date(2024, 5, 4),
    ]
    assert due_days(datetime(2023, 1, 3, 7, tzinfo=UTC), 6, 7) == [
        date(2023, 1, 1),
        date(2023, 1, 2),
    ]


def test_raw_sales_is_overdue_when_nothing_loaded_before_the_deadline(defs):
    node = defs.resolve_asset_graph().get(dg.AssetKey("raw_sales"))
    assert node.freshness_policy == files_due_policy(6)

    def state(instance, at: datetime) -> FreshnessState:
        with freeze_time(at):
            context = BasicLoadingContext(instance)
            return asyncio.run(CronFreshnessPolicyEvaluator().evaluate_freshness(context, node))

    with dg.instance_for_test() as instance:
        with freeze_time(datetime(2024, 5, 5, 1, 30, tzinfo=UTC)):  # the 4th's files, on time
            instance.report_runless_asset_event(
                dg.AssetMaterialization("raw_sales", partition="2024-05-04")
            )
        assert state(instance, datetime(2024, 5, 5, 7, tzinfo=UTC)) == FreshnessState.PASS
        # No file for the 5th: by 06:00 on the 6th nothing was loaded for 24 hours.
        assert state(instance, datetime(2024, 5, 6, 7, tzinfo=UTC)) == FreshnessState.FAIL


def _check_result(defs, as_of: str) -> dg.AssetCheckEvaluation:
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("files_overdue_check_job").execute_in_process(
            instance=instance,
            run_config={
                "ops": {"raw_sales_files_files_landed_on_time": {"config": {"as_of": as_of}}}
            },
        )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_a_day_without_files_is_overdue_after_its_deadline(tmp_path):
    defs = _defs(tmp_path, AutomationSettings(overdue_lookback_days=3))
    store = LocalObjectStore(tmp_path / "bucket")
    for day in ("2024-05-01", "2024-05-02", "2024-05-04"):
        store.put_bytes(f"sales_data/{day}/sales_{day}_01.csv", b"customer_id\n1\n")
    # Archived files count too: the 3rd was processed already.
    store.put_bytes("sales_data_processed/2024-05-03/2024-05-03/sales_01.csv", b"x\n")

    on_time = _check_result(defs, "2024-05-05T05:00:00+00:00")  # the 4th is not due yet
    assert on_time.passed

    store.delete(["sales_data_processed/2024-05-03/2024-05-03/sales_01.csv"])
    late = _check_result(defs, "2024-05-06T06:05:00+00:00")
    assert not late.passed
    assert late.severity == dg.AssetCheckSeverity.ERROR
    assert late.metadata["overdue_days"].value == ["2024-05-03", "2024-05-05"]
