"""Landing to `raw_sales` against the real S3 API (moto server) and the real MariaDB.

Every file picked up once, every row accounted for, every bad input explained, every rerun
converging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.definitions import build_definitions
from sales_platform.defs.ingest import daily_load
from sales_platform.defs.ingest.assets import raw_sales
from sales_platform.defs.ingest.daily_load import commit, stage_days
from sales_platform.defs.ingest.sensors import landing_sensor
from sales_platform.defs.resources import build_resources
from sales_platform.generate import BAD_ROW_KINDS, generate
from sales_platform.storage.lake import Lake
from sales_platform.storage.ledger import Ledger
from sales_platform.transforms.validate import REASON_CODES
from sales_platform_tests.support import materialize_assets, prod_settings, today_clear_of_midnight  # noqa: F401

pytestmark = pytest.mark.integration

DAY = date(2023, 3, 14)
REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = "customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost\n"


def _row(
    customer=1, store=121, product="Sugar", day=DAY, seller=1, price="10.00", qty=2, total=None
) -> str:
    total = total if total is not None else f"{Decimal(price) * qty:.2f}"
    return f"{customer},{store},{product},{day},{seller},{price},{qty},{total}\n"


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(rows)).encode()


class Platform:
    """The prod stack of one test: a bucket, a database, a lake, a Dagster instance."""

    def __init__(self, settings, spark, instance):
        self.settings = settings
        self.spark = spark
        self.instance = instance
        with dg.build_resources(
            {
                k: v
                for k, v in build_resources(settings).items()
                if k in ("landing", "lake", "warehouse_db")
            }
        ) as res:
            self.store = res.landing.open()
            self.lake: Lake = res.lake.lake()
            self.engine = sa.create_engine(os.environ["SALES_PLATFORM_WAREHOUSE_DB_URL"])
        self.ledger = Ledger(self.engine)

    def put(self, key: str, body: bytes) -> None:
        self.store.put_bytes(key, body)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(o.key for o in self.store.list(prefix))

    def run(self, first: date = DAY, last: date | None = None, **kwargs):
        return materialize_assets(
            self.settings, [raw_sales], first, last, instance=self.instance, **kwargs
        )

    def rows(self, asset: str = "raw_sales", day: date = DAY) -> list[dict]:
        df, _ = self.lake.read(self.spark, asset, [day.isoformat()])
        return [r.asDict() for r in df.collect()]

    def ledger_by_key(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for entry in self.ledger.entries():
            out.setdefault(entry["object_key"], []).append(entry)
        return out

    def sensor_tick(self, cursor: str | None):
        defs = build_definitions(self.settings)
        resources = build_resources(self.settings)
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=defs,
            resources={k: resources[k] for k in ("landing", "warehouse_db")},
        ) as context:
            return landing_sensor.evaluate_tick(context)


@pytest.fixture
def platform(prod_settings, spark):  # noqa: F811
    with dg.instance_for_test() as instance:
        yield Platform(prod_settings, spark, instance)


def test_same_file_twice_and_sensor_ticking_twice_start_one_run(platform):
    key = f"sales_data/{DAY}/a.csv"
    platform.put(key, _csv(_row()))
    first = platform.sensor_tick(None)
    assert [r.partition_key for r in first.run_requests] == [DAY.isoformat()]
    assert first.asset_events[0].asset_key == dg.AssetKey("raw_sales_files")

    # The same delivery again (same key and content: same ETag) and a second tick.
    platform.put(key, _csv(_row()))
    second = platform.sensor_tick(first.cursor)
    assert second.run_requests == []
    assert len(first.cursor) < 64 * 1024

    # Even a request that slipped through would carry the same run key.
    again = platform.sensor_tick(None)
    assert again.run_requests[0].run_key == first.run_requests[0].run_key


def test_reupload_with_new_content_replaces_the_rows(platform):
    key = f"sales_data/{DAY}/a.csv"
    platform.put(key, _csv(_row(customer=1), _row(customer=2)))
    first = platform.sensor_tick(None)
    platform.run()
    assert sorted(r["customer_id"] for r in platform.rows()) == [1, 2]
    assert platform.keys("sales_data/") == []

    platform.put(key, _csv(_row(customer=7)))
    second = platform.sensor_tick(first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    platform.run()
    assert [r["customer_id"] for r in platform.rows()] == [7]
    versions = platform.ledger_by_key()[key]
    assert [v["status"] for v in versions] == ["I", "I"]
    assert versions[0]["etag"] != versions[1]["etag"]


def test_same_content_under_a_new_name_is_a_duplicate(platform):
    body = _csv(_row(customer=3))
    platform.put(f"sales_data/{DAY}/a.csv", body)
    platform.run()
    platform.put(f"sales_data/{DAY}/copy_of_a.csv", body)
    platform.run()
    assert [r["customer_id"] for r in platform.rows()] == [3]
    entry = platform.ledger_by_key()[f"sales_data/{DAY}/copy_of_a.csv"][0]
    assert entry["status"] == "E"
    assert f"sales_data/{DAY}/a.csv" in entry["reason"]
    assert f"sales_data_error/{DAY}/{DAY}/copy_of_a.csv" in platform.keys("sales_data_error/")


def test_a_file_landing_mid_run_is_not_archived_by_that_run(platform):
    platform.put(f"sales_data/{DAY}/a.csv", _csv(_row(customer=1)))
    platform.put(f"sales_data/{DAY}/b.csv", _csv(_row(customer=2)))
    load = stage_days(platform.spark, platform.store, platform.lake, platform.ledger, [DAY], "r1")
    # While the run works: a new file lands and b.csv is re-uploaded with new content.
    platform.put(f"sales_data/{DAY}/late.csv", _csv(_row(customer=3)))
    platform.put(f"sales_data/{DAY}/b.csv", _csv(_row(customer=4)))
    commit(platform.store, platform.lake, platform.ledger, load, "r1")

    assert platform.keys("sales_data/") == [f"sales_data/{DAY}/b.csv", f"sales_data/{DAY}/late.csv"]
    assert sorted(r["customer_id"] for r in platform.rows()) == [1, 2]
    # The next run picks both up, and b.csv's new content replaces its old rows.
    platform.run()
    assert sorted(r["customer_id"] for r in platform.rows()) == [1, 3, 4]
    assert platform.keys("sales_data/") == []


def test_1500_keys_are_listed_past_one_page(platform):
    for n in range(1500):
        day = date(2023, 3, 1 + n % 3)
        platform.put(f"sales_data/{day}/part-{n:05d}.csv", _csv(_row(day=day, customer=n + 1)))
    result = platform.sensor_tick(None)
    assert sorted(r.partition_key for r in result.run_requests) == [
        "2023-03-01",
        "2023-03-02",
        "2023-03-03",
    ]
    files = {e.partition: e.metadata["files"].value for e in result.asset_events}
    assert files == {"2023-03-01": 500, "2023-03-02": 500, "2023-03-03": 500}
    assert len(result.cursor) < 64 * 1024
    assert platform.sensor_tick(result.cursor).run_requests == []


def test_same_basename_under_two_prefixes_are_two_files(platform):
    platform.put(f"sales_data/north/{DAY}/sales.csv", _csv(_row(customer=1)))
    platform.put(f"sales_data/south/{DAY}/sales.csv", _csv(_row(customer=2)))
    platform.run()
    assert sorted(r["customer_id"] for r in platform.rows()) == [1, 2]
    assert platform.keys("sales_data_processed/") == [
        f"sales_data_processed/{DAY}/north/{DAY}/sales.csv",
        f"sales_data_processed/{DAY}/south/{DAY}/sales.csv",
    ]
    assert {e["status"] for e in platform.ledger.entries()} == {"I"}
    assert len(platform.ledger.entries()) == 2


def test_hostile_key_is_stored_verbatim_in_the_ledger(platform):
    key = f"sales_data/{DAY}/x'); DROP TABLE t;--.csv"
    platform.put(key, _csv(_row()))
    platform.run()
    entry = platform.ledger_by_key()[key][0]
    assert entry["object_key"] == key
    assert entry["file_name"] == "x'); DROP TABLE t;--.csv"
    assert entry["status"] == "I"
    with platform.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM product_staging_table")).scalar() == 1


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("missing_column.csv", _csv(header="customer_id,store_id\n"), "missing mandatory"),
        ("zero_byte.csv", b"", "zero bytes"),
        ("header_only.csv", HEADER.encode(), "header only"),
        (
            "latin1.csv",
            _csv(_row(product="Caf\xe9 Latte")).replace("é".encode(), b"\xe9"),
            "not UTF-8",
        ),
        ("not_a_csv.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    ],
)
def test_unreadable_file_is_rejected_and_the_others_still_load(platform, name, body, reason):
    bad_key = f"sales_data/{DAY}/{name}"
    platform.put(bad_key, body)
    platform.put(f"sales_data/{DAY}/good.csv", _csv(_row(customer=5)))
    result = platform.run()
    assert result.success
    assert [r["customer_id"] for r in platform.rows()] == [5]
    entry = platform.ledger_by_key()[bad_key][0]
    assert entry["status"] == "E" and reason in entry["reason"]
    moved = f"sales_data_error/{DAY}/{DAY}/{name}"
    assert platform.keys("sales_data_error/") == [moved, f"{moved}.reason.json"]
    manifest = json.loads(platform.store.get_bytes(f"{moved}.reason.json"))
    assert reason in manifest["reason"] and manifest["landing_key"] == bad_key


@pytest.fixture(params=["broadcast", "shuffle_join"])
def rejected_lines_join(request, platform, monkeypatch):
    """The rejected (file, line) keys go to every task when they are few and are joined the
    usual way on a bad day's many: each path in turn (Spark's own size rule would broadcast
    a test's few keys anyway, so it is turned off for the shuffle join)."""
    if request.param == "broadcast":
        yield request.param
        return
    monkeypatch.setattr(daily_load, "BROADCAST_REJECTED_ROWS", 0)
    conf = platform.spark.conf
    before = conf.get("spark.sql.autoBroadcastJoinThreshold")
    conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        yield request.param
    finally:
        conf.set("spark.sql.autoBroadcastJoinThreshold", before)


