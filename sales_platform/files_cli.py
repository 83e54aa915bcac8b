"""`sales-platform files …`: what an operator does to one landing file.

    sales-platform files reprocess KEY --reason TEXT

KEY is the file's landing key (`sales_data/…`) or its copy's key under `sales_data_error/`. The
reason is recorded in the ledger; the file goes back to landing and the next run of its day
loads it even if it looks like a duplicate (every other check still applies). From the UI: launch
the day's `daily_sales_job` with the run tags `sales_platform/reprocess=KEY` and
`sales_platform/reprocess_reason=TEXT`.
"""

from __future__ import annotations

import argparse

import dagster as dg

from sales_platform.settings import Settings


def _reprocess(args: argparse.Namespace) -> None:
    from sales_platform.defs.ingest.daily_load import reprocess
    from sales_platform.defs.resources import build_resources
    from sales_platform.storage.ledger import Ledger

    every = build_resources(Settings.from_env())
    with dg.build_resources({k: every[k] for k in ("landing", "warehouse_db")}) as res:
        store = res.landing.open()
        key = reprocess(store, Ledger(res.warehouse_db.engine()), args.key, args.reason)
    print(f"{key} is back in landing; the next run of its day loads it")


def add_files_commands(subparsers) -> None:
    files = subparsers.add_parser("files", help="operate on one landing file")
    sub = files.add_subparsers(dest="files_command", required=True)
    again = sub.add_parser(
        "reprocess", help="load a rejected file on the next run of its day (reason recorded)"
    )
    again.add_argument("key", help="landing key, or its key under sales_data_error/")
    again.add_argument("--reason", required=True, help="why: recorded in the ledger")
    again.set_defaults(func=_reprocess)
