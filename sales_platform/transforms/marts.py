"""The two reporting marts, computed per month from the sales fact.

Both group by month, so one call over several months (a backfill) gives each month its own rows,
and a month's rows depend only on that month's sales: recomputing a month replaces it exactly.
Money stays DECIMAL throughout; coupon thresholds and the incentive rate enter as exact decimal
literals, never as doubles.
"""

from __future__ import annotations

from decimal import Decimal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.business_rules import (
    DEFAULT_COUPON_TIERS,
    DEFAULT_INCENTIVE_RATE,
    CouponTier,
    sorted_tiers,
)
from sales_platform.schemas import (
    CUSTOMER_MART_SCHEMA,
    MART_MONEY_TYPE,
    MART_SCALE,
    SALES_TEAM_MART_SCHEMA,
)

# business_rules.coupon_code: the tier that earns no coupon.
_NO_COUPON_TIER = "NONE"


def decimal_literal(value: Decimal) -> Column:
    """`value` as a Spark decimal literal of exactly its own precision and scale (no double)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"expected a finite Decimal, got {value!r}")
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    scale = max(-exponent, 0)
    precision = max(len(digits) + max(exponent, 0), scale, 1)
    if precision > 38:
        raise ValueError(f"{value} does not fit a Spark decimal")
    return F.lit(value).cast(T.DecimalType(precision, scale))


def _one_row_per(dimension: DataFrame, key: str, alias: str, columns: list[str]) -> DataFrame:
    """The dimension's attributes, one row per key (the smallest row wins, deterministically).

    The snapshot comes from a table keyed on `key`; this only guards the mart's primary key
    against a snapshot that somehow holds a key twice.
    """
    picked = F.min(F.struct(*[F.col(c) for c in columns])).alias("_row")
    return (
        dimension.groupBy(F.col(key).alias(alias))
        .agg(picked)
        .select(alias, *[F.col(f"_row.{c}").alias(c) for c in columns])
    )


def _full_name(first: str, last: str) -> Column:
    # concat_ws skips a missing half instead of nulling the whole name; both missing -> null.
    name = F.concat_ws(" ", F.col(first), F.col(last))
    return F.when(name != "", name)


def _coupon(total: Column, tiers: tuple[CouponTier, ...]) -> Column:
    """The tier a month total earns, as struct(tier, discount): highest threshold reached wins."""
    ordered = sorted_tiers(tiers)

    def award(tier: CouponTier) -> Column:
        return F.struct(
            F.lit(tier.name).alias("tier"),
            F.lit(tier.discount_percent).cast(T.IntegerType()).alias("discount"),
        )

    # The lowest tier starts at or below 0 (sorted_tiers checks), so it is the catch-all.
    *graded, floor = ordered
    if not graded:
        return award(floor)
    expr = F.when(total >= decimal_literal(graded[0].min_total), award(graded[0]))
    for tier in graded[1:]:
        expr = expr.when(total >= decimal_literal(tier.min_total), award(tier))
    return expr.otherwise(award(floor))


def customer_monthly_mart(
    sales_enriched: DataFrame,
    customers: DataFrame,
    coupon_tiers: tuple[CouponTier, ...] = DEFAULT_COUPON_TIERS,
) -> DataFrame:
    """What each customer bought per month and the coupon that spend earns (customer engagement).

    One row per (customer_id, sales_date_month), month = first day of the sale's month. Customers
    missing from the snapshot keep their row with null name/address/phone, so the mart's total
    equals the fact's. `customers` must carry plaintext first_name, last_name, address and
    phone_number (decrypt before calling). Returns CUSTOMER_MART_SCHEMA's columns in order.
    """
    totals = sales_enriched.groupBy(
        "customer_id", F.trunc("sales_date", "month").alias("sales_date_month")
    ).agg(F.sum("total_cost").cast(MART_MONEY_TYPE).alias("total_sales"))

    details = _one_row_per(
        customers,
        "customer_id",
        "customer_id",
        ["first_name", "last_name", "address", "phone_number"],
    )
    coupon = _coupon(F.col("total_sales"), coupon_tiers)
    joined = (
        totals.join(F.broadcast(details), "customer_id", "left")
        .withColumn("_coupon", coupon)
        .withColumn("coupon_tier", F.col("_coupon.tier"))
    )
    columns = {
        "customer_id": F.col("customer_id"),
        "full_name": _full_name("first_name", "last_name"),
        "address": F.col("address"),
        "phone_number": F.col("phone_number"),
        "sales_date_month": F.col("sales_date_month"),
        "total_sales": F.col("total_sales"),
        "coupon_tier": F.col("coupon_tier"),
        "discount_percent": F.col("_coupon.discount"),
        # Deterministic, so a rerun of the month issues the same codes (business_rules.coupon_code).
        "coupon_code": F.when(
            F.col("coupon_tier") != _NO_COUPON_TIER,
            F.concat_ws(
                "-",
                F.col("coupon_tier"),
                F.date_format("sales_date_month", "yyyyMM"),
                F.col("customer_id").cast(T.StringType()),
            ),
        ),
    }
    return joined.select(
        *[columns[f.name].cast(f.dataType).alias(f.name) for f in CUSTOMER_MART_SCHEMA]
    )


def sales_team_monthly_mart(
    sales_enriched: DataFrame,
    sales_team: DataFrame,
    incentive_rate: Decimal = DEFAULT_INCENTIVE_RATE,
) -> DataFrame:
    """Each seller's monthly sales per store, their rank in the store, and the top seller's bonus.

    One row per (store_id, sales_person_id, sales_month 'YYYY-MM'). sales_rank is rank() within the
    store and month by total_sales descending, so tied top sellers all rank 1 and all receive the
    incentive: round(total_sales x incentive_rate, 2) half-up; everyone else gets 0.00. Sellers
    missing from the snapshot keep their row with a null full_name. Returns SALES_TEAM_MART_SCHEMA's
    columns in order.
    """
    if incentive_rate < 0:
        raise ValueError(f"incentive_rate must not be negative, got {incentive_rate}")
    rate = decimal_literal(incentive_rate)

    # The month as a date, formatted 'YYYY-MM' once per group: per row it cost 1-2 s per 8 M.
    totals = (
        sales_enriched.groupBy(
            "store_id", "sales_person_id", F.trunc("sales_date", "month").alias("_month")
        )
        .agg(F.sum("total_cost").cast(MART_MONEY_TYPE).alias("total_sales"))
        .withColumn("sales_month", F.date_format("_month", "yyyy-MM"))
        .drop("_month")
    )

    names = _one_row_per(sales_team, "id", "sales_person_id", ["first_name", "last_name"])
    in_store_month = Window.partitionBy("store_id", "sales_month").orderBy(
        F.col("total_sales").desc()
    )
    ranked = totals.join(F.broadcast(names), "sales_person_id", "left").withColumn(
        "sales_rank", F.rank().over(in_store_month)
    )
    columns = {
        "store_id": F.col("store_id"),
        "sales_person_id": F.col("sales_person_id"),
        "full_name": _full_name("first_name", "last_name"),
        "sales_month": F.col("sales_month"),
        "total_sales": F.col("total_sales"),
        # Decimal x decimal is exact; round() on a decimal is HALF_UP.
        "incentive": F.when(
            F.col("sales_rank") == 1, F.round(F.col("total_sales") * rate, MART_SCALE)
        ).otherwise(decimal_literal(Decimal("0.00"))),
        "sales_rank": F.col("sales_rank"),
    }
    return ranked.select(
        *[columns[f.name].cast(f.dataType).alias(f.name) for f in SALES_TEAM_MART_SCHEMA]
    )
