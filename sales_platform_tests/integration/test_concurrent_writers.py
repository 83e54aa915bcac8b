"""Two writers at once: two backfills of the same days, the landing sensor's run beside a
manual backfill, a file re-uploaded while its day runs, and the sensor's own process dying.

Each test lands its own files on the production stack (moto S3 + MariaDB) and starts real
processes, thin clients of one Spark Connect server: `sales_platform_tests.fault_run` (the runs
`sales-platform materialize` launches, executed in the process, no run queue between them) and
`sales_platform_tests.sensor_tick` (one tick of Dagster's sensor daemon on an instance in a
temporary DAGSTER_HOME, whose runs it executes). The end state is compared with the independent
oracle (oracle.py) row for row, and the ledger with S3 (convergence.py). README, "Fault points",
"Two writers at once", says what each test proves.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import date

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from sales_platform.faults import FAULT_EXIT_CODE
from sales_platform_tests.convergence import (
    DAILY,
    MARTS,
    assert_converged,
    lake_rows,
    landed_stack,
    ledger,
)

pytestmark = pytest.mark.integration

FIRST, LAST = date(2024, 3, 14), date(2024, 3, 15)
DAY = date(2024, 5, 20)
# A guard against a hang only: the longest of these took 72 s beside the suite on a fast day
# of this host (two workers), 97 s with three, 145 s on a slow day.
TEST_TIMEOUT = 600


@pytest.mark.timeout(TEST_TIMEOUT)
def test_two_backfills_of_the_same_days_at_once_converge(s3_endpoint, connect_server, tmp_path):
    url, _ = connect_server
    with landed_stack(s3_endpoint, url, tmp_path, FIRST, 2, 2, 1 / 4, seed=11) as stack:
        runs = [stack.start_run((DAILY, MARTS), FIRST, LAST) for _ in range(2)]
        codes = [stack.finish(p, f"backfill {i}") for i, p in enumerate(runs)]
        assert codes == [0, 0], [p.log.read_text(errors="replace")[-3000:] for p in runs]
        assert_converged(stack)
        print(f"\nrun seconds: {stack.seconds}")


def _wait_for(condition, timeout: float, what: str, proc=None):
    """Poll until `condition()` is truthy (its value); fail after `timeout` or when `proc` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended first ({proc.returncode})")
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout}s")


def _in_landing(stack, key: str) -> str | None:
    obj = stack.store.head(key)
    return obj.etag if obj else None


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_file_re_uploaded_while_its_day_runs_is_loaded_by_the_next_run(
    s3_endpoint, connect_server, tmp_path
):
    url, _ = connect_server
    with landed_stack(s3_endpoint, url, tmp_path, DAY, 1, 2, 0.0, seed=13) as stack:
        key = sorted(stack.etags)[0]
        old_etag, old = stack.etags[key], stack.expected
        lines = stack.store.get_bytes(key).splitlines(keepends=True)
        corrected = b"".join(lines[:-25])  # the sender's corrected file: 25 rows fewer

        run = stack.start_run((DAILY,), DAY, DAY)

        # The run has listed and read the file (its ledger row is A) and not yet moved it.
        def reading():
            return any(
                (e["object_key"], e["etag"], e["status"]) == (key, old_etag, "A")
                for e in ledger(stack)
            )

        _wait_for(reading, 120, "the run reading the file", run)
        stack.store.put_bytes(key, corrected)
        new_etag = _in_landing(stack, key)
        assert new_etag != old_etag
        assert stack.finish(run, "run while re-uploaded") == 0, stack.last_log

        # The run loaded the version it read, whole, and left the new one in landing: its move
        # is conditional on the version read, so the new bytes are neither archived nor lost.
        assert _in_landing(stack, key) == new_etag
        rows = Counter(r["source_key"] for r in lake_rows(stack, "raw_sales"))
        assert rows == Counter(s.key for s in old.sales)
        [entry] = [e for e in ledger(stack) if e["object_key"] == key]
        assert (entry["etag"], entry["status"], entry["archived_key"]) == (old_etag, "I", None)

        # The sensor sees the new version; the day's next run loads it.
        stack.expected = old.with_file_replaced(stack.store, key)
        stack.etags[key] = new_etag
        requests = stack.tick(None).run_requests
        assert [r.partition_key for r in requests] == [str(DAY)]
        assert stack.run(None, (DAILY,), DAY, DAY) == 0, stack.last_log
        assert_converged(stack, superseded={key: old_etag}, marts=False)
        assert stack.tick(None).run_requests == []
        print(f"\nrun seconds: {stack.seconds}")


INSTANCE_YAML = """
telemetry:
  enabled: false
# The tick's runs are launched at once (no queue) and executed in the tick's own process, to
# their end (tests only).
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher.sync_in_memory_run_launcher
  class: SyncInMemoryRunLauncher
"""
TICK = [sys.executable, "-m", "sales_platform_tests.sensor_tick"]


def _tick_line(proc) -> str:
    return next(line for line in proc.log.read_text().splitlines() if line.startswith("tick "))


@pytest.mark.timeout(TEST_TIMEOUT)
def test_the_sensor_killed_before_its_cursor_asks_again_and_its_run_beside_a_backfill(
    s3_endpoint, connect_server, tmp_path
):
    url, _ = connect_server
    with landed_stack(s3_endpoint, url, tmp_path, DAY, 1, 2, 1 / 2, seed=17) as stack:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(INSTANCE_YAML)
        stack.environ["DAGSTER_HOME"] = str(home)
        # What the sensor asks for, evaluated here: one run of the day, under this run key.
        [want] = [r.run_key for r in stack.tick(None).run_requests]

        # The daemon's process dies after the sensor built its requests, before the cursor
        # and the reserved runs are stored.
        killed = stack.start(TICK, point="sensor.requested", name="tick")
        assert stack.finish(killed, "tick killed", 120) == FAULT_EXIT_CODE, stack.last_log
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            assert instance.get_runs() == []
            states = instance.all_instigator_state()
            [state] = [s for s in states if s.instigator_name == "landing_sensor"]
            assert state.instigator_data.cursor is None

            # The next tick, a new process: the same day under the same run key, run here;
            # a manual backfill of the day starts while that run is going.
            tick = stack.start(TICK, name="tick")
            _wait_for(instance.get_runs, 120, "the sensor's run", tick)
            backfill = stack.start_run((DAILY,), DAY, DAY)
            assert stack.finish(tick, "tick and its run") == 0, stack.last_log
            assert _tick_line(tick) == f"tick SUCCESS runs=1 keys={want}"
            assert stack.finish(backfill, "backfill beside it") == 0, stack.last_log
            [run] = instance.get_run_records()
            assert run.dagster_run.tags["dagster/run_key"] == want
            assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            assert backfill.wall[0] < run.end_time, "the backfill started after the run ended"

            # Later ticks: nothing new, nothing asked for twice.
            again = stack.start(TICK, name="tick")
            assert stack.finish(again, "tick again", 120) == 0, stack.last_log
            assert _tick_line(again) == "tick SKIPPED runs=0 keys="
            assert len(instance.get_runs()) == 1
        assert_converged(stack, marts=False)
        print(f"\nrun seconds: {stack.seconds}")
