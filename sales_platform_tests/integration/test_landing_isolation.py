"""One bad file never stops a day (issue 11), against moto's S3 server, MariaDB and Spark.

Each case asserts the ledger, where the file went, and that the other files and days load.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from sales_platform.defs.ingest import sensors
from sales_platform.defs.ingest.assets import raw_sales
from sales_platform.defs.ingest.daily_load import REPROCESS_REASON_TAG, REPROCESS_TAG, reprocess
from sales_platform.defs.resources import build_resources
from sales_platform.storage import landing
from sales_platform.storage.landing import archive_key, error_key
from sales_platform_tests.integration.test_landing import DAY, HEADER, Platform, _csv, _row
from sales_platform_tests.support import prod_settings  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(prod_settings, spark):  # noqa: F811
    with dg.instance_for_test() as instance:
        yield Platform(prod_settings, spark, instance)


def _quarantine(p, day=DAY) -> dict[tuple[str, int], str]:
    return {
        (q["source_key"], q["line_number"]): q["reason"]
        for q in p.rows("raw_sales_quarantine", day)
    }


def _customers(p, day=DAY) -> list[int]:
    return sorted(r["customer_id"] for r in p.rows("raw_sales", day))


def _entry(p, key) -> dict:
    return p.ledger_by_key()[key][-1]


def assert_rejected(p, key: str, words: str, day=DAY) -> None:
    """Ledger E naming the key and the cause; the file under sales_data_error/ with its manifest."""
    entry = _entry(p, key)
    assert entry["status"] == "E", entry
    assert repr(key) in entry["reason"] and words in entry["reason"], entry["reason"]
    moved = error_key(key, day)
    assert {moved, f"{moved}.reason.json"} <= set(p.keys("sales_data_error/"))
    manifest = json.loads(p.store.get_bytes(f"{moved}.reason.json"))
    assert manifest["landing_key"] == key and words in manifest["reason"]
    assert key not in p.keys("sales_data/")


def assert_loaded(p, key: str, read: int, accepted: int, quarantined: int, day=DAY) -> None:
    entry = _entry(p, key)
    assert entry["status"] == "I", entry
    assert (entry["rows_read"], entry["rows_accepted"], entry["rows_quarantined"]) == (
        read,
        accepted,
        quarantined,
    )
    assert entry["archived_key"] == archive_key(key, day)
    assert p.store.head(archive_key(key, day)) is not None
    assert key not in p.keys("sales_data/")


def _check(result, name: str):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


# --- line endings ---------------------------------------------------------------------------


def test_lf_crlf_and_cr_only_files_load_with_exact_line_numbers(platform):
    rows = [_row(customer=1), _row(customer="x"), _row(customer=3)]
    bodies = {}
    for n, (name, end) in enumerate([("lf", "\n"), ("crlf", "\r\n"), ("mac", "\r")]):
        text = HEADER + "".join(rows).replace("1,121", f"{n + 1}1,121")
        bodies[f"sales_data/{DAY}/{name}.csv"] = text.replace("\n", end).encode()
    for key, body in bodies.items():
        platform.put(key, body)
    result = platform.run()
    assert result.success
    assert _customers(platform) == [3, 3, 3, 11, 21, 31]
    # The bad row is line 3 of each file, whatever ends its lines.
    assert _quarantine(platform) == {(k, 3): "invalid_customer_id" for k in bodies}
    for key, body in bodies.items():
        assert_loaded(platform, key, read=3, accepted=2, quarantined=1)
        # The archive holds the original bytes; the ledger's SHA-256 is theirs.
        assert platform.store.get_bytes(archive_key(key, DAY)) == body
        assert _entry(platform, key)["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_lone_cr_inside_a_row_is_one_quarantined_row(platform):
    lf = f"sales_data/{DAY}/lf.csv"
    crlf = f"sales_data/{DAY}/crlf.csv"
    body = HEADER + _row(customer=1) + _row(customer=2, product="Su\rgar") + _row(customer=3)
    body += _row(customer="x")  # line 5: its number must not shift
    platform.put(lf, body.encode())
    platform.put(crlf, body.replace("1,121", "11,121").replace("\n", "\r\n").encode())
    result = platform.run()
    assert result.success and _check(result, "rows_reconcile").passed
    assert _quarantine(platform) == {
        (lf, 3): "stray_line_break",
        (lf, 5): "invalid_customer_id",
        (crlf, 3): "stray_line_break",
        (crlf, 5): "invalid_customer_id",
    }
    assert _customers(platform) == [1, 3, 3, 11]
    assert_loaded(platform, lf, read=4, accepted=2, quarantined=2)
    assert_loaded(platform, crlf, read=4, accepted=2, quarantined=2)


def test_a_newline_inside_a_quoted_field_is_one_multiline_record(platform):
    key = f"sales_data/{DAY}/quoted.csv"
    body = (
        HEADER
        + _row(customer=1)
        + f'2,121,"Sug\nar",{DAY},1,10.00,2,20.00\n'  # lines 3 and 4: one record
        + f'3,121,"Sugar, ""fine""",{DAY},1,10.00,2,20.00\n'  # RFC 4180 on one line: accepted
        + _row(customer="x")  # line 6
    )
    platform.put(key, body.encode())
    platform.put(f"sales_data/{DAY}/other.csv", _csv(_row(customer=7)))
    assert platform.run().success
    assert _quarantine(platform) == {(key, 3): "multiline_record", (key, 6): "invalid_customer_id"}
    assert _customers(platform) == [1, 3, 7]
    assert {r["product_name"] for r in platform.rows()} == {"Sugar", 'Sugar, "fine"'}
    assert_loaded(platform, key, read=4, accepted=2, quarantined=2)


