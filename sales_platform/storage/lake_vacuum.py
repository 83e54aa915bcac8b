"""Vacuum of the Iceberg lake: expire old snapshots, then delete the files nothing references.

pyiceberg expires snapshots in the metadata only and has no orphan-file removal, so this module
does both. Safety: the table is re-read from the catalog *after* its files are listed, so a
file a concurrent commit made current is seen as referenced; a file no snapshot names yet (a
run between upload and commit) is kept while it is younger than `MIN_ORPHAN_AGE`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from sales_platform.storage import iceberg

# Longer than any run takes from its upload to its commit.
MIN_ORPHAN_AGE = dt.timedelta(hours=6)


@dataclass
class TableVacuum:
    table: str
    expired_snapshots: list[int] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # Partitions of the old private format not yet registered: kept, `lake migrate` first.
    unmigrated: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"{self.table}: {len(self.expired_snapshots)} snapshot(s) expired, "
            f"{len(self.deleted)} file(s) deleted"
        )
        if self.unmigrated:
            text += (
                f"; {len(self.unmigrated)} old-format partition(s) kept, not migrated yet "
                "(run `sales-platform lake migrate`)"
            )
        return text


def referenced(table: Table, skip: set[int] = frozenset()) -> set[str]:
    """Every file the table's metadata names: its metadata files, and the manifest lists,
    manifests and data files of each snapshot not in `skip`."""
    meta = table.metadata
    files = {table.metadata_location, *(e.metadata_file for e in meta.metadata_log)}
    for snapshot in meta.snapshots:
        if snapshot.snapshot_id in skip:
            continue
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            files.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                files.add(entry.data_file.file_path)
    return files


def vacuum(
    lake,
    older_than: dt.timedelta,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    min_orphan_age: dt.timedelta = MIN_ORPHAN_AGE,
) -> list[TableVacuum]:
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - older_than
    orphan_cutoff = now - max(older_than, min_orphan_age)
    reports = []
    for ident in sorted(lake.catalog.list_tables(iceberg.NAMESPACE)):
        name = ".".join(ident)
        asset = ident[-1]
        table = lake.catalog.load_table(name)
        report = TableVacuum(name)
        current = table.current_snapshot()
        report.expired_snapshots = [
            s.snapshot_id
            for s in table.snapshots()
            if s.timestamp_ms < cutoff.timestamp() * 1000
            and (current is None or s.snapshot_id != current.snapshot_id)
        ]
        if report.expired_snapshots and not dry_run:
            _expire(lake, name, report.expired_snapshots)
        # List first, then read the catalog: anything committed meanwhile is in `keep`.
        listed = list(lake.store.list(f"{asset}/"))
        table = lake.catalog.load_table(name)
        keep = referenced(table, set(report.expired_snapshots) if dry_run else set())
        report.unmigrated = _protect_unmigrated(lake, asset, keep)
        for obj in listed:
            uri = lake.store.uri(obj.key)
            if uri in keep or _in(uri, keep) or obj.last_modified >= orphan_cutoff:
                continue
            report.deleted.append(obj.key)
        if report.deleted and not dry_run:
            lake.store.delete(report.deleted)
        reports.append(report)
    return reports


def _expire(lake, name: str, snapshot_ids: list[int], attempts: int = 5) -> None:
    """Expire the snapshots; a writer committing meanwhile only makes us retry on its metadata."""
    for attempt in range(attempts):
        table = lake.catalog.load_table(name)
        current = table.current_snapshot()
        ids = [
            i
            for i in snapshot_ids
            if table.snapshot_by_id(i) is not None and (current is None or i != current.snapshot_id)
        ]
        if not ids:
            return
        try:
            table.maintenance.expire_snapshots().by_ids(ids).commit()
            return
        except CommitFailedException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _protect_unmigrated(lake, asset: str, keep: set[str]) -> list[str]:
    """Old-format partitions whose files the table does not name yet: add them to `keep`."""
    from sales_platform.storage.lake_migrate import OLD_MANIFEST, old_manifests

    pending = []
    old = old_manifests(lake, asset)
    registered = lake.existing_partitions(asset, [p for p, _ in old]) if old else set()
    for partition, manifest in old:
        uris = {lake.store.uri(k) for k in manifest["files"]}
        if partition not in registered or not uris <= keep:
            pending.append(partition)
            keep |= uris | {lake.store.uri(f"{asset}/{partition}/{OLD_MANIFEST}")}
    return pending


def _in(uri: str, keep: set[str]) -> bool:
    # The catalog may spell the scheme s3a:// where the store says s3://, or the reverse.
    if uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://") :] in keep
    return False


def parse_duration(text: str) -> dt.timedelta:
    """`7d`, `12h`, `30m`, `0s` (a number alone is days)."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "w": "weeks"}
    text = text.strip().lower()
    unit = text[-1] if text[-1] in units else "d"
    number = text[:-1] if text[-1] in units else text
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m)") from None
    if value < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return dt.timedelta(**{units[unit]: value})
