"""Daily and monthly partitions, UTC, from the first day of the origin's data.

end_offset=1: today and the current month exist as partitions, so a file for today and the
month-to-date report have a home (a sensor request for a missing partition fails its tick).
"""

import dagster as dg

START_DATE = "2023-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1, timezone="UTC")
monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=START_DATE, end_offset=1, timezone="UTC"
)


def has_day(day_key: str) -> bool:
    """Whether a business day (YYYY-MM-DD) is a daily partition right now (today included)."""
    last = daily_partitions.get_last_partition_key()
    return last is not None and START_DATE <= day_key <= last