# --- per-file isolation ---------------------------------------------------------------------


def test_a_header_field_over_the_csv_limit_rejects_only_that_file(platform):
    key = f"sales_data/{DAY}/wide.csv"
    platform.put(key, _csv(_row(), header=HEADER.rstrip("\n") + "," + "c" * 131_073 + "\n"))
    platform.put(f"sales_data/{DAY}/good.csv", _csv(_row(customer=5)))
    assert platform.run().success
    assert_rejected(platform, key, "header")
    assert _customers(platform) == [5]
    assert_loaded(platform, f"sales_data/{DAY}/good.csv", read=1, accepted=1, quarantined=0)


def _explode_on(monkeypatch, marker: bytes) -> None:
    """Any exception while reading a file's content: here, from inside the byte pass."""
    real = landing.inspect_file

    def inspect(path):
        if marker in path.read_bytes():
            raise RuntimeError("the parser exploded")
        return real(path)

    monkeypatch.setattr(landing, "inspect_file", inspect)


def test_any_failure_reading_a_file_rejects_that_file_alone(platform, monkeypatch):
    _explode_on(monkeypatch, b"Boom")
    key = f"sales_data/{DAY}/boom.csv"
    platform.put(key, _csv(_row(product="Boom")))
    platform.put(f"sales_data/{DAY}/good.csv", _csv(_row(customer=5)))
    assert platform.run().success
    assert_rejected(platform, key, "RuntimeError: the parser exploded")
    assert _customers(platform) == [5]


def test_a_file_whose_rows_do_not_reconcile_is_rejected_and_the_day_publishes(
    platform, monkeypatch
):
    real = landing.inspect_file

    def miscount(path):  # the byte pass and Spark disagree on this one file
        facts = real(path)
        if b"Tofu" in path.read_bytes():
            facts.data_rows += 1
        return facts

    monkeypatch.setattr(landing, "inspect_file", miscount)
    bad = f"sales_data/{DAY}/b.csv"
    platform.put(f"sales_data/{DAY}/a.csv", _csv(_row(customer=1), _row(customer="x")))
    platform.put(bad, _csv(_row(customer=99, product="Tofu"), _row(customer="y", product="Tofu")))
    result = platform.run()
    assert result.success and _check(result, "rows_reconcile").passed
    assert_rejected(platform, bad, "rows do not reconcile")
    # Its rows are in neither partition: the day was staged again without it.
    assert _customers(platform) == [1]
    assert {k for k, _ in _quarantine(platform)} == {f"sales_data/{DAY}/a.csv"}
    assert_loaded(platform, f"sales_data/{DAY}/a.csv", read=2, accepted=1, quarantined=1)


