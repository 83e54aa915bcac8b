"""Kill points: a run dies (`os._exit`) at each fault point, the same run goes again, and the
platform converges to what one clean run gives, row for row.

One production stack (moto S3 + MariaDB) for the module, two days across a month and year end
with a bad file and bad rows. Each run is a process of its own (`sales_platform_tests.fault_run`)
armed with SALES_PLATFORM_FAULT, a thin client of one Spark Connect server started for the
module, so a run pays no JVM start. The kills are chained, in the order a run reaches them: each
restart recovers from what the previous kill left (as a retried run does), and after every kill
the invariants that must hold at any instant are checked (no file lost, no day or month half
published). The end state is compared with the independent oracle (oracle.py), read from the
landing bytes before any run. README, "Fault points", lists what each point proves.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from sales_platform.cli import _resources
from sales_platform.definitions import build_definitions
from sales_platform.defs.ingest.sensors import landing_sensor
from sales_platform.defs.resources import build_resources
from sales_platform.faults import FAULT_EXIT_CODE, FAULT_VAR, InjectedFault, arm
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
from sales_platform_tests.oracle import expect_before_run
from sales_platform_tests.support import stack_environ

pytestmark = pytest.mark.integration

START, END = date(2023, 12, 31), date(2024, 1, 1)
DAYS = (START, END)
MONTHS = (date(2023, 12, 1), date(2024, 1, 1))
DAILY, MARTS = "daily_sales_job", "monthly_marts_job"
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240
FILES = 4  # two a day, one of them a bad file

# (point armed, jobs the killed run executes), in the order a run reaches them. The restart of
# a killed run is the next line's run; the last run goes to completion.
CHAIN = [
    ("landing.listed", (DAILY,)),
    ("lake.uploaded@raw_sales_quarantine:1", (DAILY,)),
    ("ingest.quarantine_published", (DAILY,)),
    ("lake.uploaded@raw_sales:1", (DAILY,)),
    ("ingest.accepted_published", (DAILY,)),
    ("ledger.settled:1", (DAILY,)),
    # Every file settled (I or E), none moved: see test's SETTLED_IN_LANDING below.
    (f"ledger.settled:{FILES}", (DAILY,)),
    ("archive.copied:1", (DAILY,)),
    ("ingest.archived:2", (DAILY,)),
    ("lake.committed@sales_enriched:1", (DAILY,)),
    ("warehouse.deleted:1", (DAILY, MARTS)),
    ("warehouse.committed:1", (MARTS,)),
]


class Stack:
    """The module's stack: settings, open resources, and the oracle taken before any run."""

    def __init__(self, environ: dict[str, str], tmp: Path):
        self.environ = environ
        self.tmp = tmp
        self.settings = Settings.from_env()
        self.resources = build_resources(self.settings)
        self.seconds: dict[str, float] = {}

    def tick(self, cursor: str | None):
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=build_definitions(self.settings),
            resources={k: self.resources[k] for k in ("landing", "warehouse_db")},
        ) as context:
            return landing_sensor.evaluate_tick(context)

    def run(self, point: str | None, jobs: tuple[str, ...]) -> int:
        """The range's runs of `jobs` in a process of their own; its exit code."""
        env = {**os.environ, **self.environ, "PYTHONPATH": str(REPO)}
        env.pop(FAULT_VAR, None)
        if point:
            env[FAULT_VAR] = point
        log = self.tmp / f"run-{len(self.seconds)}.log"
        started = time.monotonic()
        with log.open("w") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "sales_platform_tests.fault_run", str(START), str(END)]
                + list(jobs),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
            )
        self.seconds[point or "to completion"] = round(time.monotonic() - started, 1)
        self.last_log = log.read_text(errors="replace")[-3000:]
        return proc.returncode


