"""Fixtures shared by the whole suite: one Spark session, the real MariaDB, a real S3 endpoint.

Spark starts once per test run (about 15 s here). MariaDB is the server on 127.0.0.1:3306; an
unreachable server fails the tests that need it. Skipping them instead is opt-in
(SALES_PLATFORM_ALLOW_SKIP_SERVICES=1), so a missing service is never mistaken for a green run.

The session-scoped data sets of `datasets.py` (one per stack, generated and run once) are
registered here as fixtures.
"""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest
import sqlalchemy as sa

MARIADB_ADMIN_URL = os.environ.get(
    "SALES_PLATFORM_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"
)


def _no_background_spark_here() -> None:
    """Runs executed inside this process share the session fixture below, started with the
    suite's settings; a run's background start (SparkResource.warm_start) must not race it.
    Runs in processes of their own (daemon, CLI, fault runs) keep it."""
    from sales_platform.storage import spark

    spark.WARM_START_IN_THIS_PROCESS = False


_no_background_spark_here()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from sales_platform.storage.spark import build_spark_session

    # Scratch (shuffle, spill, disk-cached blocks) under pytest's tmp, where the security tests
    # can scan it.
    scratch = tmp_path_factory.mktemp("spark-scratch")
    session = build_spark_session(
        master="local[2]",
        shuffle_partitions=2,
        ui_enabled=False,
        extra_conf={"spark.local.dir": str(scratch)},
    )
    yield session
    session.stop()


def _mariadb_engine() -> sa.Engine:
    engine = sa.create_engine(MARIADB_ADMIN_URL, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported as failure, or skip when opted in
        missing_service(f"MariaDB unreachable at {MARIADB_ADMIN_URL}: {exc}")
    return engine


def missing_service(message: str) -> None:
    """Fail: a test that cannot reach its service has not passed. Skip only when opted in."""
    if os.environ.get("SALES_PLATFORM_ALLOW_SKIP_SERVICES") == "1":
        pytest.skip(message)
    pytest.fail(message)


@contextlib.contextmanager
def mariadb_database():
    """A fresh, empty database on the real MariaDB server (its URL); dropped afterwards."""
    admin = _mariadb_engine()
    name = f"sp_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{MARIADB_ADMIN_URL}/{name}?charset=utf8mb4"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def mariadb_url():
    """A fresh, empty database on the real MariaDB server; dropped afterwards."""
    with mariadb_database() as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server: a real HTTP endpoint on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def new_bucket(s3_endpoint: str) -> str:
    """A fresh bucket on the moto endpoint (its name)."""
    import boto3

    name = f"sp-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto endpoint."""
    return new_bucket(s3_endpoint)


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory):
    """`sales-platform spark-server`, as an operator runs it (smaller), started once: its URL
    (`sc://...`) and its log. Runs that use it are thin clients and pay no JVM start."""
    import sys
    from pathlib import Path

    from sales_platform.spark_cli import LOOPBACK, free_port, start, stop, wait_for_port

    folder = tmp_path_factory.mktemp("connect-server")
    port, log = free_port(), folder / "server.log"
    process = start(
        [str(Path(sys.executable).parent / "sales-platform"), "spark-server"]
        + ["--port", str(port), "--driver-memory", "1g"],
        log,
        SALES_PLATFORM_SPARK_MASTER="local[2]",
        SALES_PLATFORM_SPARK_CONF=f"spark.local.dir={folder / 'scratch'}",
    )
    try:
        wait_for_port(port, process, 120, "Spark Connect server")  # bounded: never hang CI
        yield f"sc://{LOOPBACK}:{port}", log
    finally:
        stop(process)


@pytest.fixture(scope="session")
def local_dataset(spark, tmp_path_factory):
    """The shared month- and year-crossing data set on the local stack, run once (datasets.py)."""
    from sales_platform_tests.datasets import build_dataset

    with build_dataset("local", tmp_path_factory.mktemp("dataset-local")) as dataset:
        yield dataset


@pytest.fixture(scope="session")
def prod_dataset(spark, s3_endpoint, tmp_path_factory):
    """The shared data set on the production stack (moto S3 + MariaDB), run once."""
    from sales_platform_tests.datasets import build_dataset

    with (
        mariadb_database() as db_url,
        build_dataset(
            "prod",
            tmp_path_factory.mktemp("dataset-prod"),
            db_url=db_url,
            bucket=new_bucket(s3_endpoint),
            s3_endpoint=s3_endpoint,
        ) as dataset,
    ):
        yield dataset


@pytest.fixture(params=["local", "prod"])
def dataset(request):
    """Each stack's shared data set in turn."""
    return request.getfixturevalue(f"{request.param}_dataset")


# Tests that share an expensive session fixture run on one worker, so it is made once.
SHARED_FIXTURE_GROUPS = {
    "local_dataset": "datasets",
    "prod_dataset": "datasets",
    "dataset": "datasets",
    "connect_server": "connect_server",
}
# The longest groups start first, so the workers finish together: every group of more than
# about 20 s, longest first (seconds of one worker, `-n 2`, measured with --durations=0 on
# 2026-12-08, a fast day of this host: 22.5 min in all, 20 min with `-n 3`; a slow day takes
# twice as long). The groups of a few seconds follow, as collected. A group missing here
# starts after all of these, so a new long module belongs in this list.
LONGEST_FIRST = [
    "connect_server",  # ~490 s: the kill chain (~210 s) and the two-writer tests
    "test_unattended",  # ~460 s: the daemon scenario alone is about seven minutes
    "test_landing_isolation",  # ~290 s
    "test_landing",  # ~225 s
    "test_spark_engines",  # ~145 s: a standalone cluster
    "test_transient_faults",  # ~120 s
    "datasets",  # ~105 s
    "test_ui",  # ~95 s
    "test_cli_commands",  # ~90 s
    "test_automation",  # ~80 s
    "test_automation_concurrency",  # ~70 s
    "test_failure_paths",  # ~70 s
    "test_security_pipeline",  # ~60 s
    "test_iceberg_lake",  # ~30 s
    "test_dimension_snapshots",  # ~25 s
    "test_blocking_checks",  # ~25 s
    "test_month_completeness",  # ~25 s
]


def pytest_configure(config):
    # pytest-xdist (3.6 on) hands out the groups of `--dist loadgroup` in order of their number
    # of tests, most first, unless told not to: the Connect server's six tests (seven minutes)
    # and the daemon's three (five and a half) would start after groups of many short tests,
    # leaving one worker a long tail. The collection order (LONGEST_FIRST) is kept instead.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Every test under integration/ carries the marker, so `-m "not integration"` is fast.

    Under pytest-xdist (`make test` runs `-n 3 --dist loadgroup`) a worker takes a whole group:
    the tests that read a shared data set (or the Connect server) form one group, so it is made
    once; every other integration module is a group of its own, so its module fixtures are set
    up once."""
    for item in items:
        shared = [SHARED_FIXTURE_GROUPS[f] for f in item.fixturenames if f in SHARED_FIXTURE_GROUPS]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
        elif "integration" in item.path.parent.parts[-1:]:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))

    def rank(item) -> int:
        group = item.get_closest_marker("xdist_group")
        name = group.args[0] if group else None
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
    unmarked = [
        item.nodeid
        for item in items
        if "integration" in item.path.parent.parts[-1:]
        and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"integration tests without the integration marker: {unmarked}")
