"""The benchmarks' local stack: generated data in a folder, copies of it, one daily run.

A data dir holds `bucket/` (landing) and `source.db` (source tables), what `Settings` expects
under `SALES_PLATFORM_DATA_DIR`; each arm of a benchmark runs on its own fresh copy.
"""

from __future__ import annotations

import shutil
import time
from datetime import date
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


def fresh_copy(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copytree(source / "bucket", target / "bucket")
    shutil.copy2(source / "source.db", target / "source.db")
    return target


def generate_local(
    root: Path, first: date, days: int, rows_per_day: int, seed: int, customers: int = 500
) -> tuple[int, int]:
    """Landing files under root/bucket and source tables in root/source.db; (rows, bytes)."""
    from sales_platform.generate import generate
    from sales_platform.storage.object_store import LocalObjectStore

    root.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{root / 'source.db'}")
    summary = generate(
        LocalObjectStore(root / "bucket"),
        engine,
        start_date=first,
        days=days,
        rows_per_day=rows_per_day,
        seed=seed,
        customers=customers,
        progress=False,
    )
    engine.dispose()
    return summary.rows, summary.bytes
