"""When the platform expects things to happen, in UTC: the month-end close and the file deadline.

Read from the environment like every other setting (DESIGN.md §7). Cron strings and deadlines
become part of the definitions (a schedule's cron is static), so they are read when the code
location loads, not per run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dagster._utils.schedules import is_valid_cron_string

MONTH_END_CRON_VAR = "SALES_PLATFORM_MONTH_END_CRON"
FILES_DUE_HOUR_VAR = "SALES_PLATFORM_FILES_DUE_HOUR"
OVERDUE_LOOKBACK_VAR = "SALES_PLATFORM_OVERDUE_LOOKBACK_DAYS"


@dataclass(frozen=True)
class AutomationSettings:
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
