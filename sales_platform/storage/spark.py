"""The Spark session: one per run process, started lazily, configured for this workload."""

from __future__ import annotations

import os
import sys

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

# Why each setting: UTC so month boundaries are the same everywhere; ParallelGC measured ~19 %
# faster than G1 on a 1 GB day here. ANSI mode stays on (Spark 4's default): an unexpected bad
# cast fails the run, and validation parses untrusted text with try_cast on purpose.
# Landing files are split for reading at exact multiples of this size, one split per task:
# with the open cost equal to the split size Spark never packs two splits into one task. The
# landing reader relies on it to number each line of a file (storage/landing.py).
FILE_SPLIT_BYTES = 128 * 1024 * 1024

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
    # Shuffle and spill files (and blocks cached to disk, such as the decrypted customers the
    # customer mart checkpoints) are encrypted with a per-application key that never leaves the
    # JVM, so no plaintext PII reaches local disk (SECURITY.md).
    "spark.io.encryption.enabled": "true",
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


def build_spark_session(extra_conf: dict[str, str] | None = None, **kwargs) -> SparkSession:
    builder = SparkSession.builder
    for key, value in {**spark_conf(**kwargs), **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def spark_resource(
    master: str = "local[*]", shuffle_partitions: int = 4, driver_memory: str = "4g"
) -> dg.ConfigurableResource:
    """dagster-pyspark's lazy resource: the JVM starts only when a step first asks for Spark."""
    return LazyPySparkResource(
        spark_config=spark_conf(
            master=master, shuffle_partitions=shuffle_partitions, driver_memory=driver_memory
        )
    )
