"""`sales-platform demo`: a new user's first hour, on recent days, as production would run them.

Generates the last complete days before today (UTC), records what landed for each day on
`raw_sales_files`, then launches the daily load, the months' marts and the files-overdue check
through the code location (launch.py), so the UI shows them like the daemon's runs, and the
overdue check and the freshness policy are green right after.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta

from sales_platform.defs.fact.freshness import due_days
from sales_platform.defs.partitions import START_DATE
from sales_platform.launch import add_spark_per_run_option
from sales_platform.settings import AutomationSettings

DEMO_DAYS = 7


def demo_days(now: datetime, automation: AutomationSettings, days: int = DEMO_DAYS) -> list[date]:
    """The last `days` complete days before today, reaching back over every day the overdue
    check looks at (before the deadline hour it still checks the day before those)."""
    last = now.astimezone(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    due = due_days(now, automation.files_due_hour, automation.overdue_lookback_days)
    if due:
        first = min(first, due[0])
    first = max(first, date.fromisoformat(START_DATE))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def record_landed_files(instance, store, days: list[date]) -> None:
    """One event per day on raw_sales_files: the files that landed, as the landing sensor
    reports them."""
    from sales_platform.defs.ingest.observations import files_landed_event
    from sales_platform.storage.landing import current_files

    found = current_files(store, days)
    for day in days:
        objects = [f.obj for f in found.get(day, [])]
        if objects:
            instance.report_runless_asset_event(files_landed_event(day, objects))


def _demo(args: argparse.Namespace) -> None:
    from sales_platform.cli import _resources, print_marts, range_plan, require_instance
    from sales_platform.generate import generate
    from sales_platform.launch import run_in_code_location
    from sales_platform.preflight import load_settings

    settings = load_settings()
    days = demo_days(datetime.now(UTC), settings.automation, args.days)
    started = time.monotonic()
    with require_instance() as instance:
        with _resources(settings, "landing", "source_db") as res:
            store = res.landing.open()
            summary = generate(
                store,
                res.source_db.engine(),
                start_date=days[0],
                days=len(days),
                rows_per_day=args.rows_per_day,
                seed=args.seed,
                bad_row_fraction=args.bad_row_fraction,
                progress=not args.quiet,
            )
            print(
                f"generated {summary.rows} row(s) in {len(summary.files)} file(s), "
                f"{days[0]}..{days[-1]}"
            )
            record_landed_files(instance, store, days)
        plan = [*range_plan(days[0], days[-1]), ("files_overdue_check_job", {})]
        runs = run_in_code_location(instance, plan, args.timeout, args.spark_per_run)
    print(
        f"{len(runs)} run(s) succeeded in {time.monotonic() - started:.1f}s; `make ui` shows them"
    )
    print_marts(days[-1], settings)


def add_demo_command(subparsers) -> None:
    """Register `demo` on the CLI's subparsers."""
    demo = subparsers.add_parser(
        "demo", help="generate the last days before today and run them as production would"
    )
    demo.add_argument("--days", type=int, default=DEMO_DAYS, help=f"default {DEMO_DAYS}")
    demo.add_argument("--rows-per-day", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--bad-row-fraction", type=float, default=0.0, help="rows to quarantine")
    demo.add_argument("--timeout", type=float, default=3600, help="seconds each run may take")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    add_spark_per_run_option(demo)
    demo.set_defaults(func=_demo)
