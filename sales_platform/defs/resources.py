"""Resources for each environment: embedded local defaults, or S3 + MySQL in prod."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field

from sales_platform.business_rules import (
    DEFAULT_COUPON_TIERS,
    DEFAULT_INCENTIVE_RATE,
    CouponTier,
    sorted_tiers,
)
from sales_platform.defs.quality import QualityThresholds
from sales_platform.settings import (
    SPARK_CONF_VAR,
    SPARK_REMOTE_VAR,
    SPARK_SHARED_DIR_VAR,
    Settings,
)
from sales_platform.storage.crypto import LOCAL_KEY_FILE, MASTER_KEY_VAR, KeyringResource
from sales_platform.storage.database import Database
from sales_platform.storage.lake import LakeIOManager, LakeResource
from sales_platform.storage.object_store import ObjectStoreResource
from sales_platform.storage.spark import SparkResource, spark_resource
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


DB_SSL_CA_VAR = "SALES_PLATFORM_DB_SSL_CA"
S3_KMS_KEY_VAR = "SALES_PLATFORM_S3_SSE_KMS_KEY_ID"
ALLOW_HTTP_VAR = "SALES_PLATFORM_ALLOW_HTTP_ENDPOINT"


def _keyring(settings: Settings) -> KeyringResource:
    # Prod: the variable, with no default (an unset key fails the run at start). Local: the same
    # variable when set, else a key generated once into the data dir, outside the repository.
    if settings.env == "prod" or MASTER_KEY_VAR in settings.configured:
        return KeyringResource(master_key=dg.EnvVar(MASTER_KEY_VAR))
    return KeyringResource(key_file=str(settings.data_dir / LOCAL_KEY_FILE))


def _database(
    settings: Settings, variable: str, local_name: str, keyring: KeyringResource
) -> Database:
    # The URL carries a password: an EnvVar keeps it out of the definitions and the UI; it may
    # also be an enc: token, decrypted with the master key when the resource starts.
    tls = {"ssl_ca": dg.EnvVar(DB_SSL_CA_VAR)} if DB_SSL_CA_VAR in settings.configured else {}
    if settings.env == "prod" or variable in settings.configured:
        return Database(url=dg.EnvVar(variable), keyring=keyring, **tls)
    return Database(url=settings.local_db_url(local_name), keyring=keyring)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_tls_endpoint(settings: Settings) -> None:
    """In prod the S3 endpoint must be https: credentials and data never cross a network in
    plaintext. Loopback (a local proxy, the tests' moto server) stays on this host; anything
    else needs SALES_PLATFORM_ALLOW_HTTP_ENDPOINT set, on purpose."""
    url = settings.s3_endpoint_url
    if settings.env != "prod" or not url or ALLOW_HTTP_VAR in settings.configured:
        return
    parsed = urlparse(url)
    if parsed.scheme == "https":
        return
    host = parsed.hostname or ""
    if parsed.scheme == "http" and _is_loopback(host):
        return
    raise ValueError(
        f"SALES_PLATFORM_S3_ENDPOINT_URL must use https in prod (got scheme {parsed.scheme!r} "
        f"for host {host!r}); set {ALLOW_HTTP_VAR}=1 only if plaintext is really intended"
    )


LAKE_CATALOG_VAR = "SALES_PLATFORM_LAKE_CATALOG"
GLUE_REGION_VAR = "SALES_PLATFORM_GLUE_REGION"


def _lake_catalog(settings: Settings) -> dict:
    # The Iceberg catalog: SqlCatalog in the warehouse database unless Glue is chosen (Athena).
    config: dict = {}
    if LAKE_CATALOG_VAR in settings.configured:
        config["catalog"] = dg.EnvVar(LAKE_CATALOG_VAR)
    if GLUE_REGION_VAR in settings.configured:
        config["glue_region"] = dg.EnvVar(GLUE_REGION_VAR)
    return config


def _spark(settings: Settings) -> SparkResource:
    """The engine the settings name. The remote URL (it may hold a token) and the extra settings
    (they may hold a credential) reach the resource as EnvVars, never as definition values."""
    spark = settings.spark
    url = spark.remote or spark.master
    host = urlparse(url).hostname or url  # `yarn`: not this host
    if (
        spark.engine != "embedded"
        and settings.s3_bucket
        and spark.shared_dir is None
        and not _is_loopback(host)
    ):
        # An S3 lake is staged through a local folder (storage/lake.py); Spark on other hosts
        # cannot see this host's temp folder.
        raise ValueError(
            f"a Spark engine on {host!r} with the lake on S3 needs "
            f"{SPARK_SHARED_DIR_VAR}: a folder the runs and every Spark process share"
        )

    def env(var: str) -> dg.EnvVar | None:
        return dg.EnvVar(var) if var in settings.configured else None

    return spark_resource(
        master=spark.master, remote=env(SPARK_REMOTE_VAR), extra_conf=env(SPARK_CONF_VAR)
    )


def build_resources(settings: Settings) -> dict[str, object]:
    require_tls_endpoint(settings)
    s3: dict = {"endpoint_url": settings.s3_endpoint_url}
    if S3_KMS_KEY_VAR in settings.configured:
        # SSE with the business's KMS key instead of S3-managed keys (AES256, the default).
        s3 |= {"server_side_encryption": "aws:kms", "sse_kms_key_id": dg.EnvVar(S3_KMS_KEY_VAR)}
    pii_keys = _keyring(settings)
    landing = ObjectStoreResource(location=settings.landing_uri, **s3)
    source_db = _database(settings, "SALES_PLATFORM_SOURCE_DB_URL", "source", pii_keys)
    warehouse_db = _database(settings, "SALES_PLATFORM_WAREHOUSE_DB_URL", "warehouse", pii_keys)
    shared = settings.spark.shared_dir
    lake = LakeResource(
        store=ObjectStoreResource(location=settings.lake_uri, **s3),
        catalog_db=warehouse_db,
        # Staging (landing copies, lake writes) where every Spark process can reach it.
        staging_dir=str(shared) if shared else None,
        **_lake_catalog(settings),
    )
    pyspark = _spark(settings)
    return {
        "landing": landing,
        "lake": lake,
        "pyspark": pyspark,
        "source_db": source_db,
        "warehouse_db": warehouse_db,
        "business_rules": BusinessRules(),
        "quality": QualityThresholds(),
        "pii_keys": pii_keys,
        "lake_io_manager": LakeIOManager(lake_resource=lake, pyspark=pyspark),
        "warehouse_io_manager": WarehouseIOManager(database=warehouse_db, pyspark=pyspark),
    }
