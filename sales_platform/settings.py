"""Platform settings from the environment (docs/architecture.md §5): the one place reading them.

Secrets (database URLs, the master key) are not read here: resources receive them as Dagster
`EnvVar`s, resolved when a run starts, so they never appear in definitions or the UI.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from croniter import croniter

ENVIRONMENTS = ("local", "prod")

MONTH_END_CRON_VAR = "SALES_PLATFORM_MONTH_END_CRON"
FILES_DUE_HOUR_VAR = "SALES_PLATFORM_FILES_DUE_HOUR"
OVERDUE_LOOKBACK_VAR = "SALES_PLATFORM_OVERDUE_LOOKBACK_DAYS"


def is_valid_cron(cron: str) -> bool:
    """Five fields (minute resolution, as Dagster schedules take), and a valid expression."""
    return len(cron.split()) == 5 and croniter.is_valid(cron)


def close_before_deadline(cron: str, files_due_hour: int) -> datetime | None:
    """The first firing of the month-end close that comes before the deadline of the files of
    the month it closes (the 1st at files_due_hour), over four years (a leap-year cycle);
    None when every firing waits for the deadline.

    A close at time t publishes the month before t's month; its last day's files are due at
    files_due_hour on t's 1st. The first firing at or after each 1st at 00:00 tells it all.
    """
    for n in range(48):
        year, month = 2024 + n // 12, n % 12 + 1
        start = datetime(year, month, 1, tzinfo=UTC)
        fire = croniter(cron, start - timedelta(seconds=1)).get_next(datetime)
        if fire < start + timedelta(hours=files_due_hour):
            return fire
    return None


@dataclass(frozen=True)
class AutomationSettings:
    """When the platform expects things to happen, in UTC: the month-end close and the file
    deadline. They become part of the definitions (a schedule's cron is static), so they are read
    when the code location loads, not per run."""

    # 07:00 on the 1st: one hour after the month's last day's files are due (files_due_hour),
    # so the final report includes them. A cron firing before that deadline is refused.
    month_end_cron: str = "0 7 1 * *"
    # A business day's files are due by this hour (UTC) of the following day.
    files_due_hour: int = 6
    # How many due days the overdue check looks back over, so a gap stays visible for a week.
    overdue_lookback_days: int = 7

    def __post_init__(self) -> None:
        if not is_valid_cron(self.month_end_cron):
            raise ValueError(f"{MONTH_END_CRON_VAR}: not a cron string: {self.month_end_cron!r}")
        if not 0 <= self.files_due_hour <= 23:
            raise ValueError(f"{FILES_DUE_HOUR_VAR} must be 0..23, not {self.files_due_hour}")
        early = close_before_deadline(self.month_end_cron, self.files_due_hour)
        if early is not None:
            raise ValueError(
                f"{MONTH_END_CRON_VAR}={self.month_end_cron!r} fires at {early:%Y-%m-%d %H:%M} "
                f"UTC, before the previous month's last files are due "
                f"({FILES_DUE_HOUR_VAR}={self.files_due_hour}, i.e. "
                f"{early:%Y-%m-%d} {self.files_due_hour:02d}:00 UTC): the final report would "
                "miss them. Fire the close at or after the deadline, e.g. "
                f"'0 {min(self.files_due_hour + 1, 23)} 1 * *'."
            )
        if self.overdue_lookback_days < 1:
            raise ValueError(f"{OVERDUE_LOOKBACK_VAR} must be at least 1")

    def files_deadline(self, day: date) -> datetime:
        """When the files of business day `day` are due (UTC)."""
        return datetime.combine(day + timedelta(days=1), time(self.files_due_hour), UTC)

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


def parse_spark_conf(text: str | None) -> dict[str, str]:
    """Extra Spark settings from text: a JSON object, or `key=value` items one per line, or on
    one line separated by commas. There an item that is not `spark.key=...` continues the
    previous value, so `spark.jars.packages=a:b:1,c:d:2` stays one setting."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Spark settings: not a JSON object ({exc})") from None
        if not isinstance(loaded, dict):
            raise ValueError("Spark settings: JSON must be an object of setting -> value")
        conf = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in loaded.items()}
    else:
        conf = {}
        last = None
        lines = "\n" in text
        for n, item in enumerate(text.splitlines() if lines else text.split(","), start=1):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if sep and re.fullmatch(r"[A-Za-z][\w.\-]*", key.strip()):
                last = key.strip()
                conf[last] = value.strip()
            elif last is not None and not lines:
                conf[last] = f"{conf[last]},{item}"
            else:
                # The item is not echoed: it may be a credential's value.
                raise ValueError(f"Spark settings: item {n} is not key=value")
    for key in conf:
        if not key.startswith("spark."):
            raise ValueError(f"Spark settings: {key!r} is not a Spark setting (spark.*)")
    return {k: str(v) for k, v in conf.items()}


SPARK_REMOTE_VAR = "SALES_PLATFORM_SPARK_REMOTE"
DEFAULT_CONNECT_PORT = 15002  # Spark Connect's own, when a URL names no port
SPARK_MASTER_VAR = "SALES_PLATFORM_SPARK_MASTER"
SPARK_CONF_VAR = "SALES_PLATFORM_SPARK_CONF"
SPARK_SHARED_DIR_VAR = "SALES_PLATFORM_SPARK_SHARED_DIR"


@dataclass(frozen=True)
class SparkSettings:
    """Which Spark engine runs the pipeline (README, Spark engines): embedded `local[*]` by
    default, a cluster master (the run is the driver), or a Spark Connect server (the run is a
    client). The remote URL and the extra settings may carry a token or a credential, so
    resources get them as EnvVars; here they are parsed only to fail early."""

    remote: str | None = None
    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)
    # Where landing copies and lake writes are staged when the lake is on S3: a folder the run
    # and every Spark process see at the same path. None: the system temp (embedded engine).
    shared_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.remote is not None:
            if not self.remote.startswith("sc://"):
                raise ValueError(f"{SPARK_REMOTE_VAR} must be a Spark Connect URL (sc://...)")
            if self.master != "local[*]":
                raise ValueError(
                    f"set {SPARK_REMOTE_VAR} or {SPARK_MASTER_VAR}, not both: with Spark Connect "
                    "the server's own master runs the jobs"
                )

    @property
    def engine(self) -> str:
        if self.remote:
            return "connect"
        return "embedded" if self.master.startswith("local") else "cluster"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SparkSettings:
        environ = dict(os.environ if environ is None else environ)
        shared = environ.get(SPARK_SHARED_DIR_VAR)
        return cls(
            remote=environ.get(SPARK_REMOTE_VAR) or None,
            master=environ.get(SPARK_MASTER_VAR) or cls.master,
            conf=parse_spark_conf(environ.get(SPARK_CONF_VAR)),
            shared_dir=Path(shared).resolve() if shared else None,
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
    spark: SparkSettings = field(default_factory=SparkSettings)

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
            spark=SparkSettings.from_env(environ),
        )

    def local_db_url(self, name: str) -> str:
        return f"sqlite:///{self.data_dir / f'{name}.db'}"
