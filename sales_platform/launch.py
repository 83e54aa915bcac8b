"""Runs launched through the code location, as the daemon and the UI launch them.

`sales-platform materialize` and `sales-platform demo` do not execute jobs in their own process:
a run made that way has no code-location origin, so the UI's Jobs page and Overview timeline do
not list it and Re-execute warns. Instead each run is created as Dagster's CLI creates it
(`dagster job launch`'s own function, called in this process: it records the job's origin in
the code location `sales_platform.definitions`, the same one `make ui` and `sales-platform
serve` load) and waits in the instance's run queue like any other; a run worker process
executes it.

The definitions are loaded once per command, by a code server of its own (`dagster api grpc`
on a private Unix socket) that the launches, the daemon and the runs' start all use. It runs with
SALES_PLATFORM_QUEUE_ONLY=1: its code location has no sensors or schedules. The queue needs a
daemon: when none is running on the instance, one is started for the duration (`dagster-daemon
run` on that location), so it only drains the queue and does not start the landing sensor's own
runs for the files the command is loading.

When that daemon is the command's own and the engine is the embedded one, its runs share one
Spark: a Spark Connect server on loopback, started beside the daemon and stopped with it. Each
run would otherwise start a JVM of its own (about 8 s here, twice per `materialize`); the second
run also finds the server's code already compiled by the first (README, Spark engines).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg

from sales_platform.log_config import get_logger
from sales_platform.settings import SPARK_REMOTE_VAR, SparkSettings
from sales_platform.spark_cli import (
    connect_server_argv,
    free_port,
    start,
    stop,
)

log = get_logger(__name__)

BIN = Path(sys.executable).parent
CODE_LOCATION_MODULE = "sales_platform.definitions"
# Seconds a stopping Spark server gets before it is killed.
STOP_GRACE_SECONDS = 5
# Spark Connect's own: the server requires this token, and the client sends it.
CONNECT_TOKEN_VAR = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
# Set on the daemon started only to drain the run queue: definitions.py then leaves out the
# sensors and schedules, so it launches nothing of its own.
QUEUE_ONLY_VAR = "SALES_PLATFORM_QUEUE_ONLY"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# A daemon whose queue heartbeat is older than this is not draining the queue.
HEARTBEAT_FRESH_SECONDS = 60
LAUNCHED_BY_TAG = "sales_platform/launched_by"


class RunFailed(RuntimeError):
    """A launched run ended other than in success; the message is one line."""


def launch(instance: dg.DagsterInstance, job: str, tags: dict[str, str], workspace: Path) -> str:
    """Create and submit a run of `job` in the code location `workspace` names; returns its
    run id.

    What `dagster job launch --workspace` does, in this process: that command spent 3 of its
    3.9 s importing Dagster's CLI in a process of its own, for each run the command launches.
    """
    from dagster._cli.job import execute_launch_command
    from dagster_shared.cli import WorkspaceOpts

    run_id = str(uuid.uuid4())
    try:
        execute_launch_command(
            instance=instance,
            workspace_opts=WorkspaceOpts(workspace=[str(workspace)]),
            tags=json.dumps(tags),
            run_id=run_id,
            job_name=job,
        )
    except Exception as exc:  # noqa: BLE001 - whatever stops the launch fails the command
        raise RunFailed(f"could not launch {job}: {type(exc).__name__}: {exc}") from exc
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


def wait(
    instance: dg.DagsterInstance,
    run_id: str,
    timeout: float,
    check: Callable[[], None] | None = None,
) -> dg.DagsterRun:
    """Until the run has finished; raises RunFailed unless it succeeded. `check` raises when
    something the run needs has gone."""
    deadline = time.monotonic() + timeout
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED:
            break
        try:
            if check is not None:
                check()
        except RunFailed:
            _cancel(instance, run_id)
            raise
        if time.monotonic() > deadline:
            raise RunFailed(f"run {run_id} not finished after {timeout:.0f} s")
        time.sleep(1.0)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        message = _failure_message(instance, run_id)
        raise RunFailed(f"run {run_id} ({run.job_name}) {run.status.value.lower()}: {message}")
    return run


def _cancel(instance: dg.DagsterInstance, run_id: str) -> None:
    """Cancel a run the command gives up on, so it does not wait on what has gone."""
    try:
        instance.run_coordinator.cancel_run(run_id)
    except Exception:  # noqa: BLE001 - the command's own error is the one to report
        log.warning(f"could not cancel run {run_id}", exc_info=True)


def queue_is_drained(instance: dg.DagsterInstance) -> bool:
    """Whether a daemon is running on this instance (its run-queue heartbeat is recent)."""
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < HEARTBEAT_FRESH_SECONDS


@contextmanager
def queue_daemon(instance: dg.DagsterInstance, log_dir: Path, workspace: Path) -> Iterator[None]:
    """A daemon that drains the run queue while the block runs, unless one is running already,
    on the code location `workspace` names."""
    if queue_is_drained(instance):
        yield
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "queue-daemon.log").open("ab") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "--workspace", str(workspace)],
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


class _SharedSpark:
    """A Spark Connect server on loopback for one command's runs, with the settings an embedded
    run would give its own driver (storage/spark.py). Its JVM starts while the first run is
    launched; the run's session waits for it to listen (storage/spark.py, `await_server`).

    Only this command's processes can use it: the server takes a random token from its
    environment (never its command line, which any user can list) and Spark Connect's client
    sends the one in the runs' environment. That needs the name `localhost`: with a token
    and another host name the client insists on TLS.
    """

    def __init__(self, log_dir: Path, settings: SparkSettings):
        self.port = free_port()
        # Its scratch files (shuffle, spill, local checkpoints) in a folder of the command's,
        # removed when it stops: a server killed mid-shutdown cannot remove them itself.
        within = settings.conf.get("spark.local.dir", "").split(",")[0] or None
        if within:
            Path(within).mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="sales-platform-spark-", dir=within))
        conf = {**settings.conf, "spark.local.dir": str(self.scratch)}
        argv = connect_server_argv(port=self.port, master=settings.master, extra_conf=conf)
        self.log = log_dir / "spark-connect-server.log"
        token = {CONNECT_TOKEN_VAR: secrets.token_urlsafe(32)}
        self.process = start(argv, self.log, **token)
        self.env = {SPARK_REMOTE_VAR: f"sc://localhost:{self.port}", **token}
        log.info(f"started a Spark Connect server for the runs (pid {self.process.pid})")

    def close(self) -> None:
        # Its outputs are all committed by the runs. It usually stops within a second; one
        # that got SIGTERM while a run's session was closing once sat out the whole 30 s.
        stop(self.process, timeout=STOP_GRACE_SECONDS)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def check(self) -> None:
        # Without it a run would retry its Spark calls for ten minutes before failing.
        if self.process.poll() is not None:
            raise RunFailed(
                f"the runs' Spark Connect server exited with code {self.process.returncode} "
                f"(its log: {self.log})"
            )


class _CodeServer:
    """The code location, loaded once for the command: its launches and its daemon ask this
    server instead of each loading the definitions in a server of its own (`dagster job
    launch` took 8.6 s that way, 3.9 s against this one). The runs it starts inherit `env`.

    It listens on a Unix socket in a folder only this user can enter: a TCP port would let
    any local user launch code with the runs' credentials. Its location carries the module's
    name, as `--module-name` would name it, so the UI and `serve` file the runs under the
    location they load (workspace.yaml). Without sensors and schedules (QUEUE_ONLY_VAR): the
    command's daemon only drains the queue.
    """

    READY_SECONDS = 300

    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.folder = Path(tempfile.mkdtemp(prefix="sales-platform-code-"))
        self.socket = self.folder / "grpc.sock"
        self.workspace = self.folder / "workspace.yaml"
        server = {"socket": str(self.socket), "location_name": CODE_LOCATION_MODULE}
        self.workspace.write_text(json.dumps({"load_from": [{"grpc_server": server}]}))
        self.log = log_dir / "code-server.log"
        argv = [str(BIN / "dagster"), "api", "grpc", "--socket", str(self.socket)]
        argv += ["--module-name", CODE_LOCATION_MODULE, "--location-name", CODE_LOCATION_MODULE]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, **env, QUEUE_ONLY_VAR: "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._await_socket()
        except BaseException:
            self.close()
            raise

    def _await_socket(self) -> None:
        # The server binds its socket after it has loaded the definitions.
        deadline = time.monotonic() + self.READY_SECONDS
        while not self.socket.exists():
            self.check()
            if time.monotonic() > deadline:
                raise RunFailed(f"the code server did not start (its log: {self.log})")
            time.sleep(0.1)

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RunFailed(
                f"the code server exited with code {self.process.returncode} (its log: {self.log})"
            )

    def close(self) -> None:
        stop(self.process, timeout=STOP_GRACE_SECONDS)
        shutil.rmtree(self.folder, ignore_errors=True)


def _shares_spark(instance: dg.DagsterInstance, spark_per_run: bool) -> bool:
    """Whether the runs would each start an embedded driver under a daemon of this command's."""
    engine = SparkSettings.from_env().engine
    return not spark_per_run and engine == "embedded" and not queue_is_drained(instance)


