"""The Spark session of a run, started lazily, configured for this workload, on one of three
engines (README, Spark engines):

- embedded (default): a `local[*]` driver inside the run process;
- a cluster master (`SALES_PLATFORM_SPARK_MASTER`, e.g. spark://host:7077): the run is the
  driver, the executors run elsewhere;
- Spark Connect (`SALES_PLATFORM_SPARK_REMOTE`, sc://host:port): the run is a thin client of a
  warm Spark server (`sales-platform spark-server`, Databricks, a pod), no JVM in the run.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from urllib.parse import urlparse

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

from sales_platform.settings import DEFAULT_CONNECT_PORT, parse_spark_conf

# Why each setting: UTC so month boundaries are the same everywhere; ParallelGC measured ~19 %
# faster than G1 on a 1 GB day here. ANSI mode stays on (Spark 4's default): an unexpected bad
# cast fails the run, and validation parses untrusted text with try_cast on purpose.
# Landing files are split for reading at exact multiples of this size, one split per task:
# with the open cost equal to the split size Spark never packs two splits into one task. The
# landing reader relies on it to number each line of a file (storage/landing.py).
FILE_SPLIT_BYTES = 128 * 1024 * 1024
LOCAL_RELATION_INLINE_BYTES = 100 * 1024 * 1024

BASE_SPARK_CONF: dict[str, str] = {
    "spark.sql.files.maxPartitionBytes": str(FILE_SPLIT_BYTES),
    "spark.sql.files.openCostInBytes": str(FILE_SPLIT_BYTES),
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC -Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-XX:+UseParallelGC -Duser.timezone=UTC",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    # Progress bars interleave with Dagster's log lines; the UI shows progress instead.
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Shuffle and spill files (and blocks cached to disk, such as the customer mart's shuffle
    # of the decrypted customers) are encrypted with a per-application key that never leaves the
    # JVM, so no plaintext PII reaches local disk (SECURITY.md).
    "spark.io.encryption.enabled": "true",
    # Through Spark Connect, a DataFrame made from the run's memory (the dimension snapshots,
    # encrypted in the run so the key never leaves it) travels inside the query plan below this
    # size, above it as a cached artifact; a server with I/O encryption on (above) fails to read
    # that artifact back ("Not enough bytes in channel"; 20 000 customers are 7.7 MB, Spark's
    # default is 1 MiB). Just under the 128 MiB gRPC message limit of client and server: every
    # snapshot that fits a message goes inline. Set on the server `spark-server` starts and on
    # each client session.
    "spark.sql.session.localRelationCacheThreshold": str(LOCAL_RELATION_INLINE_BYTES),
}


def spark_conf(
    master: str = "local[*]",
    shuffle_partitions: int = 4,
    driver_memory: str = "4g",
    ui_enabled: bool = False,
) -> dict[str, str]:
    local = {}
    if master.startswith("local"):
        # One host: bind to loopback instead of guessing an interface.
        local = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
        # Python workers (mapInArrow in transforms/pii.py) must run this interpreter and its
        # packages; PySpark otherwise starts whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return {
        **BASE_SPARK_CONF,
        **local,
        "spark.master": master,
        "spark.app.name": "sales_platform",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.driver.memory": driver_memory,
        "spark.ui.enabled": str(ui_enabled).lower(),
    }


def session_conf(conf: dict[str, str]) -> dict[str, str]:
    """The settings a Spark Connect client can set on its own session: the SQL ones. The rest
    (memory, JVM options, I/O encryption) belong to the server, set when it starts."""
    return {k: v for k, v in conf.items() if k.startswith("spark.sql.")}


def _driver_session(conf: dict[str, str]) -> SparkSession:
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def build_spark_session(extra_conf: dict[str, str] | None = None, **kwargs) -> SparkSession:
    return _driver_session({**spark_conf(**kwargs), **(extra_conf or {})})


# How long a run waits for a Connect server that does not listen yet before it asks anyway.
SERVER_WAIT_SECONDS = 180


def server_address(remote: str) -> tuple[str, int]:
    """(host, port) of a Spark Connect URL, sc://host[:port][/;param=value...]."""
    url = urlparse("http" + remote.removeprefix("sc"))
    return url.hostname or "", url.port or DEFAULT_CONNECT_PORT


