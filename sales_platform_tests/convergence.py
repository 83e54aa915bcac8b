"""What a fault test asserts about a production stack (moto S3 + MariaDB) after runs: nothing
lost or half published at any instant, and in the end exactly what one clean run gives.

The kill tests (integration/test_fault_injection.py) and the transient-fault tests
(integration/test_transient_faults.py) share them. A `World` is their stack: the landing store,
the lake, the warehouse engine, and the oracle's expectation taken from the landing bytes before
any run (`prepare`).
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import date
from typing import Protocol

import pyarrow.parquet as pq
import sqlalchemy as sa

from sales_platform.generate import GenerateSummary, generate
from sales_platform.schemas import (
    ERROR_PREFIX,
    LANDING_PREFIX,
    MART_TABLES,
    PROCESSED_PREFIX,
    customers_data_mart_table,
    product_staging_table,
    sales_team_data_mart_table,
)
from sales_platform.storage.lake import Lake
from sales_platform.storage.landing import META_LANDING_ETAG
from sales_platform.storage.object_store import ObjectStore
from sales_platform.storage.warehouse import ensure_tables
from sales_platform_tests.datasets import in_key_order
from sales_platform_tests.oracle import Expected, expect_before_run


class World(Protocol):
    store: ObjectStore
    lake: Lake
    warehouse: sa.Engine
    months: tuple[date, ...]
    summary: GenerateSummary
    expected: Expected
    etags: dict[str, str]  # landing key -> the etag it landed with


def prepare(stack: World, source_db: sa.Engine, start: date, days: int, files: int) -> None:
    """Land `days` small days from `start` (two files a day, one bad file among `files`, a few
    bad rows) and take the oracle's expectation before any run."""
    # Read before the first run has made them: empty until a run writes them.
    ensure_tables(stack.warehouse, [*MART_TABLES.values(), product_staging_table])
    stack.summary = generate(
        stack.store,
        source_db,
        start_date=start,
        days=days,
        rows_per_day=200,
        seed=5,
        files_per_day=2,
        customers=60,
        unknown_key_fraction=0.02,
        bad_row_fraction=0.03,
        bad_file_fraction=1 / files,
        progress=False,
    )
    assert len(stack.summary.files) == files and len(stack.summary.bad_files) == 1
    stack.expected = expect_before_run(stack.store, source_db, stack.summary.written)
    stack.etags = {o.key: o.etag for o in stack.store.list(LANDING_PREFIX)}


def objects(stack: World) -> dict[str, list[tuple[str, str]]]:
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


def lake_rows(stack: World, asset: str) -> list[dict]:
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


def day_counts(rows: list[dict], column: str) -> Counter:
    return Counter(r[column] for r in rows)


def expected_quarantine(stack: World) -> Counter:
    return Counter(
        {w.key: sum(w.bad_row_kinds.values()) for w in stack.summary.written if not w.is_bad}
    )


def expected_marts(stack: World, month: date) -> tuple[list[dict], list[dict]]:
    return (
        in_key_order(customers_data_mart_table, stack.expected.customer_mart(month)),
        in_key_order(sales_team_data_mart_table, stack.expected.sales_team_mart(month)),
    )


def mart(stack: World, month: date) -> tuple[list[dict], list[dict]]:
    with stack.warehouse.connect() as conn:
        c = customers_data_mart_table
        s = sales_team_data_mart_table
        customers = conn.execute(sa.select(c).where(c.c.sales_date_month == month)).mappings()
        sellers = conn.execute(sa.select(s).where(s.c.sales_month == f"{month:%Y-%m}")).mappings()
        return in_key_order(c, map(dict, customers)), in_key_order(s, map(dict, sellers))


def ledger_rows(stack: World) -> list[dict]:
    with stack.warehouse.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(product_staging_table)).mappings()]


def assert_nothing_lost_or_half_published(stack: World, after: str) -> None:
    """What must hold at any instant, whatever instant the last run died at."""
    # Every file that landed is still somewhere, as the version that landed.
    found = objects(stack)
    assert set(found) == set(stack.etags), after
    for key, copies in found.items():
        assert {identity for _, identity in copies} == {stack.etags[key]}, (after, key, copies)
    # A lake day is there whole or not at all; a mart month too.
    accepted = Counter(s.business_date for s in stack.expected.sales)
    for asset, column in (("raw_sales", "sales_date"), ("sales_enriched", "sales_date")):
        for day, n in day_counts(lake_rows(stack, asset), column).items():
            assert n == accepted[day], (after, asset, day, n)
    quarantined = Counter()
    for w in stack.summary.written:
        if not w.is_bad:
            quarantined[w.business_date] += sum(w.bad_row_kinds.values())
    rows = lake_rows(stack, "raw_sales_quarantine")
    for day, n in day_counts(rows, "business_date").items():
        assert n == quarantined[day], (after, "quarantine", day, n)
    for month in stack.months:
        customers, sellers = mart(stack, month)
        want_customers, want_sellers = expected_marts(stack, month)
        assert customers in ([], want_customers), (after, month)
        assert sellers in ([], want_sellers), (after, month)


def assert_converged(stack: World) -> None:
    """Fact, quarantine and marts equal the oracle's clean run; ledger and S3 agree."""
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
    assert Counter(r["source_key"] for r in quarantine) == expected_quarantine(stack)
    assert len({(r["source_key"], r["line_number"]) for r in quarantine}) == len(quarantine)
    for month in stack.months:
        customers, sellers = mart(stack, month)
        assert customers and sellers, month
        assert (customers, sellers) == expected_marts(stack, month), month

    # Each file version once in the ledger, settled, and in exactly one place in S3: the
    # archive for I (the key the ledger names), the error prefix for E; landing is empty.
    ledger = ledger_rows(stack)
    assert sorted((e["object_key"], e["etag"]) for e in ledger) == sorted(stack.etags.items())
    found = objects(stack)
    bad = set(stack.summary.bad_files)
    for e in ledger:
        [(where, _)] = found[e["object_key"]]
        if e["object_key"] in bad:
            assert (e["status"], where) == ("E", ERROR_PREFIX), e
            assert stack.store.head(f"{error_copy(stack, e)}.reason.json") is not None
        else:
            assert (e["status"], where) == ("I", PROCESSED_PREFIX), e
            assert e["archived_key"] and stack.store.head(e["archived_key"]) is not None, e
            assert e["rows_quarantined"] == expected_quarantine(stack)[e["object_key"]], e
    assert list(stack.store.list(LANDING_PREFIX)) == []


def error_copy(stack: World, entry: dict) -> str:
    below = entry["object_key"][len(LANDING_PREFIX) :]
    return f"{ERROR_PREFIX}{entry['business_date']}/{below}"
