"""Checks of `sales_enriched`, evaluated on the staged fact before it is published."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sales_platform.defs.quality import QualityThresholds

UNKNOWN_KEYS = "unknown_keys"
TOTAL_MATCHES_RAW = "total_matches_raw_sales"
NO_DUPLICATE_SALES = "no_duplicate_sales"
BLOCKING = {UNKNOWN_KEYS, TOTAL_MATCHES_RAW, NO_DUPLICATE_SALES}
DIMENSIONS = ("customer", "store", "sales_person", "product")

CHECK_SPECS = [
    dg.AssetCheckSpec(
        UNKNOWN_KEYS,
        asset="sales_enriched",
        blocking=True,
        description="Sales whose customer, store, seller or product is unknown to the master "
        "data: counted per dimension; fails above QualityThresholds.max_unknown_key_share.",
    ),
    dg.AssetCheckSpec(
        TOTAL_MATCHES_RAW,
        asset="sales_enriched",
        blocking=True,
        description="The fact's total_cost equals the accepted raw_sales total exactly, to the "
        "cent, and it has as many rows: no sale lost or invented by the joins.",
    ),
    dg.AssetCheckSpec(
        NO_DUPLICATE_SALES,
        asset="sales_enriched",
        blocking=True,
        description="Each sale (source file, line) appears once.",
    ),
]


@dataclass(frozen=True)
class DayFigures:
    rows: int
    total_cost: Decimal
    unknown: dict[str, int]


@dataclass(frozen=True)
class FactFigures:
    rows: int
    distinct_sales: int
    total_cost: Decimal
    unknown: dict[str, int]
    raw_rows: int
    raw_total_cost: Decimal
    # The same figures per business day (YYYY-MM-DD), for each partition's metadata.
    by_day: dict[str, DayFigures] = field(default_factory=dict)


def measure(fact: DataFrame, raw_sales: DataFrame) -> FactFigures:
    """Aggregates over the staged fact and raw_sales: one columnar pass over each.

    The fact is aggregated per (day, file, block of 32 768 line numbers): each group's rows,
    money and unknown keys, and a bitmap of its line numbers. Those few groups are summed per
    day for the figures, and their bitmaps OR-ed per (file, block) to count distinct sales
    exactly: only bitmaps are shuffled, not every sale, and the fact is read once. At 8 M rows
    this took 6.7-8.3 s where a per-day pass plus a group-by over (file, line) took 11.7-14.0 s.
    """
    pieces = (
        # Grouped by the date itself: formatting it per row cost 1-2 s per 8 M rows.
        fact.groupBy(
            F.col("sales_date").alias("day"),
            "source_key",
            F.expr("bitmap_bucket_number(line_number)").alias("block"),
        )
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum("total_cost").alias("total"),
            *[F.sum((~F.col(f"{d}_known")).cast("int")).alias(d) for d in DIMENSIONS],
            F.expr("bitmap_construct_agg(bitmap_bit_position(line_number))").alias("lines"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        days = (
            pieces.groupBy("day")
            .agg(
                F.sum("rows").alias("rows"),
                F.sum("total").alias("total"),
                *[F.sum(d).alias(d) for d in DIMENSIONS],
            )
            .collect()
        )
        # A block's rows beyond its distinct line numbers are repeated sales; the rows without
        # a line number (block null, an empty bitmap) are all one sale of their file.
        per_block = pieces.groupBy("source_key", "block").agg(
            F.sum("rows").alias("rows"),
            F.expr("bitmap_count(bitmap_or_agg(lines))").alias("distinct"),
        )
        repeated = F.when(F.col("block").isNull(), F.col("rows") - 1).otherwise(
            F.col("rows") - F.col("distinct")
        )
        duplicates = per_block.agg(F.sum(repeated)).first()[0] or 0
    finally:
        pieces.unpersist()
    by_day = {
        (r["day"] and r["day"].isoformat()): DayFigures(
            rows=r["rows"],
            total_cost=r["total"] or Decimal("0"),
            unknown={d: r[d] or 0 for d in DIMENSIONS},
        )
        for r in days
    }
    raw_row = raw_sales.agg(F.count(F.lit(1)).alias("rows"), F.sum("total_cost")).first()
    return FactFigures(
        rows=sum(r["rows"] for r in days),
        distinct_sales=sum(r["rows"] for r in days) - duplicates,
        total_cost=sum((d.total_cost for d in by_day.values()), Decimal("0")),
        unknown={d: sum(day.unknown[d] for day in by_day.values()) for d in DIMENSIONS},
        raw_rows=raw_row[0],
        raw_total_cost=raw_row[1] or Decimal("0"),
        by_day=by_day,
    )


def fact_checks(figures: FactFigures, quality: QualityThresholds) -> list[dg.AssetCheckResult]:
    shares = {d: (n / figures.rows if figures.rows else 0.0) for d, n in figures.unknown.items()}
    too_many = [d for d, share in shares.items() if share > quality.max_unknown_key_share]
    return [
        dg.AssetCheckResult(
            check_name=UNKNOWN_KEYS,
            passed=not too_many,
            metadata={
                **{f"unknown_{d}": n for d, n in figures.unknown.items()},
                **{f"unknown_{d}_share": s for d, s in shares.items()},
                "max_share": quality.max_unknown_key_share,
            },
        ),
        dg.AssetCheckResult(
            check_name=TOTAL_MATCHES_RAW,
            passed=figures.total_cost == figures.raw_total_cost
            and figures.rows == figures.raw_rows,
            metadata={
                "fact_total_cost": dg.MetadataValue.text(str(figures.total_cost)),
                "raw_sales_total_cost": dg.MetadataValue.text(str(figures.raw_total_cost)),
                "fact_rows": figures.rows,
                "raw_sales_rows": figures.raw_rows,
            },
        ),
        dg.AssetCheckResult(
            check_name=NO_DUPLICATE_SALES,
            passed=figures.rows == figures.distinct_sales,
            metadata={
                "rows": figures.rows,
                "distinct_sales": figures.distinct_sales,
                "duplicates": figures.rows - figures.distinct_sales,
            },
        ),
    ]
