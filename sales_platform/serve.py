"""`sales-platform serve`: the Dagster webserver and daemon of this deployment, as one service.

Process model (README, "Deploy and operate"): this supervisor starts two children on the
instance in $DAGSTER_HOME and does no work itself.
- dagster-webserver: the UI and its GraphQL API. Runs and backfills it is asked for go into the
  instance's queue.
- dagster-daemon: sensors, schedules, the run queue, backfills, run monitoring and retries.
Each loads the code location (`sales_platform.definitions`) in a code server subprocess of its
own; runs execute in subprocesses of the daemon's code server, one Spark driver each.

If either child exits, the other is stopped and serve exits non-zero, so a service manager
restarts the pair. SIGINT or SIGTERM stops both: SIGTERM to each (they stop their code servers),
then, after the grace period, SIGTERM and SIGKILL to whatever is left in their process groups.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from sales_platform.log_config import JsonFormatter, get_logger
from sales_platform.settings import Settings

log = get_logger("sales_platform.serve")

CODE_LOCATION_MODULE = "sales_platform.definitions"
# After the leaders exit: how long code servers or an interrupted run get to finish on SIGTERM.
GROUP_GRACE_SECONDS = 10.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    @property
    def group(self) -> int:
        # Started with start_new_session: the child's pid is its process group id.
        return self.process.pid


def instance_config(dagster_home: str | None, env: str) -> Path:
    """The instance's dagster.yaml; refuses a missing one, and SQLite storage in prod."""
    if not dagster_home:
        raise SystemExit(
            "serve: DAGSTER_HOME is not set; point it at the folder holding dagster.yaml "
            "(deploy/dagster.prod.yaml in prod, `make up` sets up a local one)"
        )
    config = Path(dagster_home) / "dagster.yaml"
    if not config.is_file():
        raise SystemExit(f"serve: {config} does not exist (prod: run deploy/migrate.sh first)")
    storage = (yaml.safe_load(config.read_text()) or {}).get("storage") or {}
    if env == "prod" and not ({"mysql", "postgres"} & set(storage)):
        # SQLite storage cannot take a daemon and a webserver writing at once on a real load.
        raise SystemExit(
            f"serve: SALES_PLATFORM_ENV=prod needs MySQL instance storage; {config} has none "
            "(install deploy/dagster.prod.yaml)"
        )
    return config


def commands(
    host: str, port: int, module: str, log_level: str, log_format: str
) -> dict[str, list[str]]:
    target = ["--module-name", module]
    return {
        "dagster-webserver": [
            sys.executable,
            "-m",
            "dagster_webserver",
            "--host",
            host,
            "--port",
            str(port),
            "--dagster-log-level",
            log_level,
            "--log-format",
            log_format,
            *target,
        ],
        # The `dagster-daemon` console script installed beside this interpreter (public CLI).
        "dagster-daemon": [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "--log-level",
            log_level,
            "--log-format",
            log_format,
            *target,
        ],
    }


def _signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.group, signum)


def _group_alive(child: Child) -> bool:
    try:
        os.killpg(child.group, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_groups(children: list[Child], seconds: float) -> list[Child]:
    """The children whose process group still has members after waiting up to `seconds`."""
    deadline = time.monotonic() + seconds
    leftover = [c for c in children if _group_alive(c)]
    while leftover and time.monotonic() < deadline:
        time.sleep(0.2)
        leftover = [c for c in leftover if _group_alive(c)]
    return leftover


def shutdown(children: list[Child], timeout: float) -> None:
    for child in children:
        if child.process.poll() is None:
            log.info("stopping %s (pid %d)", child.name, child.process.pid)
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s", child.name, timeout)
    # Left in a group now: code servers still shutting down, a run interrupted mid-way (on
    # SIGTERM it records itself as failed), or a leader that hung. A moment to drain, then
    # SIGTERM, then SIGKILL.
    leftover = _wait_groups(children, GROUP_GRACE_SECONDS / 2)
    for child in leftover:
        log.warning("terminating what is left of %s's process group", child.name)
        _signal_group(child, signal.SIGTERM)
    for child in _wait_groups(leftover, GROUP_GRACE_SECONDS):
        log.warning("killing what is left of %s's process group", child.name)
        _signal_group(child, signal.SIGKILL)
    for child in children:
        child.process.wait()


def serve(
    host: str,
    port: int,
    module: str = CODE_LOCATION_MODULE,
    log_level: str = "info",
    log_format: str = "colored",
    stop_timeout: float = 60.0,
) -> int:
    """Run the webserver and the daemon until a signal (returns 0) or a child exits (1)."""
    settings = Settings.from_env()  # a bad environment fails here, before anything starts
    config = instance_config(os.environ.get("DAGSTER_HOME"), settings.env)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    try:
        for name, command in commands(host, port, module, log_level, log_format).items():
            # Own session: a terminal's Ctrl-C reaches only serve, which stops the children in
            # order; and each child's code servers and runs can be found by its group.
            process = subprocess.Popen(command, start_new_session=True)
            children.append(Child(name, process))
            log.info("started %s (pid %d)", name, process.pid)
        log.info(
            "environment %s, instance %s, UI on http://%s:%d", settings.env, config, host, port
        )
        while not stop.wait(1.0):
            exited = [c for c in children if c.process.poll() is not None]
            if exited:
                for child in exited:
                    log.error("%s exited with code %s", child.name, child.process.returncode)
                return 1
        log.info("signal %s received", signal.Signals(received[0]).name)
        return 0
    finally:
        shutdown(children, stop_timeout)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("stopped")


def _serve(args: argparse.Namespace) -> None:
    if not logging.getLogger().handlers:
        # Same format as the children's, so a log shipper reads one stream.
        handler = logging.StreamHandler()
        handler.setFormatter(
            JsonFormatter()
            if args.log_format == "json"
            else logging.Formatter("%(asctime)s serve: %(message)s")
        )
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    code = serve(
        args.host, args.port, args.module, args.log_level, args.log_format, args.stop_timeout
    )
    if code:
        raise SystemExit(code)


def add_serve_command(subparsers) -> None:
    """Register `serve` on the CLI's subparsers."""
    serve_cmd = subparsers.add_parser(
        "serve", help="run the Dagster webserver and daemon on $DAGSTER_HOME's instance"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=3000, help="default 3000")
    serve_cmd.add_argument("--module", default=CODE_LOCATION_MODULE, help=argparse.SUPPRESS)
    serve_cmd.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve_cmd.add_argument(
        "--log-format",
        default="colored",
        choices=["colored", "json", "rich"],
        help="json for log shipping",
    )
    serve_cmd.add_argument(
        "--stop-timeout",
        type=float,
        default=60.0,
        help="seconds the webserver and daemon get to stop before they are killed",
    )
    serve_cmd.set_defaults(func=_serve)
