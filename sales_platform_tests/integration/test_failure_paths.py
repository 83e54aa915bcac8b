"""Every failure of `sales-platform materialize` ends, in a bounded time, as a non-zero exit whose
message names what failed: a wrong S3 endpoint, one that never answers, a missing bucket, a
database that refuses or never answers (caught before any run is launched, exit 2), and a step
that fails inside a launched run (the run ends FAILED, exit 1, the step's error named).

Each case runs the installed script in a subprocess, with a subprocess timeout and a pytest
timeout: a hang fails the test instead of the suite. The silent services are sockets that accept
connections and never say a word (a firewall that drops, a server that froze).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import URL

from sales_platform.cli import _resources
from sales_platform.faults import FAULT_VAR
from sales_platform.generate import generate
from sales_platform.preflight import SERVICE_TIMEOUT_SECONDS
from sales_platform.settings import Settings
from sales_platform_tests.conftest import new_bucket
from sales_platform_tests.support import stack_environ

pytestmark = pytest.mark.integration

SCRIPT = str(Path(sys.executable).parent / "sales-platform")
REPO = Path(__file__).resolve().parents[2]
DAY = date(2024, 6, 3)
# Two S3 attempts of a connect + a read each, or one database wait, plus the start of Python.
BOUND = 4 * SERVICE_TIMEOUT_SECONDS + 20


def materialize(env: dict[str, str], timeout: float = BOUND) -> tuple[int, str, float]:
    """`sales-platform materialize` of DAY: exit code, stderr, seconds."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SALES_PLATFORM_")}
    started = time.monotonic()
    done = subprocess.run(
        [SCRIPT, "materialize", "--from", str(DAY), "--to", str(DAY), "--timeout", "300"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def counting_silent_port():
    """A port that accepts connections, never answers, and counts them: (port, counts)."""
    accepted: list[socket.socket] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.5)
        stop = threading.Event()

        def accept():
            while not stop.is_set():
                try:
                    accepted.append(sock.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield sock.getsockname()[1], accepted
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()


@pytest.fixture
def closed_port():
    """A port nothing listens on (connections refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port


@pytest.fixture
def prod_env(tmp_path, s3_endpoint, mariadb_url):
    bucket = new_bucket(s3_endpoint)
    env = stack_environ("prod", tmp_path / "data", mariadb_url, bucket, s3_endpoint)
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    return env


def _assert_fails(env, code: int, *words: str) -> str:
    got, output, seconds = materialize(env)
    assert got == code, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("sales-platform: "), output[-3000:]
    for word in words:
        assert word in last, (word, last)
    assert seconds < BOUND, seconds
    print(f"\n{seconds:.1f}s: {last}")
    return last


@pytest.mark.timeout(BOUND + 30)
def test_an_s3_endpoint_that_refuses(prod_env, closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"
    bucket = prod_env["SALES_PLATFORM_S3_BUCKET"]
    prod_env["SALES_PLATFORM_S3_ENDPOINT_URL"] = endpoint
    _assert_fails(prod_env, 2, f"S3 bucket '{bucket}' at {endpoint}", "unreachable")


@pytest.mark.timeout(BOUND + 30)
def test_an_s3_endpoint_that_never_answers(prod_env, counting_silent_port):
    port, connections = counting_silent_port
    endpoint = f"http://127.0.0.1:{port}"
    prod_env["SALES_PLATFORM_S3_ENDPOINT_URL"] = endpoint
    _assert_fails(prod_env, 2, f"at {endpoint}: unreachable within {SERVICE_TIMEOUT_SECONDS}s")
    # Two attempts in all, as preflight documents (botocore's `max_attempts: 2` made three).
    assert len(connections) == 2, len(connections)


@pytest.mark.timeout(BOUND + 30)
def test_a_missing_bucket(prod_env):
    prod_env["SALES_PLATFORM_S3_BUCKET"] = "sp-test-no-such-bucket"
    _assert_fails(prod_env, 2, "S3 bucket 'sp-test-no-such-bucket'", "does not exist")


@pytest.mark.timeout(BOUND + 30)
def test_a_database_that_refuses(prod_env, closed_port):
    password = secrets.token_hex(8)
    url = URL.create("mysql+pymysql", "sales", password, "127.0.0.1", closed_port, "sales")
    prod_env["SALES_PLATFORM_WAREHOUSE_DB_URL"] = url.render_as_string(hide_password=False)
    last = _assert_fails(
        prod_env, 2, f"warehouse database mysql+pymysql://sales:***@127.0.0.1:{closed_port}/sales"
    )
    assert "Connection refused" in last and password not in last


@pytest.mark.timeout(BOUND + 30)
def test_a_database_that_never_answers(prod_env, silent_port):
    prod_env["SALES_PLATFORM_SOURCE_DB_URL"] = f"mysql+pymysql://root@127.0.0.1:{silent_port}/s"
    _assert_fails(
        prod_env,
        2,
        f"source database mysql+pymysql://root@127.0.0.1:{silent_port}/s",
        f"cannot connect within {SERVICE_TIMEOUT_SECONDS}s",
    )


def _instance_and_a_day(env: dict[str, str]) -> Path:
    """An instance configured as `make demo` configures it, and DAY generated on env's stack."""
    home = Path(env["DAGSTER_HOME"])
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with _resources(Settings.from_env(), "landing", "source_db") as res:
            generate(
                res.landing.open(),
                res.source_db.engine(),
                start_date=DAY,
                days=1,
                rows_per_day=50,
                seed=3,
                customers=20,
                progress=False,
            )
    return home


@pytest.mark.timeout(400)
def test_a_failed_step_fails_the_run_and_the_command_names_it(prod_env, connect_server):
    url, _ = connect_server
    prod_env["SALES_PLATFORM_SPARK_REMOTE"] = url
    _instance_and_a_day(prod_env)
    # The run's first step fails where it has listed the day's files.
    prod_env[FAULT_VAR] = "landing.listed:raise"
    got, output, seconds = materialize(prod_env, timeout=300)
    assert got == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert "(daily_sales_job) failure: " in last, output[-3000:]
    assert "InjectedFault: injected fault at landing.listed" in last, last
    print(f"\nfailed run reported in {seconds:.1f}s")


@pytest.mark.timeout(300)
def test_a_shared_spark_server_that_cannot_start_fails_the_command_and_cancels_its_run(tmp_path):
    """`materialize` starts one Spark Connect server for its runs (launch.py). One that dies
    before it listens would leave the run's session retrying for ten minutes: the command
    notices, cancels the run and names the server's log instead."""
    env = stack_environ("local", tmp_path / "data")
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    home = _instance_and_a_day(env)
    # The server's JVM refuses a heap size it cannot parse and exits at once.
    env["SALES_PLATFORM_SPARK_CONF"] = '{"spark.driver.memory": "not-a-size"}'
    got, output, seconds = materialize(env, timeout=240)
    assert got == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert "the runs' Spark Connect server exited with code" in last, output[-3000:]
    assert str(home / "queue_daemon_logs" / "spark-connect-server.log") in last, last
    assert seconds < 120, seconds
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            # Canceled while it waits for the server, or failed by Dagster when the cancel came
            # before its worker started: either way it ends, it does not wait ten minutes.
            deadline = time.monotonic() + 60
            while not (run := instance.get_runs()[0]).is_finished:
                assert time.monotonic() < deadline, run.status
                time.sleep(1)
            assert instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELING)
