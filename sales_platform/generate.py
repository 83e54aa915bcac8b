"""Synthetic, origin-compatible data: landing CSVs in an object store and the source tables.

`generate` fills the four source tables (`customer`, `store`, `product`, `sales_team`) and writes
one or more sales CSVs per business day under `sales_data/YYYY-MM-DD/sales_YYYY-MM-DD_NN.csv`
(NN from 01). The same seed and arguments give byte-identical files and identical table rows.

What the files contain:
- good rows: a known customer, a store and one of *that store's* sellers, a known product at its
  `current_price`, quantity 1..10, `total_cost = price x quantity` to the cent, `sales_date` = the
  file's date. Customer, store and seller popularity is skewed (Zipf-like), so monthly rankings
  mostly have a clear leader;
- `unknown_key_fraction` of rows name a customer, store, seller or product that is not in the
  source tables. They are valid by the row rules: the platform keeps them, flagged;
- `bad_row_fraction` of rows break exactly one row rule (see `BAD_ROW_KINDS`);
- `bad_file_fraction` of files (at least one when > 0) are bad as a whole, cycling through
  `BAD_FILE_KINDS`. Bad files get no bad rows of their own.

Money is integer cents until it becomes text; the CSV text comes from Arrow's writer (dictionary
columns, decimal128 for money) so the generator writes well over 50 MB/s on two cores.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from faker import Faker
from tqdm import tqdm

from sales_platform import schemas
from sales_platform.schemas import LANDING_PREFIX, SALES_CSV_COLUMNS, SOURCE_TABLES
from sales_platform.storage.object_store import ObjectStore

STORE_ID_START = 121  # the origin's store ids start at 121
CHUNK_ROWS = 500_000
MAX_BAD_ROW_SPOTS = 64  # bad rows of a chunk are spread over at most this many places
_LUT_BITS = 20  # resolution of the skewed samplers: 2**20 buckets

BAD_ROW_KINDS: tuple[str, ...] = (
    "customer_id_not_positive",
    "customer_id_not_integer",
    "store_id_not_positive",
    "store_id_not_integer",
    "sales_person_id_not_positive",
    "sales_person_id_not_integer",
    "product_name_empty",
    "sales_date_unparseable",
    "sales_date_not_file_date",
    "price_negative",
    "price_three_decimals",
    "quantity_not_positive",
    "total_cost_mismatch",
)
BAD_FILE_KINDS: tuple[str, ...] = ("missing_column", "zero_byte", "header_only", "not_utf8")
UNKNOWN_KEY_KINDS: tuple[str, ...] = ("customer", "store", "sales_person", "product")
_UNKNOWN_PRODUCTS = 16

# fmt: off
_BRANDS = (
    "Aashirvaad", "Amul", "Britannia", "Catch", "Dabur", "Everest", "Fortune", "Haldiram",
    "Kissan", "MDH", "Maggi", "Mother Dairy", "Nestle", "Parle", "Patanjali", "Quaker",
    "Saffola", "Surf Excel", "Tata", "Vim",
)
_ITEMS = (
    "Atta", "Basmati Rice", "Besan", "Biscuits", "Butter", "Cashews", "Chana Dal", "Chilli Powder",
    "Coffee", "Cornflakes", "Detergent", "Dishwash Gel", "Ghee", "Green Tea", "Honey", "Jaggery",
    "Jam", "Ketchup", "Maida", "Masala Oats", "Moong Dal", "Mustard Oil", "Noodles", "Paneer",
    "Peanut Butter", "Pickle", "Poha", "Refined Oil", "Rock Salt", "Rusk", "Sooji", "Sugar",
    "Sunflower Oil", "Tea", "Toor Dal", "Turmeric Powder", "Urad Dal", "Vermicelli", "Walnuts",
    "Yogurt",
)
# fmt: on
_SIZES = ("200g", "500g", "1kg", "2kg", "5kg")


@dataclass(frozen=True)
class FileWritten:
    """The generator's own record of one file it wrote: what the platform must make of it.

    `bad_kind` is None for a good file. A good file's `rows` = `accepted_rows` + bad rows (one
    kind each, in `bad_row_kinds`); a bad file accepts nothing and carries no bad rows.
    """

    key: str
    business_date: date
    bad_kind: str | None
    rows: int
    bytes: int
    accepted_rows: int
    accepted_total: Decimal
    bad_row_kinds: dict[str, int]

    @property
    def is_bad(self) -> bool:
        return self.bad_kind is not None


@dataclass
class GenerateSummary:
    """What one `generate` call wrote.

    `rows` counts data lines in all files, bad files included; `accepted_rows` are the rows the
    platform must accept (good files, rule-abiding rows, unknown-key rows included), and
    `accepted_total` their summed total_cost. Rows in good files = accepted_rows + bad_rows.
    """

    files: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    bad_rows: int = 0
    bad_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    accepted_rows: int = 0
    unknown_key_rows: int = 0
    accepted_total: Decimal = Decimal("0.00")
    bad_row_kinds: dict[str, int] = field(default_factory=dict)
    unknown_key_kinds: dict[str, int] = field(default_factory=dict)
    bad_file_kinds: dict[str, str] = field(default_factory=dict)  # key -> kind
    accepted_rows_by_day: dict[date, int] = field(default_factory=dict)
    accepted_total_by_day: dict[date, Decimal] = field(default_factory=dict)
    written: list[FileWritten] = field(default_factory=list)  # one per file, in `files` order

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")


def sales_key(day: date, index: int) -> str:
    """Landing key of the day's file number `index` (1-based)."""
    return f"{LANDING_PREFIX}{day:%Y-%m-%d}/sales_{day:%Y-%m-%d}_{index:02d}.csv"