def test_a_range_with_poison_files_on_one_day_publishes_every_day(platform, monkeypatch):
    _explode_on(monkeypatch, b"Boom")
    days = [DAY + timedelta(days=i) for i in range(4)]
    for i, day in enumerate(days):
        platform.put(f"sales_data/{day}/good.csv", _csv(_row(customer=i + 1, day=day)))
    poison_day = days[1]
    poisons = {
        f"sales_data/{poison_day}/boom.csv": (_row(product="Boom", day=poison_day), "exploded"),
        f"sales_data/{poison_day}/wide.csv": (_row(day=poison_day), "header"),
        f"sales_data/{poison_day}/latin1.csv": (_row(product="Caf\xe9", day=poison_day), "UTF-8"),
    }
    for key, (row, _) in poisons.items():
        header = HEADER.rstrip("\n") + ",c" + "c" * 131_073 + "\n" if "wide" in key else HEADER
        platform.put(key, (header + row).encode("latin-1"))
    result = platform.run(days[0], days[-1])
    assert result.success
    for i, day in enumerate(days):
        assert _customers(platform, day) == [i + 1]
        assert_loaded(platform, f"sales_data/{day}/good.csv", 1, 1, 0, day=day)
    for key, (_, words) in poisons.items():
        assert_rejected(platform, key, words, day=poison_day)


# --- nothing lost in a move -----------------------------------------------------------------


def test_a_reupload_landing_between_copy_and_delete_is_kept(platform):
    store, key = platform.store, f"sales_data/{DAY}/a.csv"
    store.put_bytes(key, b"version one")
    copied = store.head(key).etag
    real_copy = store.client.copy

    def copy_then_reupload(*args, **kwargs):
        real_copy(*args, **kwargs)
        store.put_bytes(key, b"version two")  # lands after the copy, before the delete

    store.client.copy = copy_then_reupload
    assert store.move(key, "archive/a.csv", if_etag=copied)
    del store.client.copy
    assert store.get_bytes("archive/a.csv") == b"version one"
    assert store.get_bytes(key) == b"version two"  # kept for the next run
    # A stale version moves nothing.
    assert not store.move(key, "archive/b.csv", if_etag=copied)
    assert store.head("archive/b.csv") is None


def test_an_over_long_key_is_archived_under_a_bounded_key_and_rebuilds(platform):
    key = f"sales_data/{DAY}/" + "k" * 950 + ".csv"
    platform.put(key, _csv(_row(customer=4)))
    assert platform.run().success
    entry = _entry(platform, key)
    assert entry["status"] == "I" and entry["object_key"] == key
    assert len(entry["archived_key"].encode()) <= 900 and entry["archived_key"].endswith(".csv")
    assert [r["source_key"] for r in platform.rows()] == [key]
    assert platform.run().success  # rebuilt from the archive: the same file, the same row
    assert [r["source_key"] for r in platform.rows()] == [key]
    assert len(platform.ledger.entries()) == 1


def test_the_sensor_never_fails_a_tick_on_one_object(platform, monkeypatch):
    long_undated = "sales_data/" + "u" * 1000 + ".csv"
    platform.put(long_undated, _csv(_row()))
    platform.put("sales_data/broken_undated.csv", _csv(_row()))
    today = datetime.now(UTC).date()
    platform.put(f"sales_data/{today}/today.csv", _csv(_row(day=today)))
    real = sensors.move_to_error

    def fail_one(store, key, *args, **kwargs):
        if "broken_undated" in key:
            raise ConnectionError("S3 said no")
        return real(store, key, *args, **kwargs)

    monkeypatch.setattr(sensors, "move_to_error", fail_one)
    result = platform.sensor_tick(None)
    assert [r.partition_key for r in result.run_requests] == [today.isoformat()]
    errors = platform.keys("sales_data_error/undated/")
    assert len(errors) == 2 and all(len(k.encode()) <= 912 for k in errors)
    assert "sales_data/broken_undated.csv" in platform.keys("sales_data/")  # tried next tick


# --- one identity per file version ----------------------------------------------------------


def test_a_multipart_archive_copy_keeps_the_landing_identity(platform):
    key = f"sales_data/{DAY}/big.csv"
    # Over boto3's 8 MB multipart threshold: the archived copy gets a new ETag.
    body = _csv(*[_row(customer=i % 500 + 1, seller=i % 7 + 1) for i in range(240_000)])
    assert len(body) > 8 * 1024 * 1024
    platform.put(key, body)
    landed = platform.store.head(key).etag
    assert platform.run().success
    archived = platform.store.head(archive_key(key, DAY))
    assert archived.etag != landed
    assert platform.store.metadata(archived.key)[landing.META_LANDING_ETAG] == landed
    assert platform.run().success  # a rebuild from the archive
    [entry] = platform.ledger.entries()
    assert (entry["etag"], entry["status"], entry["rows_accepted"]) == (landed, "I", 240_000)
    assert platform.lake.read(platform.spark, "raw_sales", [DAY.isoformat()])[0].count() == 240_000


