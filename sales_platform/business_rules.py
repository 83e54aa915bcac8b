"""The business's own numbers: coupon tiers and the sellers' incentive rate.

They are configuration, not code: the `business_rules` resource carries them into the mart assets,
and these are its defaults. Tiers are checked from the highest threshold down; a customer's month
total at or above a tier's `min_total` earns that tier's discount on next month's purchases.

| tier     | month total (at least) | discount |
|----------|------------------------|----------|
| PLATINUM | 20,000.00              | 15 %     |
| GOLD     | 10,000.00              | 10 %     |
| SILVER   | 5,000.00               | 5 %      |
| NONE     | 0                      | 0 %      |

A coupon code is deterministic, `<TIER>-<YYYYMM>-<customer_id>`, so a rerun of a month issues the
same codes; customers in tier NONE get no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

DEFAULT_INCENTIVE_RATE = Decimal("0.01")


@dataclass(frozen=True)
class CouponTier:
    name: str
    min_total: Decimal
    discount_percent: int


DEFAULT_COUPON_TIERS: tuple[CouponTier, ...] = (
    CouponTier("PLATINUM", Decimal("20000.00"), 15),
    CouponTier("GOLD", Decimal("10000.00"), 10),
    CouponTier("SILVER", Decimal("5000.00"), 5),
    CouponTier("NONE", Decimal("0"), 0),
)


def sorted_tiers(tiers: tuple[CouponTier, ...]) -> tuple[CouponTier, ...]:
    """Highest threshold first; the lowest tier must start at 0 so every total has a tier."""
    ordered = tuple(sorted(tiers, key=lambda t: t.min_total, reverse=True))
    if not ordered or ordered[-1].min_total > 0:
        raise ValueError("coupon tiers must include one starting at 0")
    return ordered


def coupon_code(tier: str, month: date, customer_id: int) -> str | None:
    if tier == "NONE":
        return None
    return f"{tier}-{month:%Y%m}-{customer_id}"
