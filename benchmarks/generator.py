"""Benchmark the synthetic data generator: MB/s of landing CSV written.

    .venv/bin/python benchmarks/generator.py                    # ~500 MB
    .venv/bin/python benchmarks/generator.py --rows-per-day 200000 --days 2

Writes into a temporary LocalObjectStore + SQLite (deleted afterwards unless --keep DIR).
The figure covers the whole `generate` call: source tables, CSV text, files on disk.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from sales_platform.generate import generate
from sales_platform.storage.object_store import LocalObjectStore


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows-per-day", type=int, default=2_100_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--files-per-day", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--unknown-key-fraction", type=float, default=0.0)
    parser.add_argument("--bad-row-fraction", type=float, default=0.0)
    parser.add_argument("--bad-file-fraction", type=float, default=0.0)
    parser.add_argument("--keep", type=Path, default=None, help="write here and keep the output")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        store = LocalObjectStore(root / "store")
        engine = sa.create_engine(f"sqlite:///{root / 'source.sqlite'}")
        summary = generate(
            store,
            engine,
            start_date=date(2023, 1, 1),
            days=args.days,
            rows_per_day=args.rows_per_day,
            seed=args.seed,
            files_per_day=args.files_per_day,
            unknown_key_fraction=args.unknown_key_fraction,
            bad_row_fraction=args.bad_row_fraction,
            bad_file_fraction=args.bad_file_fraction,
            progress=not args.no_progress,
        )
        engine.dispose()
    print(
        f"generator: {summary.bytes / 1e6:.1f} MB, {summary.rows:,} rows, "
        f"{len(summary.files)} files in {summary.seconds:.2f} s = "
        f"{summary.mb_per_second:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
