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
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def run_days(data_dir: Path, first: str, last: str) -> float:
    """One run of daily_sales_job over first..last in this process; seconds inside the run."""
    import dagster as dg

    from sales_platform.definitions import build_definitions
    from sales_platform.settings import Settings

    settings = Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(data_dir)})
    job = build_definitions(settings).resolve_job_def("daily_sales_job")
    home = data_dir / "dagster_home"
    home.mkdir(exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(home))
    started = time.perf_counter()
    if first == last:  # what the landing sensor requests for one day
        result = job.execute_in_process(instance=instance, partition_key=first)
    else:  # what a single-run backfill launches
        result = job.execute_in_process(
            instance=instance, tags={RANGE_START: first, RANGE_END: last}
        )
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"run {first}..{last} failed")
    return seconds


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


def _fresh_copy(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copytree(source / "bucket", target / "bucket")
    shutil.copy2(source / "source.db", target / "source.db")
    return target


def _generate(root: Path, first: date, days: int, rows_per_day: int, seed: int) -> tuple:
    from sales_platform.generate import generate
    from sales_platform.storage.object_store import LocalObjectStore

    engine = sa.create_engine(f"sqlite:///{root / 'source.db'}")
    summary = generate(
        LocalObjectStore(root / "bucket"),
        engine,
        start_date=first,
        days=days,
        rows_per_day=rows_per_day,
        seed=seed,
        progress=False,
    )
    engine.dispose()
    return summary.rows, summary.bytes


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
        generated.mkdir(parents=True, exist_ok=True)
        rows, size = _generate(generated, args.first_day, args.days, args.rows_per_day, args.seed)
        print(
            f"backfill of {args.days} days ({days[0]}..{days[-1]}): {rows:,} rows, "
            f"{size / 1e6:.1f} MB of CSV; daily_sales_job = snapshots + raw_sales + sales_enriched"
        )
        ratios = {}
        if args.mode in ("process", "both"):
            one_wall, one_run = _in_subprocess(
                _fresh_copy(generated, root / "p-one"), days[0], days[-1]
            )
            per_day = _fresh_copy(generated, root / "p-days")
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
            run_days(_fresh_copy(generated, root / "warm-up"), days[0], days[0])
            one = run_days(_fresh_copy(generated, root / "i-one"), days[0], days[-1])
            per_day = _fresh_copy(generated, root / "i-days")
            each = [run_days(per_day, d, d) for d in days]
            ratios["in-process"] = _report(
                "one process, Spark already running (per-run work only):", one, each, args.days
            )
    print(f"command: {command}")
    print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