@pytest.fixture(scope="module")
def stack(s3_endpoint, connect_server, tmp_path_factory):
    url, _ = connect_server
    tmp = tmp_path_factory.mktemp("faults")
    with mariadb_database() as db_url, pytest.MonkeyPatch.context() as mp:
        environ = stack_environ("prod", tmp / "data", db_url, new_bucket(s3_endpoint), s3_endpoint)
        environ["SALES_PLATFORM_SPARK_REMOTE"] = url
        for key, value in environ.items():
            mp.setenv(key, value)
        s = Stack(environ, tmp)
        with _resources(s.settings, "landing", "lake", "source_db", "warehouse_db") as res:
            s.store, s.lake = res.landing.open(), res.lake.lake()
            s.warehouse = res.warehouse_db.engine()
            # Read before the first run has made them: empty until a run writes them.
            ensure_tables(s.warehouse, [*MART_TABLES.values(), product_staging_table])
            s.summary = generate(
                s.store,
                res.source_db.engine(),
                start_date=START,
                days=len(DAYS),
                rows_per_day=200,
                seed=5,
                files_per_day=2,
                customers=60,
                unknown_key_fraction=0.02,
                bad_row_fraction=0.03,
                bad_file_fraction=1 / FILES,
                progress=False,
            )
            assert len(s.summary.files) == FILES and len(s.summary.bad_files) == 1
            s.expected = expect_before_run(s.store, res.source_db.engine(), s.summary.written)
            s.etags = {o.key: o.etag for o in s.store.list(LANDING_PREFIX)}
            with dg.instance_for_test() as instance:
                s.instance = instance
                yield s


# --- what the stack holds -----------------------------------------------------------------


def _objects(stack: Stack) -> dict[str, list[tuple[str, str]]]:
    """landing key -> [(where, landing identity)] for every copy of a generated file."""
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


def _lake_rows(stack: Stack, asset: str) -> list[dict]:
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


def _day_counts(rows: list[dict], column: str) -> Counter:
    return Counter(r[column] for r in rows)


def _expected_quarantine(stack: Stack) -> Counter:
    return Counter(
        {w.key: sum(w.bad_row_kinds.values()) for w in stack.summary.written if not w.is_bad}
    )


def _expected_marts(stack: Stack, month: date) -> tuple[list[dict], list[dict]]:
    return (
        in_key_order(customers_data_mart_table, stack.expected.customer_mart(month)),
        in_key_order(sales_team_data_mart_table, stack.expected.sales_team_mart(month)),
    )


def _mart(stack: Stack, month: date) -> tuple[list[dict], list[dict]]:
    with stack.warehouse.connect() as conn:
        c = customers_data_mart_table
        s = sales_team_data_mart_table
        customers = conn.execute(sa.select(c).where(c.c.sales_date_month == month)).mappings()
        sellers = conn.execute(sa.select(s).where(s.c.sales_month == f"{month:%Y-%m}")).mappings()
        return in_key_order(c, map(dict, customers)), in_key_order(s, map(dict, sellers))


def _ledger(stack: Stack) -> list[dict]:
    with stack.warehouse.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(product_staging_table)).mappings()]


def assert_nothing_lost_or_half_published(stack: Stack, after: str) -> None:
    """What must hold at any instant, whatever instant the last run died at."""
    # Every file that landed is still somewhere, as the version that landed.
    found = _objects(stack)
    assert set(found) == set(stack.etags), after
    for key, copies in found.items():
        assert {identity for _, identity in copies} == {stack.etags[key]}, (after, key, copies)
    # A lake day is there whole or not at all; a mart month too.
    accepted = Counter(s.business_date for s in stack.expected.sales)
    for asset, column in (("raw_sales", "sales_date"), ("sales_enriched", "sales_date")):
        for day, n in _day_counts(_lake_rows(stack, asset), column).items():
            assert n == accepted[day], (after, asset, day, n)
    quarantined = Counter()
    for w in stack.summary.written:
        if not w.is_bad:
            quarantined[w.business_date] += sum(w.bad_row_kinds.values())
    rows = _lake_rows(stack, "raw_sales_quarantine")
    for day, n in _day_counts(rows, "business_date").items():
        assert n == quarantined[day], (after, "quarantine", day, n)
    for month in MONTHS:
        customers, sellers = _mart(stack, month)
        want_customers, want_sellers = _expected_marts(stack, month)
        assert customers in ([], want_customers), (after, month)
        assert sellers in ([], want_sellers), (after, month)


