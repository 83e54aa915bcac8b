"""A production stack with landed files, runs of it in processes of their own, and the checks
that it equals one clean run (the kill tests, integration/test_fault_injection.py, and the
two-writer tests, integration/test_concurrent_writers.py).

What one clean run must give is the independent oracle (oracle.py), read from the landing bytes
before any run: the accepted rows per day, the quarantined rows per file (a valid file's rows
the rules reject), which files are rejected whole, and both marts of every month.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import sqlalchemy as sa

from sales_platform.cli import _resources
from sales_platform.definitions import build_definitions
from sales_platform.defs.ingest.sensors import landing_sensor
from sales_platform.defs.resources import build_resources
from sales_platform.faults import FAULT_VAR
from sales_platform.generate import generate
from sales_platform.schemas import (
    ERROR_PREFIX,
    LANDING_PREFIX,
    MART_TABLES,
    PROCESSED_PREFIX,
    customers_data_mart_table,
    product_staging_table,
    sales_team_data_mart_table,
)
from sales_platform.settings import Settings
from sales_platform.storage.landing import META_LANDING_ETAG
from sales_platform.storage.warehouse import ensure_tables
from sales_platform_tests.conftest import mariadb_database, new_bucket
from sales_platform_tests.datasets import in_key_order
from sales_platform_tests.oracle import Expected, expect_before_run
from sales_platform_tests.support import stack_environ

REPO = Path(__file__).resolve().parents[1]
DAILY, MARTS = "daily_sales_job", "monthly_marts_job"
RUN_TIMEOUT = 240


class Stack:
    """One prod stack (moto S3 + MariaDB, a Spark Connect server): settings, open resources,
    what landed (`etags`: landing key -> ETag) and the oracle taken before any run."""

    def __init__(self, environ: dict[str, str], tmp: Path):
        self.environ = environ
        self.tmp = tmp
        self.settings = Settings.from_env()
        self.resources = build_resources(self.settings)
        self.seconds: dict[str, float] = {}
        self.runs = 0
        self.last_log = ""

    def tick(self, cursor: str | None):
        """One evaluation of the landing sensor in this process."""
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=build_definitions(self.settings),
            resources={k: self.resources[k] for k in ("landing", "warehouse_db")},
        ) as context:
            return landing_sensor.evaluate_tick(context)

    def env(self, point: str | None = None) -> dict[str, str]:
        """The environment of a process on this stack, armed at `point` when given."""
        env = {**os.environ, **self.environ, "PYTHONPATH": str(REPO)}
        env.pop(FAULT_VAR, None)
        if point:
            env[FAULT_VAR] = point
        return env

    def start(
        self, command: list[str], point: str | None = None, name: str | None = None
    ) -> subprocess.Popen:
        """`command` in a process of its own on this stack; its output in tmp/<name>.log."""
        self.runs += 1
        log = self.tmp / f"{name or 'run'}-{self.runs}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, env=self.env(point), stdout=out, stderr=subprocess.STDOUT
            )
        proc.log = log  # type: ignore[attr-defined]
        proc.started = time.monotonic()  # type: ignore[attr-defined]
        proc.wall = (time.time(), None)  # type: ignore[attr-defined]
        return proc

    def start_run(
        self, jobs: tuple[str, ...], first: date, last: date, point: str | None = None
    ) -> subprocess.Popen:
        """The range's runs of `jobs` (sales_platform_tests.fault_run) in a process of its own."""
        command = [sys.executable, "-m", "sales_platform_tests.fault_run", str(first), str(last)]
        return self.start(command + list(jobs), point, name="run")

    def finish(self, proc: subprocess.Popen, label: str, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for a process of `start`; its exit code. Its log's end is in `last_log`."""
        try:
            code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self.seconds[label] = round(time.monotonic() - proc.started, 1)
            proc.wall = (proc.wall[0], time.time())
            self.last_log = proc.log.read_text(errors="replace")[-3000:]
        return code

    def run(self, point: str | None, jobs: tuple[str, ...], first: date, last: date) -> int:
        """The range's runs of `jobs` in a process of their own, to its end; its exit code."""
        return self.finish(self.start_run(jobs, first, last, point), point or "to completion")


@contextmanager
def landed_stack(
    s3_endpoint: str,
    connect_url: str,
    tmp: Path,
    start: date,
    days: int,
    files_per_day: int,
    bad_file_fraction: float,
    seed: int,
) -> Iterator[Stack]:
    """A fresh bucket and database with generated files landed (bad rows and unknown keys
    among them), and a test Dagster instance; the Stack, its oracle read before any run."""
    with mariadb_database() as db_url, _patched_env() as mp:
        environ = stack_environ("prod", tmp / "data", db_url, new_bucket(s3_endpoint), s3_endpoint)
        environ["SALES_PLATFORM_SPARK_REMOTE"] = connect_url
        for key, value in environ.items():
            mp.setenv(key, value)
        s = Stack(environ, tmp)
        with _resources(s.settings, "landing", "lake", "source_db", "warehouse_db") as res:
            s.store, s.lake = res.landing.open(), res.lake.lake()
            s.warehouse = res.warehouse_db.engine()
            s.source = res.source_db.engine()
            land(s, s.source, start, days, files_per_day, bad_file_fraction, seed)
            with dg.instance_for_test() as instance:
                s.instance = instance
                yield s


def land(
    stack,
    source: sa.Engine,
    start: date,
    days: int,
    files_per_day: int,
    bad_file_fraction: float,
    seed: int,
) -> None:
    """Generate small days into the stack's landing (bad rows and unknown keys among them, and
    bad files at `bad_file_fraction`); set what landed (`summary`, `etags`) and the oracle
    (`expected`), read from the landing bytes before any run."""
    # Read before the first run has made them: empty until a run writes them.
    ensure_tables(stack.warehouse, [*MART_TABLES.values(), product_staging_table])
    stack.summary = generate(
        stack.store,
        source,
        start_date=start,
        days=days,
        rows_per_day=200,
        seed=seed,
        files_per_day=files_per_day,
        customers=60,
        unknown_key_fraction=0.02,
        bad_row_fraction=0.03,
        bad_file_fraction=bad_file_fraction,
        progress=False,
    )
    stack.expected = expect_before_run(stack.store, source, stack.summary.written)
    stack.etags = {o.key: o.etag for o in stack.store.list(LANDING_PREFIX)}


@contextmanager
def _patched_env():
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        yield mp


# --- what the stack holds -----------------------------------------------------------------


def objects(stack: Stack) -> dict[str, list[tuple[str, str]]]:
    """landing key -> [(where, landing identity)] for every copy of a landed file."""
    found: dict[str, list[tuple[str, str]]] = {}
    for obj in stack.store.list(""):
        key = obj.key
        if key.startswith(LANDING_PREFIX):
            found.setdefault(key, []).append(("landing", obj.etag))
        for prefix in (PROCESSED_PREFIX, ERROR_PREFIX):
            if key.startswith(prefix) and not key.endswith(".reason.json"):
                landing = LANDING_PREFIX + key[len(prefix) :].split("/", 1)[1]
                identity = stack.store.metadata(key)[META_LANDING_ETAG]
                found.setdefault(landing, []).append((prefix, identity))
    return found


def lake_rows(stack: Stack, asset: str) -> list[dict]:
    """Every row of the table's current snapshot, read with pyarrow (no Spark)."""
    table = stack.lake.table(asset)
    if table is None:
        return []
    rows = []
    for f in stack.lake.live_files(table):
        if f.record_count:
            data = stack.lake.store.get_bytes(stack.lake.key_of(f.file_path))
            rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return rows


def ledger(stack: Stack) -> list[dict]:
    with stack.warehouse.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(product_staging_table)).mappings()]


