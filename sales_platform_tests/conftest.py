"""Fixtures shared by the whole suite: one Spark session, the real MariaDB, a real S3 endpoint.

Spark starts once per test run (about 15 s here). MariaDB is the server on 127.0.0.1:3306; in CI
an unreachable server fails the run instead of skipping (SALES_PLATFORM_REQUIRE_MARIADB=1).
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

MARIADB_ADMIN_URL = os.environ.get(
    "SALES_PLATFORM_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"
)


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
    except Exception as exc:  # noqa: BLE001 - reported as skip or failure below
        if os.environ.get("SALES_PLATFORM_REQUIRE_MARIADB") == "1" or os.environ.get("CI"):
            pytest.fail(f"MariaDB unreachable at {MARIADB_ADMIN_URL}: {exc}")
        pytest.skip(f"MariaDB unreachable at {MARIADB_ADMIN_URL}: {exc}")
    return engine


@pytest.fixture
def mariadb_url():
    """A fresh, empty database on the real MariaDB server; dropped afterwards."""
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


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto endpoint."""
    import boto3

    name = f"sp-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name