def test_bad_rows_of_every_kind_are_quarantined_with_reason_and_line(platform, rejected_lines_join):
    with dg.build_resources({"source_db": build_resources(platform.settings)["source_db"]}) as r:
        summary = generate(
            platform.store,
            r.source_db.engine(),
            start_date=DAY,
            days=1,
            rows_per_day=2000,
            seed=5,
            bad_row_fraction=0.05,
            progress=False,
        )
    assert set(summary.bad_row_kinds) == set(BAD_ROW_KINDS)
    extra = f"sales_data/{DAY}/extra.csv"
    platform.put(
        extra,
        _csv(
            "x,121,Sugar,2023-03-14,1,1.00,1,1.00,a,b\n",  # one field too many
            header=HEADER.rstrip("\n") + ",note\n",
        ),
    )
    result = platform.run()
    assert result.success
    quarantine = platform.rows("raw_sales_quarantine")
    reasons = {q["reason"] for q in quarantine}
    assert reasons <= set(REASON_CODES)
    assert "malformed_row" in reasons
    assert len(quarantine) == summary.bad_rows + 1
    assert len(platform.rows()) == summary.rows - summary.bad_rows
    for entry in platform.ledger.entries():
        assert entry["rows_read"] == entry["rows_accepted"] + entry["rows_quarantined"]
    # The line number leads back to the row in the archived file.
    archived = {e["object_key"]: e["archived_key"] for e in platform.ledger.entries()}
    sample = next(q for q in quarantine if q["source_key"] != extra)
    lines = platform.store.get_bytes(archived[sample["source_key"]]).decode().splitlines()
    raw = json.loads(sample["raw_record"])
    assert lines[sample["line_number"] - 1].split(",")[0] == (raw["customer_id"] or "")


def test_reordered_and_extra_columns_are_matched_by_name(platform):
    header = (
        "total_cost,quantity,price,sales_person_id,sales_date,product_name,store_id,"
        "customer_id,channel\n"
    )
    platform.put(
        f"sales_data/{DAY}/reordered.csv",
        _csv(f"20.00,2,10.00,3,{DAY},Sugar,122,9,web\n", header=header),
    )
    platform.run()
    [row] = platform.rows()
    assert (row["customer_id"], row["store_id"], row["sales_person_id"]) == (9, 122, 3)
    assert row["total_cost"] == Decimal("20.00")
    assert json.loads(row["additional_column"]) == {"channel": "web"}


def test_undated_key_goes_to_the_error_prefix_and_today_works(platform):
    now = today_clear_of_midnight()
    platform.put("sales_data/no_date_here.csv", _csv(_row()))
    platform.put("sales_data/1999-01-01/too_old.csv", _csv(_row()))
    platform.put(f"sales_data/{now}/today.csv", _csv(_row(day=now)))
    result = platform.sensor_tick(None)
    assert [r.partition_key for r in result.run_requests] == [now.isoformat()]
    errors = platform.keys("sales_data_error/")
    assert "sales_data_error/undated/no_date_here.csv" in errors
    assert "sales_data_error/1999-01-01/1999-01-01/too_old.csv" in errors
    manifest = json.loads(
        platform.store.get_bytes("sales_data_error/undated/no_date_here.csv.reason.json")
    )
    assert "no business date" in manifest["reason"]


