"""Which Spark engine the settings name, and how it reaches the run's resources (no JVM here:
the engines themselves run in integration/test_spark_engines.py)."""

from __future__ import annotations

import socket
import threading
import time

import dagster as dg
import pytest

from sales_platform.defs.resources import build_resources
from sales_platform.settings import Settings, SparkSettings, parse_spark_conf
from sales_platform.spark_cli import CONNECT_SERVER_CLASS, connect_server_argv
from sales_platform.storage.spark import (
    BASE_SPARK_CONF,
    SparkResource,
    await_server,
    server_address,
    session_conf,
    spark_conf,
)

TOKEN = "dapi-not-a-real-token"  # pragma: allowlist secret
REMOTE = f"sc://spark.example.com:443/;use_ssl=true;token={TOKEN}"


def test_conf_as_json_or_key_value_list():
    assert parse_spark_conf('{"spark.executor.memory": "2g", "spark.executor.cores": 2}') == {
        "spark.executor.memory": "2g",
        "spark.executor.cores": "2",
    }
    # A comma inside a value (a package list, JVM options with '=') stays in that value.
    assert parse_spark_conf(
        "spark.jars.packages=org.apache.hadoop:hadoop-aws:3.4.1,com.x:y:1,"
        "spark.executor.extraJavaOptions=-Da=b,spark.executor.memory=2g"
    ) == {
        "spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.4.1,com.x:y:1",
        "spark.executor.extraJavaOptions": "-Da=b",
        "spark.executor.memory": "2g",
    }
    assert parse_spark_conf("spark.a=1,2\n spark.b = x \n\n") == {"spark.a": "1,2", "spark.b": "x"}
    assert parse_spark_conf("") == parse_spark_conf(None) == {}


@pytest.mark.parametrize(
    "text",
    ["executor.memory=2g", "spark.a", "spark.a=1\nhunter2", "[1, 2]", "{not json", '["spark.a"]'],
)
def test_conf_that_is_not_spark_settings_is_refused(text):
    with pytest.raises(ValueError) as info:
        parse_spark_conf(text)
    # A stray line may be a credential: never repeated in the error.
    assert "hunter2" not in str(info.value)


def test_engine_from_the_environment():
    assert SparkSettings.from_env({}).engine == "embedded"
    assert SparkSettings.from_env({}).master == "local[*]"
    cluster = SparkSettings.from_env({"SALES_PLATFORM_SPARK_MASTER": "spark://10.0.0.5:7077"})
    assert (cluster.engine, cluster.master) == ("cluster", "spark://10.0.0.5:7077")
    connect = SparkSettings.from_env({"SALES_PLATFORM_SPARK_REMOTE": "sc://127.0.0.1:15002"})
    assert (connect.engine, connect.remote) == ("connect", "sc://127.0.0.1:15002")
    with pytest.raises(ValueError, match="not both"):
        SparkSettings.from_env(
            {
                "SALES_PLATFORM_SPARK_REMOTE": "sc://127.0.0.1:15002",
                "SALES_PLATFORM_SPARK_MASTER": "spark://127.0.0.1:7077",
            }
        )
    with pytest.raises(ValueError, match="sc://"):
        SparkSettings.from_env({"SALES_PLATFORM_SPARK_REMOTE": "spark://127.0.0.1:7077"})
    with pytest.raises(ValueError, match="key=value"):
        Settings.from_env({"SALES_PLATFORM_SPARK_CONF": "spark.a"})


def _settings(monkeypatch, tmp_path, **environ: str) -> Settings:
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path))
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env()


def test_default_is_the_embedded_driver(monkeypatch, tmp_path):
    pyspark = build_resources(_settings(monkeypatch, tmp_path))["pyspark"]
    assert isinstance(pyspark, SparkResource)
    assert pyspark.remote is None
    assert pyspark.spark_config["spark.master"] == "local[*]"


def test_cluster_master_and_extra_settings_reach_the_driver(monkeypatch, tmp_path):
    settings = _settings(
        monkeypatch,
        tmp_path,
        SALES_PLATFORM_SPARK_MASTER="spark://127.0.0.1:7077",
        SALES_PLATFORM_SPARK_CONF="spark.executor.memory=3g",
    )
    resources = build_resources(settings)
    assert resources["pyspark"].spark_config["spark.master"] == "spark://127.0.0.1:7077"
    with dg.build_resources({"pyspark": resources["pyspark"]}) as res:
        assert res.pyspark.extra_conf == "spark.executor.memory=3g"


def test_connect_url_reaches_the_run_but_not_the_definitions(monkeypatch, tmp_path):
    settings = _settings(
        monkeypatch,
        tmp_path,
        SALES_PLATFORM_SPARK_REMOTE=REMOTE,
        SALES_PLATFORM_SPARK_SHARED_DIR=str(tmp_path / "shared"),
    )
    resources = build_resources(settings)
    # The URL may carry a token: the definitions hold the variable's name, not its value.
    assert TOKEN not in repr(resources["pyspark"])
    with dg.build_resources({"pyspark": resources["pyspark"]}) as res:
        assert res.pyspark.remote == REMOTE