def await_server(remote: str, timeout: float = SERVER_WAIT_SECONDS) -> None:
    """Return once the Connect server at `remote` accepts connections, or after `timeout`.

    A server may still be starting: `materialize` launches its first run while its own server's
    JVM starts (launch.py). Polling notices it within a quarter of a second; Connect's client
    instead retries with a backoff that quadruples up to a minute between tries. A server that
    never listens is left to the client's own retries and error.
    """
    address = server_address(remote)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=1).close()
            return
        except OSError:
            time.sleep(0.25)


def connect_session(remote: str, conf: dict[str, str]):
    """The process's Spark Connect session, opened on first use: every resource of a run (the
    assets' and the IO managers') must use the same one, as DataFrames of two sessions cannot
    be joined. Its temp views, cache and checkpoints live on the server until it is stopped."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    # pyspark.sql.functions and friends build Connect expressions only in this mode, which is
    # process-wide: it is what SparkSession.builder.remote(...).getOrCreate() sets too. So a
    # process is either a Connect client or a driver, never both.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    await_server(remote)
    builder = ConnectSession.builder.remote(remote)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# Off in a process that runs Dagster in-process beside a Spark session of its own making (the
# test suite's, started with its own settings): a background start could race it to create the
# process's one SparkContext. Runs in their own process (run workers) always warm-start.
WARM_START_IN_THIS_PROCESS = True


class SparkResource(LazyPySparkResource):
    """The run's Spark session, started when a step first asks for it: an embedded or cluster
    driver from `spark_config` (as dagster-pyspark's lazy resource), or, with `remote`, a Spark
    Connect session on a running server. Steps use `.spark_session` either way."""

    remote: str | None = Field(
        default=None, description="Spark Connect URL (sc://host:port); unset: a driver here"
    )
    extra_conf: str | None = Field(
        default=None, description="more Spark settings (JSON or key=value list), applied last"
    )
    warm_start: bool = Field(
        default=True,
        description="start an embedded or cluster driver in the background as soon as a run "
        "that uses Spark starts, instead of at the first step that asks for it",
    )

    _starting = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A driver takes 6-10 s to start here, mostly a JVM on its own core: started now, it
        # overlaps the run's Python-only work (process and step setup, unchanged dimension
        # snapshots, listing and hashing the landing files) instead of following it. A Connect
        # session opens in well under a second: it stays lazy.
        if self.warm_start and not self.remote and WARM_START_IN_THIS_PROCESS:
            threading.Thread(target=self._warm, name="spark-warm-start", daemon=True).start()

    def _warm(self) -> None:
        try:
            self._init_session()
        except Exception:  # noqa: BLE001 - the step that needs Spark starts it again and fails
            dg.get_dagster_logger().warning("Spark did not start in the background", exc_info=True)

    def _init_session(self) -> None:
        # One start at a time: a step that asks while the background start runs waits for it.
        with self._starting:
            session = self._spark_session
            # A Connect session stopped when a run ended is not reused by the next run.
            if session is not None and not getattr(session, "is_stopped", False):
                return
            extra = parse_spark_conf(self.extra_conf)
            log = dg.get_dagster_logger()
            if self.remote:
                conf = {**session_conf(self.spark_config), **extra}
                self._spark_session = connect_session(self.remote, conf)
                # The host and port only: the rest of the URL may hold a token.
                host, port = server_address(self.remote)
                log.info(f"Spark: a Spark Connect session on {host}:{port}")
            else:
                conf = {**self.spark_config, **extra}
                self._spark_session = _driver_session(conf)
                log.info(f"Spark: a driver in this process, master {conf['spark.master']}")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # A Connect session lives on the server: release it (and what the run cached or
        # checkpointed there) now, not after the server's idle timeout; an open one also keeps
        # the client process from exiting. An embedded session dies with its process.
        if self.remote and self._spark_session is not None:
            self._spark_session.stop()


def spark_resource(
    master: str = "local[*]",
    shuffle_partitions: int = 4,
    driver_memory: str = "4g",
    remote: str | dg.EnvVar | None = None,
    extra_conf: str | dg.EnvVar | None = None,
) -> SparkResource:
    """Lazy: a JVM (or a Connect session) starts only when a step first asks for Spark."""
    return SparkResource(
        spark_config=spark_conf(
            master=master, shuffle_partitions=shuffle_partitions, driver_memory=driver_memory
        ),
        remote=remote,
        extra_conf=extra_conf,
    )