KILL_SCRIPT = textwrap.dedent(
    """
    import os
    from datetime import date
    from sales_platform.storage import object_store

    def die(*args, **kwargs):
        os._exit(17)  # the lake partition is committed; the archive move never happens

    object_store.S3ObjectStore.move = die
    import dagster as dg
    from sales_platform.defs.ingest.assets import raw_sales
    from sales_platform.settings import Settings
    from sales_platform_tests.support import materialize_assets
    with dg.instance_for_test() as instance:
        materialize_assets(Settings.from_env(), [raw_sales], date({y}, {m}, {d}),
                           instance=instance)
    """
)


def test_run_killed_after_lake_write_then_rerun_equals_a_clean_run(platform, tmp_path):
    with dg.build_resources({"source_db": build_resources(platform.settings)["source_db"]}) as r:
        summary = generate(
            platform.store,
            r.source_db.engine(),
            start_date=DAY,
            days=1,
            rows_per_day=300,
            seed=3,
            files_per_day=2,
            bad_row_fraction=0.02,
            progress=False,
        )
    script = tmp_path / "killed_run.py"
    script.write_text(KILL_SCRIPT.format(y=DAY.year, m=DAY.month, d=DAY.day))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    killed = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, timeout=300
    )
    assert killed.returncode == 17, killed.stderr.decode()[-2000:]
    assert len(platform.keys("sales_data/")) == 2  # nothing archived
    assert {e["status"] for e in platform.ledger.entries()} == {"I"}

    platform.run()
    rows = platform.rows()
    assert len(rows) == summary.accepted_rows
    assert sum(r["total_cost"] for r in rows) == summary.accepted_total
    assert len(platform.rows("raw_sales_quarantine")) == summary.bad_rows
    assert platform.keys("sales_data/") == []
    assert len(platform.keys("sales_data_processed/")) == 2
    entries = platform.ledger.entries()
    assert len(entries) == 2 and {e["status"] for e in entries} == {"I"}
    assert all(e["archived_key"] for e in entries)
    # One current version per partition: the killed run's files were replaced, not added to.
    lake = platform.lake
    live = lake.live_files(lake.table("raw_sales"), [DAY.isoformat()])
    assert sum(f.record_count for f in live) == summary.accepted_rows