def run_in_code_location(
    instance: dg.DagsterInstance,
    plan: list[tuple[str, dict[str, str]]],
    timeout: float,
    spark_per_run: bool = False,
) -> list[dg.DagsterRun]:
    """Launch each (job, tags) in turn, each after the previous one succeeded; with a daemon of
    this command's and the embedded engine, on one shared Spark unless `spark_per_run`."""
    runs = []
    # Not $DAGSTER_HOME/logs: Dagster moves that folder away (its telemetry queue).
    log_dir = Path(os.environ["DAGSTER_HOME"]) / "queue_daemon_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    shared = (
        _SharedSpark(log_dir, SparkSettings.from_env())
        if _shares_spark(instance, spark_per_run)
        else None
    )
    code = None
    try:
        code = _CodeServer(log_dir, shared.env if shared else {})
        with queue_daemon(instance, log_dir, code.workspace):
            for job, tags in plan:
                run_tags = {LAUNCHED_BY_TAG: "sales-platform", **tags}
                run_id = launch(instance, job, run_tags, code.workspace)
                print(f"launched {job} run {run_id}; waiting for it", flush=True)
                runs.append(wait(instance, run_id, timeout, _checks(code, shared)))
    finally:
        if code:
            code.close()
        if shared:
            shared.close()
    return runs


def _checks(*services) -> Callable[[], None]:
    def check() -> None:
        for service in services:
            if service is not None:
                service.check()

    return check


def add_spark_per_run_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spark-per-run",
        action="store_true",
        help="each run starts its own embedded Spark, as the daemon's runs do (default: the "
        "command's runs share one Spark Connect server it starts, when it starts the daemon)",
    )
