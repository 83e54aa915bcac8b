"""`sales-platform spark-server`: a warm Spark Connect server from the installed pyspark.

For a host that runs the daemon all day: each run then opens a session on the server in well
under a second instead of starting its own JVM (README, Spark engines). Runs use it with
SALES_PLATFORM_SPARK_REMOTE=sc://127.0.0.1:<port>. The launch helpers here are shared by the
engine tests and benchmarks/spark_engines.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sales_platform.settings import DEFAULT_CONNECT_PORT as DEFAULT_PORT
from sales_platform.settings import Settings

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
LOOPBACK = "127.0.0.1"


def spark_home() -> Path:
    """The pyspark package folder: its bin/ and jars/ are a complete Spark distribution."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_env(**extra: str) -> dict[str, str]:
    """The environment for Spark's launch scripts: this pyspark, and Python workers (mapInArrow,
    transforms/pii.py) on this interpreter, where sales_platform is importable."""
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "PYSPARK_PYTHON": sys.executable,
        **extra,
    }


def connect_server_argv(
    port: int = DEFAULT_PORT,
    master: str = "local[*]",
    driver_memory: str = "4g",
    shuffle_partitions: int = 4,
    extra_conf: dict[str, str] | None = None,
) -> list[str]:
    """spark-submit arguments for a Connect server bound to loopback with the platform's Spark
    settings (the server owns the JVM ones: memory, GC, I/O encryption)."""
    from sales_platform.storage.spark import spark_conf

    conf = {
        **spark_conf(
            master=master, shuffle_partitions=shuffle_partitions, driver_memory=driver_memory
        ),
        "spark.app.name": "sales_platform_connect",
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.connect.grpc.binding.address": LOOPBACK,
        "spark.connect.grpc.binding.port": str(port),
        **(extra_conf or {}),
    }
    argv = [str(spark_home() / "bin" / "spark-submit"), "--class", CONNECT_SERVER_CLASS]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, "spark-internal"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Return once something listens on loopback:port; fail if the process ends or time runs
    out, so a broken launch never hangs a test or a service start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not listening on {LOOPBACK}:{port} after {timeout:.0f}s")


def start(argv: list[str], log: Path, **env: str) -> subprocess.Popen:
    """Start a Spark process in its own process group (its JVM is a child of the launch script),
    output to log."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=spark_env(**env),
            start_new_session=True,
        )


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop the process group: SIGTERM (Spark shuts down cleanly), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


def _spark_server(args: argparse.Namespace) -> None:
    settings = Settings.from_env().spark
    if settings.remote:
        raise SystemExit("SALES_PLATFORM_SPARK_REMOTE is set: this process would be a client")
    argv = connect_server_argv(
        port=args.port,
        master=settings.master,
        driver_memory=args.driver_memory,
        extra_conf=settings.conf,
    )
    print(f"Spark Connect server on sc://{LOOPBACK}:{args.port} (master {settings.master})")
    print(f"runs use it with SALES_PLATFORM_SPARK_REMOTE=sc://{LOOPBACK}:{args.port}", flush=True)
    # exec: the service manager (or Ctrl-C) signals Spark itself.
    os.execve(argv[0], argv, spark_env())


def add_spark_commands(sub) -> None:
    server = sub.add_parser(
        "spark-server", help="run a Spark Connect server on loopback for the runs to share"
    )
    server.add_argument("--port", type=int, default=DEFAULT_PORT)
    server.add_argument("--driver-memory", default="4g", help="the server's JVM heap")
    server.set_defaults(func=_spark_server)