def assert_converged(stack: Stack) -> None:
    """Fact, quarantine and marts equal the oracle's clean run; ledger and S3 agree."""
    sale = ("source_key", "sales_date", "customer_id", "store_id", "sales_person_id")
    sale += ("product_name", "price", "quantity", "total_cost")
    want = Counter(
        (s.key, s.business_date, s.customer_id, s.store_id, s.sales_person_id)
        + (s.product_name, s.price, s.quantity, s.total_cost)
        for s in stack.expected.sales
    )
    for asset in ("raw_sales", "sales_enriched"):
        rows = _lake_rows(stack, asset)
        assert Counter(tuple(r[c] for c in sale) for r in rows) == want, asset
        assert len({(r["source_key"], r["line_number"]) for r in rows}) == len(rows), asset
    quarantine = _lake_rows(stack, "raw_sales_quarantine")
    assert Counter(r["source_key"] for r in quarantine) == _expected_quarantine(stack)
    assert len({(r["source_key"], r["line_number"]) for r in quarantine}) == len(quarantine)
    for month in MONTHS:
        customers, sellers = _mart(stack, month)
        assert customers and sellers, month
        assert (customers, sellers) == _expected_marts(stack, month), month

    # Each file version once in the ledger, settled, and in exactly one place in S3: the
    # archive for I (the key the ledger names), the error prefix for E; landing is empty.
    ledger = _ledger(stack)
    assert sorted((e["object_key"], e["etag"]) for e in ledger) == sorted(stack.etags.items())
    found = _objects(stack)
    bad = set(stack.summary.bad_files)
    for e in ledger:
        [(where, _)] = found[e["object_key"]]
        if e["object_key"] in bad:
            assert (e["status"], where) == ("E", ERROR_PREFIX), e
            assert stack.store.head(f"{_error_copy(stack, e)}.reason.json") is not None
        else:
            assert (e["status"], where) == ("I", PROCESSED_PREFIX), e
            assert e["archived_key"] and stack.store.head(e["archived_key"]) is not None, e
            assert e["rows_quarantined"] == _expected_quarantine(stack)[e["object_key"]], e
    assert list(stack.store.list(LANDING_PREFIX)) == []


def _error_copy(stack: Stack, entry: dict) -> str:
    below = entry["object_key"][len(LANDING_PREFIX) :]
    return f"{ERROR_PREFIX}{entry['business_date']}/{below}"


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.timeout(420)
def test_killed_at_every_point_the_reruns_converge_to_one_clean_run(stack):
    # The sensor dies after building its requests, before the daemon saves its cursor: the next
    # tick asks again for the same days under the same run keys (Dagster starts a run key once).
    arm("sensor.requested:1:raise")
    try:
        with pytest.raises(InjectedFault):
            stack.tick(None)
    finally:
        arm(None)
    first = stack.tick(None)
    assert sorted(r.partition_key for r in first.run_requests) == [str(d) for d in DAYS]
    assert [r.run_key for r in stack.tick(None).run_requests] == [
        r.run_key for r in first.run_requests
    ]

    for point, jobs in CHAIN:
        code = stack.run(point, jobs)
        assert code == FAULT_EXIT_CODE, (point, code, stack.last_log)
        assert_nothing_lost_or_half_published(stack, point)
        if point == f"ledger.settled:{FILES}":
            # Settled in the ledger, still in landing: nothing is new to the ledger, yet the
            # sensor asks for both days again, under new run keys (the first ones were used).
            assert {e["status"] for e in _ledger(stack)} == {"I", "E"}
            assert len(list(stack.store.list(LANDING_PREFIX))) == FILES
            again = stack.tick(None).run_requests
            assert sorted(r.partition_key for r in again) == [str(d) for d in DAYS]
            assert not {r.run_key for r in again} & {r.run_key for r in first.run_requests}

    assert stack.run(None, (MARTS,)) == 0, stack.last_log
    assert_converged(stack)
    print(f"\nrun seconds: {stack.seconds}")
