"""What a mart publication means for the business: month-to-date, final, or a late correction.

A month is final once it has closed, its last day's files are due (`files_due_hour` on the 1st)
and it is complete: every day that has files in the ledger (landing, archived or rejected) has
its `sales_enriched` partition. A day with files but no fact (its build failed after the files
were archived, or it is still running) is never read as empty: the marts fail naming it
(`missing_days`). A day without any file is empty and is listed as such (`empty_days`).
The month-end schedule is what normally publishes a month as final first. A later publication
of a final month is a late recompute (a file arrived late, or an operator reran it), and for
the sales-team mart it says whether the incentive went to someone else than before.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sales_platform.schemas import product_staging_table, sales_team_data_mart_table
from sales_platform.settings import AutomationSettings
from sales_platform.storage.lake import Lake

FINAL_TAG = "sales_platform/final"
FACT_KEY = dg.AssetKey("sales_enriched")
# Metadata keeps counts and ids, never names: at most this many changed stores are listed.
_MAX_LISTED_CHANGES = 50


def _month_window(month: str) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(month).replace(tzinfo=UTC)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, end


def month_has_closed(month: str, now: datetime | None = None) -> bool:
    return _month_window(month)[1] <= (now or datetime.now(UTC))


def _last_final_publication(
    instance: dg.DagsterInstance, key: dg.AssetKey, month: str
) -> float | None:
    """When the run behind the month's latest publication started, if that one was final."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
    )
    if not result.records:
        return None
    record = result.records[0]
    final = record.asset_materialization.metadata.get("final")
    if final is None or not final.value:
        return None
    run = instance.get_run_record_by_id(record.run_id)
    # Data that landed after that run started may be missing from it.
    return run.start_time if run is not None and run.start_time else record.timestamp


def _fact_changed_since(instance: dg.DagsterInstance, month: str, since: float) -> bool:
    start, end = _month_window(month)
    days = [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((end - start).days)]
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FACT_KEY, asset_partitions=days, after_timestamp=since),
        limit=1,
    )
    return bool(result.records)


@dataclass(frozen=True)
class Completeness:
    """Which days of the run's months have sales files and which have their fact."""

    days: list[str]  # every day of the months, up to today
    with_files: frozenset[str]
    with_fact: frozenset[str]

    @property
    def missing_days(self) -> list[str]:
        """Days with files but no fact: reading them as empty would under-report the month."""
        return sorted(self.with_files - self.with_fact)

    @property
    def empty_days(self) -> list[str]:
        """Days without any file and without fact: no sales, read as empty."""
        return [d for d in self.days if d not in self.with_files and d not in self.with_fact]

    @property
    def complete(self) -> bool:
        return not self.missing_days


def days_with_files(engine: sa.Engine, first: date, last: date) -> set[str]:
    """Business days first..last that have a file in the ledger, whatever its status."""
    table = product_staging_table
    if not sa.inspect(engine).has_table(table.name):
        return set()
    query = (
        sa.select(table.c.business_date)
        .where(table.c.business_date >= first, table.c.business_date <= last)
        .distinct()
    )
    with engine.connect() as conn:
        return {d.isoformat() for (d,) in conn.execute(query)}


def month_completeness(
    lake: Lake, ledger_engine: sa.Engine, window: dg.TimeWindow, now: datetime | None = None
) -> Completeness:
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = window.start.date()
    last = min(window.end.date() - timedelta(days=1), today)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return Completeness(
        days=days,
        with_files=frozenset(days_with_files(ledger_engine, first, last)),
        with_fact=frozenset(lake.existing_partitions(FACT_KEY.to_python_identifier(), days)),
    )


def files_due(month: str, automation: AutomationSettings, now: datetime | None = None) -> bool:
    """The files of the month's last day are due by now."""
    last_day = _month_window(month)[1].date() - timedelta(days=1)
    return automation.files_deadline(last_day) <= (now or datetime.now(UTC))


def closed_and_due(
    month: str, now: datetime | None = None, automation: AutomationSettings | None = None
) -> bool:
    """The month has closed and its last day's files are due: its report can be final."""
    automation = automation or AutomationSettings.from_env()
    return month_has_closed(month, now) and files_due(month, automation, now)


def finality_metadata(
    context: dg.AssetExecutionContext,
    completeness: Completeness,
    now: datetime | None = None,
    automation: AutomationSettings | None = None,
) -> dict[str, object]:
    """`final`: every month of the run has closed, its last files are due, and it is complete.
    `late_recompute`: a month already published as final has new or changed days of sales
    since then (a late file, a rerun of a day)."""
    automation = automation or AutomationSettings.from_env()
    months = list(context.partition_keys)
    final = completeness.complete and all(closed_and_due(m, now, automation) for m in months)
    late = []
    for month in months:
        since = month_has_closed(month, now) and _last_final_publication(
            context.instance, context.asset_key, month
        )
        if since and _fact_changed_since(context.instance, month, since):
            late.append(month)
    metadata: dict[str, object] = {
        "final": final,
        "late_recompute": bool(late),
        "months": dg.MetadataValue.json(months),
        "days_with_fact": len(completeness.with_fact),
        "missing_days": dg.MetadataValue.json(completeness.missing_days),
        "empty_days": dg.MetadataValue.json(completeness.empty_days),
    }
    if late:
        metadata["note"] = (
            f"corrects the final report of {', '.join(m[:7] for m in late)}: sales of the closed "
            "month arrived or changed after it was published as final"
        )
    return metadata


Winners = dict[tuple[str, int], set[int]]  # (sales_month 'YYYY-MM', store_id) -> top sellers


def published_winners(engine: sa.Engine, months: list[str]) -> Winners:
    """Top sellers (rank 1) per store as the sales-team mart holds them now."""
    table = sales_team_data_mart_table
    if not sa.inspect(engine).has_table(table.name):
        return {}
    query = sa.select(table.c.sales_month, table.c.store_id, table.c.sales_person_id).where(
        table.c.sales_rank == 1, table.c.sales_month.in_(months)
    )
    winners: Winners = defaultdict(set)
    with engine.connect() as conn:
        for month, store_id, seller_id in conn.execute(query):
            winners[(month, store_id)].add(seller_id)
    return dict(winners)


def computed_winners(mart: DataFrame) -> Winners:
    rows = (
        mart.where(F.col("sales_rank") == 1)
        .select("sales_month", "store_id", "sales_person_id")
        .collect()
    )
    winners: Winners = defaultdict(set)
    for row in rows:
        winners[(row.sales_month, row.store_id)].add(row.sales_person_id)
    return dict(winners)


def winner_change_metadata(before: Winners, after: Winners) -> dict[str, object]:
    """Which stores' incentive went to other sellers, among months that were published before."""
    published_months = {month for month, _ in before}
    changes = [
        {
            "month": month,
            "store_id": store_id,
            "before": sorted(before.get((month, store_id), set())),
            "after": sorted(after.get((month, store_id), set())),
        }
        for month, store_id in sorted(set(before) | set(after))
        if month in published_months
        and before.get((month, store_id), set()) != after.get((month, store_id), set())
    ]
    return {
        "incentive_winner_changed": bool(changes),
        "stores_with_new_winner": len(changes),
        "incentive_winner_changes": dg.MetadataValue.json(changes[:_MAX_LISTED_CHANGES]),
    }
