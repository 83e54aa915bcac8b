"""Benchmark: one day's run on the embedded Spark engine vs against a warm Spark Connect server.

    .venv/bin/python benchmarks/spark_engines.py                         # small day: fixed cost
    .venv/bin/python benchmarks/spark_engines.py --rows-per-day 8000000 --customers 20000 \
        --repeats 1

Generates one day on the local stack in a temporary directory, starts a Spark Connect server as
`sales-platform spark-server` does (local[*], the platform's settings) and warms it with one
small run.
Then, alternating the arms, each repeat runs `sales-platform materialize --from D --to D` in a
fresh process on a fresh copy of the data: embedded (the run starts its own JVM) and Connect
(SALES_PLATFORM_SPARK_REMOTE, the run is a client). Prints each wall time and the medians. The
machine's other load is not controlled.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from local_stack import fresh_copy, generate_local

from sales_platform.spark_cli import (
    LOOPBACK,
    connect_server_argv,
    free_port,
    start,
    stop,
    wait_for_port,
)

DAY = date(2023, 3, 1)
SALES_PLATFORM = Path(sys.executable).parent / "sales-platform"


def _run(data_dir: Path, env: dict[str, str], log: Path) -> float:
    day = DAY.isoformat()
    started = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(
            [str(SALES_PLATFORM), "materialize", "--from", day, "--to", day],
            env={**os.environ, "SALES_PLATFORM_DATA_DIR": str(data_dir), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise RuntimeError(f"run failed:\n{log.read_text(errors='replace')[-6000:]}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows-per-day", type=int, default=5_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arms", default="embedded,connect", help="which arms, in this order")
    parser.add_argument("--driver-memory", default="4g", help="the Connect server's heap")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        root = Path(tmp)
        rows, size = generate_local(root / "gen", DAY, 1, args.rows_per_day, 7, args.customers)
        print(f"one day: {rows} rows, {size / 1e6:.1f} MB")
        port = free_port()
        argv = connect_server_argv(port=port, driver_memory=args.driver_memory)
        server = start(argv, root / "server.log")
        try:
            started = time.perf_counter()
            wait_for_port(port, server, 180, "Spark Connect server")
            print(f"Connect server listening after {time.perf_counter() - started:.1f}s")
            arms = {
                "embedded": {},
                "connect": {"SALES_PLATFORM_SPARK_REMOTE": f"sc://{LOOPBACK}:{port}"},
            }
            # Warm-up: the server's first run (class loading, JIT) on a small day of its own.
            generate_local(root / "warm", DAY, 1, 5_000, 8)
            warm = _run(root / "warm", arms["connect"], root / "w.log")
            print(f"warm-up run on the server (5000 rows): {warm:.1f}s")
            times: dict[str, list[float]] = {arm: [] for arm in args.arms.split(",")}
            for i in range(args.repeats):
                for arm, env in ((a, arms[a]) for a in args.arms.split(",")):
                    data = fresh_copy(root / "gen", root / f"{arm}-{i}")
                    seconds = _run(data, env, root / f"{arm}-{i}.log")
                    times[arm].append(seconds)
                    print(f"{arm} run {i + 1}: {seconds:.1f}s", flush=True)
        finally:
            stop(server)
        for arm, values in times.items():
            print(f"{arm}: median {statistics.median(values):.1f}s of {len(values)}")
        if len(times) == 2:
            e, c = (statistics.median(times[a]) for a in ("embedded", "connect"))
            print(f"connect saves {e - c:.1f}s per run ({e / c:.2f}x)")


if __name__ == "__main__":
    main()
