"""Benchmark: a day's run on the embedded Spark engine vs against a warm Spark Connect server.

    .venv/bin/python benchmarks/spark_engines.py                   # small day + 8,000,000 rows
    BENCH_ROWS=200000 .venv/bin/python benchmarks/spark_engines.py # a quick check of the script
    .venv/bin/python benchmarks/spark_engines.py --rows-per-day 0  # the small day only
    .venv/bin/python benchmarks/spark_engines.py --repeats 0       # the big day only

Two figures (issue 14, item 5), each from `sales-platform materialize --from D --to D` in a
fresh process on a fresh copy of the same generated day (local stack, as end_to_end.py runs it):

- the fixed cost of a run: a small day (5 000 rows), `--repeats` times per engine, the arms
  alternating; the medians;
- a big day (`--rows-per-day`, BENCH_ROWS, default 8 M rows with 20 000 customers), once per
  engine.

The Connect server is started as `sales-platform spark-server` starts it (local[*], the
platform's settings, `--driver-memory` heap as the embedded driver's) and warmed with one small
run before any timing. Embedded: the run starts its own JVM; Connect: the run is a client
(SALES_PLATFORM_SPARK_REMOTE). Peak memory is not compared: the server's JVM is not in the run's
process tree. Measure on an idle machine (`uptime` load under 0.5). The last line:

    spark_engines small_rows=N small_embedded_s=S small_connect_s=S rows=N mb=MB
    embedded_s=S connect_s=S
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from end_to_end import DAY, run_platform
from local_stack import fresh_copy, generate_local

from sales_platform.settings import SPARK_MASTER_VAR, SPARK_REMOTE_VAR
from sales_platform.spark_cli import (
    LOOPBACK,
    connect_server_argv,
    free_port,
    start,
    stop,
    wait_for_port,
)

ARMS = ("embedded", "connect")


class Bench:
    """Runs of one generated day on each engine, each on its own fresh copy of the data."""

    def __init__(self, root: Path, engines: dict[str, dict[str, str]]):
        self.root, self.engines, self.runs = root, engines, 0

    def run(self, data: Path, arm: str) -> float:
        self.runs += 1
        work = self.root / f"run-{self.runs}"
        try:
            copy = fresh_copy(data, work / "data")
            # The embedded arm is a driver in each run: `materialize` would otherwise share a
            # Connect server of its own between its runs (launch.py).
            options = ("--spark-per-run",) if arm == "embedded" else ()
            wall, _, _ = run_platform(copy, work / "dagster_home", DAY, self.engines[arm], options)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return wall


def _medians(bench: Bench, data: Path, arms: list[str], repeats: int, label: str) -> dict:
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for i in range(repeats):
        for arm in arms:
            times[arm].append(bench.run(data, arm))
            print(f"{label} {arm} run {i + 1}: {times[arm][-1]:.1f}s", flush=True)
    return {arm: statistics.median(values) for arm, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=int(os.environ.get("BENCH_ROWS", 8_000_000)),
        help="the big day (0: none)",
    )
    parser.add_argument("--customers", type=int, default=20_000, help="the big day's")
    parser.add_argument("--small-rows", type=int, default=5_000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="small-day runs per engine (0: none)"
    )
    parser.add_argument("--arms", default=",".join(ARMS), help="which engines, in this order")
    parser.add_argument("--driver-memory", default="4g", help="the Connect server's heap")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if set(arms) - set(ARMS):
        parser.error(f"--arms: from {', '.join(ARMS)}")
    for var in (SPARK_REMOTE_VAR, SPARK_MASTER_VAR):
        if os.environ.get(var):
            parser.error(f"unset {var}: the benchmark chooses each run's engine")

    small: dict[str, float] = {}
    big: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        root = Path(tmp)
        print(f"load before: {os.getloadavg()[0]:.2f} (measure at < 0.5)", flush=True)
        generate_local(root / "small", DAY, 1, args.small_rows, 7)
        mb = 0.0
        if args.rows_per_day:
            rows, size = generate_local(root / "big", DAY, 1, args.rows_per_day, 11, args.customers)
            mb = size / 1e6
            print(f"big day: {rows} rows, {mb:.1f} MB, {args.customers} customers", flush=True)
        port = free_port()
        server = start(
            connect_server_argv(port=port, driver_memory=args.driver_memory),
            root / "server.log",
        )
        try:
            started = time.perf_counter()
            wait_for_port(port, server, 180, "Spark Connect server")
            print(f"Connect server listening after {time.perf_counter() - started:.1f}s")
            bench = Bench(
                root, {"embedded": {}, "connect": {SPARK_REMOTE_VAR: f"sc://{LOOPBACK}:{port}"}}
            )
            # The server's first run pays class loading and JIT: not part of either figure.
            print(f"warm-up run on the server: {bench.run(root / 'small', 'connect'):.1f}s")
            if args.repeats:
                small = _medians(bench, root / "small", arms, args.repeats, "small day")
            if args.rows_per_day:
                big = _medians(bench, root / "big", arms, 1, "big day")
        finally:
            stop(server)

    for arm, seconds in small.items():
        print(f"small day, {arm}: median {seconds:.1f}s of {args.repeats}")
    figures = [f"small_rows={args.small_rows}"] if small else []
    figures += [f"small_{arm}_s={seconds:.1f}" for arm, seconds in small.items()]
    if big:
        figures += [f"rows={args.rows_per_day}", f"mb={mb:.1f}"]
        figures += [f"{arm}_s={seconds:.1f}" for arm, seconds in big.items()]
    print("spark_engines " + " ".join(figures))


if __name__ == "__main__":
    main()
