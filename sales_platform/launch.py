"""Runs launched through the code location, as the daemon and the UI launch them.

`sales-platform materialize` and `sales-platform demo` do not execute jobs in their own process:
a run made that way has no code-location origin, so the UI's Jobs page and Overview timeline do
not list it and Re-execute warns. Instead each run is created with Dagster's public CLI
(`dagster job launch`, which records the job's origin in the code location
`sales_platform.definitions`, the same one `make ui` and `sales-platform serve` load) and waits
in the instance's run queue like any other; a run worker process executes it.

The queue needs a daemon. When none is running on the instance, one is started for the
duration (`dagster-daemon run`) with SALES_PLATFORM_QUEUE_ONLY=1: its code location then has no
sensors or schedules, so it only drains the queue and does not start the landing sensor's own
runs for the files the command is loading.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg

from sales_platform.log_config import get_logger

log = get_logger(__name__)

BIN = Path(sys.executable).parent
CODE_LOCATION_MODULE = "sales_platform.definitions"
# Set on the daemon started only to drain the run queue: definitions.py then leaves out the
# sensors and schedules, so it launches nothing of its own.
QUEUE_ONLY_VAR = "SALES_PLATFORM_QUEUE_ONLY"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# A daemon whose queue heartbeat is older than this is not draining the queue.
HEARTBEAT_FRESH_SECONDS = 60
LAUNCHED_BY_TAG = "sales_platform/launched_by"


class RunFailed(RuntimeError):
    """A launched run ended other than in success; the message is one line."""


def launch(job: str, tags: dict[str, str]) -> str:
    """Create and submit a run of `job` in the code location; returns its run id."""
    run_id = str(uuid.uuid4())
    command = [
        str(BIN / "dagster"),
        "job",
        "launch",
        "--module-name",
        CODE_LOCATION_MODULE,
        "--job",
        job,
        "--run-id",
        run_id,
        "--tags",
        json.dumps(tags),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RunFailed(f"could not launch {job}: {last}")
    return run_id


def error_summary(error) -> str:
    """The first line of what failed: below Dagster's wrappers ("Error occurred while executing
    op ...:"), the error they wrap, which names the table, object or setting."""
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return (error.message.strip().splitlines() or [error.cls_name or "error"])[0]


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = event.dagster_event.step_failure_data.error
        if error is not None:
            return error_summary(error)
    for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
        if event.message:
            return event.message.strip().splitlines()[0]
    return "see the run's logs in the UI"


def wait(instance: dg.DagsterInstance, run_id: str, timeout: float) -> dg.DagsterRun:
    """Until the run has finished; raises RunFailed unless it succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED:
            break
        if time.monotonic() > deadline:
            raise RunFailed(f"run {run_id} not finished after {timeout:.0f} s")
        time.sleep(1.0)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        message = _failure_message(instance, run_id)
        raise RunFailed(f"run {run_id} ({run.job_name}) {run.status.value.lower()}: {message}")
    return run


def queue_is_drained(instance: dg.DagsterInstance) -> bool:
    """Whether a daemon is running on this instance (its run-queue heartbeat is recent)."""
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < HEARTBEAT_FRESH_SECONDS


@contextmanager
def queue_daemon(instance: dg.DagsterInstance, log_dir: Path) -> Iterator[None]:
    """A daemon that drains the run queue while the block runs, unless one is running already."""
    if queue_is_drained(instance):
        yield
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "queue-daemon.log").open("ab") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "--module-name", CODE_LOCATION_MODULE],
            env={**os.environ, QUEUE_ONLY_VAR: "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info(f"started a daemon for the run queue (pid {process.pid}, logs in {log_dir})")
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Its last heartbeat stays fresh for a minute: the next command would take the queue
        # for drained and wait forever on a run nobody dequeues. A live daemon beats again.
        instance.wipe_daemon_heartbeats()


def run_in_code_location(
    instance: dg.DagsterInstance, plan: list[tuple[str, dict[str, str]]], timeout: float
) -> list[dg.DagsterRun]:
    """Launch each (job, tags) in turn, each after the previous one succeeded."""
    runs = []
    home = Path(os.environ["DAGSTER_HOME"])
    # Not $DAGSTER_HOME/logs: Dagster moves that folder away (its telemetry queue).
    with queue_daemon(instance, home / "queue_daemon_logs"):
        for job, tags in plan:
            run_id = launch(job, {LAUNCHED_BY_TAG: "sales-platform", **tags})
            print(f"launched {job} run {run_id}; waiting for it", flush=True)
            runs.append(wait(instance, run_id, timeout))
    return runs
