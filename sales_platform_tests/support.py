"""Helpers shared by the integration tests: platform settings per stack, running assets."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from time import sleep

import dagster as dg
import pytest
from cryptography.fernet import Fernet

from sales_platform.defs.resources import build_resources
from sales_platform.settings import Settings


def stack_settings(stack: str, tmp_path, request, monkeypatch) -> Settings:
    """Settings for the local stack (folder + SQLite) or prod (moto S3 + MariaDB).

    Values go into the process environment too: resources read database URLs as EnvVars.
    """
    if stack == "prod":
        environ = stack_environ(
            stack,
            tmp_path / "data",
            db_url=request.getfixturevalue("mariadb_url"),
            bucket=request.getfixturevalue("s3_bucket"),
            s3_endpoint=request.getfixturevalue("s3_endpoint"),
        )
    else:
        environ = stack_environ(stack, tmp_path / "data")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env()


def stack_environ(
    stack: str,
    data_dir,
    db_url: str | None = None,
    bucket: str | None = None,
    s3_endpoint: str | None = None,
) -> dict[str, str]:
    """The environment that selects a stack: local (folder + SQLite) or prod (S3 + MariaDB)."""
    environ = {"SALES_PLATFORM_DATA_DIR": str(data_dir)}
    if stack == "prod":
        environ |= {
            "SALES_PLATFORM_ENV": "prod",
            "SALES_PLATFORM_S3_BUCKET": bucket,
            "SALES_PLATFORM_S3_ENDPOINT_URL": s3_endpoint,
            "SALES_PLATFORM_SOURCE_DB_URL": db_url,
            "SALES_PLATFORM_WAREHOUSE_DB_URL": db_url,
            # A fresh key per data set: prod has no default master key, by design.
            "SALES_PLATFORM_MASTER_KEY": Fernet.generate_key().decode(),
        }
    elif stack != "local":
        raise ValueError(stack)
    return environ


@pytest.fixture
def prod_settings(tmp_path, request, monkeypatch) -> Settings:
    return stack_settings("prod", tmp_path, request, monkeypatch)


def materialize_assets(
    settings: Settings,
    assets: list,
    first: date,
    last: date | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize `assets` for the days first..last as one run (a single-run backfill)."""
    last = last or first
    return dg.materialize(
        assets,
        resources=build_resources(settings),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        raise_on_error=raise_on_error,
    )


def today_clear_of_midnight(margin: timedelta = timedelta(minutes=10)) -> date:
    """Today (UTC), once at least `margin` away from the next midnight.

    For tests about "today" (a partition that exists, a month not yet closed): started just
    before midnight, they would straddle two days (or two months) and flake; waiting out the
    last minutes of the day keeps the date they compute the one the platform sees.
    """
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), UTC)
    if midnight - now < margin:
        sleep((midnight - now).total_seconds() + 1)
    return datetime.now(UTC).date()


def add_asset_backfill(
    instance: dg.DagsterInstance, asset_graph, backfill_id: str, days: list[str], assets: list
):
    """An asset backfill of `assets` over `days`, as the UI launches one (runs not made yet)."""
    from dagster._core.execution.backfill import PartitionBackfill  # Dagster offers no public one

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=asset_graph,
        partition_names=days,
        asset_selection=assets,
        backfill_timestamp=datetime.now(UTC).timestamp(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill
