"""One-time migration of the private-format lake to Iceberg tables, the data left in place.

The old format: `<asset>/<partition>/_manifest.json` naming the partition's current files
(`<asset>/<partition>/<version>/part-*.parquet`). Each partition's current files are registered
as the partition of the asset's Iceberg table; row counts and money totals per partition are
compared before (the manifest's files) and after (the table's current snapshot). A partition
whose table already holds exactly those files is skipped, so a rerun does nothing new. This
module is the only reader of the old format left.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from sales_platform.schemas import LAKE_SCHEMAS
from sales_platform.storage.lake import Lake

OLD_MANIFEST = "_manifest.json"
# The money column summed per partition to prove nothing changed; row counts for the others.
MONEY = {"raw_sales": "total_cost", "sales_enriched": "total_cost"}


class MigrationMismatch(RuntimeError):
    """A partition's rows or totals differ between the old manifest and the Iceberg table."""


@dataclass
class PartitionMigration:
    asset: str
    partition: str
    files: int
    rows: int
    total: Decimal | None
    status: str  # "registered" | "already registered"

    def __str__(self) -> str:
        total = "" if self.total is None else f", total {self.total}"
        return (
            f"{self.asset} {self.partition}: {self.files} file(s), {self.rows} row(s){total} "
            f"- {self.status}"
        )


def old_manifests(lake: Lake, asset: str) -> list[tuple[str, dict]]:
    """(partition, manifest) of every old-format partition of the asset."""
    out = []
    for obj in lake.store.list(f"{asset}/"):
        parts = obj.key.split("/")
        if len(parts) == 3 and parts[2] == OLD_MANIFEST:
            out.append((parts[1], json.loads(lake.store.get_bytes(obj.key))))
    return sorted(out)


def _figures(paths: list[Path], money: str | None) -> tuple[int, Decimal | None]:
    rows, total = 0, Decimal("0") if money else None
    for path in paths:
        table = pq.read_table(path)
        rows += table.num_rows
        if money and table.num_rows:
            total += pc.sum(table.column(money)).as_py() or Decimal("0")
    return rows, total


def migrate(lake: Lake, scratch: Path) -> list[PartitionMigration]:
    results = []
    for asset, schema in LAKE_SCHEMAS.items():
        for partition, manifest in old_manifests(lake, asset):
            folder = scratch / uuid.uuid4().hex
            folder.mkdir(parents=True)
            try:
                results.append(_migrate_one(lake, asset, schema, partition, manifest, folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return results


def _migrate_one(lake, asset, schema, partition, manifest, folder) -> PartitionMigration:
    keys = list(manifest["files"])
    local = []
    for i, key in enumerate(keys):
        target = folder / f"{i:05d}.parquet"
        lake.store.download(key, target)
        local.append(target)
    money = MONEY.get(asset)
    rows, total = _figures(local, money)
    if rows != manifest["rows"]:
        raise MigrationMismatch(
            f"{asset} {partition}: manifest says {manifest['rows']} rows, files hold {rows}"
        )
    table = lake.table(asset)
    uris = {lake.store.uri(k) for k in keys}
    current = (
        {f.file_path for f in lake.live_files(table, [partition]) if f.record_count > 0}
        if table is not None and partition in lake.existing_partitions(asset, [partition])
        else None
    )
    status = "already registered"
    if current != uris:
        lake.replace(
            asset,
            schema,
            {partition: list(zip(local, keys, strict=True))},
            upload=False,
            write_id=uuid.uuid4().hex,
        )
        status = "registered"
    # After: the table's current files for the partition, read back from the store.
    live = [f for f in lake.live_files(lake.table(asset), [partition]) if f.record_count > 0]
    after_local = []
    for i, f in enumerate(live):
        target = folder / f"after-{i:05d}.parquet"
        lake.store.download(lake.key_of(f.file_path), target)
        after_local.append(target)
    after_rows, after_total = _figures(after_local, money)
    if (after_rows, after_total) != (rows, total):
        raise MigrationMismatch(
            f"{asset} {partition}: before {rows} rows / {total}, after {after_rows} rows / "
            f"{after_total} in {lake.table(asset).name()}"
        )
    return PartitionMigration(asset, partition, len(keys), rows, total, status)
