"""`sales-platform`: generate data, run the pipeline through the code location, show marts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

import dagster as dg
import sqlalchemy as sa

from sales_platform.demo_cli import add_demo_command
from sales_platform.files_cli import add_files_commands
from sales_platform.lake_cli import add_lake_commands
from sales_platform.launch import add_spark_per_run_option
from sales_platform.preflight import SettingsError, check_services, load_settings
from sales_platform.secrets_cli import add_db_commands, add_secrets_commands
from sales_platform.serve import add_serve_command
from sales_platform.settings import Settings
from sales_platform.spark_cli import add_spark_commands
from sales_platform.storage.ciphers import MasterKeyError

# Dagster's run tags for a single run over a partition range (as a single-run backfill sets
# them); Dagster does not export constants for them.
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


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
    """Run the daily assets for start..end as one run, then the marts of the months touched,
    in this process (tests; the CLI launches through the code location, see launch.py).

    Raises when a run fails: a failure is never reported as success.
    """
    from sales_platform.definitions import build_definitions

    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    defs = build_definitions(settings or Settings.from_env())
    instance = instance or _instance()
    # The same runs the CLI launches through the code location, executed here.
    results = []
    for job_name, tags in range_plan(start, end):
        results.append(
            defs.resolve_job_def(job_name).execute_in_process(instance=instance, tags=tags)
        )
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

    with _resources(load_settings(), "landing", "source_db") as res:
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


def range_plan(start: date, end: date) -> list[tuple[str, dict[str, str]]]:
    """The runs that build start..end: the days as one run, then the months they touched."""
    if end < start:
        raise SettingsError(f"--to {end} is before --from {start}")
    first_month, last_month = _months(start, end)
    return [
        (
            job,
            {
                ASSET_PARTITION_RANGE_START_TAG: a.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: b.isoformat(),
            },
        )
        for job, a, b in (
            ("daily_sales_job", start, end),
            ("monthly_marts_job", first_month, last_month),
        )
    ]


def require_instance() -> dg.DagsterInstance:
    if not os.environ.get("DAGSTER_HOME"):
        raise SettingsError(
            "DAGSTER_HOME is not set: point it at the folder holding the instance's dagster.yaml "
            "(`make demo` uses .data/dagster_home)"
        )
    return dg.DagsterInstance.get()


def _materialize(args: argparse.Namespace) -> None:
    from sales_platform.launch import run_in_code_location

    check_services(load_settings())
    plan = range_plan(args.start, args.end)
    started = time.monotonic()
    with require_instance() as instance:
        runs = run_in_code_location(instance, plan, args.timeout, args.spark_per_run)
    print(f"{len(runs)} run(s) succeeded in {time.monotonic() - started:.1f}s")
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
    mat.add_argument(
        "--timeout", type=float, default=3600, help="seconds each run may take (default 3600)"
    )
    add_spark_per_run_option(mat)
    mat.set_defaults(func=_materialize)

    show = sub.add_parser("show-marts", help="print both marts for a month")
    show.add_argument("--month", type=date.fromisoformat, required=True, help="any day of it")
    show.set_defaults(func=lambda a: print_marts(a.month, load_settings()))
    add_demo_command(sub)
    add_secrets_commands(sub)
    add_db_commands(sub)
    add_serve_command(sub)
    add_files_commands(sub)
    add_lake_commands(sub)
    add_spark_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sales_platform.launch import RunFailed

    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except (SettingsError, MasterKeyError) as exc:
        # A setting to fix: one line that says how, not a stack trace.
        print(f"sales-platform: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        # A failed run is never reported as success; its logs are in the UI.
        print(f"sales-platform: {exc}", file=sys.stderr)
        return 1
    return 0