def mart(stack: Stack, month: date) -> tuple[list[dict], list[dict]]:
    with stack.warehouse.connect() as conn:
        c = customers_data_mart_table
        s = sales_team_data_mart_table
        customers = conn.execute(sa.select(c).where(c.c.sales_date_month == month)).mappings()
        sellers = conn.execute(sa.select(s).where(s.c.sales_month == f"{month:%Y-%m}")).mappings()
        return in_key_order(c, map(dict, customers)), in_key_order(s, map(dict, sellers))


# --- what one clean run gives (the oracle) ------------------------------------------------


def expected_quarantine(expected: Expected) -> Counter:
    """Landing key -> rows quarantined, for every file loaded (not rejected whole)."""
    return Counter({f.key: f.rows_rejected for f in expected.files if f.valid})


def rejected_files(expected: Expected) -> set[str]:
    return {f.key for f in expected.files if not f.valid}


def expected_marts(expected: Expected, month: date) -> tuple[list[dict], list[dict]]:
    return (
        in_key_order(customers_data_mart_table, expected.customer_mart(month)),
        in_key_order(sales_team_data_mart_table, expected.sales_team_mart(month)),
    )


def months(expected: Expected) -> tuple[date, ...]:
    return tuple(sorted({f.business_date.replace(day=1) for f in expected.files}))


