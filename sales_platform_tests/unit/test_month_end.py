"""The month-end close after the data is due, and what makes a month final: the cron checked
against the files deadline at load, the schedule's own guard, and the completeness of a month
(days with files must have their fact; days without files are empty and listed)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.definitions import build_definitions
from sales_platform.defs.marts.finality import closed_and_due, files_due, month_completeness
from sales_platform.defs.marts.month_end import build_month_end_schedule, last_day_of
from sales_platform.schemas import product_staging_table
from sales_platform.settings import AutomationSettings, Settings, close_before_deadline

JANUARY = dg.TimeWindow(datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("cron", "due_hour"),
    [
        ("0 2 1 * *", 6),  # the old default: four hours before the last files are due
        ("59 5 1 * *", 6),
        ("0 2 * * *", 6),  # daily: the run on the 1st closes too early
        ("0 7 1 * *", 8),  # fine with the default hour, not with a later deadline
    ],
)
def test_a_close_before_the_files_deadline_is_refused_at_load(tmp_path, cron, due_hour):
    environ = {
        "SALES_PLATFORM_DATA_DIR": str(tmp_path),
        "SALES_PLATFORM_MONTH_END_CRON": cron,
        "SALES_PLATFORM_FILES_DUE_HOUR": str(due_hour),
    }
    with pytest.raises(ValueError) as caught:
        build_definitions(Settings.from_env(environ))
    message = str(caught.value)
    assert "SALES_PLATFORM_MONTH_END_CRON" in message
    assert "SALES_PLATFORM_FILES_DUE_HOUR" in message


@pytest.mark.parametrize(
    ("cron", "due_hour"), [("0 7 1 * *", 6), ("0 6 1 * *", 6), ("30 5 2 * *", 9), ("0 0 2 * *", 23)]
)
def test_a_close_at_or_after_the_deadline_is_accepted(cron, due_hour):
    assert close_before_deadline(cron, due_hour) is None
    AutomationSettings(month_end_cron=cron, files_due_hour=due_hour)


def test_the_default_close_waits_for_the_last_files():
    defaults = AutomationSettings()
    assert defaults.month_end_cron == "0 7 1 * *"
    assert close_before_deadline(defaults.month_end_cron, defaults.files_due_hour) is None


def test_a_close_ticked_before_the_deadline_skips_with_the_reason():
    # Settings refuse such a cron; a tick by hand (the UI's "test schedule") can still ask.
    schedule = build_month_end_schedule(AutomationSettings())
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2023, 2, 1, 5, tzinfo=UTC)
        ) as context,
    ):
        data = schedule.evaluate_tick(context)
    assert not data.run_requests
    assert "2023-01-31" in data.skip_message and "06:00" in data.skip_message
    later = dataclasses.replace(AutomationSettings(), files_due_hour=6)
    assert files_due("2023-01-01", later, datetime(2023, 2, 1, 6, tzinfo=UTC))
    assert not files_due("2023-01-01", later, datetime(2023, 2, 1, 5, 59, tzinfo=UTC))
    assert last_day_of("2024-02-01") == date(2024, 2, 29)


class _Lake:
    """The one lake question the marts ask: which fact partitions exist."""

    def __init__(self, days: set[str]):
        self.days = days

    def existing_partitions(self, asset: str, partitions: list[str]) -> set[str]:
        assert asset == "sales_enriched"
        return self.days & set(partitions)


def _ledger(*days: str) -> sa.Engine:
    engine = sa.create_engine("sqlite://")
    product_staging_table.create(engine)
    now = datetime(2023, 2, 1)
    with engine.begin() as conn:
        for n, day in enumerate(days):
            conn.execute(
                product_staging_table.insert().values(
                    file_name=f"{n}.csv",
                    file_location="x",
                    bucket="b",
                    object_key=f"sales_data/{day}/{n}.csv",
                    key_hash=str(n),
                    etag="e",
                    business_date=date.fromisoformat(day),
                    status="I" if n else "E",
                    created_date=now,
                    updated_date=now,
                )
            )
    return engine


def test_a_day_with_files_and_no_fact_makes_the_month_incomplete():
    done = month_completeness(
        _Lake({"2023-01-02"}),
        _ledger("2023-01-02", "2023-01-03"),
        JANUARY,
        now=datetime(2023, 3, 1, tzinfo=UTC),
    )
    assert not done.complete
    assert done.missing_days == ["2023-01-03"]
    assert len(done.empty_days) == 29 and "2023-01-03" not in done.empty_days


def test_the_demo_month_seven_days_of_files_is_complete_and_lists_the_empty_days():
    # `make demo`: January 2023 with files for 7 days, each built into the fact.
    seven = [f"2023-01-{d:02d}" for d in range(1, 8)]
    done = month_completeness(
        _Lake(set(seven)), _ledger(*seven), JANUARY, now=datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert done.complete and done.missing_days == []
    assert done.empty_days == [f"2023-01-{d:02d}" for d in range(8, 32)]


def test_the_month_to_date_stops_at_today():
    done = month_completeness(
        _Lake(set()), _ledger(), JANUARY, now=datetime(2023, 1, 10, 12, tzinfo=UTC)
    )
    assert done.days[-1] == "2023-01-10" and len(done.empty_days) == 10


def test_a_closed_month_is_final_only_once_its_last_files_are_due():
    # What the mart sensor tags final: between midnight and the deadline the month has closed,
    # but the 31st's files may still come.
    defaults = AutomationSettings()
    assert not closed_and_due("2023-01-01", datetime(2023, 1, 31, 23, tzinfo=UTC), defaults)
    assert not closed_and_due("2023-01-01", datetime(2023, 2, 1, 5, 59, tzinfo=UTC), defaults)
    assert closed_and_due("2023-01-01", datetime(2023, 2, 1, 6, tzinfo=UTC), defaults)
