"""`sales-platform lake …`: upkeep of the Iceberg lake.

sales-platform lake vacuum [--older-than 7d] [--dry-run]
    expire snapshots older than the threshold (never a table's current one), delete the data
    and metadata files no remaining snapshot names, and the uploads of crashed runs
sales-platform lake migrate
    register a private-format lake (`<asset>/<partition>/_manifest.json`) as Iceberg tables,
    data left in place, rows and totals verified per partition; safe to rerun
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from sales_platform.settings import Settings
from sales_platform.storage.lake_vacuum import parse_duration, vacuum

DEFAULT_OLDER_THAN = "7d"


def _lake_resources(settings: Settings):
    from sales_platform.cli import _resources

    return _resources(settings, "lake")


def run_vacuum(lake, older_than: str = DEFAULT_OLDER_THAN, dry_run: bool = False, log=print):
    reports = vacuum(lake, parse_duration(older_than), dry_run=dry_run)
    for report in reports:
        log(("[dry run] " if dry_run else "") + str(report))
        for key in report.deleted:
            log(f"  {'would delete' if dry_run else 'deleted'} {key}")
    if not reports:
        log("the lake has no tables yet: nothing to vacuum")
    return reports


def _vacuum(args: argparse.Namespace) -> None:
    with _lake_resources(Settings.from_env()) as res:
        run_vacuum(res.lake.lake(), args.older_than, args.dry_run)


def _migrate(args: argparse.Namespace) -> None:
    from sales_platform.storage.lake_migrate import migrate

    with _lake_resources(Settings.from_env()) as res, tempfile.TemporaryDirectory() as scratch:
        results = migrate(res.lake.lake(), Path(scratch))
    for result in results:
        print(result)
    if not results:
        print("no private-format partition found: nothing to migrate")


def add_lake_commands(subparsers) -> None:
    """Register `lake vacuum | migrate` on the CLI's subparsers."""
    lake = subparsers.add_parser("lake", help="upkeep of the Iceberg lake")
    sub = lake.add_subparsers(dest="lake_command", required=True)
    vac = sub.add_parser(
        "vacuum", help="expire old snapshots and delete the files no snapshot references"
    )
    vac.add_argument(
        "--older-than",
        default=DEFAULT_OLDER_THAN,
        help="keep snapshots and unreferenced files younger than this (7d, 12h, 30m; default 7d)",
    )
    vac.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    vac.set_defaults(func=_vacuum)
    sub.add_parser(
        "migrate", help="register a private-format lake as Iceberg tables (data left in place)"
    ).set_defaults(func=_migrate)
