"""Platform settings from the environment (docs/architecture.md §5): the one place reading them.

Secrets (database URLs, the master key) are not read here: resources receive them as Dagster
`EnvVar`s, resolved when a run starts, so they never appear in definitions or the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dagster._utils.schedules import is_valid_cron_string

ENVIRONMENTS = ("local", "prod")

MONTH_END_CRON_VAR = "SALES_PLATFORM_MONTH_END_CRON"
FILES_DUE_HOUR_VAR = "SALES_PLATFORM_FILES_DUE_HOUR"
OVERDUE_LOOKBACK_VAR = "SALES_PLATFORM_OVERDUE_LOOKBACK_DAYS"


@dataclass(frozen=True)
class AutomationSettings:
    """When the platform expects things to happen, in UTC: the month-end close and the file
    deadline. They become part of the definitions (a schedule's cron is static), so they are read
    when the code location loads, not per run."""

    # 02:00 on the 1st: after the last day's files (due by files_due_hour) had their chance.
    month_end_cron: str = "0 2 1 * *"
    # A business day's files are due by this hour (UTC) of the following day.
    files_due_hour: int = 6
    # How many due days the overdue check looks back over, so a gap stays visible for a week.
    overdue_lookback_days: int = 7

    def __post_init__(self) -> None:
        if not is_valid_cron_string(self.month_end_cron):
            raise ValueError(f"{MONTH_END_CRON_VAR}: not a cron string: {self.month_end_cron!r}")
        if not 0 <= self.files_due_hour <= 23:
            raise ValueError(f"{FILES_DUE_HOUR_VAR} must be 0..23, not {self.files_due_hour}")
        if self.overdue_lookback_days < 1:
            raise ValueError(f"{OVERDUE_LOOKBACK_VAR} must be at least 1")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AutomationSettings:
        environ = dict(os.environ if environ is None else environ)
        defaults = cls()
        return cls(
            month_end_cron=environ.get(MONTH_END_CRON_VAR) or defaults.month_end_cron,
            files_due_hour=int(environ.get(FILES_DUE_HOUR_VAR) or defaults.files_due_hour),
            overdue_lookback_days=int(
                environ.get(OVERDUE_LOOKBACK_VAR) or defaults.overdue_lookback_days
            ),
        )


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    s3_bucket: str | None
    s3_endpoint_url: str | None
    lake_uri: str
    landing_uri: str
    # Names of the SALES_PLATFORM_* variables that are set (values of secrets are not kept here).
    configured: frozenset[str] = frozenset()
    automation: AutomationSettings = field(default_factory=AutomationSettings)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        env = environ.get("SALES_PLATFORM_ENV", "local")
        if env not in ENVIRONMENTS:
            raise ValueError(f"SALES_PLATFORM_ENV must be one of {ENVIRONMENTS}, not {env!r}")
        data_dir = Path(environ.get("SALES_PLATFORM_DATA_DIR", ".data")).resolve()
        bucket = environ.get("SALES_PLATFORM_S3_BUCKET") or None
        if env == "prod":
            if not bucket:
                raise ValueError("SALES_PLATFORM_ENV=prod needs SALES_PLATFORM_S3_BUCKET")
            landing = f"s3://{bucket}"
            lake_default = f"s3://{bucket}/lake"
        else:
            landing = str(data_dir / "bucket")
            lake_default = str(data_dir / "lake")
        return cls(
            env=env,
            data_dir=data_dir,
            s3_bucket=bucket,
            s3_endpoint_url=environ.get("SALES_PLATFORM_S3_ENDPOINT_URL") or None,
            lake_uri=environ.get("SALES_PLATFORM_LAKE_URI") or lake_default,
            landing_uri=landing,
            configured=frozenset(k for k, v in environ.items() if k.startswith("SALES_") and v),
            automation=AutomationSettings.from_env(environ),
        )

    def local_db_url(self, name: str) -> str:
        return f"sqlite:///{self.data_dir / f'{name}.db'}"