@pytest.mark.parametrize(
    "engine",
    [
        {"SALES_PLATFORM_SPARK_REMOTE": REMOTE},
        {"SALES_PLATFORM_SPARK_MASTER": "yarn"},
        {"SALES_PLATFORM_SPARK_MASTER": "spark://10.0.0.5:7077"},
    ],
)
def test_remote_engine_with_s3_lake_needs_a_shared_staging_folder(monkeypatch, tmp_path, engine):
    prod = {"SALES_PLATFORM_ENV": "prod", "SALES_PLATFORM_S3_BUCKET": "sales", **engine}
    with pytest.raises(ValueError, match="SALES_PLATFORM_SPARK_SHARED_DIR") as info:
        build_resources(_settings(monkeypatch, tmp_path, **prod))
    assert TOKEN not in str(info.value)

    shared = tmp_path / "shared"
    settings = _settings(monkeypatch, tmp_path, SALES_PLATFORM_SPARK_SHARED_DIR=str(shared))
    assert build_resources(settings)["lake"].staging_dir == str(shared)


def test_loopback_engine_shares_this_hosts_folders(monkeypatch, tmp_path):
    settings = _settings(
        monkeypatch,
        tmp_path,
        SALES_PLATFORM_ENV="prod",
        SALES_PLATFORM_S3_BUCKET="sales",
        SALES_PLATFORM_SPARK_REMOTE="sc://127.0.0.1:15002",
    )
    assert build_resources(settings)["lake"].staging_dir is None


def test_connect_client_sets_only_session_settings():
    conf = session_conf({**BASE_SPARK_CONF, "spark.driver.memory": "4g"})
    assert conf and all(k.startswith("spark.sql.") for k in conf)
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_connect_server_on_loopback_with_the_platform_settings():
    argv = connect_server_argv(port=15999, extra_conf={"spark.executor.memory": "2g"})
    assert argv[1:3] == ["--class", CONNECT_SERVER_CLASS]
    assert argv[-1] == "spark-internal"
    conf = dict(a.split("=", 1) for a in argv[argv.index("--conf") + 1 :: 2])
    assert conf["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert conf["spark.connect.grpc.binding.port"] == "15999"
    assert conf["spark.executor.memory"] == "2g"
    for key, value in BASE_SPARK_CONF.items():
        assert conf[key] == value


def test_snapshots_travel_inline_through_connect_on_server_and_client():
    """Spark's default sends a DataFrame made from the run's memory larger than 1 MiB (20 000
    customers are 7.7 MB) as an artifact, an upload that failed on the platform's server: the
    platform raises the limit to just under the 128 MiB gRPC message limit, on the server
    `spark-server` starts and on every client session (a server it did not start included)."""
    key = "spark.sql.session.localRelationCacheThreshold"
    client = session_conf(spark_conf())
    assert 64 * 2**20 <= int(client[key]) < 128 * 2**20
    argv = connect_server_argv(port=15999)
    assert f"{key}={client[key]}" in argv
    # A user's own setting still wins (SALES_PLATFORM_SPARK_CONF is applied last).
    assert f"{key}=1024" in connect_server_argv(port=15999, extra_conf={key: "1024"})


def _counting_driver(monkeypatch, seconds: float) -> list[dict]:
    """Replace the driver start with one that takes `seconds` and records each call."""
    import threading
    import time

    from sales_platform.storage import spark

    starts: list[dict] = []

    def start(conf):
        starts.append({"thread": threading.current_thread().name})
        time.sleep(seconds)
        return object()

    monkeypatch.setattr(spark, "_driver_session", start)
    monkeypatch.setattr(spark, "WARM_START_IN_THIS_PROCESS", True)
    return starts


def test_a_run_starts_its_driver_in_the_background_once(monkeypatch):
    starts = _counting_driver(monkeypatch, 0.5)
    resource = SparkResource(spark_config=spark_conf())
    with dg.build_resources({"pyspark": resource}) as res:
        # The step asks while the background start is still running: it waits, no second start.
        session = res.pyspark.spark_session
        assert session is res.pyspark.spark_session
    assert starts == [{"thread": "spark-warm-start"}]


@pytest.mark.parametrize(
    "resource",
    [
        SparkResource(spark_config=spark_conf(), warm_start=False),
        SparkResource(spark_config=spark_conf(), remote="sc://127.0.0.1:15002"),
    ],
    ids=["warm-start-off", "connect"],
)
def test_no_background_start_when_off_or_on_spark_connect(monkeypatch, resource):
    starts = _counting_driver(monkeypatch, 0.0)
    with dg.build_resources({"pyspark": resource}):
        pass
    assert starts == []


def test_server_address_of_a_connect_url():
    assert server_address(REMOTE) == ("spark.example.com", 443)
    assert server_address("sc://127.0.0.1") == ("127.0.0.1", 15002)


def test_a_run_waits_for_a_server_that_is_still_starting():
    """The command's own server starts beside its first run (launch.py): the run's session
    opens as soon as the server listens, not at Connect's next backoff (up to a minute)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = socket.socket()

    def listen_later():
        time.sleep(1.0)
        server.bind(("127.0.0.1", port))
        server.listen()

    threading.Thread(target=listen_later).start()
    started = time.monotonic()
    try:
        await_server(f"sc://127.0.0.1:{port}", timeout=30)
        waited = time.monotonic() - started
    finally:
        server.close()
    assert 1.0 <= waited < 3.0


def test_a_server_that_never_listens_is_left_to_the_client_after_the_bound():
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        started = time.monotonic()
        await_server(f"sc://127.0.0.1:{closed_port}", timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 3.0