def cents_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    a = abs(cents)
    return f"{sign}{a // 100}.{a % 100:02d}"


def _cents_decimal(cents: int) -> Decimal:
    return Decimal(cents_text(cents))


def _decimal_array(cents: np.ndarray) -> pa.Array:
    """int64 cents -> decimal128(12, 2) without going through float."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63  # sign extension into the high word
    return pa.Array.from_buffers(pa.decimal128(12, 2), len(cents), [None, pa.py_buffer(words)])


def _lut(weights: np.ndarray) -> np.ndarray:
    """A lookup table turning uniform ints in [0, 2**_LUT_BITS) into weighted indices."""
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    m = 1 << _LUT_BITS
    return np.searchsorted(cdf, (np.arange(m) + 0.5) / m).astype(np.int32)


def _zipf_weights(n: int, s: float, rng: np.random.Generator) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w[rng.permutation(n)]


# --- dimensions ----------------------------------------------------------------------------


@dataclass
class _Dims:
    n_customers: int
    store_ids: np.ndarray  # int32, index -> store id
    sellers_per_store: int
    product_names: pa.Array  # known names then the unknown ones
    product_cents: np.ndarray  # int64, same order as product_names
    n_products: int
    customer_lut: np.ndarray
    store_lut: np.ndarray
    seller_pos_lut: np.ndarray
    seller_perm: np.ndarray  # [store index, popularity rank] -> position in the store


def _product_names(n: int, rng: np.random.Generator) -> list[str]:
    combos = [f"{b} {i} {s}" for i in _ITEMS for b in _BRANDS for s in _SIZES]
    order = rng.permutation(len(combos))
    names = [combos[k] for k in order[: min(n, len(combos))]]
    k = 0
    while len(names) < n:  # past the catalogue: numbered packs, still unique
        names.append(f"{combos[order[k % len(combos)]]} Pack {k // len(combos) + 2}")
        k += 1
    return names


def _one_line(text: str) -> str:
    return ", ".join(part.strip() for part in text.splitlines() if part.strip())


def _build_source_rows(
    seed: int, customers: int, stores: int, products: int, sellers_per_store: int
) -> tuple[dict[str, list[dict]], _Dims]:
    fake = Faker("en_IN")
    fake.seed_instance(seed)
    rng = np.random.default_rng([seed, 0])

    customer_rows = [
        {
            "customer_id": cid,
            "first_name": fake.first_name()[:50],
            "last_name": fake.last_name()[:50],
            "address": _one_line(fake.address())[:255],
            "pincode": fake.postcode()[:10],
            "phone_number": fake.numerify("+91 9#########"),
            "customer_joining_date": fake.date_between(date(2018, 1, 1), date(2022, 12, 31)),
        }
        for cid in range(1, customers + 1)
    ]

    n_sellers = stores * sellers_per_store
    seller_rows = []
    for k in range(n_sellers):
        manager_id = (k // sellers_per_store) * sellers_per_store + 1
        is_manager = k % sellers_per_store == 0
        seller_rows.append(
            {
                "id": k + 1,
                "first_name": fake.first_name()[:50],
                "last_name": fake.last_name()[:50],
                "manager_id": None if is_manager else manager_id,
                "is_manager": "Y" if is_manager else "N",
                "address": _one_line(fake.address())[:255],
                "pincode": fake.postcode()[:10],
                "joining_date": fake.date_between(date(2015, 1, 1), date(2022, 12, 31)),
            }
        )

    store_ids = np.arange(STORE_ID_START, STORE_ID_START + stores, dtype=np.int32)
    store_rows = []
    for s in range(stores):
        manager = seller_rows[s * sellers_per_store]
        store_rows.append(
            {
                "id": int(store_ids[s]),
                "address": _one_line(fake.address())[:255],
                "store_pincode": fake.postcode()[:10],
                "store_manager_name": f"{manager['first_name']} {manager['last_name']}",
                "store_opening_date": fake.date_between(date(2010, 1, 1), date(2020, 12, 31)),
                "reviews": fake.sentence(nb_words=10),
            }
        )

    names = _product_names(products, rng)
    # Log-uniform prices from 10.00 to 500.00, as integer cents.
    cents = np.round(np.exp(rng.uniform(np.log(1000), np.log(50000), products))).astype(np.int64)
    markup = rng.integers(0, 31, products)  # old price was 0..30 % higher
    old_cents = cents + (cents * markup) // 100
    product_rows = []
    for p in range(products):
        created = datetime(2022, 1, 1) + timedelta(minutes=int(rng.integers(0, 365 * 24 * 60)))
        product_rows.append(
            {
                "id": p + 1,
                "name": names[p],
                "current_price": _cents_decimal(int(cents[p])),
                "old_price": _cents_decimal(int(old_cents[p])),
                "created_date": created,
                "updated_date": created + timedelta(days=int(rng.integers(0, 365))),
                "expiry_date": (created + timedelta(days=int(rng.integers(365, 3 * 365)))).date(),
            }
        )

    unknown_names = [f"Unlisted Item {i:02d}" for i in range(1, _UNKNOWN_PRODUCTS + 1)]
    unknown_cents = rng.integers(1000, 20000, _UNKNOWN_PRODUCTS).astype(np.int64)

    seller_weights = 1.0 / np.arange(1, sellers_per_store + 1, dtype=np.float64) ** 1.2
    dims = _Dims(
        n_customers=customers,
        store_ids=store_ids,
        sellers_per_store=sellers_per_store,
        product_names=pa.array(names + unknown_names, pa.string()),
        product_cents=np.concatenate([cents, unknown_cents]),
        n_products=products,
        customer_lut=_lut(_zipf_weights(customers, 1.1, rng)),
        store_lut=_lut(_zipf_weights(stores, 0.3, rng)),
        seller_pos_lut=_lut(seller_weights),
        seller_perm=np.stack([rng.permutation(sellers_per_store) for _ in range(stores)]).astype(
            np.int32
        ),
    )
    tables = {
        "customer": customer_rows,
        "store": store_rows,
        "product": product_rows,
        "sales_team": seller_rows,
    }
    return tables, dims


def _load_source_tables(engine: sa.Engine, rows: dict[str, list[dict]]) -> None:
    schemas.metadata.create_all(engine, tables=list(SOURCE_TABLES.values()))
    with engine.begin() as conn:
        for name in SOURCE_TABLES:
            conn.execute(SOURCE_TABLES[name].delete())
        for name, table in SOURCE_TABLES.items():
            batch = rows[name]
            for start in range(0, len(batch), 5000):
                conn.execute(table.insert(), batch[start : start + 5000])


# --- sales files ---------------------------------------------------------------------------

_CSV_TYPES = {
    "customer_id": pa.int32(),
    "store_id": pa.int32(),
    "product_name": pa.dictionary(pa.int32(), pa.string()),
    "sales_date": pa.dictionary(pa.int32(), pa.string()),
    "sales_person_id": pa.int32(),
    "price": pa.decimal128(12, 2),
    "quantity": pa.int32(),
    "total_cost": pa.decimal128(12, 2),
}
# Header order is SALES_CSV_COLUMNS'.
_CSV_SCHEMA = pa.schema([(c, _CSV_TYPES[c]) for c in SALES_CSV_COLUMNS])
_WRITE_OPTIONS = pacsv.WriteOptions(
    include_header=False, quoting_style="none", quoting_header="none", batch_size=1 << 16, eol="\n"
)


class _Writer:
    """Generates and writes the sales files of one `generate` call, in order."""

    def __init__(
        self,
        dims: _Dims,
        unknown_key_fraction: float,
        bad_row_fraction: float,
    ):
        self.dims = dims
        self.unknown_fraction = unknown_key_fraction
        self.bad_fraction = bad_row_fraction
        self.rows_seen = 0  # rows of good files so far: drives the exact fractions
        self.bad_so_far = 0
        self.unknown_so_far = 0
        self.bad_kinds: Counter[str] = Counter()
        self.unknown_kinds: Counter[str] = Counter()
        self.missing_column_files = 0
        self.names: list[str] = dims.product_names.to_pylist()

    def _arrays(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        d = self.dims
        m = 1 << _LUT_BITS
        customer = d.customer_lut[rng.integers(0, m, n, dtype=np.int32)] + 1
        store_idx = d.store_lut[rng.integers(0, m, n, dtype=np.int32)]
        rank = d.seller_pos_lut[rng.integers(0, m, n, dtype=np.int32)]
        seller = store_idx * d.sellers_per_store + d.seller_perm[store_idx, rank] + 1
        product = rng.integers(0, d.n_products, n, dtype=np.int32)
        quantity = rng.integers(1, 11, n, dtype=np.int32)
        return {
            "customer_id": customer.astype(np.int32),
            "store_id": d.store_ids[store_idx],
            "product": product,
            "sales_person_id": seller.astype(np.int32),
            "quantity": quantity,
        }

    def _make_unknown(
        self, rng: np.random.Generator, a: dict[str, np.ndarray], n_good: int, k: int
    ) -> None:
        if k <= 0:
            return
        d = self.dims
        rows = np.sort(rng.choice(n_good, size=k, replace=False))
        for j, row in enumerate(rows):
            g = self.unknown_so_far + j
            kind = UNKNOWN_KEY_KINDS[g % len(UNKNOWN_KEY_KINDS)]
            v = g // len(UNKNOWN_KEY_KINDS)
            self.unknown_kinds[kind] += 1
            if kind == "customer":
                a["customer_id"][row] = d.n_customers + 1 + v % 1000
            elif kind == "store":
                a["store_id"][row] = STORE_ID_START + len(d.store_ids) + v % 10
            elif kind == "sales_person":
                a["sales_person_id"][row] = len(d.store_ids) * d.sellers_per_store + 1 + v % 10
            else:
                a["product"][row] = d.n_products + v % _UNKNOWN_PRODUCTS
        self.unknown_so_far += k

    def _bad_line(self, g: int, day: date, a: dict[str, np.ndarray], row: int) -> str:
        kind = BAD_ROW_KINDS[g % len(BAD_ROW_KINDS)]
        v = g // len(BAD_ROW_KINDS)  # picks a variant within the kind
        self.bad_kinds[kind] += 1
        price = int(self.dims.product_cents[a["product"][row]])
        qty = int(a["quantity"][row])
        f = {
            "customer_id": str(a["customer_id"][row]),
            "store_id": str(a["store_id"][row]),
            "product_name": self.names[a["product"][row]],
            "sales_date": f"{day:%Y-%m-%d}",
            "sales_person_id": str(a["sales_person_id"][row]),
            "price": cents_text(price),
            "quantity": str(qty),
            "total_cost": cents_text(price * qty),
        }
        if kind.endswith("_not_positive") and not kind.startswith("quantity"):
            col = kind.removesuffix("_not_positive")
            f[col] = "0" if v % 2 == 0 else f"-{f[col]}"
        elif kind.endswith("_not_integer"):
            col = kind.removesuffix("_not_integer")
            f[col] = (f"{f[col]}.5", f"{f[col]}.0", f"id{f[col]}", "")[v % 4]
        elif kind == "product_name_empty":
            f["product_name"] = ("", "   ")[v % 2]
        elif kind == "sales_date_unparseable":
            f["sales_date"] = (f"{day:%d/%m/%Y}", f"{day:%Y%m%d}", f"{day.year}-02-30", "unknown")[
                v % 4
            ]
        elif kind == "sales_date_not_file_date":
            f["sales_date"] = f"{day + timedelta(days=-1 if v % 2 == 0 else 1):%Y-%m-%d}"
        elif kind == "price_negative":
            f["price"] = cents_text(-price)
            f["total_cost"] = cents_text(-price * qty)
        elif kind == "price_three_decimals":
            # 12.345 x 2 = 24.69: only the price breaks a rule, the total is exact to the cent.
            f["price"] = f"{cents_text(price)}5"
            f["quantity"] = "2"
            f["total_cost"] = cents_text(price * 2 + 1)
        elif kind == "quantity_not_positive":
            q = 0 if v % 2 == 0 else -qty
            f["quantity"] = str(q)
            f["total_cost"] = cents_text(price * q)
        elif kind == "total_cost_mismatch":
            f["total_cost"] = cents_text(price * qty + (1 if v % 2 == 0 else -1))
        return ",".join(f[c] for c in SALES_CSV_COLUMNS) + "\n"

    def write_file(
        self,
        sink: pa.NativeFile,
        rng: np.random.Generator,
        day: date,
        n_rows: int,
        columns: tuple[str, ...] = SALES_CSV_COLUMNS,
        inject: bool = True,
        progress: tqdm | None = None,
    ) -> tuple[int, int]:
        """Write one file's header and rows. Returns (data rows written, accepted cents)."""
        d = self.dims
        sink.write((",".join(columns) + "\n").encode())
        schema = pa.schema([_CSV_SCHEMA.field(c) for c in columns])
        writer = pacsv.CSVWriter(sink, schema, write_options=_WRITE_OPTIONS)
        date_dict = pa.array([f"{day:%Y-%m-%d}"], pa.string())
        written = accepted_cents = 0
        for start in range(0, n_rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, n_rows - start)
            a = self._arrays(rng, n)
            k_bad = k_unknown = 0
            if inject:
                before, self.rows_seen = self.rows_seen, self.rows_seen + n
                k_bad = math.floor(self.bad_fraction * self.rows_seen) - math.floor(
                    self.bad_fraction * before
                )
                k_bad = min(k_bad, n)
                k_unknown = min(
                    math.floor(self.unknown_fraction * self.rows_seen)
                    - math.floor(self.unknown_fraction * before),
                    n - k_bad,
                )
            n_good = n - k_bad
            self._make_unknown(rng, a, n_good, k_unknown)
            price = d.product_cents[a["product"]]
            total = price * a["quantity"]
            full = pa.table(
                {
                    "customer_id": a["customer_id"],
                    "store_id": a["store_id"],
                    "product_name": pa.DictionaryArray.from_arrays(
                        pa.array(a["product"]), d.product_names
                    ),
                    "sales_date": pa.DictionaryArray.from_arrays(
                        pa.array(np.zeros(n, dtype=np.int32)), date_dict
                    ),
                    "sales_person_id": a["sales_person_id"],
                    "price": _decimal_array(price),
                    "quantity": a["quantity"],
                    "total_cost": _decimal_array(total),
                },
                schema=_CSV_SCHEMA,
            ).select(list(columns))
            if inject:
                accepted_cents += int(total[:n_good].sum())
            if k_bad == 0:
                writer.write_table(full)
            else:
                # The last k_bad generated rows become bad lines, spread over a few spots.
                spots = np.sort(rng.integers(0, n_good + 1, min(k_bad, MAX_BAD_ROW_SPOTS)))
                groups: list[list[str]] = [[] for _ in spots]
                for j in range(k_bad):
                    line = self._bad_line(self.bad_so_far + j, day, a, n_good + j)
                    groups[j % len(spots)].append(line)
                self.bad_so_far += k_bad
                prev = 0
                for spot, lines in zip(spots, groups, strict=True):
                    if spot > prev:
                        writer.write_table(full.slice(prev, spot - prev))
                    sink.write("".join(lines).encode())
                    prev = int(spot)
                if n_good > prev:
                    writer.write_table(full.slice(prev, n_good - prev))
            written += n
            if progress is not None:
                progress.update(n)
        writer.close()
        return written, accepted_cents

    def write_key(
        self,
        store: ObjectStore,
        key: str,
        kind: str | None,
        rng: np.random.Generator,
        day: date,
        n: int,
        tmp: Path,
        bar: tqdm,
    ) -> tuple[int, int, int]:
        """Write one file (good, or bad of `kind`). Returns (data rows, bytes, accepted cents)."""
        header = (",".join(SALES_CSV_COLUMNS) + "\n").encode()
        if kind in ("zero_byte", "header_only"):
            data = b"" if kind == "zero_byte" else header
            store.put_bytes(key, data)
            bar.update(n)
            return 0, len(data), 0
        path = _staging_path(store, key, tmp)
        cents = 0
        try:
            with pa.OSFile(str(path), "wb") as sink:
                if kind == "missing_column":
                    dropped = SALES_CSV_COLUMNS[self.missing_column_files % len(SALES_CSV_COLUMNS)]
                    self.missing_column_files += 1
                    cols = tuple(c for c in SALES_CSV_COLUMNS if c != dropped)
                    written, _ = self.write_file(
                        sink, rng, day, n, cols, inject=False, progress=bar
                    )
                elif kind == "not_utf8":
                    written, _ = self.write_file(sink, rng, day, n, inject=False, progress=bar)
                    line = f"1,{STORE_ID_START},Café Crème,{day:%Y-%m-%d},1,250.00,2,500.00\n"
                    sink.write(line.encode("cp1252"))
                    written += 1
                else:
                    written, cents = self.write_file(sink, rng, day, n, progress=bar)
                size = sink.tell()
            store.put_file(path, key)
        finally:
            path.unlink(missing_ok=True)
        return written, size, cents