def test_a_revert_to_an_earlier_version_is_a_new_run(platform):
    key = f"sales_data/{DAY}/a.csv"
    first, second = _csv(_row(customer=1)), _csv(_row(customer=2))
    run_keys, cursor = [], None
    for body, customer in ((first, 1), (second, 2), (first, 1)):
        platform.put(key, body)
        tick = platform.sensor_tick(cursor)
        [request] = tick.run_requests
        run_keys.append(request.run_key)
        cursor = tick.cursor
        assert platform.run().success
        assert _customers(platform) == [customer]
    assert len(set(run_keys)) == 3
    assert platform.sensor_tick(cursor).run_requests == []  # settled: nothing new


def test_the_sensor_finds_a_file_with_an_old_last_modified(platform):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    first = platform.sensor_tick(None)
    key = f"sales_data/{DAY}/slow_upload.csv"
    platform.put(key, _csv(_row()))
    bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[platform.settings.s3_bucket]
    bucket.keys[key].last_modified = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=2)
    assert platform.store.head(key).last_modified < datetime.now(UTC) - timedelta(days=1)
    tick = platform.sensor_tick(first.cursor)
    assert [r.partition_key for r in tick.run_requests] == [DAY.isoformat()]
    assert len(tick.cursor) < 64 * 1024


# --- duplicates and re-uploads --------------------------------------------------------------


def test_a_misdated_resend_loads_and_an_operator_can_push_a_duplicate(platform):
    body = _csv(_row(customer=1), _row(customer=2))
    wrong = f"sales_data/{DAY - timedelta(days=1)}/a.csv"
    platform.put(wrong, body)
    assert platform.run(DAY - timedelta(days=1)).success
    assert _entry(platform, wrong)["rows_accepted"] == 0  # all sales_date_mismatch
    right = f"sales_data/{DAY}/a.csv"
    platform.put(right, body)
    assert platform.run().success
    assert_loaded(platform, right, read=2, accepted=2, quarantined=0)

    # A true duplicate is rejected; `files reprocess` pushes it through, reason recorded.
    copy = f"sales_data/{DAY}/copy.csv"
    platform.put(copy, body)
    assert platform.run().success
    assert_rejected(platform, copy, "duplicate")
    assert reprocess(platform.store, platform.ledger, error_key(copy, DAY), "resent on purpose")
    assert platform.keys("sales_data/") == [copy]
    assert platform.run().success
    assert_loaded(platform, copy, read=2, accepted=2, quarantined=0)
    assert _entry(platform, copy)["reprocess_reason"] == "resent on purpose"
    assert _customers(platform) == [1, 1, 2, 2]

    # The same from the UI: a run of the day with the reprocess tags.
    other = f"sales_data/{DAY}/copy2.csv"
    platform.put(other, body)
    assert platform.run().success
    assert_rejected(platform, other, "duplicate")
    result = dg.materialize(
        [raw_sales],
        resources=build_resources(platform.settings),
        instance=platform.instance,
        partition_key=DAY.isoformat(),
        tags={REPROCESS_TAG: other, REPROCESS_REASON_TAG: "ticket 42"},
    )
    assert result.success
    assert_loaded(platform, other, read=2, accepted=2, quarantined=0)
    assert _entry(platform, other)["reprocess_reason"] == "ticket 42"


def test_a_rejected_reupload_keeps_the_archived_version_and_reruns_converge(platform):
    key = f"sales_data/{DAY}/a.csv"
    platform.put(key, _csv(_row(customer=1), _row(customer=2)))
    assert platform.run().success
    platform.put(key, _csv(_row(product="Caf\xe9")).replace("é".encode(), b"\xe9"))
    assert platform.run().success
    assert _customers(platform) == [1, 2]  # the archived good version is still served
    statuses = [e["status"] for e in platform.ledger_by_key()[key]]
    assert sorted(statuses) == ["E", "I"]
    assert_rejected(platform, key, "not UTF-8")
    for _ in range(2):  # reruns give the same day and no new ledger rows
        assert platform.run().success
        assert _customers(platform) == [1, 2]
        assert len(platform.ledger.entries()) == 2
