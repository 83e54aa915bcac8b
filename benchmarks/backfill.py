"""Benchmark: a backfill of N days as one run against N single-day runs, on the same data.

    .venv/bin/python benchmarks/backfill.py                              # 10 days x 100k rows
    .venv/bin/python benchmarks/backfill.py --days 10 --rows-per-day 20000 --mode in-process

What runs: `daily_sales_job` (dimension snapshots, raw_sales, sales_enriched) through Dagster's
`execute_in_process`, on the local stack (folder + SQLite), each run recorded in a persistent
Dagster instance. Data is generated once; each arm works on its own copy of it (landing, source
tables, empty lake and warehouse), so neither arm finds the other's output.

Two ways of timing, both reported by default:
- `process`: every run in a fresh Python process, as Dagster's run launcher starts every run, so
  each run pays its own imports, definitions load and Spark (JVM) start. This is what a backfill
  costs in production: one run with `BackfillPolicy.single_run()` or one run per day.
- `in-process`: both arms in this process after a warm-up run, sharing one Spark session. Only
  the per-run work remains (Dagster run setup, dimension snapshots repeated, N small Spark jobs
  instead of one larger one).
Wall-clock seconds; the machine's other load is not controlled, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from local_stack import fresh_copy, generate_local, run_days


def _in_subprocess(data_dir: Path, first: str, last: str) -> tuple[float, float]:
    """(wall seconds of the whole process, seconds inside the run)."""
    log = data_dir / f"run-{first}-{last}.log"
    started = time.perf_counter()
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, __file__, "--run-one", str(data_dir), first, last],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"run {first}..{last} failed:\n{log.read_text()[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def _report(title: str, one: float, each: list[float], days: int) -> float:
    ratio = sum(each) / one
    print(title)
    print(f"  one run over {days} days   : {one:8.1f} s")
    print(f"  {days} single-day runs     : {sum(each):8.1f} s  ({sum(each) / days:.1f} s per run)")
    print(f"  ratio (single-day / one): {ratio:8.2f}x")
    return ratio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--first-day", type=date.fromisoformat, default=date(2023, 3, 1))
    parser.add_argument("--mode", choices=["process", "in-process", "both"], default="both")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    parser.add_argument("--run-one", nargs=3, metavar=("DATA_DIR", "FIRST", "LAST"))
    args = parser.parse_args(argv)

    if args.run_one:  # the child process of the `process` mode
        data_dir, first, last = args.run_one
        print(json.dumps({"seconds": run_days(Path(data_dir), first, last)}))
        return

    days = [(args.first_day + timedelta(days=i)).isoformat() for i in range(args.days)]
    command = " ".join([".venv/bin/python", "benchmarks/backfill.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        root = args.keep or Path(tmp)
        generated = root / "generated"
        rows, size = generate_local(
            generated, args.first_day, args.days, args.rows_per_day, args.seed
        )
        print(
            f"backfill of {args.days} days ({days[0]}..{days[-1]}): {rows:,} rows, "
            f"{size / 1e6:.1f} MB of CSV; daily_sales_job = snapshots + raw_sales + sales_enriched"
        )
        ratios = {}
        if args.mode in ("process", "both"):
            one_wall, one_run = _in_subprocess(
                fresh_copy(generated, root / "p-one"), days[0], days[-1]
            )
            per_day = fresh_copy(generated, root / "p-days")
            each = [_in_subprocess(per_day, d, d) for d in days]
            ratios["process"] = _report(
                "a process per run (as the run launcher starts runs; each starts its own JVM):",
                one_wall,
                [wall for wall, _ in each],
                args.days,
            )
            print(
                f"  inside execute_in_process (JVM start included, it happens in the first "
                f"Spark step): {one_run:.1f} s vs {sum(run for _, run in each):.1f} s"
            )
        if args.mode in ("in-process", "both"):
            run_days(fresh_copy(generated, root / "warm-up"), days[0], days[0])
            one = run_days(fresh_copy(generated, root / "i-one"), days[0], days[-1])
            per_day = fresh_copy(generated, root / "i-days")
            each = [run_days(per_day, d, d) for d in days]
            ratios["in-process"] = _report(
                "one process, Spark already running (per-run work only):", one, each, args.days
            )
    print(f"command: {command}")
    print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