def _bad_file_plan(seed: int, total_files: int, fraction: float) -> dict[int, str]:
    if fraction <= 0 or total_files == 0:
        return {}
    n_bad = min(total_files, max(1, round(fraction * total_files)))
    picked = np.sort(np.random.default_rng([seed, 2]).choice(total_files, n_bad, replace=False))
    return {int(f): BAD_FILE_KINDS[i % len(BAD_FILE_KINDS)] for i, f in enumerate(picked)}


def _staging_path(store: ObjectStore, key: str, tmp_dir: Path) -> Path:
    local_path = getattr(store, "local_path", None)
    target = local_path(key) if local_path is not None else None
    if target is not None:
        # Same folder as the target, so put_file is a rename; '.tmp-' keeps it out of listings.
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f"{target.name}.tmp-gen-{uuid.uuid4().hex}")
    return tmp_dir / f"{uuid.uuid4().hex}.csv"


def generate(
    store: ObjectStore,
    engine: sa.Engine,
    *,
    start_date: date,
    days: int,
    rows_per_day: int,
    seed: int,
    files_per_day: int = 1,
    customers: int = 500,
    stores: int = 10,
    products: int = 40,
    sellers_per_store: int = 5,
    unknown_key_fraction: float = 0.0,
    bad_row_fraction: float = 0.0,
    bad_file_fraction: float = 0.0,
    progress: bool = True,
) -> GenerateSummary:
    """Replace the source tables' rows and write `days` days of sales files into `store`.

    Files for the same keys are overwritten; other keys are left alone. Rows of a day are split
    evenly over its `files_per_day` files.
    """
    if days < 0 or files_per_day < 1 or rows_per_day < files_per_day:
        raise ValueError("need days >= 0, files_per_day >= 1 and rows_per_day >= files_per_day")
    if min(customers, stores, products, sellers_per_store) < 1:
        raise ValueError("customers, stores, products and sellers_per_store must be >= 1")
    for name, value in (
        ("unknown_key_fraction", unknown_key_fraction),
        ("bad_row_fraction", bad_row_fraction),
        ("bad_file_fraction", bad_file_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value}")
    if unknown_key_fraction + bad_row_fraction > 1.0:
        raise ValueError("unknown_key_fraction + bad_row_fraction must not exceed 1")

    started = time.perf_counter()
    summary = GenerateSummary()
    rows, dims = _build_source_rows(seed, customers, stores, products, sellers_per_store)
    _load_source_tables(engine, rows)

    writer = _Writer(dims, unknown_key_fraction, bad_row_fraction)
    bad_plan = _bad_file_plan(seed, days * files_per_day, bad_file_fraction)
    accepted_cents_total = 0
    with (
        tempfile.TemporaryDirectory(prefix="sales-generate-") as tmp_name,
        tqdm(
            total=days * rows_per_day,
            unit="row",
            unit_scale=True,
            disable=not progress,
            desc="generate",
        ) as bar,
    ):
        tmp = Path(tmp_name)
        for d in range(days):
            day = start_date + timedelta(days=d)
            day_rows = day_cents = 0
            bad_before = writer.bad_so_far
            for f in range(files_per_day):
                n = rows_per_day // files_per_day + (1 if f < rows_per_day % files_per_day else 0)
                key = sales_key(day, f + 1)
                kind = bad_plan.get(d * files_per_day + f)
                rng = np.random.default_rng([seed, 1, d, f])
                kinds_before = Counter(writer.bad_kinds)
                written, size, cents = writer.write_key(store, key, kind, rng, day, n, tmp, bar)
                file_bad = dict(sorted((writer.bad_kinds - kinds_before).items()))
                summary.written.append(
                    FileWritten(
                        key=key,
                        business_date=day,
                        bad_kind=kind,
                        rows=written,
                        bytes=size,
                        accepted_rows=0 if kind else written - sum(file_bad.values()),
                        accepted_total=_cents_decimal(cents),
                        bad_row_kinds=file_bad,
                    )
                )
                day_cents += cents
                summary.files.append(key)
                summary.rows += written
                summary.bytes += size
                if kind is not None:
                    summary.bad_files.append(key)
                    summary.bad_file_kinds[key] = kind
                else:
                    day_rows += written
            # Good-file rows of the day minus the bad rows written that day.
            summary.accepted_rows_by_day[day] = day_rows - (writer.bad_so_far - bad_before)
            summary.accepted_total_by_day[day] = _cents_decimal(day_cents)
            accepted_cents_total += day_cents
    summary.bad_rows = writer.bad_so_far
    summary.unknown_key_rows = writer.unknown_so_far
    summary.bad_row_kinds = dict(sorted(writer.bad_kinds.items()))
    summary.unknown_key_kinds = dict(sorted(writer.unknown_kinds.items()))
    summary.accepted_total = _cents_decimal(accepted_cents_total)
    summary.accepted_rows = sum(summary.accepted_rows_by_day.values())
    summary.seconds = time.perf_counter() - started
    return summary


__all__ = [
    "BAD_FILE_KINDS",
    "BAD_ROW_KINDS",
    "STORE_ID_START",
    "FileWritten",
    "UNKNOWN_KEY_KINDS",
    "GenerateSummary",
    "generate",
    "sales_key",
]
