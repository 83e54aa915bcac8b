"""An independent recompute of the marts, for tests: plain Python, `csv` + `decimal`, no Spark.

It reads the landing files straight from an object store and the source tables through
SQLAlchemy, applies architecture.md §3's file and row rules as written here (not as the platform's
transforms implement them), and returns what the two marts must contain for a month.

File rules (a file failing one is skipped whole): the key carries a business date (a path segment
`YYYY-MM-DD/` or `sales_date=YYYY-MM-DD/`, else a date in the file name); the bytes decode as
UTF-8 (a leading BOM is dropped, as the product reads `utf-8-sig`); the header names every mandatory
column once (trimmed, any order, extra columns ignored, a repeated name rejects the file); there
is at least one data row. Optionally (`dedupe_content`), a file whose exact bytes were already seen
under another key is skipped as a duplicate (the first key in sorted order wins).

Row rules (a row failing one is dropped), after trimming every field of spaces, tabs, CR, LF,
form feeds and vertical tabs (a line with more fields than its header is dropped whole, as the
product quarantines it):
- customer_id, store_id, sales_person_id: plain digits, 1 .. 2**31-1;
- product_name: not empty;
- sales_date: `yyyy-MM-dd`, a real date, equal to the business date;
- price: plain decimal (`-?digits[.d{1,2}]`), >= 0, fits DECIMAL(10,2);
- quantity: plain digits, 1 .. 2**31-1;
- total_cost: plain decimal with at most 2 decimals, fits DECIMAL(12,2), = price x quantity.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from sales_platform.business_rules import (
    DEFAULT_COUPON_TIERS,
    DEFAULT_INCENTIVE_RATE,
    CouponTier,
    coupon_code,
    sorted_tiers,
)
from sales_platform.schemas import (
    LANDING_PREFIX,
    SALES_CSV_COLUMNS,
    customer_table,
    sales_team_table,
)
from sales_platform.storage.object_store import ObjectStore

CENT = Decimal("0.01")
# What the contract trims from a cell's ends (ASCII whitespace; a no-break space stays).
WHITESPACE = " \t\r\n\f\v"
INT_MAX = 2**31 - 1

_DATE_SEGMENT = re.compile(r"(?:^|/)(?:sales_date=)?(\d{4}-\d{2}-\d{2})/")
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]{1,2})?")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Sale:
    """One accepted row."""

    key: str
    business_date: date
    customer_id: int
    store_id: int
    product_name: str
    sales_person_id: int
    price: Decimal
    quantity: int
    total_cost: Decimal


@dataclass(frozen=True)
class FileResult:
    """What the rules make of one landing object."""

    key: str
    business_date: date | None
    valid: bool
    reason: str | None  # why the file was skipped; None when valid
    rows_read: int
    rows_accepted: int

    @property
    def rows_rejected(self) -> int:
        return self.rows_read - self.rows_accepted


def business_date_of(key: str) -> date | None:
    """The business date a key carries, or None."""
    m = _DATE_SEGMENT.search(key)
    if m is None:
        m = _DATE_IN_NAME.search(key.rsplit("/", 1)[-1])
    if m is None:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def _positive_int(text: str) -> int | None:
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= INT_MAX else None


def _money(text: str, integer_digits: int) -> Decimal | None:
    if not _DECIMAL.fullmatch(text):
        return None
    value = Decimal(text)
    return value if abs(value) < Decimal(10) ** integer_digits else None


def row_violations(fields: dict[str, str | None], business_date: date) -> list[str]:
    """Every row rule the raw row breaks (empty when the row is accepted)."""
    return _check(fields, business_date)[1]


def parse_row(fields: dict[str, str | None], business_date: date) -> dict | None:
    """The typed row, or None when it breaks a row rule. `fields` maps header -> raw text."""
    row, broken = _check(fields, business_date)
    return None if broken else row


def _check(fields: dict[str, str | None], business_date: date) -> tuple[dict, list[str]]:
    f = {c: (fields.get(c) or "").strip(WHITESPACE) for c in SALES_CSV_COLUMNS}
    broken: list[str] = []
    row: dict = {}
    for c in ("customer_id", "store_id", "sales_person_id"):
        row[c] = _positive_int(f[c])
        if row[c] is None:
            broken.append(f"{c} is not a positive integer")
    row["product_name"] = f["product_name"]
    if not f["product_name"]:
        broken.append("product_name is empty")
    sales_date = None
    if _DATE_TEXT.fullmatch(f["sales_date"]):
        try:
            sales_date = date.fromisoformat(f["sales_date"])
        except ValueError:
            sales_date = None
    if sales_date is None:
        broken.append("sales_date is not a yyyy-MM-dd date")
    elif sales_date != business_date:
        broken.append("sales_date is not the file's business date")
    price = row["price"] = _money(f["price"], 8)
    if price is None or price < 0:
        broken.append("price is not a non-negative amount with at most 2 decimals")
    quantity = row["quantity"] = _positive_int(f["quantity"])
    if quantity is None:
        broken.append("quantity is not a positive integer")
    total = row["total_cost"] = _money(f["total_cost"], 10)
    if total is None:
        broken.append("total_cost is not an amount with at most 2 decimals")
    elif price is not None and quantity is not None and total != price * quantity:
        # Only comparable when price and quantity parse; a 3-decimal price still compares.
        broken.append("total_cost is not price x quantity")
    elif (price is None or quantity is None) and _comparable(f, total):
        broken.append("total_cost is not price x quantity")
    return row, broken


def _comparable(f: dict[str, str], total: Decimal) -> bool:
    """price x quantity != total, using the raw price/quantity text when it is numeric at all."""
    try:
        price, quantity = Decimal(f["price"]), Decimal(f["quantity"])
    except ArithmeticError:
        return False
    return price.is_finite() and quantity.is_finite() and total != price * quantity


def _read_file(key: str, data: bytes, business_date: date) -> tuple[FileResult, list[Sale]]:
    def skipped(reason: str, rows_read: int = 0) -> tuple[FileResult, list[Sale]]:
        return FileResult(key, business_date, False, reason, rows_read, 0), []

    if not data:
        return skipped("empty file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return skipped("not UTF-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return skipped("empty file")
    names = [h.strip() for h in header]
    missing = [c for c in SALES_CSV_COLUMNS if c not in names]
    lines = [line for line in reader if line]  # blank lines are not rows
    if missing:
        return skipped(f"missing column(s): {', '.join(missing)}", len(lines))
    if len(set(names)) != len(names):
        return skipped("duplicate column names", len(lines))
    if not lines:
        return skipped("no data rows")
    position = {c: names.index(c) for c in SALES_CSV_COLUMNS}
    sales = []
    for line in lines:
        if len(line) > len(names):
            continue  # more fields than the header: malformed, quarantined
        fields = {c: (line[i] if i < len(line) else None) for c, i in position.items()}
        row = parse_row(fields, business_date)
        if row is not None:
            sales.append(Sale(key=key, business_date=business_date, **row))
    return FileResult(key, business_date, True, None, len(lines), len(sales)), sales


def scan(
    store: ObjectStore,
    prefixes: Iterable[str] = (LANDING_PREFIX,),
    dedupe_content: bool = True,
) -> tuple[list[FileResult], list[Sale]]:
    """Every `.csv` object under the prefixes: per-file results and the accepted rows."""
    keys = sorted({obj.key for p in prefixes for obj in store.list(p) if obj.key.endswith(".csv")})
    results: list[FileResult] = []
    sales: list[Sale] = []
    seen: dict[str, str] = {}
    for key in keys:
        business_date = business_date_of(key)
        if business_date is None:
            results.append(FileResult(key, None, False, "no business date in key", 0, 0))
            continue
        data = store.get_bytes(key)
        result, rows = _read_file(key, data, business_date)
        if dedupe_content and result.valid:
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                reason = f"duplicate of {seen[digest]}"
                result, rows = FileResult(key, business_date, False, reason, 0, 0), []
            else:
                seen[digest] = key
        results.append(result)
        sales.extend(rows)
    return results, sales


def accepted_sales(store: ObjectStore, prefixes: Iterable[str] = (LANDING_PREFIX,)) -> list[Sale]:
    return scan(store, prefixes)[1]


def expected_accepted_rows(
    store: ObjectStore, prefixes: Iterable[str] = (LANDING_PREFIX,)
) -> dict[date, int]:
    """Accepted rows per business date (days whose files were all skipped are absent)."""
    counts: dict[date, int] = defaultdict(int)
    for s in accepted_sales(store, prefixes):
        counts[s.business_date] += 1
    return dict(sorted(counts.items()))


def expected_daily_totals(
    store: ObjectStore, prefixes: Iterable[str] = (LANDING_PREFIX,)
) -> dict[date, Decimal]:
    """Sum of accepted total_cost per business date."""
    totals: dict[date, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for s in accepted_sales(store, prefixes):
        totals[s.business_date] += s.total_cost
    return {d: t.quantize(CENT) for d, t in sorted(totals.items())}


def _full_name(first: str | None, last: str | None) -> str | None:
    parts = [p for p in (first, last) if p]
    return " ".join(parts) if parts else None


def _month_start(month: date) -> date:
    return month.replace(day=1)


def _in_month(sales: Iterable[Sale], month: date) -> Iterator[Sale]:
    m = _month_start(month)
    return (s for s in sales if _month_start(s.business_date) == m)


def customer_mart_rows(
    sales: Iterable[Sale],
    customers: dict[int, dict],
    month: date,
    tiers: tuple[CouponTier, ...] = DEFAULT_COUPON_TIERS,
) -> list[dict]:
    """customers_data_mart rows of the month, sorted by customer_id."""
    m = _month_start(month)
    ordered = sorted_tiers(tiers)
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for s in _in_month(sales, m):
        totals[s.customer_id] += s.total_cost
    rows = []
    for cid in sorted(totals):
        total = totals[cid].quantize(CENT)
        tier = next(t for t in ordered if total >= t.min_total)
        c = customers.get(cid)
        rows.append(
            {
                "customer_id": cid,
                "full_name": _full_name(c["first_name"], c["last_name"]) if c else None,
                "address": c["address"] if c else None,
                "phone_number": c["phone_number"] if c else None,
                "sales_date_month": m,
                "total_sales": total,
                "coupon_tier": tier.name,
                "discount_percent": tier.discount_percent,
                "coupon_code": coupon_code(tier.name, m, cid),
            }
        )
    return rows


def sales_team_mart_rows(
    sales: Iterable[Sale],
    sellers: dict[int, dict],
    month: date,
    incentive_rate: Decimal = DEFAULT_INCENTIVE_RATE,
) -> list[dict]:
    """sales_team_data_mart rows of the month, sorted by (store_id, sales_rank, sales_person_id)."""
    m = _month_start(month)
    totals: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for s in _in_month(sales, m):
        totals[(s.store_id, s.sales_person_id)] += s.total_cost
    by_store: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    for (store_id, seller_id), total in totals.items():
        by_store[store_id].append((seller_id, total.quantize(CENT)))
    rows = []
    for store_id in sorted(by_store):
        group = by_store[store_id]
        for seller_id, total in group:
            rank = 1 + sum(1 for _, other in group if other > total)  # competition rank
            incentive = (
                (total * incentive_rate).quantize(CENT, ROUND_HALF_UP)
                if rank == 1
                else Decimal("0.00")
            )
            p = sellers.get(seller_id)
            rows.append(
                {
                    "store_id": store_id,
                    "sales_person_id": seller_id,
                    "full_name": _full_name(p["first_name"], p["last_name"]) if p else None,
                    "sales_month": f"{m:%Y-%m}",
                    "total_sales": total,
                    "incentive": incentive,
                    "sales_rank": rank,
                }
            )
    rows.sort(key=lambda r: (r["store_id"], r["sales_rank"], r["sales_person_id"]))
    return rows


def read_dimensions(engine: sa.Engine) -> tuple[dict[int, dict], dict[int, dict]]:
    """(customers by customer_id, sellers by id) from the source tables."""
    with engine.connect() as conn:
        customers = {
            r["customer_id"]: dict(r) for r in conn.execute(sa.select(customer_table)).mappings()
        }
        sellers = {r["id"]: dict(r) for r in conn.execute(sa.select(sales_team_table)).mappings()}
    return customers, sellers


def expected_marts(
    store: ObjectStore,
    engine: sa.Engine,
    month: date,
    incentive_rate: Decimal = DEFAULT_INCENTIVE_RATE,
    tiers: tuple[CouponTier, ...] = DEFAULT_COUPON_TIERS,
    prefixes: Iterable[str] = (LANDING_PREFIX,),
) -> tuple[list[dict], list[dict]]:
    """(customers_data_mart rows, sales_team_data_mart rows) the month must hold.

    Pass `prefixes=(LANDING_PREFIX, PROCESSED_PREFIX)` after the platform has archived files.
    """
    sales = accepted_sales(store, prefixes)
    customers, sellers = read_dimensions(engine)
    return (
        customer_mart_rows(sales, customers, month, tiers),
        sales_team_mart_rows(sales, sellers, month, incentive_rate),
    )


@dataclass(frozen=True)
class Expected:
    """What the marts must hold, fixed from the landing bytes right after generation.

    Taken before any run, so a run that moves, archives or loses a file cannot change what is
    expected of it: a good file wrongly rejected still counts here and the marts then differ.
    """

    files: tuple[FileResult, ...]
    sales: tuple[Sale, ...]
    customers: dict[int, dict]
    sellers: dict[int, dict]

    @property
    def months(self) -> tuple[date, ...]:
        return tuple(sorted({_month_start(s.business_date) for s in self.sales}))

    def customer_mart(self, month: date, **rules) -> list[dict]:
        return customer_mart_rows(self.sales, self.customers, month, **rules)

    def sales_team_mart(self, month: date, **rules) -> list[dict]:
        return sales_team_mart_rows(self.sales, self.sellers, month, **rules)

    def file(self, key: str) -> FileResult:
        return next(f for f in self.files if f.key == key)

    def with_file(self, store: ObjectStore, key: str) -> Expected:
        """The expectation once one more file has landed (read now, before it is run)."""
        business_date = business_date_of(key)
        assert business_date is not None, key
        result, rows = _read_file(key, store.get_bytes(key), business_date)
        return replace(self, files=(*self.files, result), sales=(*self.sales, *rows))

    def with_file_replaced(self, store: ObjectStore, key: str) -> Expected:
        """The expectation once `key` holds new content (read now, before it is run)."""
        files = tuple(f for f in self.files if f.key != key)
        sales = tuple(s for s in self.sales if s.key != key)
        return replace(self, files=files, sales=sales).with_file(store, key)


def expect_before_run(store: ObjectStore, engine: sa.Engine, written=None) -> Expected:
    """The oracle's expectation, read from landing before any run.

    With `written` (the generator's `GenerateSummary.written`), every file must also agree with
    what the generator meant to write: the same keys, bad files skipped and good files accepted,
    the same accepted rows and money per file. Two independent accounts that agree.
    """
    files, sales = scan(store, (LANDING_PREFIX,))
    if written is not None:
        disagreements = generator_disagreements(files, sales, written)
        assert not disagreements, disagreements
    customers, sellers = read_dimensions(engine)
    return Expected(tuple(files), tuple(sales), customers, sellers)


def generator_disagreements(files: list[FileResult], sales: list[Sale], written) -> list[str]:
    """Where the oracle's reading of the bytes differs from the generator's record."""
    by_key = {f.key: f for f in files}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for s in sales:
        totals[s.key] += s.total_cost
    problems = []
    if set(by_key) != {w.key for w in written}:
        problems.append(f"keys differ: {sorted(set(by_key) ^ {w.key for w in written})}")
    for w in written:
        f = by_key.get(w.key)
        if f is None:
            continue
        if f.valid == w.is_bad:
            problems.append(f"{w.key}: generator bad_kind={w.bad_kind}, oracle valid={f.valid}")
        if f.business_date != w.business_date:
            problems.append(f"{w.key}: business date {f.business_date} != {w.business_date}")
        if f.rows_accepted != w.accepted_rows:
            problems.append(f"{w.key}: accepted {f.rows_accepted} != {w.accepted_rows}")
        if totals[w.key] != w.accepted_total:
            problems.append(f"{w.key}: total {totals[w.key]} != {w.accepted_total}")
        if f.valid and f.rows_rejected != sum(w.bad_row_kinds.values()):
            problems.append(f"{w.key}: rejected {f.rows_rejected} != {w.bad_row_kinds}")
    return problems
