"""One tick of the landing sensor by Dagster's own sensor daemon, in a process of its own.

`python -m sales_platform_tests.sensor_tick` runs one iteration of the daemon's sensor loop
(`execute_sensor_iteration`, the code `dagster-daemon run` runs) on the instance in
DAGSTER_HOME, with the code location `sales_platform.definitions` loaded in this process: the
sensor is evaluated here, so a point armed with SALES_PLATFORM_FAULT (`sensor.requested`) ends
this process where it would end a code server. Otherwise the daemon reserves the requested runs
with the new cursor in the tick, submits them, and the instance's run launcher takes them (the
tests' instance executes each run here, to its end: SyncInMemoryRunLauncher). The code
location's other sensors are stopped on the instance: the tick is the landing sensor's alone.

The daemon waits for the sensor's minimum interval (30 s) since the last tick started; this tick
moves the last tick's stamps back by what remains of it instead (`_interval_passed`), so a test's
chain of ticks does not sleep. It prints one line `tick <status> runs=<n> keys=<run keys>` and
exits 0 unless the tick failed (1).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.sensor import execute_sensor_iteration, get_elapsed

from sales_platform.launch import CODE_LOCATION_MODULE

REPO = Path(__file__).resolve().parents[1]
SENSOR = "landing_sensor"


def _sensor(context, instance: dg.DagsterInstance):
    """The landing sensor; the location's other sensors are stopped on the instance (as an
    operator stops one in the UI), so the tick is the landing sensor's alone."""
    location = next(iter(context.create_request_context().get_code_location_entries().values()))
    assert location.code_location is not None, location.load_error
    [repo] = location.code_location.get_repositories().values()
    for other in repo.get_sensors():
        if other.name != SENSOR:
            instance.stop_sensor(other.get_remote_origin_id(), other.selector_id, other)
    return repo.get_sensor(SENSOR)


def _interval_passed(instance: dg.DagsterInstance, state, seconds: float) -> None:
    """What the daemon waits for, without the wait: the last tick's start (and end) stamps are
    moved `seconds` back, so the daemon's own interval check lets this tick through. The rest
    of the state (the cursor above all) stays as the last tick left it."""
    data = state.instigator_data
    earlier = {
        name: stamp - seconds
        for name in ("last_tick_timestamp", "last_tick_start_timestamp")
        if (stamp := getattr(data, name)) is not None
    }
    instance.update_instigator_state(state.with_data(data._replace(**earlier)))


def main() -> int:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=CODE_LOCATION_MODULE,
            working_directory=str(REPO),
        )
    )
    with (
        dg.DagsterInstance.get() as instance,
        create_test_daemon_workspace_context(
            InProcessTestWorkspaceLoadTarget(origin), instance
        ) as context,
    ):
        sensor = _sensor(context, instance)
        origin_id, selector_id = sensor.get_remote_origin_id(), sensor.selector_id
        state = instance.get_instigator_state(origin_id, selector_id)
        elapsed = get_elapsed(state) if state else None
        if elapsed is not None and elapsed < sensor.min_interval_seconds:
            _interval_passed(instance, state, sensor.min_interval_seconds - elapsed + 0.5)
        before = {t.tick_id for t in instance.get_ticks(origin_id, selector_id, limit=5)}
        for _ in execute_sensor_iteration(context, logging.getLogger("sensor_tick"), None, None):
            pass
        ticks = instance.get_ticks(origin_id, selector_id, limit=5)
        [tick] = [t for t in ticks if t.tick_id not in before][:1] or [None]
        if tick is None:
            print("tick none: the sensor was not evaluated", flush=True)
            return 1
        keys = ",".join(sorted(tick.run_keys))
        print(f"tick {tick.status.value} runs={len(tick.run_ids)} keys={keys}", flush=True)
        if tick.status == TickStatus.FAILURE:
            print(tick.error.to_string() if tick.error else "no error recorded", flush=True)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
