"""One shared data set per stack: generated once, run once, rerun once, then read by many tests.

Four days across a month end and a year end (2023-12-30 .. 2024-01-02), two files a day, 1 % bad
rows, 1 % rows with unknown keys and one bad file. The oracle's expectation is taken from the
landing bytes right after generation, before any run, and checked against the generator's own
record of what it wrote (`GenerateSummary.written`); the warehouse is read after the first run
and again after a rerun of the same range. Tests only read a `Dataset`: none may change it.

The fixtures (`local_dataset`, `prod_dataset`, `dataset` for both) live in conftest.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.cli import _resources, materialize
from sales_platform.generate import GenerateSummary, generate
from sales_platform.schemas import (
    customers_data_mart_table,
    product_staging_table,
    sales_team_data_mart_table,
)
from sales_platform.settings import Settings
from sales_platform_tests.oracle import Expected, expect_before_run
from sales_platform_tests.support import stack_environ

START, END = date(2023, 12, 30), date(2024, 1, 2)
MONTHS = (date(2023, 12, 1), date(2024, 1, 1))
DAYS = tuple(date.fromordinal(d) for d in range(START.toordinal(), END.toordinal() + 1))
GENERATE = {
    "start_date": START,
    "days": len(DAYS),
    "rows_per_day": 600,
    "seed": 17,
    "files_per_day": 2,
    "customers": 120,
    "unknown_key_fraction": 0.01,
    "bad_row_fraction": 0.01,
    "bad_file_fraction": 1 / 8,  # one of the eight files
    "progress": False,
}


@dataclass(frozen=True)
class Outcome:
    """What one `materialize` of the whole range left behind."""

    results: tuple[dg.ExecuteInProcessResult, ...]
    customer_mart: dict[date, list[dict]]  # month -> rows
    sales_team_mart: dict[date, list[dict]]
    ledger: tuple[dict, ...]  # every ledger row


@dataclass(frozen=True)
class Dataset:
    stack: str
    settings: Settings
    summary: GenerateSummary
    expected: Expected
    first: Outcome
    rerun: Outcome
    instance: dg.DagsterInstance
    resources: object  # landing, lake, source_db, warehouse_db resources, open for the session

    @property
    def outcomes(self) -> dict[str, Outcome]:
        return {"first run": self.first, "rerun": self.rerun}


def in_key_order(table: sa.Table, rows) -> list[dict]:
    """Rows sorted by the table's primary key, so two row lists compare with ==."""
    pk = [c.name for c in table.primary_key.columns]
    return sorted(rows, key=lambda r: tuple(r[c] for c in pk))


def _mart_rows(engine: sa.Engine, table: sa.Table, column: str, value) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c[column] == value)).mappings()
        return in_key_order(table, (dict(r) for r in rows))


def read_outcome(results, warehouse: sa.Engine) -> Outcome:
    with warehouse.connect() as conn:
        ledger = tuple(dict(r) for r in conn.execute(sa.select(product_staging_table)).mappings())
    return Outcome(
        results=tuple(results),
        customer_mart={
            m: _mart_rows(warehouse, customers_data_mart_table, "sales_date_month", m)
            for m in MONTHS
        },
        sales_team_mart={
            m: _mart_rows(warehouse, sales_team_data_mart_table, "sales_month", f"{m:%Y-%m}")
            for m in MONTHS
        },
        ledger=ledger,
    )


@contextlib.contextmanager
def build_dataset(
    stack: str,
    root: Path,
    db_url: str | None = None,
    bucket: str | None = None,
    s3_endpoint: str | None = None,
) -> Iterator[Dataset]:
    environ = stack_environ(stack, root / "data", db_url, bucket, s3_endpoint)
    with contextlib.ExitStack() as stack_, pytest.MonkeyPatch.context() as mp:
        # The stack's environment only while it is built and run: resources read EnvVars then.
        for key, value in environ.items():
            mp.setenv(key, value)
        settings = Settings.from_env()
        res = stack_.enter_context(
            _resources(settings, "landing", "lake", "source_db", "warehouse_db")
        )
        instance = stack_.enter_context(dg.instance_for_test())
        store, source = res.landing.open(), res.source_db.engine()
        warehouse = res.warehouse_db.engine()
        summary = generate(store, source, **GENERATE)
        expected = expect_before_run(store, source, summary.written)
        runs = [
            read_outcome(materialize(START, END, settings=settings, instance=instance), warehouse)
            for _ in ("first run", "rerun")
        ]
        mp.undo()
        yield Dataset(stack, settings, summary, expected, *runs, instance, res)
