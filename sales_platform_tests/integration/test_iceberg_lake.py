"""The lake as Iceberg tables: concurrent writers, refused footers, crashes, vacuum, migration.

Staged writes are made with pyarrow (what Spark would stage), so writers can be separate
processes without a JVM each. The catalog is the real MariaDB server (the prod catalog) or a
SQLite file (the local stack).
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from sales_platform.schemas import RAW_SALES_SCHEMA
from sales_platform.storage import iceberg
from sales_platform.storage.database import create_engine
from sales_platform.storage.iceberg import FooterMismatch
from sales_platform.storage.lake import (
    PARTITION_COLUMN,
    Lake,
    LakeConflict,
    StagedWrite,
)
from sales_platform.storage.lake_migrate import migrate
from sales_platform.storage.lake_vacuum import vacuum
from sales_platform.storage.object_store import LocalObjectStore

pytestmark = pytest.mark.integration

ASSET = "raw_sales"
D1, D2 = dt.date(2023, 3, 1), dt.date(2023, 3, 2)
ARROW = to_arrow_schema(RAW_SALES_SCHEMA, timezone="UTC")


def open_lake(root: str, catalog_url: str) -> Lake:
    catalog = iceberg.open_catalog(
        "sql", create_engine(catalog_url), iceberg.file_io_properties(None, None)
    )
    return Lake(LocalObjectStore(Path(root) / "lake"), catalog, Path(root) / "staging")


def sales(day: dt.date, n: int, source: str, price: str = "2.50") -> pa.Table:
    rows = [
        {
            "customer_id": 1,
            "store_id": 1,
            "product_name": "p",
            "sales_date": day,
            "sales_person_id": 1,
            "price": Decimal(price),
            "quantity": 2,
            "total_cost": Decimal(price) * 2,
            "additional_column": None,
            "source_key": source,
            "line_number": i + 2,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=ARROW)


def stage(lake: Lake, tables: dict[str, list[pa.Table]]) -> StagedWrite:
    """What `Lake.stage` leaves on disk: one folder per partition of Parquet files."""
    staged = StagedWrite(ASSET, list(tables), lake._stage(), RAW_SALES_SCHEMA.json())
    for partition, parts in tables.items():
        folder = staged.data / f"{PARTITION_COLUMN}={partition}"
        folder.mkdir(parents=True)
        for i, table in enumerate(parts):
            pq.write_table(table, folder / f"part-{i:05d}.parquet")
    return staged


def day_rows(lake: Lake, day: dt.date) -> list[dict]:
    """The day's rows in the table's current snapshot, read from the files it names."""
    rows = []
    for f in lake.live_files(lake.table(ASSET), [day.isoformat()]):
        path = lake.store.local_path(lake.key_of(f.file_path))
        assert path.exists(), f"the current snapshot names a missing file {path}"
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def _writer(root, url, day, source, rows, barrier, results):
    """One run in its own process: stages its day, waits for the other at the commit."""
    lake = open_lake(root, url)
    original = Lake._commit

    def commit_together(self, *args, **kwargs):
        barrier.wait(timeout=60)
        return original(self, *args, **kwargs)

    Lake._commit = commit_together
    try:
        writes = lake.publish(stage(lake, {day.isoformat(): [sales(day, rows, source)]}))
        results.put((source, "ok", writes[0].snapshot_id))
    except LakeConflict as e:
        results.put((source, "conflict", str(e)))
    except Exception as e:  # reported to the test, which fails on it
        results.put((source, "error", repr(e)))


def _race(root: str, url: str, jobs: list[tuple[dt.date, str, int]]) -> dict[str, tuple]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(root, url, day, source, n, barrier, results))
        for day, source, n in jobs
    ]
    for p in procs:
        p.start()
    out = {}
    for _ in procs:
        source, status, detail = results.get(timeout=180)
        out[source] = (status, detail)
    for p in procs:
        p.join(timeout=60)
    return out


@pytest.fixture(params=["mariadb", "sqlite"])
def catalog_url(request, tmp_path):
    if request.param == "mariadb":
        return request.getfixturevalue("mariadb_url")
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


def test_two_runs_replacing_the_same_day_one_fails_and_the_winners_data_stays(
    tmp_path, catalog_url
):
    lake = open_lake(str(tmp_path), catalog_url)
    lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 4, "old")]}))
    # A day the table already has (a rerun), and one it has not (its first run).
    for day in (D1, D2):
        out = _race(str(tmp_path), catalog_url, [(day, "A", 5), (day, "B", 7)])
        statuses = sorted(status for status, _ in out.values())
        assert statuses == ["conflict", "ok"], out
        [winner] = [s for s, (status, _) in out.items() if status == "ok"]
        [message] = [detail for status, detail in out.values() if status == "conflict"]
        assert "sales_platform.raw_sales" in message and day.isoformat() in message
        rows = day_rows(lake, day)
        assert {r["source_key"] for r in rows} == {winner}
        assert len(rows) == {"A": 5, "B": 7}[winner]


def test_two_runs_replacing_different_days_both_land(tmp_path, catalog_url):
    lake = open_lake(str(tmp_path), catalog_url)
    lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 1, "old")]}))
    out = _race(str(tmp_path), catalog_url, [(D1, "A", 5), (D2, "B", 7)])
    assert {s: status for s, (status, _) in out.items()} == {"A": "ok", "B": "ok"}, out
    assert [r["source_key"] for r in day_rows(lake, D1)] == ["A"] * 5
    assert [r["source_key"] for r in day_rows(lake, D2)] == ["B"] * 7


def test_a_file_whose_footer_names_another_day_is_refused(tmp_path):
    lake = open_lake(str(tmp_path), f"sqlite:///{tmp_path / 'w.db'}")
    lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 3, "good")]}))
    mixed = pa.concat_tables([sales(D1, 2, "bad"), sales(D2, 1, "bad")])
    for parts in ([mixed], [sales(D2, 2, "bad")], [sales(D1, 2, "bad").drop(["sales_date"])]):
        staged = stage(lake, {D1.isoformat(): parts})
        with pytest.raises(FooterMismatch, match="sales_date"):
            lake.publish(staged)
    # Nothing uploaded, the day unchanged.
    assert [r["source_key"] for r in day_rows(lake, D1)] == ["good"] * 3
    assert len(list(lake.store.list(f"{ASSET}/data/"))) == 1


def test_a_crash_between_upload_and_commit_leaves_nothing_visible_and_vacuum_removes_it(
    tmp_path, monkeypatch
):
    lake = open_lake(str(tmp_path), f"sqlite:///{tmp_path / 'w.db'}")
    lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 3, "v1")]}))
    lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 4, "v2")]}))
    before = {o.key for o in lake.store.list(f"{ASSET}/")}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between upload and commit")

    monkeypatch.setattr(Lake, "_commit", killed)
    with pytest.raises(KeyboardInterrupt):
        lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 9, "crashed")]}))
    monkeypatch.undo()
    orphans = {o.key for o in lake.store.list(f"{ASSET}/")} - before
    assert len(orphans) == 1
    assert [r["source_key"] for r in day_rows(lake, D1)] == ["v2"] * 4

    # A fresh orphan is kept (a run may be between upload and commit); an old one is not.
    [fresh] = vacuum(lake, dt.timedelta(0))
    assert fresh.deleted == []
    assert len(fresh.expired_snapshots) == 1  # v1's snapshot, never the current one
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    dry = vacuum(lake, dt.timedelta(0), dry_run=True, now=later)
    assert orphans <= set(dry[0].deleted)
    assert {o.key for o in lake.store.list(f"{ASSET}/")} >= orphans  # a dry run deletes nothing
    [report] = vacuum(lake, dt.timedelta(0), now=later)
    left = {o.key for o in lake.store.list(f"{ASSET}/")}
    assert not orphans & left
    v1_files = [k for k in before if k.startswith(f"{ASSET}/data/") and k not in left]
    assert v1_files, "the replaced day's files are gone once no snapshot names them"
    assert [r["source_key"] for r in day_rows(lake, D1)] == ["v2"] * 4
    assert lake.table(ASSET).current_snapshot() is not None


def test_vacuum_never_deletes_a_file_the_current_snapshot_names_under_a_concurrent_writer(
    tmp_path, mariadb_url
):
    lake = open_lake(str(tmp_path), mariadb_url)
    for i in range(3):
        lake.publish(stage(lake, {D1.isoformat(): [sales(D1, 2, f"seed{i}")]}))
    # Everything written so far is old enough to be vacuumed.
    old = (dt.datetime.now() - dt.timedelta(days=30)).timestamp()
    for path in (tmp_path / "lake").rglob("*"):
        os.utime(path, (old, old))
    writer = open_lake(str(tmp_path), mariadb_url)
    last: list[str] = []
    errors: list[BaseException] = []

    def write_many():
        try:
            for i in range(6):
                day = (D1, D2)[i % 2]
                source = f"w{i}"
                writer.publish(stage(writer, {day.isoformat(): [sales(day, 3, source)]}))
                last.append(source)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=write_many)
    thread.start()
    deleted = 0
    while thread.is_alive():
        deleted += sum(len(r.deleted) for r in vacuum(lake, dt.timedelta(0)))
    thread.join()
    deleted += sum(len(r.deleted) for r in vacuum(lake, dt.timedelta(0)))
    assert not errors, errors
    assert deleted > 0
    assert {r["source_key"] for r in day_rows(lake, D1)} == {last[-2]}
    assert {r["source_key"] for r in day_rows(lake, D2)} == {last[-1]}


def _old_format_partition(lake: Lake, asset: str, day: dt.date, tables: list[pa.Table]) -> None:
    """A partition as the private format wrote it: version folder + _manifest.json."""
    version = f"v-{uuid.uuid4().hex}"
    keys, rows, size = [], 0, 0
    for i, table in enumerate(tables):
        local = lake._stage() / "f.parquet"
        pq.write_table(table, local)
        rows += table.num_rows
        size += local.stat().st_size
        key = f"{asset}/{day.isoformat()}/{version}/part-{i:05d}.parquet"
        lake.store.put_file(local, key)
        keys.append(key)
    manifest = {
        "version": version,
        "files": keys,
        "rows": rows,
        "bytes": size,
        "schema": json.loads(RAW_SALES_SCHEMA.json()),
    }
    lake.store.put_bytes(f"{asset}/{day.isoformat()}/_manifest.json", json.dumps(manifest).encode())


def test_migration_registers_old_partitions_in_place_and_is_safe_to_rerun(tmp_path):
    lake = open_lake(str(tmp_path), f"sqlite:///{tmp_path / 'w.db'}")
    _old_format_partition(lake, ASSET, D1, [sales(D1, 3, "a"), sales(D1, 2, "b", "1.10")])
    _old_format_partition(lake, ASSET, D2, [])  # a day that had no rows
    files_before = {o.key for o in lake.store.list(f"{ASSET}/") if o.key.endswith(".parquet")}

    # Vacuum before the migration keeps the old partitions.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    lake.publish(stage(lake, {"2023-03-05": [sales(dt.date(2023, 3, 5), 1, "new")]}))
    [report] = vacuum(lake, dt.timedelta(0), now=later)
    assert report.unmigrated == [D1.isoformat(), D2.isoformat()]
    assert files_before <= {o.key for o in lake.store.list(f"{ASSET}/")}

    first = migrate(lake, tmp_path / "scratch")
    assert [(m.partition, m.rows, m.total, m.status) for m in first] == [
        (D1.isoformat(), 5, Decimal("19.40"), "registered"),
        (D2.isoformat(), 0, Decimal("0"), "registered"),
    ]
    live = lake.live_files(lake.table(ASSET), [D1.isoformat()])
    d1_files = {k for k in files_before if D1.isoformat() in k}
    assert {lake.key_of(f.file_path) for f in live} == d1_files
    assert lake.existing_partitions(ASSET, [D1.isoformat(), D2.isoformat()]) == {
        D1.isoformat(),
        D2.isoformat(),
    }
    snapshot = lake.table(ASSET).current_snapshot().snapshot_id

    again = migrate(lake, tmp_path / "scratch")
    assert {m.status for m in again} == {"already registered"}
    assert lake.table(ASSET).current_snapshot().snapshot_id == snapshot
    assert sorted(r["source_key"] for r in day_rows(lake, D1)) == ["a"] * 3 + ["b"] * 2
