"""Benchmark: end-to-end throughput of one business day, landing CSV to both marts (DESIGN §8).

    .venv/bin/python benchmarks/end_to_end.py                        # 1 day x 8M rows (~460 MB)
    .venv/bin/python benchmarks/end_to_end.py --rows-per-day 2000000 --customers 20000

Generates one day on the local stack (folder + SQLite) in a temporary directory, then runs
`sales-platform materialize --from D --to D` in a fresh process, as an operator would: the daily
job (dimension snapshots, raw_sales, sales_enriched), then the month's marts, through Dagster,
Spark starting cold. Prints the landing bytes, the wall time, MB/s (landing bytes / wall time),
the peak resident memory of the process tree (Python + Spark's JVM + Python workers, sampled
every second, as PSS) and each step's share from Dagster's step statistics. The target is
20 MB/s with peak memory under 8 GB; the machine's other load is not controlled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil
from local_stack import generate_local

DAY = date(2023, 3, 1)
# Reading a process's PSS walks its page tables (10-17 ms for a small Spark JVM, more at
# 3.5 GiB). Every 0.2 s the sampler slowed the run it measured: 251.4 s against 225.6-228.8 s
# for the same 8 M-row day sampled every second. The peak is a plateau of seconds.
SAMPLE_SECONDS = 1.0


def _label(process: psutil.Process) -> str:
    """java, or the Python program and its first argument (`dagster api`, `dagster-daemon run`)."""
    argv = process.cmdline()
    if process.name() == "java" or len(argv) < 2:
        return process.name()
    return " ".join(Path(a).name for a in argv[1:3])


def _tree_rss(process: psutil.Process) -> tuple[int, list[tuple[str, int]]]:
    """Resident bytes of the process tree, and of each process in it, as PSS: a page shared by
    n processes counts 1/n in each. Summed RSS counted the JVM twice whenever it was starting a
    child process (the child shares its memory until it runs its program): 8.6-8.8 GiB peaks
    at 32 M rows where the processes held 5-6 GiB."""
    parts = []
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            parts.append((_label(p), p.memory_full_info().pss))
    return sum(rss for _, rss in parts), parts


def _step_seconds(home: Path) -> dict[str, float]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    seconds: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            for step in instance.get_run_step_stats(run.run_id):
                if step.end_time and step.start_time:
                    seconds[step.step_key] = step.end_time - step.start_time
    return seconds


def run_platform(
    data_dir: Path,
    home: Path,
    day: date,
    engine: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
) -> tuple[float, int, dict[str, float]]:
    """`sales-platform materialize` for one day in a fresh process, as an operator runs it, with
    the engine's variables (README, Spark engines) added to this environment.

    Returns (wall seconds, peak RSS of the process tree in bytes, seconds per step).
    """
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).parents[1] / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "SALES_PLATFORM_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home)}
    env.update(engine or {})
    env.pop("SALES_PLATFORM_ENV", None)
    command = [str(Path(sys.executable).parent / "sales-platform"), "materialize"]
    command += ["--from", day.isoformat(), "--to", day.isoformat(), *options]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    watched, peak, at_peak = psutil.Process(child.pid), 0, []
    while child.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            total, parts = _tree_rss(watched)
            if total > peak:
                peak, at_peak = total, parts
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    biggest = sorted(at_peak, key=lambda part: -part[1])[:5]
    print("  at the peak      : " + ", ".join(f"{n} {r / 2**30:.2f} GiB" for n, r in biggest))
    stderr = child.stderr.read()
    if child.returncode != 0:
        sys.exit(f"materialize failed:\n{stderr[-3000:]}")
    return wall, peak, _step_seconds(home)


def print_steps(steps: dict[str, float], wall: float) -> None:
    for key, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  step {key:28} {seconds:7.1f} s  ({seconds / wall:5.1%})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows-per-day", type=int, default=8_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    parser.add_argument(
        "--spark-per-run", action="store_true", help="pass it on: each run starts its own Spark"
    )
    args = parser.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        data_dir = root / "data"
        _, size = generate_local(data_dir, DAY, 1, args.rows_per_day, 11, args.customers)
        options = ("--spark-per-run",) if args.spark_per_run else ()
        wall, peak, steps = run_platform(data_dir, root / "dagster_home", DAY, options=options)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"{args.rows_per_day:,} rows, {size / 1e6:.1f} MB landed for {DAY}")
    print(f"  wall time        : {wall:7.1f} s  (process start to both marts written)")
    print(f"  throughput       : {size / 1e6 / wall:7.1f} MB/s  (target 20)")
    print(f"  peak memory      : {peak / 2**30:7.2f} GiB  (process tree; target < 8)")
    print_steps(steps, wall)


if __name__ == "__main__":
    main()
