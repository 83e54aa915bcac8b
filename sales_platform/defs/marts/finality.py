"""What a mart publication means for the business: month-to-date, final, or a late correction.

A month is final once it has closed (its last day is over in UTC); the month-end schedule is what
normally publishes it first. A later publication of a final month is a late recompute (a file
arrived late, or an operator reran it), and for the sales-team mart it says whether the
incentive went to someone else than before.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sales_platform.schemas import sales_team_data_mart_table

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


def finality_metadata(
    context: dg.AssetExecutionContext, now: datetime | None = None
) -> dict[str, object]:
    """`final`: every month of the run has closed. `late_recompute`: a month already published
    as final has new or changed days of sales since then (a late file, a rerun of a day)."""
    months = list(context.partition_keys)
    final = all(month_has_closed(m, now) for m in months)
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
