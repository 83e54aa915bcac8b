"""`sales-platform`: generate data, run the pipeline in-process, and print the marts."""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from sales_platform.files_cli import add_files_commands
from sales_platform.lake_cli import add_lake_commands
from sales_platform.secrets_cli import add_db_commands, add_secrets_commands
from sales_platform.serve import add_serve_command
from sales_platform.settings import Settings
from sales_platform.spark_cli import add_spark_commands


def _resources(settings: Settings, *keys: str):
    """Resolved resources of the configured environment (EnvVars read now, at run time)."""
    from sales_platform.defs.resources import build_resources

    every = build_resources(settings)
    return dg.build_resources({k: every[k] for k in keys})


def _instance() -> dg.DagsterInstance:
    # With DAGSTER_HOME the runs are recorded where `dagster dev` (make ui) will show them.
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _months(start: date, end: date) -> tuple[date, date]:
    return start.replace(day=1), end.replace(day=1)


def materialize(
    start: date,
    end: date,
    settings: Settings | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Run the daily assets for start..end as one run, then the marts of the months touched.

    Raises when a run fails: a failure is never reported as success.
    """
    from sales_platform.definitions import build_definitions

    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    defs = build_definitions(settings or Settings.from_env())
    instance = instance or _instance()
    first_month, last_month = _months(start, end)
    plan = [
        ("daily_sales_job", start, end),
        ("monthly_marts_job", first_month, last_month),
    ]
    results = []
    for job_name, first, last in plan:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
            },
        )
        results.append(result)
    return results


def print_marts(month: date, settings: Settings | None = None, limit: int = 10) -> None:
    """Print the month's marts: top customers (no contact details) and every seller."""
    from sales_platform.schemas import customers_data_mart_table as cm
    from sales_platform.schemas import sales_team_data_mart_table as sm

    with _resources(settings or Settings.from_env(), "warehouse_db") as res:
        engine = res.warehouse_db.engine()
        with engine.connect() as conn:
            customers = conn.execute(
                sa.select(
                    cm.c.customer_id,
                    cm.c.full_name,
                    cm.c.total_sales,
                    cm.c.coupon_tier,
                    cm.c.discount_percent,
                    cm.c.coupon_code,
                )
                .where(cm.c.sales_date_month == month.replace(day=1))
                .order_by(cm.c.total_sales.desc(), cm.c.customer_id)
                .limit(limit)
            ).all()
            customer_count = conn.execute(
                sa.select(sa.func.count(), sa.func.sum(cm.c.total_sales)).where(
                    cm.c.sales_date_month == month.replace(day=1)
                )
            ).one()
            sellers = conn.execute(
                sa.select(
                    sm.c.store_id,
                    sm.c.sales_rank,
                    sm.c.sales_person_id,
                    sm.c.full_name,
                    sm.c.total_sales,
                    sm.c.incentive,
                )
                .where(sm.c.sales_month == f"{month:%Y-%m}")
                .order_by(sm.c.store_id, sm.c.sales_rank, sm.c.sales_person_id)
            ).all()
    print(
        f"\ncustomers_data_mart {month:%Y-%m}: {customer_count[0]} customers, "
        f"total {customer_count[1]} (top {limit})"
    )
    _table(["customer_id", "full_name", "total_sales", "tier", "discount_%", "coupon"], customers)
    print(f"\nsales_team_data_mart {month:%Y-%m}: {len(sellers)} sellers")
    _table(["store_id", "rank", "seller_id", "full_name", "total_sales", "incentive"], sellers)


def _table(header: list[str], rows) -> None:
    cells = [header] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _generate(args: argparse.Namespace) -> None:
    from sales_platform.generate import generate

    with _resources(Settings.from_env(), "landing", "source_db") as res:
        summary = generate(
            res.landing.open(),
            res.source_db.engine(),
            start_date=args.start_date,
            days=args.days,
            rows_per_day=args.rows_per_day,
            seed=args.seed,
            files_per_day=args.files_per_day,
            customers=args.customers,
            unknown_key_fraction=args.unknown_key_fraction,
            bad_row_fraction=args.bad_row_fraction,
            bad_file_fraction=args.bad_file_fraction,
            progress=not args.quiet,
        )
    print(
        f"generated {len(summary.files)} file(s), {summary.rows} row(s), "
        f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f}s "
        f"({summary.mb_per_second:.0f} MB/s); {summary.bad_rows} bad row(s), "
        f"{len(summary.bad_files)} bad file(s)"
    )


def _materialize(args: argparse.Namespace) -> None:
    started = time.monotonic()
    results = materialize(args.start, args.end)
    print(f"{len(results)} run(s) succeeded in {time.monotonic() - started:.1f}s")
    if args.show:
        print_marts(args.end)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sales-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic landing files and source tables")
    gen.add_argument("--start-date", type=date.fromisoformat, required=True)
    gen.add_argument("--days", type=int, default=1)
    gen.add_argument("--rows-per-day", type=int, default=10_000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--files-per-day", type=int, default=1)
    gen.add_argument("--customers", type=int, default=500)
    gen.add_argument("--unknown-key-fraction", type=float, default=0.0)
    gen.add_argument("--bad-row-fraction", type=float, default=0.0)
    gen.add_argument("--bad-file-fraction", type=float, default=0.0)
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    mat = sub.add_parser("materialize", help="run the daily assets and the months' marts")
    mat.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    mat.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    mat.add_argument("--show", action="store_true", help="print the marts of the last month")
    mat.set_defaults(func=_materialize)

    show = sub.add_parser("show-marts", help="print both marts for a month")
    show.add_argument("--month", type=date.fromisoformat, required=True, help="any day of it")
    show.set_defaults(func=lambda a: print_marts(a.month))
    add_secrets_commands(sub)
    add_db_commands(sub)
    add_serve_command(sub)
    add_files_commands(sub)
    add_lake_commands(sub)
    add_spark_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A failed run raises out of here: a traceback and a non-zero exit, never a quiet 0.
    args.func(args)
    return 0
