"""What the UI shows for the files that landed and for a mart's months (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sales_platform.defs.ingest.observations import DATA_VERSION_TAG, files_landed_event
from sales_platform.defs.marts.plots import month_figures, plot_metadata
from sales_platform.demo_cli import demo_days
from sales_platform.settings import AutomationSettings
from sales_platform.storage.object_store import StoredObject

NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)


def _obj(key: str, etag: str, size: int = 10) -> StoredObject:
    return StoredObject(key, size, etag, NOW)


def test_landed_files_event_names_files_sizes_and_a_version_that_follows_the_content():
    day = "sales_data/2026-11-30"
    files = [_obj(f"{day}/b.csv", "e2", 7), _obj(f"{day}/a.csv", "e1")]
    event = files_landed_event(date(2026, 11, 30), files)
    assert event.partition == "2026-11-30"
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["files"] == 2 and meta["bytes"] == 17
    assert meta["sizes"] == {f"{day}/a.csv": 10, f"{day}/b.csv": 7}
    assert event.tags[DATA_VERSION_TAG] == meta["data_version"]
    # Same files in another order: same version; a re-upload (new ETag): a new version.
    assert files_landed_event("2026-11-30", files[::-1]).tags == event.tags
    changed = [files[0], _obj(f"{day}/a.csv", "e9")]
    assert files_landed_event("2026-11-30", changed).tags != event.tags


def test_month_figures_are_per_month_and_exact():
    rows = [
        {"sales_month": "2026-11", "total_sales": Decimal("10.10"), "incentive": Decimal("0.10")},
        {"sales_month": "2026-11", "total_sales": Decimal("5.00"), "incentive": Decimal("0.00")},
        {"sales_month": "2026-12", "total_sales": Decimal("1.01"), "incentive": Decimal("0.01")},
    ]
    figures = month_figures(rows)
    assert set(figures) == {"2026-11-01", "2026-12-01"}
    meta = plot_metadata(figures["2026-11-01"])
    assert meta["month_total_sales"].value == "15.10" and meta["month_total_sales_plot"] == 15.1
    assert meta["incentive_paid"].value == "0.10" and meta["month_rows"] == 2
    customers = month_figures([{"sales_date_month": date(2026, 11, 1), "total_sales": Decimal(3)}])
    assert "incentive_paid" not in plot_metadata(customers["2026-11-01"])


def test_demo_days_cover_every_day_the_overdue_check_looks_at():
    automation = AutomationSettings()
    # Before the 06:00 deadline the check still looks at the day 8 days back: one more day.
    early = demo_days(NOW, automation)
    assert early[-1] == date(2026, 11, 30) and early[0] == date(2026, 11, 23)
    late = demo_days(NOW.replace(hour=7), automation)
    assert late[0] == date(2026, 11, 24) and len(late) == 7
