"""Each month's figures on a mart's materialization: what a user wants to plot over months.

Money stays exact as text; a float copy (`*_plot`) exists only for the UI's plots. In a run over
several months each month gets its own figures (per-partition metadata), never the range's.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import dagster as dg

from sales_platform.column_docs import column_schema
from sales_platform.schemas import CUSTOMER_MART_SCHEMA, SALES_TEAM_MART_SCHEMA


def _month_key(row: dict) -> str:
    if "sales_month" in row:  # sales-team mart: "YYYY-MM"
        return f"{row['sales_month']}-01"
    return row["sales_date_month"].isoformat()  # customer mart: the month's first day


def month_figures(rows: list[dict]) -> dict[str, dict]:
    """Per month key (YYYY-MM-01): total sales, and for the sales-team mart the incentive paid."""
    months: dict[str, dict] = defaultdict(lambda: {"rows": 0, "total": Decimal("0.00")})
    for row in rows:
        month = months[_month_key(row)]
        month["rows"] += 1
        month["total"] += row["total_sales"]
        if "incentive" in row:
            month["incentive"] = month.get("incentive", Decimal("0.00")) + row["incentive"]
    return dict(months)


def plot_metadata(figures: dict) -> dict:
    metadata = {
        "month_rows": figures["rows"],
        "month_total_sales": dg.MetadataValue.text(str(figures["total"])),
        "month_total_sales_plot": float(figures["total"]),
    }
    if "incentive" in figures:
        metadata |= {
            "incentive_paid": dg.MetadataValue.text(str(figures["incentive"])),
            "incentive_paid_plot": float(figures["incentive"]),
        }
    return metadata


def add_month_plots(rows: list[dict]) -> None:
    """Put each month's figures and the described columns on the running mart's partitions."""
    context = dg.AssetExecutionContext.get()
    team = context.asset_key == dg.AssetKey("sales_team_monthly_mart")
    schema = SALES_TEAM_MART_SCHEMA if team else CUSTOMER_MART_SCHEMA
    by_month = month_figures(rows)
    for month in context.partition_keys:
        figures = by_month.get(month, {"rows": 0, "total": Decimal("0.00")})
        if team:
            figures.setdefault("incentive", Decimal("0.00"))
        context.add_asset_metadata(
            {"dagster/column_schema": column_schema(schema), **plot_metadata(figures)},
            partition_key=month,
        )
