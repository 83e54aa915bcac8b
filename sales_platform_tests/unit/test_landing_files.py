"""Landing helpers without Spark: business dates in keys, file inspection, the local store."""

from datetime import date

import pytest
import sqlalchemy as sa

from sales_platform.storage.landing import (
    FileRejected,
    archive_key,
    business_date_from_key,
    error_key,
    inspect_file,
)
from sales_platform.storage.ledger import FileVersion, Ledger
from sales_platform.storage.object_store import LocalObjectStore

HEADER = b"customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("sales_data/2023-01-05/a.csv", date(2023, 1, 5)),
        ("sales_data/sales_date=2023-01-05/part-0.csv", date(2023, 1, 5)),
        ("sales_data/north/sales_2023-01-05.csv", date(2023, 1, 5)),
        ("sales_data/2023-01-05/sales_2023-01-06.csv", date(2023, 1, 5)),  # the folder wins
        ("sales_data/a.csv", None),
        ("sales_data/2023-02-30/a.csv", None),  # not a date
    ],
)
def test_business_date_from_key(key, expected):
    assert business_date_from_key(key) == expected


def test_archive_and_error_keys_keep_the_path_below_landing():
    assert archive_key("sales_data/north/2023-01-05/a.csv", date(2023, 1, 5)) == (
        "sales_data_processed/2023-01-05/north/2023-01-05/a.csv"
    )
    assert error_key("sales_data/a.csv", None) == "sales_data_error/undated/a.csv"


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (HEADER + b"\n1\n2\n", 2),
        (HEADER + b"\n1\n2", 2),  # no newline at the end
        (HEADER + b"\r\n1\r\n\r\n2\r\n", 2),  # CRLF and an empty line
        (b"\n" + HEADER + b"\n1\n\n\n2\n", 2),  # blank lines anywhere do not count
        ("\ufeff".encode() + HEADER + b",note\n1\n", 1),  # BOM and an extra column
    ],
)
def test_inspect_counts_the_data_rows(tmp_path, body, rows):
    path = tmp_path / "f.csv"
    path.write_bytes(body)
    if body.startswith(b"\n"):
        with pytest.raises(FileRejected, match="missing mandatory"):
            inspect_file(path)  # the first line must be the header
        return
    facts = inspect_file(path)
    assert facts.data_rows == rows
    assert facts.size == len(body)
    assert "customer_id" in facts.header


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "zero bytes"),
        (HEADER + b"\n", "header only"),
        (HEADER + b"\n\n\n", "header only"),
        (b"customer_id,store_id\n1,2\n", "missing mandatory column(s): product_name"),
        (HEADER + b"\n1,\xff\n", "not UTF-8"),
        (HEADER + b",price\n", "duplicate column"),
    ],
)
def test_inspect_rejects_unusable_files(tmp_path, body, reason):
    path = tmp_path / "f.csv"
    path.write_bytes(body)
    with pytest.raises(FileRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        inspect_file(path)


@pytest.mark.parametrize(
    ("body", "rows", "flagged", "rewritten"),
    [
        (HEADER + b"\n1\n2\n", 2, {}, False),
        (HEADER + b"\r\n1\r\n2\r\n", 2, {}, True),  # CRLF: the CRs go
        (HEADER + b"\r1\r2\r", 2, {}, True),  # CR-only (Excel for Mac)
        (HEADER + b"\r1\n2\r3", 2, {2: "stray_line_break"}, True),  # an LF in a CR file
        (HEADER + b"\n1\r2\n3\r\n", 2, {2: "stray_line_break"}, True),  # a CR in an LF file
        (HEADER + b"\r\r\n1\r\n", 1, {}, True),  # a lone CR ends the header: CR style
        (HEADER + b"\n1\n2\r", 2, {}, True),  # a CR ending the file ends its last line
    ],
)
def test_inspect_takes_the_line_ends_from_the_first_line(tmp_path, body, rows, flagged, rewritten):
    """The file's line end is the one ending its first line; the other one inside a line is a
    stray (the quarantine's `stray_line_break`)."""
    path = tmp_path / "f.csv"
    path.write_bytes(body)
    facts = inspect_file(path)
    assert (facts.data_rows, facts.flagged_lines, facts.rewritten) == (rows, flagged, rewritten)


def test_local_move_only_moves_the_version_it_was_told(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put_bytes("sales_data/a.csv", b"one")
    version = store.head("sales_data/a.csv").etag
    store.put_bytes("sales_data/a.csv", b"two, longer")
    assert not store.move("sales_data/a.csv", "archive/a.csv", if_etag=version)
    assert store.head("archive/a.csv") is None
    assert store.move("sales_data/a.csv", "archive/a.csv")
    assert store.get_bytes("archive/a.csv") == b"two, longer"


def test_local_store_refuses_keys_that_escape_it(tmp_path):
    store = LocalObjectStore(tmp_path / "root")
    with pytest.raises(ValueError, match="escapes"):
        store.put_bytes("../outside", b"x")


def test_ledger_on_sqlite_tracks_a_file_version(tmp_path):
    ledger = Ledger(sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}"))
    v1 = FileVersion("bucket", "sales_data/2023-01-05/a.csv", "e1", "s3://b/k", date(2023, 1, 5))
    ledger.start(v1, "run-1", sha256="abc")
    assert ledger.entry(v1)["status"] == "A"
    ledger.start(v1, "run-2", sha256="abc")  # a rerun updates, never duplicates
    ledger.complete(v1, rows_read=3, rows_accepted=2, rows_quarantined=1)
    [entry] = ledger.entries()
    assert (entry["status"], entry["run_id"], entry["rows_accepted"]) == ("I", "run-2", 2)
    v2 = FileVersion("bucket", "sales_data/2023-01-05/b.csv", "e2", "s3://b/k2", None)
    day = date(2023, 1, 5)
    assert ledger.original_of("abc", v2.key, "bucket", day) == v1.key
    assert ledger.original_of("abc", v1.key, "bucket", day) is None
    # Only an original that gave accepted sales to the same business day makes a duplicate.
    assert ledger.original_of("abc", v2.key, "bucket", date(2023, 1, 6)) is None
    ledger.complete(v1, rows_read=3, rows_accepted=0, rows_quarantined=3)
    assert ledger.original_of("abc", v2.key, "bucket", day) is None
    ledger.start(v2, "run-3")
    ledger.reject(v2, "duplicate")
    assert ledger.entry(v2)["status"] == "E"
