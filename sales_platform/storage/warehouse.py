"""The MySQL IO manager: a monthly mart partition is replaced in one transaction.

Modelled on Dagster's DbIOManager (dagster-duckdb): delete the partition's time window, then
insert. Both happen in one transaction, so a reader sees the old month or the new one, never a
mix, and a rerun never duplicates. Table names come from the fixed list in `schemas`; values are
always bound parameters.
"""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg
import sqlalchemy as sa
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import DataFrame

from sales_platform.faults import fault
from sales_platform.schemas import MART_SPARK_SCHEMAS, MART_TABLES
from sales_platform.storage.database import Database, retry_transaction
from sales_platform.storage.warehouse_check import verify_tables
from sales_platform.storage.write_lock import table_write_lock

INSERT_BATCH = 5_000


def _bound(column: sa.Column, moment: datetime) -> date | str:
    """A partition boundary in the column's own terms: a DATE, or the origin's 'YYYY-MM' text."""
    if isinstance(column.type, sa.Date):
        return moment.date()
    return moment.strftime("%Y-%m")


def _window_filter(table: sa.Table, column_name: str, window: dg.TimeWindow):
    column = table.c[column_name]
    return sa.and_(column >= _bound(column, window.start), column < _bound(column, window.end))


def ensure_tables(engine: sa.Engine, tables: list[sa.Table]) -> None:
    """Create the missing tables; fail if an existing one differs from schemas.py."""
    try:
        tables[0].metadata.create_all(engine, tables=tables, checkfirst=True)
    except sa.exc.OperationalError as exc:
        # Two runs starting at once on a new warehouse both found a table missing; the other
        # one created it first. Check again, then verify what is there.
        if "already exists" not in str(exc.orig):
            raise
        tables[0].metadata.create_all(engine, tables=tables, checkfirst=True)
    verify_tables(engine, tables)


def replace_window(
    engine: sa.Engine,
    table: sa.Table,
    column_name: str,
    window: dg.TimeWindow,
    rows: list[dict],
) -> int:
    """Delete the window's rows and insert `rows`, atomically. Returns rows deleted."""
    column = table.c[column_name]
    low, high = _bound(column, window.start), _bound(column, window.end)
    stray = [r[column_name] for r in rows if not (low <= r[column_name] < high)]
    if stray:
        raise ValueError(
            f"{table.name}: {len(stray)} row(s) outside {low}..{high} (first {stray[0]})"
        )

    def replace() -> int:
        # One writer per table (see write_lock): concurrent replaces queue instead of deadlocking.
        with engine.connect() as conn, table_write_lock(conn, table.name), conn.begin():
            deleted = conn.execute(table.delete().where(_window_filter(table, column_name, window)))
            fault("warehouse.deleted")
            for start in range(0, len(rows), INSERT_BATCH):
                conn.execute(table.insert(), rows[start : start + INSERT_BATCH])
        return deleted.rowcount

    # A lost connection or a deadlock rolls the month back whole; the replace runs again (after
    # a commit whose reply was lost too: it deletes the new rows and inserts them once more).
    deleted = retry_transaction(replace, f"{table.name} {column_name} {low}..{high} (exclusive)")
    fault("warehouse.committed")
    return deleted


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Writes monthly mart DataFrames to their MySQL table, one month window at a time.

    Definition metadata of the asset: `table` (a name from schemas.MART_TABLES) and
    `partition_expr` (the table's month column).
    """

    database: Database
    pyspark: LazyPySparkResource

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # At the run's start, before any Spark work: a mart table that would store wrong
        # values (DECIMAL(10,2), latin1, ...) fails the run with the list of differences.
        ensure_tables(self.database.engine(), list(MART_TABLES.values()))

    @staticmethod
    def _target(context: dg.OutputContext | dg.InputContext) -> tuple[sa.Table, str]:
        meta = context.definition_metadata or {}
        if isinstance(context, dg.InputContext) and context.upstream_output is not None:
            meta = context.upstream_output.definition_metadata or {}
        table = MART_TABLES[meta["table"]]
        return table, meta["partition_expr"]

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        table, column = self._target(context)
        engine = self.database.engine()
        # Marts are small (a row per customer or seller and month): collected, Decimals intact.
        rows = [row.asDict() for row in obj.toLocalIterator()]
        deleted = replace_window(engine, table, column, context.asset_partitions_time_window, rows)
        context.add_output_metadata(
            {
                "dagster/row_count": len(rows),
                "rows_replaced": deleted,
                "table": table.name,
                "database": self.database.describe(),
            }
        )

    def load_input(self, context: dg.InputContext) -> DataFrame:
        table, column = self._target(context)
        query = sa.select(table)
        if context.has_asset_partitions:
            query = query.where(_window_filter(table, column, context.asset_partitions_time_window))
        with self.database.engine().connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return self.pyspark.spark_session.createDataFrame(rows, MART_SPARK_SCHEMAS[table.name])
