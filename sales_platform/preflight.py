"""Settings checked before a command starts anything: one line that says what to do.

A missing or malformed setting would otherwise surface deep inside a Dagster run as a long
stack trace. The CLI (`cli.main`) prints a `SettingsError` as one line and exits 2.
`check_services` also reaches the S3 bucket and both databases, each within a bounded time, so
a wrong endpoint, a missing bucket or a database that does not answer stops a command at once
with what and where, instead of failing (or hanging) inside its first run.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import dagster as dg
import sqlalchemy as sa

from sales_platform.settings import (
    FILES_DUE_HOUR_VAR,
    MONTH_END_CRON_VAR,
    OVERDUE_LOOKBACK_VAR,
    Settings,
)
from sales_platform.storage.ciphers import MASTER_KEY_VAR, MasterKeyError, parse_master_keys

DB_URL_VARS = ("SALES_PLATFORM_SOURCE_DB_URL", "SALES_PLATFORM_WAREHOUSE_DB_URL")
_DB_URL_FIX = (
    "set it to a SQLAlchemy URL such as "
    "mysql+pymysql://user:password@host:3306/sales?charset=utf8mb4, or to an enc: token from "
    "`sales-platform secrets encrypt`"
)
# What to do about a setting Settings.from_env refused, by the variable its message names.
_FIXES = {
    MONTH_END_CRON_VAR: "use five cron fields, e.g. '0 2 1 * *' (02:00 UTC on the 1st)",
    FILES_DUE_HOUR_VAR: "use an hour of the day, 0..23 (UTC)",
    OVERDUE_LOOKBACK_VAR: "use a whole number of days, at least 1",
    "SALES_PLATFORM_S3_BUCKET": "set it to the bucket holding sales_data/ (prod needs one)",
    "SALES_PLATFORM_ENV": "set it to local or prod",
    "SALES_PLATFORM_S3_ENDPOINT_URL": "use an https:// endpoint",
}


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line and names the fix."""


def _with_fix(message: str) -> str:
    for variable, fix in _FIXES.items():
        if variable in message and fix not in message:
            return f"{message}: {fix}"
    return message


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings.from_env, plus everything a run needs at its start, or a SettingsError."""
    environ = dict(os.environ if environ is None else environ)
    try:
        settings = Settings.from_env(environ)
    except ValueError as exc:
        raise SettingsError(_with_fix(str(exc).splitlines()[0])) from None
    if settings.env == "prod" or environ.get(MASTER_KEY_VAR):
        _check_master_key(environ.get(MASTER_KEY_VAR))
    for variable in DB_URL_VARS:
        if settings.env == "prod" or environ.get(variable):
            _check_db_url(variable, environ.get(variable))
    try:
        from sales_platform.defs.resources import require_tls_endpoint

        require_tls_endpoint(settings)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return settings


def _check_master_key(value: str | None) -> None:
    if not value:
        raise SettingsError(
            f"{MASTER_KEY_VAR} is not set: run `sales-platform secrets new-key` and set "
            f"{MASTER_KEY_VAR} to the key it prints"
        )
    try:
        parse_master_keys(value)
    except MasterKeyError as exc:
        raise SettingsError(str(exc)) from None


def _check_db_url(variable: str, value: str | None) -> None:
    if not value:
        raise SettingsError(f"{variable} is not set: {_DB_URL_FIX}")
    if value.startswith("enc:"):
        return  # decrypted with the master key when the resource starts
    try:
        sa.engine.make_url(value)
    except sa.exc.ArgumentError:
        # Never echo the value: it holds a password.
        raise SettingsError(f"{variable} is not a database URL: {_DB_URL_FIX}") from None


# Each check waits at most this long for one answer (and tries S3 twice): a service that does
# not answer fails the command in well under a minute.
SERVICE_TIMEOUT_SECONDS = 10


class ServiceUnreachable(SettingsError):
    """The bucket or a database cannot be reached; the message names which, and where."""


def check_services(settings: Settings, timeout: int = SERVICE_TIMEOUT_SECONDS) -> None:
    """Reach the landing bucket (prod) and both databases, or raise ServiceUnreachable."""
    from sales_platform.defs.resources import build_resources

    every = build_resources(settings)
    with dg.build_resources({k: every[k] for k in ("landing", *_DATABASES)}) as res:
        if urlparse(res.landing.location).scheme in ("s3", "s3a"):
            _check_bucket(res.landing, timeout)
        for key, what in _DATABASES.items():
            db = getattr(res, key)
            try:
                db.ping(timeout)
            except Exception as exc:  # noqa: BLE001 - reported as one line naming the database
                raise ServiceUnreachable(
                    f"{what} database {db.describe()}: cannot connect within {timeout}s: "
                    f"{_first_line(exc)}"
                ) from None


_DATABASES = {"source_db": "source", "warehouse_db": "warehouse"}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


def _check_bucket(landing, timeout: int) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = urlparse(landing.location).netloc
    where = f"S3 bucket {bucket!r} at {landing.endpoint_url or 'AWS'}"
    client = boto3.client(
        "s3",
        endpoint_url=landing.endpoint_url,
        region_name=landing.region_name,
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            # Two attempts in all: botocore's `max_attempts` would count retries after the first.
            retries={"mode": "standard", "total_max_attempts": 2},
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        problem = {"404": "does not exist", "NoSuchBucket": "does not exist"}.get(code)
        problem = problem or {"403": "access denied"}.get(code) or f"refused: {exc}"
        raise ServiceUnreachable(f"{where}: {problem}") from None
    except BotoCoreError as exc:
        raise ServiceUnreachable(f"{where}: unreachable within {timeout}s: {exc}") from None
