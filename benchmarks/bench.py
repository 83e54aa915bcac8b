"""`make bench`: the platform against a plain PySpark script and Polars, on the same day of data.

    .venv/bin/python benchmarks/bench.py                   # 8,000,000 rows (BENCH_ROWS overrides)
    BENCH_ROWS=32000000 .venv/bin/python benchmarks/bench.py

Generates one business day of N rows with the project's generator (local stack: a folder and
SQLite), then, each in a fresh process: the plain PySpark yardstick (`plain_spark.py`), Polars
(`polars_yardstick.py`), and the platform end to end (`sales-platform materialize`, as
`end_to_end.py` runs it: every check, the ledger, the quarantine and PII on). The yardsticks run
first because the platform archives the landing files it consumed. Prints each step's seconds,
the peak memory (PSS) of the platform's process tree, and as its last line:

    bench rows=N mb=MB platform_s=S plain_spark_s=S polars_s=S mb_per_s=X ratio_to_plain_spark=R

Measure on an idle machine (`uptime` load under 0.5): under load the same day runs 2x slower.
`--wait-idle 300` first waits up to five minutes for the load to drop (a run that just ended
leaves it high for a minute or two).
Ratios taken in one run move much less than absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from end_to_end import DAY, print_steps, run_platform
from local_stack import generate_local

HERE = Path(__file__).parent
IDLE_LOAD = 0.5


def _yardstick(script: str, data_dir: Path, out: Path) -> float:
    """Seconds of a yardstick script in a fresh process, start to exit."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(HERE / script), "--data-dir", str(data_dir), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _wait_idle(seconds: float) -> None:
    """A run that just ended leaves the load average high for a minute or two after the CPU
    is free again: wait that out rather than measure under it."""
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] >= IDLE_LOAD and time.monotonic() < deadline:
        time.sleep(5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 8_000_000)))
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to this long for the 1-minute load to drop under 0.5",
    )
    args = parser.parse_args(argv)
    _wait_idle(args.wait_idle)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        data_dir = root / "data"
        print(f"load before: {os.getloadavg()[0]:.2f} (measure at < {IDLE_LOAD})", flush=True)
        _, size = generate_local(data_dir, DAY, 1, args.rows, 11, args.customers)
        mb = size / 1e6
        plain = _yardstick("plain_spark.py", data_dir, root / "plain_spark")
        print(f"plain PySpark : {plain:7.1f} s", flush=True)
        polars = _yardstick("polars_yardstick.py", data_dir, root / "polars")
        print(f"Polars        : {polars:7.1f} s", flush=True)
        wall, peak, steps = run_platform(data_dir, root / "dagster_home", DAY)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"platform      : {wall:7.1f} s, peak memory {peak / 2**30:.2f} GiB (process tree)")
    print_steps(steps, wall)
    print(
        f"bench rows={args.rows} mb={mb:.1f} platform_s={wall:.1f} plain_spark_s={plain:.1f} "
        f"polars_s={polars:.1f} mb_per_s={mb / wall:.2f} ratio_to_plain_spark={wall / plain:.2f}"
    )


if __name__ == "__main__":
    main()
