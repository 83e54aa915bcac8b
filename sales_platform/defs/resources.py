"""Resources for each environment: embedded local defaults, or S3 + MySQL in prod."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
from pydantic import Field

from sales_platform.business_rules import (
    DEFAULT_COUPON_TIERS,
    DEFAULT_INCENTIVE_RATE,
    CouponTier,
    sorted_tiers,
)
from sales_platform.settings import Settings
from sales_platform.storage.database import Database
from sales_platform.storage.lake import LakeIOManager, LakeResource
from sales_platform.storage.object_store import ObjectStoreResource
from sales_platform.storage.spark import spark_resource
from sales_platform.storage.warehouse import WarehouseIOManager


class CouponTierConfig(dg.Config):
    name: str
    min_total: str = Field(description="month total (decimal text) from which the tier applies")
    discount_percent: int


class BusinessRules(dg.ConfigurableResource):
    """The business's configurable numbers: the sellers' incentive rate and the coupon tiers."""

    incentive_rate: str = Field(
        default=str(DEFAULT_INCENTIVE_RATE), description="share of the top seller's month total"
    )
    coupon_tiers: list[CouponTierConfig] = Field(
        default=[
            {"name": t.name, "min_total": str(t.min_total), "discount_percent": t.discount_percent}
            for t in DEFAULT_COUPON_TIERS
        ],
        description="tiers by month total; the lowest must start at 0",
    )

    def rate(self) -> Decimal:
        return Decimal(self.incentive_rate)

    def tiers(self) -> tuple[CouponTier, ...]:
        return sorted_tiers(
            tuple(
                CouponTier(t["name"], Decimal(t["min_total"]), t["discount_percent"])
                if isinstance(t, dict)
                else CouponTier(t.name, Decimal(t.min_total), t.discount_percent)
                for t in self.coupon_tiers
            )
        )


def _database(settings: Settings, variable: str, local_name: str) -> Database:
    # The URL carries a password: an EnvVar keeps it out of the definitions and the UI.
    if settings.env == "prod" or variable in settings.configured:
        return Database(url=dg.EnvVar(variable))
    return Database(url=settings.local_db_url(local_name))


def build_resources(settings: Settings) -> dict[str, object]:
    s3 = {"endpoint_url": settings.s3_endpoint_url}
    landing = ObjectStoreResource(location=settings.landing_uri, **s3)
    lake = LakeResource(store=ObjectStoreResource(location=settings.lake_uri, **s3))
    source_db = _database(settings, "SALES_PLATFORM_SOURCE_DB_URL", "source")
    warehouse_db = _database(settings, "SALES_PLATFORM_WAREHOUSE_DB_URL", "warehouse")
    pyspark = spark_resource()
    return {
        "landing": landing,
        "lake": lake,
        "pyspark": pyspark,
        "source_db": source_db,
        "warehouse_db": warehouse_db,
        "business_rules": BusinessRules(),
        "lake_io_manager": LakeIOManager(lake_resource=lake, pyspark=pyspark),
        "warehouse_io_manager": WarehouseIOManager(database=warehouse_db, pyspark=pyspark),
    }
