"""The synthetic data generator and the test oracle, on a local folder and SQLite."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from sales_platform import schemas
from sales_platform.generate import (
    BAD_FILE_KINDS,
    BAD_ROW_KINDS,
    STORE_ID_START,
    UNKNOWN_KEY_KINDS,
    GenerateSummary,
    generate,
)
from sales_platform.schemas import SALES_CSV_COLUMNS, SOURCE_TABLES
from sales_platform.storage.object_store import LocalObjectStore
from sales_platform_tests import oracle

HEADER = ",".join(SALES_CSV_COLUMNS)
KEY_RE = re.compile(r"^sales_data/(\d{4}-\d{2}-\d{2})/sales_\1_(\d{2})\.csv$")
MONEY_RE = re.compile(r"^\d+\.\d{2}$")


def _run(root: Path, **overrides) -> tuple[LocalObjectStore, sa.Engine, GenerateSummary]:
    root.mkdir(parents=True, exist_ok=True)
    store = LocalObjectStore(root / "store")
    engine = sa.create_engine(f"sqlite:///{root / 'source.sqlite'}")
    args = dict(
        start_date=date(2023, 1, 30),
        days=4,
        rows_per_day=1500,
        seed=42,
        files_per_day=2,
        customers=60,
        stores=4,
        products=25,
        sellers_per_store=3,
        progress=False,
    )
    args.update(overrides)
    return store, engine, generate(store, engine, **args)


def _files(store: LocalObjectStore) -> dict[str, bytes]:
    return {o.key: store.get_bytes(o.key) for o in store.list("sales_data/")}


def _tables(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for name, t in SOURCE_TABLES.items()
        }


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """One run with every kind of dirt."""
    return _run(
        tmp_path_factory.mktemp("dirty"),
        unknown_key_fraction=0.04,
        bad_row_fraction=0.05,
        bad_file_fraction=0.5,
    )


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_same_bytes_and_rows_different_seed_differs(tmp_path):
    store_a, engine_a, sum_a = _run(tmp_path / "a", bad_row_fraction=0.02, bad_file_fraction=0.3)
    store_b, engine_b, sum_b = _run(tmp_path / "b", bad_row_fraction=0.02, bad_file_fraction=0.3)
    store_c, engine_c, _ = _run(
        tmp_path / "c", seed=43, bad_row_fraction=0.02, bad_file_fraction=0.3
    )

    files_a = _files(store_a)
    assert files_a == _files(store_b)
    assert _tables(engine_a) == _tables(engine_b)
    assert (sum_a.files, sum_a.bytes, sum_a.bad_file_kinds) == (
        sum_b.files,
        sum_b.bytes,
        sum_b.bad_file_kinds,
    )

    files_c = _files(store_c)
    assert files_c.keys() == files_a.keys()
    assert any(files_c[k] != files_a[k] for k in files_a if files_a[k])
    tables_a, tables_c = _tables(engine_a), _tables(engine_c)
    for name in ("customer", "store", "product", "sales_team"):
        assert tables_a[name] != tables_c[name], name


def test_rerun_replaces_source_rows(tmp_path):
    store, engine, _ = _run(tmp_path, customers=60)
    generate(
        store, engine, start_date=date(2023, 1, 30), days=1, rows_per_day=10, seed=1,
        customers=7, progress=False,
    )  # fmt: skip
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(schemas.customer_table)).scalar()
            == 7
        )


# --- layout and contents of clean files ----------------------------------------------------


def test_clean_files_layout_header_and_row_arithmetic(tmp_path):
    store, engine, summary = _run(tmp_path, rows_per_day=1501, files_per_day=2)
    files = _files(store)
    assert sorted(files) == summary.files
    assert len(files) == 8 and summary.bad_files == [] and summary.bad_rows == 0
    assert summary.rows == summary.accepted_rows == 4 * 1501
    assert summary.bytes == sum(len(b) for b in files.values())

    tables = _tables(engine)
    prices = {r[1]: Decimal(str(r[2])).quantize(Decimal("0.01")) for r in tables["product"]}
    customer_ids = {r[0] for r in tables["customer"]}
    seller_store = {r[0]: STORE_ID_START + (r[0] - 1) // 3 for r in tables["sales_team"]}
    total = Decimal("0")
    per_day: dict[date, int] = defaultdict(int)
    for key, data in files.items():
        m = KEY_RE.match(key)
        assert m, key
        day = date.fromisoformat(m.group(1))
        text = data.decode("utf-8")
        assert text.startswith(HEADER + "\n")
        assert "\r" not in text and '"' not in text and text.endswith("\n")
        for line in text.splitlines()[1:]:
            assert len(line.split(",")) == len(SALES_CSV_COLUMNS)
        for r in _rows(data):
            per_day[day] += 1
            assert r["sales_date"] == m.group(1)
            assert MONEY_RE.match(r["price"]) and MONEY_RE.match(r["total_cost"]), r
            price, qty = Decimal(r["price"]), int(r["quantity"])
            assert 1 <= qty <= 10
            assert Decimal(r["total_cost"]) == price * qty
            assert prices[r["product_name"]] == price
            assert int(r["customer_id"]) in customer_ids
            assert seller_store[int(r["sales_person_id"])] == int(r["store_id"])
            total += Decimal(r["total_cost"])
    assert dict(per_day) == summary.accepted_rows_by_day
    assert {d: n for d, n in per_day.items()} == {d: 1501 for d in per_day}
    assert total == summary.accepted_total


def test_source_tables_look_like_the_origin(tmp_path):
    _, engine, _ = _run(tmp_path, customers=60, stores=4, products=25, sellers_per_store=3)
    t = _tables(engine)
    assert [r[0] for r in t["customer"]] == list(range(1, 61))
    assert [r[0] for r in t["store"]] == list(range(121, 125))
    assert [r[0] for r in t["sales_team"]] == list(range(1, 13))
    names = [r[1] for r in t["product"]]
    assert len(set(names)) == 25 and all("," not in n and '"' not in n for n in names)
    for r in t["product"]:
        assert Decimal(str(r[2])) > 0 and Decimal(str(r[3])) >= Decimal(str(r[2]))
    for r in t["customer"]:
        assert r[1] and r[2] and r[3] and r[5] and re.fullmatch(r"\d{6}", r[4]), r
    managers = {r[0] for r in t["sales_team"] if r[4] == "Y"}
    assert managers == {1, 4, 7, 10}
    for r in t["sales_team"]:
        if r[4] == "N":
            assert r[3] == 1 + 3 * ((r[0] - 1) // 3)
    store_managers = {r[0]: r[3] for r in t["store"]}
    by_id = {r[0]: f"{r[1]} {r[2]}" for r in t["sales_team"]}
    assert store_managers[121] == by_id[1]


def test_popularity_is_skewed_with_clear_leaders(tmp_path):
    store, _, _ = _run(tmp_path, days=10, rows_per_day=3000)
    by_customer: Counter[str] = Counter()
    by_seller: dict[str, Counter[str]] = defaultdict(Counter)
    for data in _files(store).values():
        for r in _rows(data):
            by_customer[r["customer_id"]] += 1
            by_seller[r["store_id"]][r["sales_person_id"]] += 1
    counts = sorted(by_customer.values(), reverse=True)
    assert counts[0] > 5 * counts[len(counts) // 2]
    for sellers in by_seller.values():
        (_, first), (_, second) = sellers.most_common(2)
        assert first > 1.3 * second


# --- dirt ----------------------------------------------------------------------------------


def test_bad_rows_break_exactly_one_rule_and_cover_every_kind(dirty):
    store, _, summary = dirty
    assert set(summary.bad_row_kinds) == set(BAD_ROW_KINDS)
    assert sum(summary.bad_row_kinds.values()) == summary.bad_rows
    good_file_rows = sum(
        data.count(b"\n") - 1
        for key, data in _files(store).items()
        if key not in summary.bad_file_kinds
    )
    assert summary.bad_rows == int(0.05 * good_file_rows)

    broken_rules: Counter[str] = Counter()
    bad = 0
    for key, data in _files(store).items():
        if key in summary.bad_file_kinds:
            continue
        day = oracle.business_date_of(key)
        for r in _rows(data):
            violations = oracle.row_violations(r, day)
            assert len(violations) <= 1, (r, violations)
            if violations:
                bad += 1
                broken_rules[violations[0]] += 1
    assert bad == summary.bad_rows
    # Every rule of docs/architecture.md §3 gets exercised.
    assert len(broken_rules) == 9, broken_rules


def test_bad_files_cycle_through_the_kinds(dirty):
    store, _, summary = dirty
    assert len(summary.bad_files) == 4  # half of 8 files
    assert sorted(summary.bad_file_kinds.values()) == sorted(BAD_FILE_KINDS)
    results = {r.key: r for r in oracle.scan(store)[0]}
    for key, kind in summary.bad_file_kinds.items():
        data = store.get_bytes(key)
        assert not results[key].valid, key
        if kind == "zero_byte":
            assert data == b""
        elif kind == "header_only":
            assert data == (HEADER + "\n").encode()
        elif kind == "not_utf8":
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
        else:
            header = data.split(b"\n", 1)[0].decode().split(",")
            assert len(header) == len(SALES_CSV_COLUMNS) - 1
            assert set(header) < set(SALES_CSV_COLUMNS)
    assert all(results[k].valid for k in summary.files if k not in summary.bad_file_kinds)


def test_at_least_one_bad_file_when_fraction_is_positive(tmp_path):
    _, _, summary = _run(tmp_path, bad_file_fraction=0.001)
    assert len(summary.bad_files) == 1
    assert list(summary.bad_file_kinds.values()) == ["missing_column"]


def test_unknown_keys_are_valid_rows_that_miss_a_dimension(dirty):
    store, engine, summary = dirty
    t = _tables(engine)
    customers = {r[0] for r in t["customer"]}
    stores = {r[0] for r in t["store"]}
    sellers = {r[0] for r in t["sales_team"]}
    products = {r[1] for r in t["product"]}
    kinds: Counter[str] = Counter()
    for s in oracle.accepted_sales(store):
        missing = [
            k
            for k, known in (
                ("customer", s.customer_id in customers),
                ("store", s.store_id in stores),
                ("sales_person", s.sales_person_id in sellers),
                ("product", s.product_name in products),
            )
            if not known
        ]
        assert len(missing) <= 1
        kinds.update(missing)
    assert set(kinds) == set(UNKNOWN_KEY_KINDS)
    assert dict(kinds) == summary.unknown_key_kinds
    assert sum(kinds.values()) == summary.unknown_key_rows > 0


def test_oracle_agrees_with_the_generator_summary(dirty):
    store, engine, summary = dirty
    assert oracle.expected_accepted_rows(store) == {
        d: n for d, n in summary.accepted_rows_by_day.items() if n
    }
    assert oracle.expected_daily_totals(store) == {
        d: t for d, t in summary.accepted_total_by_day.items() if t
    }
    customers, team = oracle.expected_marts(store, engine, date(2023, 2, 1))
    feb = sum(t for d, t in summary.accepted_total_by_day.items() if d.month == 2)
    assert sum(r["total_sales"] for r in customers) == feb
    assert sum(r["total_sales"] for r in team) == feb


def test_the_generator_records_what_it_meant_for_every_file(dirty):
    store, engine, summary = dirty
    assert [w.key for w in summary.written] == summary.files
    assert {w.key: w.bad_kind for w in summary.written if w.is_bad} == summary.bad_file_kinds
    assert sum(w.accepted_rows for w in summary.written) == summary.accepted_rows
    assert sum(w.accepted_total for w in summary.written) == summary.accepted_total
    bad_kinds = Counter()
    for w in summary.written:
        bad_kinds.update(w.bad_row_kinds)
        assert w.rows == w.accepted_rows + sum(w.bad_row_kinds.values()) or w.is_bad
    assert dict(bad_kinds) == summary.bad_row_kinds
    # The oracle's own reading of the bytes agrees file by file, before any run.
    expected = oracle.expect_before_run(store, engine, summary.written)
    assert {f.key for f in expected.files if not f.valid} == set(summary.bad_files)


def test_the_oracle_notices_a_file_that_disagrees_with_the_generator(dirty, tmp_path):
    store, _, summary = dirty
    files, sales = oracle.scan(store)
    good = next(w for w in summary.written if not w.is_bad)
    # As if a good file had been taken out of landing (say, moved to the error prefix).
    files = [f for f in files if f.key != good.key]
    sales = [s for s in sales if s.key != good.key]
    assert oracle.generator_disagreements(files, sales, summary.written)


def test_rejects_bad_arguments(tmp_path):
    store = LocalObjectStore(tmp_path / "s")
    engine = sa.create_engine("sqlite://")
    with pytest.raises(ValueError):
        generate(store, engine, start_date=date(2023, 1, 1), days=1, rows_per_day=1, seed=1,
                 bad_row_fraction=1.5, progress=False)  # fmt: skip


# --- the oracle on hand-written files ------------------------------------------------------


def _dims_engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dims.sqlite'}")
    schemas.metadata.create_all(engine, tables=list(SOURCE_TABLES.values()))
    with engine.begin() as conn:
        conn.execute(
            schemas.customer_table.insert(),
            [
                {"customer_id": i, "first_name": f"F{i}", "last_name": f"L{i}",
                 "address": f"Addr {i}", "phone_number": f"+91 90000000{i:02d}"}
                for i in (1, 2, 3, 4)
            ],
        )  # fmt: skip
        conn.execute(
            schemas.sales_team_table.insert(),
            [{"id": i, "first_name": f"S{i}", "last_name": f"T{i}"} for i in (1, 2, 3)],
        )
    return engine


def test_oracle_applies_row_and_file_rules(tmp_path):
    store = LocalObjectStore(tmp_path / "s")
    h = HEADER
    store.put_bytes(
        "sales_data/2023-03-05/a.csv",
        "\n".join(
            [
                h,
                "1,121,Tea,2023-03-05,1,10.00,2,20.00",  # ok
                " 1 , 121 , Tea , 2023-03-05 , 1 , 10.5 , 2 , 21 ",  # ok after trimming
                "0,121,Tea,2023-03-05,1,10.00,2,20.00",  # id not positive
                "1.0,121,Tea,2023-03-05,1,10.00,2,20.00",  # id not plain digits
                "1,x,Tea,2023-03-05,1,10.00,2,20.00",
                "1,121,Tea,2023-03-05,-1,10.00,2,20.00",
                "1,121,  ,2023-03-05,1,10.00,2,20.00",  # empty name
                "1,121,Tea,05/03/2023,1,10.00,2,20.00",  # unparseable date
                "1,121,Tea,2023-02-30,1,10.00,2,20.00",
                "1,121,Tea,2023-03-04,1,10.00,2,20.00",  # other day
                "1,121,Tea,2023-03-05,1,-10.00,2,-20.00",  # negative price
                "1,121,Tea,2023-03-05,1,10.005,2,20.01",  # 3 decimals
                "1,121,Tea,2023-03-05,1,10.00,0,0.00",  # zero quantity
                "1,121,Tea,2023-03-05,1,10.00,2.0,20.00",
                "1,121,Tea,2023-03-05,1,10.00,2,20.01",  # total mismatch
                "1,121,Tea,2023-03-05,1,10.00,2,20.000",  # total 3 decimals
                "1,121,Tea,2023-03-05,1,10.00",  # short row
                "1,121,Tea,2023-03-05,1,10.00,2,20.00,9",  # more fields than the header
                "",
            ]
        ).encode()
        + b"\n",
    )
    # Reordered columns plus an extra one, matched by name.
    store.put_bytes(
        "sales_data/sales_date=2023-03-06/b.csv",
        b"store_id,customer_id,note,product_name,sales_date,sales_person_id,price,quantity,"
        b"total_cost\n121,2,hello,Tea,2023-03-06,1,0.00,3,0.00\n",
    )
    # A byte-order mark is not part of the first column's name (the product reads utf-8-sig).
    store.put_bytes(
        "sales_data/2023-03-07/bom.csv", f"\ufeff{h}\n3,121,Tea,2023-03-07,1,1.00,1,1.00\n".encode()
    )
    store.put_bytes(
        "sales_data/2023-03-06/twice.csv",
        f"{h},price\n1,121,Tea,2023-03-06,1,1.00,1,1.00,1\n".encode(),
    )
    store.put_bytes("sales_data/2023-03-06/empty.csv", b"")
    store.put_bytes("sales_data/2023-03-06/header.csv", (h + "\n").encode())
    latin1 = f"{h}\n1,121,Café,2023-03-06,1,1.00,1,1.00\n".encode("cp1252")
    store.put_bytes("sales_data/2023-03-06/latin1.csv", latin1)
    store.put_bytes(
        "sales_data/2023-03-06/missing.csv",
        b"customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity\n"
        b"1,121,Tea,2023-03-06,1,1.00,1\n",
    )
    store.put_bytes(
        "sales_data/nodate/c.csv", f"{h}\n1,121,Tea,2023-03-06,1,1.00,1,1.00\n".encode()
    )
    store.put_bytes("sales_data/2023-03-06/readme.txt", b"not a csv")
    # The same bytes as a.csv under another key: a duplicate, counted once.
    store.put_bytes(
        "sales_data/2023-03-05/z_copy.csv", store.get_bytes("sales_data/2023-03-05/a.csv")
    )

    results, sales = oracle.scan(store)
    by_key = {r.key: r for r in results}
    a = by_key["sales_data/2023-03-05/a.csv"]
    assert (a.valid, a.rows_read, a.rows_accepted, a.rows_rejected) == (True, 18, 2, 16)
    assert by_key["sales_data/sales_date=2023-03-06/b.csv"].rows_accepted == 1
    for name, reason in [
        ("empty", "empty file"),
        ("header", "no data rows"),
        ("latin1", "not UTF-8"),
        ("missing", "missing column(s): total_cost"),
        ("twice", "duplicate column names"),
    ]:
        r = by_key[f"sales_data/2023-03-06/{name}.csv"]
        assert (r.valid, r.reason) == (False, reason)
    assert by_key["sales_data/nodate/c.csv"].reason == "no business date in key"
    assert by_key["sales_data/2023-03-05/z_copy.csv"].reason == (
        "duplicate of sales_data/2023-03-05/a.csv"
    )
    assert "sales_data/2023-03-06/readme.txt" not in by_key
    assert [(s.customer_id, s.price, s.total_cost) for s in sales] == [
        (1, Decimal("10.00"), Decimal("20.00")),
        (1, Decimal("10.5"), Decimal("21")),
        (3, Decimal("1.00"), Decimal("1.00")),
        (2, Decimal("0.00"), Decimal("0.00")),
    ]
    assert oracle.expected_accepted_rows(store) == {
        date(2023, 3, 5): 2,
        date(2023, 3, 6): 1,
        date(2023, 3, 7): 1,
    }
    assert oracle.expected_daily_totals(store) == {
        date(2023, 3, 5): Decimal("41.00"),
        date(2023, 3, 6): Decimal("0.00"),
        date(2023, 3, 7): Decimal("1.00"),
    }


def test_oracle_marts_ties_coupons_and_unknown_keys(tmp_path):
    store = LocalObjectStore(tmp_path / "s")
    engine = _dims_engine(tmp_path)

    def line(cid, sid, spid, amount, day="2023-03-05"):
        return f"{cid},{sid},Tea,{day},{spid},{amount},1,{amount}"

    rows = [
        line(1, 121, 1, "5000.00"),  # customer 1: exactly SILVER
        line(2, 121, 2, "4999.99"),  # customer 2: just below
        line(3, 121, 3, "12345.50"),  # customer 3 + 4 = 20000.00: PLATINUM
        line(3, 121, 3, "7654.50"),
        line(4, 122, 1, "100.00"),
        line(4, 122, 2, "100.00"),  # store 122: sellers 1 and 2 tie for first
        line(4, 122, 3, "99.99"),
        line(99, 122, 77, "10.00"),  # unknown customer and seller: kept, no names
        line(9, 121, 1, "10000.00", day="2023-04-01"),  # another month: its own file
    ]
    store.put_bytes(
        "sales_data/2023-03-05/s.csv", ("\n".join([HEADER, *rows[:-1]]) + "\n").encode()
    )
    store.put_bytes("sales_data/2023-04-01/s.csv", f"{HEADER}\n{rows[-1]}\n".encode())

    customers, team = oracle.expected_marts(store, engine, date(2023, 3, 1))
    by_customer = {r["customer_id"]: r for r in customers}
    assert [r["customer_id"] for r in customers] == [1, 2, 3, 4, 99]
    assert by_customer[1]["coupon_tier"] == "SILVER" and by_customer[1]["discount_percent"] == 5
    assert by_customer[1]["coupon_code"] == "SILVER-202303-1"
    assert by_customer[2]["coupon_tier"] == "NONE" and by_customer[2]["coupon_code"] is None
    assert by_customer[3]["total_sales"] == Decimal("20000.00")
    assert by_customer[3]["coupon_code"] == "PLATINUM-202303-3"
    assert by_customer[1]["full_name"] == "F1 L1" and by_customer[1]["address"] == "Addr 1"
    assert by_customer[99]["full_name"] is None and by_customer[99]["phone_number"] is None
    assert all(r["sales_date_month"] == date(2023, 3, 1) for r in customers)

    got = [
        (r["store_id"], r["sales_person_id"], r["sales_rank"], r["total_sales"], r["incentive"])
        for r in team
    ]
    assert got == [
        (121, 3, 1, Decimal("20000.00"), Decimal("200.00")),
        (121, 1, 2, Decimal("5000.00"), Decimal("0.00")),
        (121, 2, 3, Decimal("4999.99"), Decimal("0.00")),
        (122, 1, 1, Decimal("100.00"), Decimal("1.00")),
        (122, 2, 1, Decimal("100.00"), Decimal("1.00")),
        (122, 3, 3, Decimal("99.99"), Decimal("0.00")),
        (122, 77, 4, Decimal("10.00"), Decimal("0.00")),
    ]
    assert {r["sales_month"] for r in team} == {"2023-03"}
    assert team[0]["full_name"] == "S3 T3" and team[-1]["full_name"] is None

    # Incentive rounds half up; the rate is a parameter.
    _, team = oracle.expected_marts(
        store, engine, date(2023, 3, 1), incentive_rate=Decimal("0.00005")
    )
    assert team[0]["incentive"] == Decimal("1.00")  # 20000 * 0.00005 = 1.00
    may = line(1, 121, 1, "12345.50", "2023-05-02")
    store.put_bytes("sales_data/2023-05-02/s.csv", f"{HEADER}\n{may}\n".encode())
    _, team = oracle.expected_marts(store, engine, date(2023, 5, 1))
    assert team[0]["incentive"] == Decimal("123.46")  # 123.455 rounds half up

    customers, _ = oracle.expected_marts(store, engine, date(2023, 4, 1))
    assert [(r["customer_id"], r["coupon_tier"]) for r in customers] == [(9, "GOLD")]
