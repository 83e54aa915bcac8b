"""Benchmark: what encrypting Spark's scratch files (`spark.io.encryption.enabled`) costs a run.

    .venv/bin/python benchmarks/io_encryption.py                         # 2 days x 1M rows, ~8 min
    .venv/bin/python benchmarks/io_encryption.py --days 1 --rows-per-day 200000 --repeat 1

Generates the data once (local stack: folder + SQLite), then runs `daily_sales_job` over all the
days as one run, alternately with the setting on and off, each run in a fresh process on a fresh
copy of the data (benchmarks/local_stack.py). What it encrypts in that job: the shuffles of
the checks' aggregates and the dimensions' joins (small), and any spill. Prints the median
seconds inside the run for each arm and their ratio; the machine's other load is not controlled.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from local_stack import fresh_copy, generate_local, run_days

SETTING = "spark.io.encryption.enabled"


def _run(data_dir: Path, first: str, last: str, enabled: bool) -> float:
    args = [sys.executable, __file__, "--run-one", str(data_dir), first, last]
    done = subprocess.run(
        [*args, "--enabled" if enabled else "--disabled"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--rows-per-day", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--run-one", nargs=3, metavar=("DATA_DIR", "FIRST", "LAST"))
    parser.add_argument("--enabled", dest="enabled", action="store_true", default=True)
    parser.add_argument("--disabled", dest="enabled", action="store_false")
    args = parser.parse_args(argv)

    if args.run_one:
        from sales_platform.storage.spark import BASE_SPARK_CONF

        BASE_SPARK_CONF[SETTING] = str(args.enabled).lower()
        data_dir, first, last = args.run_one
        print(json.dumps({"seconds": run_days(Path(data_dir), first, last)}))
        return

    first = date(2023, 3, 1)
    last = first + timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory(prefix="bench-io-enc-") as tmp:
        root = Path(tmp)
        rows, size = generate_local(root / "source", first, args.days, args.rows_per_day, seed=5)
        print(f"{rows:,} rows, {size / 1e6:.1f} MB over {args.days} days")
        seconds: dict[bool, list[float]] = {True: [], False: []}
        for n in range(args.repeat):
            # Alternate which arm goes first, so a warm-up effect does not favour one of them.
            for enabled in (True, False) if n % 2 == 0 else (False, True):
                copy = fresh_copy(root / "source", root / "run")
                seconds[enabled].append(_run(copy, first.isoformat(), last.isoformat(), enabled))
                print(f"  {SETTING}={str(enabled).lower():5}: {seconds[enabled][-1]:6.1f} s")
    on, off = statistics.median(seconds[True]), statistics.median(seconds[False])
    print(f"median on {on:.1f} s, off {off:.1f} s: encryption adds {on / off - 1:+.1%} to a run")


if __name__ == "__main__":
    main()