# --- the checks ---------------------------------------------------------------------------


def assert_nothing_lost_or_half_published(stack: Stack, after: str) -> None:
    """What must hold at any instant, whatever instant the last run died at."""
    # Every file that landed is still somewhere, as the version that landed.
    found = objects(stack)
    assert set(found) == set(stack.etags), after
    for key, copies in found.items():
        assert {identity for _, identity in copies} == {stack.etags[key]}, (after, key, copies)
    # A lake day is there whole or not at all; a mart month too.
    accepted = Counter(s.business_date for s in stack.expected.sales)
    for asset, column in (("raw_sales", "sales_date"), ("sales_enriched", "sales_date")):
        for day, n in Counter(r[column] for r in lake_rows(stack, asset)).items():
            assert n == accepted[day], (after, asset, day, n)
    quarantined = Counter()
    for f in stack.expected.files:
        if f.valid:
            quarantined[f.business_date] += f.rows_rejected
    rows = lake_rows(stack, "raw_sales_quarantine")
    for day, n in Counter(r["business_date"] for r in rows).items():
        assert n == quarantined[day], (after, "quarantine", day, n)
    for month in months(stack.expected):
        customers, sellers = mart(stack, month)
        want_customers, want_sellers = expected_marts(stack.expected, month)
        assert customers in ([], want_customers), (after, month)
        assert sellers in ([], want_sellers), (after, month)


def assert_converged(
    stack: Stack, superseded: dict[str, str] | None = None, marts: bool = True
) -> None:
    """Fact, quarantine and (with `marts`) both marts equal the oracle's clean run; ledger and
    S3 agree.

    `superseded` (landing key -> ETag): versions replaced in landing by a re-upload before
    they were archived; each may have one settled ledger row, and nothing of it is in S3.
    """
    sale = ("source_key", "sales_date", "customer_id", "store_id", "sales_person_id")
    sale += ("product_name", "price", "quantity", "total_cost")
    want = Counter(
        (s.key, s.business_date, s.customer_id, s.store_id, s.sales_person_id)
        + (s.product_name, s.price, s.quantity, s.total_cost)
        for s in stack.expected.sales
    )
    for asset in ("raw_sales", "sales_enriched"):
        rows = lake_rows(stack, asset)
        assert Counter(tuple(r[c] for c in sale) for r in rows) == want, asset
        assert len({(r["source_key"], r["line_number"]) for r in rows}) == len(rows), asset
    quarantine = lake_rows(stack, "raw_sales_quarantine")
    assert Counter(r["source_key"] for r in quarantine) == +expected_quarantine(stack.expected)
    assert len({(r["source_key"], r["line_number"]) for r in quarantine}) == len(quarantine)
    for month in months(stack.expected) if marts else ():
        customers, sellers = mart(stack, month)
        assert customers and sellers, month
        assert (customers, sellers) == expected_marts(stack.expected, month), month

    # Each file version once in the ledger, settled, and in exactly one place in S3: the
    # archive for I (the key the ledger names), the error prefix for E; landing is empty.
    superseded = superseded or {}
    entries = ledger(stack)
    versions = sorted((e["object_key"], e["etag"]) for e in entries)
    assert versions == sorted([*stack.etags.items(), *superseded.items()])
    found = objects(stack)
    bad = rejected_files(stack.expected)
    for e in entries:
        if superseded.get(e["object_key"]) == e["etag"]:
            assert e["status"] in ("I", "E"), e
            continue
        [(where, identity)] = found[e["object_key"]]
        assert identity == e["etag"], e
        if e["object_key"] in bad:
            assert (e["status"], where) == ("E", ERROR_PREFIX), e
            assert stack.store.head(f"{_error_copy(e)}.reason.json") is not None
        else:
            assert (e["status"], where) == ("I", PROCESSED_PREFIX), e
            assert e["archived_key"] and stack.store.head(e["archived_key"]) is not None, e
            assert e["rows_quarantined"] == expected_quarantine(stack.expected)[e["object_key"]]
    assert list(stack.store.list(LANDING_PREFIX)) == []


def _error_copy(entry: dict) -> str:
    below = entry["object_key"][len(LANDING_PREFIX) :]
    return f"{ERROR_PREFIX}{entry['business_date']}/{below}"
