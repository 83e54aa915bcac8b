"""Row rules of a landed file: every reason code, their order, trimming and the output shapes."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from sales_platform.schemas import QUARANTINE_SCHEMA, RAW_SALES_SCHEMA, SALES_CSV_COLUMNS
from sales_platform.transforms import validate as v

BUSINESS_DATE = date(2023, 3, 15)

INPUT_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType(), True) for name in SALES_CSV_COLUMNS]
    + [
        T.StructField("additional_column", T.StringType(), True),
        T.StructField("source_key", T.StringType(), True),
        T.StructField("business_date", T.DateType(), True),
        T.StructField("malformed", T.BooleanType(), True),
        T.StructField("line_number", T.LongType(), True),
    ]
)
MALFORMED = "__malformed"

GOOD = {
    "customer_id": "11",
    "store_id": "2",
    "product_name": "quaker oats",
    "sales_date": "2023-03-15",
    "sales_person_id": "5",
    "price": "212.50",
    "quantity": "3",
    "total_cost": "637.50",
}

# (test id, overrides of the good row, expected reason); one row per case, validated in one pass.
CASES: list[tuple[str, dict[str, str | None], str | None]] = [
    ("good", {}, None),
    ("malformed_extra_field", {MALFORMED: True}, v.MALFORMED_ROW),
    ("order_malformed_first", {MALFORMED: True, "customer_id": "x"}, v.MALFORMED_ROW),
    (
        "good_leading_zero_and_whole_amounts",
        {"customer_id": "007", "price": "2", "total_cost": "6"},
        None,
    ),
    ("good_free_item", {"price": "0.00", "total_cost": "0"}, None),
    ("good_one_decimal_total", {"price": "0.10", "total_cost": "0.3"}, None),
    ("customer_zero", {"customer_id": "0"}, v.INVALID_CUSTOMER_ID),
    ("customer_negative", {"customer_id": "-3"}, v.INVALID_CUSTOMER_ID),
    ("customer_fraction", {"customer_id": "1.5"}, v.INVALID_CUSTOMER_ID),
    ("customer_text", {"customer_id": "abc"}, v.INVALID_CUSTOMER_ID),
    ("customer_empty", {"customer_id": ""}, v.INVALID_CUSTOMER_ID),
    ("customer_null", {"customer_id": None}, v.INVALID_CUSTOMER_ID),
    ("customer_over_int32", {"customer_id": "2147483648"}, v.INVALID_CUSTOMER_ID),
    ("customer_plus_sign", {"customer_id": "+4"}, v.INVALID_CUSTOMER_ID),
    ("store", {"store_id": "x"}, v.INVALID_STORE_ID),
    ("seller", {"sales_person_id": "0"}, v.INVALID_SALES_PERSON_ID),
    ("product_blank", {"product_name": "   "}, v.MISSING_PRODUCT_NAME),
    ("product_null", {"product_name": None}, v.MISSING_PRODUCT_NAME),
    ("date_impossible", {"sales_date": "2023-02-30"}, v.INVALID_SALES_DATE),
    ("date_other_format", {"sales_date": "15/03/2023"}, v.INVALID_SALES_DATE),
    ("date_unpadded", {"sales_date": "2023-3-15"}, v.INVALID_SALES_DATE),
    ("date_other_day", {"sales_date": "2023-03-14"}, v.SALES_DATE_MISMATCH),
    ("price_negative", {"price": "-1.00", "total_cost": "-3.00"}, v.INVALID_PRICE),
    ("price_three_decimals", {"price": "212.505"}, v.INVALID_PRICE),
    ("price_exponent", {"price": "2.1E2"}, v.INVALID_PRICE),
    ("price_too_big", {"price": "123456789.00"}, v.INVALID_PRICE),
    ("price_text", {"price": "abc"}, v.INVALID_PRICE),
    ("price_trailing_dot", {"price": "5."}, v.INVALID_PRICE),
    ("price_thousands_separator", {"price": "1,212.50"}, v.INVALID_PRICE),
    ("quantity_zero", {"quantity": "0"}, v.INVALID_QUANTITY),
    ("quantity_fraction", {"quantity": "1.5"}, v.INVALID_QUANTITY),
    ("total_three_decimals", {"total_cost": "637.500"}, v.INVALID_TOTAL_COST),
    ("total_too_big", {"total_cost": "12345678901.00"}, v.INVALID_TOTAL_COST),
    ("total_null", {"total_cost": None}, v.INVALID_TOTAL_COST),
    ("total_off_by_a_cent", {"total_cost": "637.49"}, v.TOTAL_COST_MISMATCH),
    # Order of rules: the first broken rule is the reason, whatever else is broken.
    (
        "order_customer_first",
        {"customer_id": "x", "store_id": "x", "price": "x"},
        v.INVALID_CUSTOMER_ID,
    ),
    ("order_store_before_date", {"store_id": "x", "sales_date": "x"}, v.INVALID_STORE_ID),
    ("order_product_before_date", {"product_name": "", "sales_date": "x"}, v.MISSING_PRODUCT_NAME),
    (
        "order_mismatch_before_price",
        {"sales_date": "2023-03-01", "price": "x"},
        v.SALES_DATE_MISMATCH,
    ),
    ("order_price_before_quantity", {"price": "x", "quantity": "x"}, v.INVALID_PRICE),
    ("order_quantity_before_total", {"quantity": "x", "total_cost": "x"}, v.INVALID_QUANTITY),
]


def _row(case_id: str, overrides: dict[str, str | None]) -> tuple:
    values = {**GOOD, **overrides}
    return (
        *[values[name] for name in SALES_CSV_COLUMNS],
        None,
        case_id,  # source_key doubles as the case id, to find each row again
        BUSINESS_DATE,
        bool(values.get(MALFORMED)),
        len(case_id),
    )


@pytest.fixture(scope="module")
def validated(spark):
    raw = spark.createDataFrame([_row(cid, o) for cid, o, _ in CASES], INPUT_SCHEMA)
    return {r["source_key"]: r for r in v.validate_sales(raw).collect()}


def test_reason_codes_are_exported_in_rule_order():
    assert v.REASON_CODES == (
        "stray_line_break",
        "multiline_record",
        "malformed_row",
        "invalid_customer_id",
        "invalid_store_id",
        "invalid_sales_person_id",
        "missing_product_name",
        "invalid_sales_date",
        "sales_date_mismatch",
        "invalid_price",
        "invalid_quantity",
        "invalid_total_cost",
        "total_cost_mismatch",
    )


@pytest.mark.parametrize(("case_id", "expected"), [(c, e) for c, _, e in CASES])
def test_reason(validated, case_id, expected):
    assert validated[case_id]["reject_reason"] == expected


def test_every_reason_code_is_covered():
    # The byte pass flags these two lines (`line_problem`): integration/test_landing.py covers them.
    flagged = {v.STRAY_LINE_BREAK, v.MULTILINE_RECORD}
    assert {e for _, _, e in CASES} - {None} == set(v.REASON_CODES) - flagged


def test_good_row_is_typed_exactly(validated):
    row = validated["good"]
    assert row["customer_id"] == 11
    assert row["store_id"] == 2
    assert row["sales_person_id"] == 5
    assert row["product_name"] == "quaker oats"
    assert row["sales_date"] == BUSINESS_DATE
    assert row["price"] == Decimal("212.50")
    assert row["quantity"] == 3
    assert row["total_cost"] == Decimal("637.50")
    assert row["business_date"] == BUSINESS_DATE
    assert row["raw_record"] is None


def test_rejected_row_keeps_raw_text_as_json(validated):
    record = json.loads(validated["total_null"]["raw_record"])
    assert list(record) == list(SALES_CSV_COLUMNS)
    assert record == {**GOOD, "total_cost": None}


def test_output_columns_and_types(spark):
    raw = spark.createDataFrame([_row("k", {})], INPUT_SCHEMA)
    out = v.validate_sales(raw)
    assert out.columns == [
        *RAW_SALES_SCHEMA.fieldNames(),
        "business_date",
        "reject_reason",
        "raw_record",
    ]
    types = dict(out.dtypes)
    for field in RAW_SALES_SCHEMA:
        assert types[field.name] == field.dataType.simpleString()


# Cells whose ends mix the set's characters in every order, inner whitespace that must stay,
# characters outside the set (a no-break space, a control character) that must stay too.
RAGGED_CELLS = [
    None,
    "",
    " ",
    "\t",
    " \t \r\n ",
    "7",
    " 7 ",
    "\t7",
    "7\r",
    " \t7",
    "7 \r",
    "\r 7 \t",
    "\x0b\f7\f\x0b",
    "a \t b",
    "\ta b ",
    "\u00a07\u00a0",
    "\x017\x01",
    " \x01 7",
    "quaker\toats\n",
]


def test_trim_strips_exactly_the_whitespace_set_from_both_ends(spark):
    """Trimming strips exactly the set from both ends, cell for cell (a faster trim must too:
    a space-only fast path was tried, see README Performance)."""
    from pyspark.sql import functions as F

    cells = spark.createDataFrame([(c,) for c in RAGGED_CELLS], "cell STRING")
    got = cells.select(v._trimmed("cell").alias("t")).collect()
    assert [r.t for r in got] == [
        None if c is None else c.strip(v._WHITESPACE) for c in RAGGED_CELLS
    ]
    expected = cells.select(F.btrim("cell", F.lit(v._WHITESPACE)).alias("t")).collect()
    assert got == expected


def test_whitespace_is_trimmed_and_additional_column_passes_through(spark):
    padded = {name: f" \t{value}\r " for name, value in GOOD.items()}
    row = (*_row("padded", padded)[:8], '{"promo": " X "}', "padded", BUSINESS_DATE, False, 4)
    validated = v.validate_sales(spark.createDataFrame([row], INPUT_SCHEMA))

    [accepted] = v.accepted_sales(validated).collect()
    assert accepted.asDict() == {
        "customer_id": 11,
        "store_id": 2,
        "product_name": "quaker oats",
        "sales_date": BUSINESS_DATE,
        "sales_person_id": 5,
        "price": Decimal("212.50"),
        "quantity": 3,
        "total_cost": Decimal("637.50"),
        "additional_column": '{"promo": " X "}',
        "source_key": "padded",
        "line_number": 4,
    }


def test_accepted_and_quarantined_split_every_row(spark):
    rows = [_row(cid, o) for cid, o, _ in CASES]
    validated = v.validate_sales(spark.createDataFrame(rows, INPUT_SCHEMA)).cache()
    try:
        accepted = v.accepted_sales(validated)
        quarantined = v.quarantined_sales(validated)
        assert accepted.schema.fieldNames() == RAW_SALES_SCHEMA.fieldNames()
        assert [f.dataType for f in accepted.schema] == [f.dataType for f in RAW_SALES_SCHEMA]
        assert quarantined.schema.fieldNames() == QUARANTINE_SCHEMA.fieldNames()
        assert [f.dataType for f in quarantined.schema] == [f.dataType for f in QUARANTINE_SCHEMA]

        accepted_keys = {r["source_key"] for r in accepted.collect()}
        quarantine = {r["source_key"]: r for r in quarantined.collect()}
        assert accepted_keys == {c for c, _, e in CASES if e is None}
        assert {k: r["reason"] for k, r in quarantine.items()} == {
            c: e for c, _, e in CASES if e is not None
        }
        assert all(r["business_date"] == BUSINESS_DATE for r in quarantine.values())
        assert all(json.loads(r["raw_record"]) for r in quarantine.values())
    finally:
        validated.unpersist()


# Cells on both sides of the validator's shortcut (a cell that is the canonical text of its
# value is only cast) and of the rules: signs, zeros, padding, control and non-ASCII
# characters, too many digits or decimals, exponents, other date forms.
TRICKY = {
    "id": [
        "1",
        "12",
        "007",
        "0",
        "-3",
        "-0",
        "+4",
        "1.5",
        "1e3",
        "2147483647",
        "2147483648",
        "-2147483648",
        " 12",
        "12 ",
        "\t12",
        "12\r",
        "\x0b12",
        "\x0112",
        "12\x01",
        "\x0012",
        "",
        "abc",
        "\uff11\uff12",
        "\u00a012",
        "\u0663",
        None,
    ],
    "money": [
        "212.50",
        "0.00",
        "0",
        "5",
        "5.5",
        "-1.00",
        "-0.00",
        "-0.5",
        "212.505",
        "2.1E2",
        "123456789.00",
        "12345678.99",
        "5.",
        ".5",
        "+5.00",
        " 5.00",
        "5.00\t",
        "1,000.00",
        "\x015.00",
        "00.50",
        "",
        "abc",
        "NaN",
        None,
    ],
    "date": [
        "2023-03-15",
        "2023-03-14",
        "2023-02-30",
        "15/03/2023",
        "2023-3-15",
        " 2023-03-15",
        "2023-03-15\r",
        "+2023-03-15",
        "2023-03-15T00:00",
        "12023-03-15",
        "2023-03-15\x01",
        "",
        None,
    ],
    "name": ["quaker oats", "  ", "", "\tsoap", "soap \r", "\u00a0", "\x01", "x", None],
}


def _oracle_reason(fields: dict) -> str | None:
    """The oracle's first broken rule (its own wording) as the platform's reason code."""
    from sales_platform_tests import oracle

    broken = oracle.row_violations(fields, BUSINESS_DATE)
    if not broken:
        return None
    first = broken[0]
    for prefix, code in [
        ("customer_id", v.INVALID_CUSTOMER_ID),
        ("store_id", v.INVALID_STORE_ID),
        ("sales_person_id", v.INVALID_SALES_PERSON_ID),
        ("product_name", v.MISSING_PRODUCT_NAME),
        ("sales_date is not a yyyy", v.INVALID_SALES_DATE),
        ("sales_date is not the file", v.SALES_DATE_MISMATCH),
        ("price", v.INVALID_PRICE),
        ("quantity", v.INVALID_QUANTITY),
        ("total_cost is not an amount", v.INVALID_TOTAL_COST),
        ("total_cost is not price", v.TOTAL_COST_MISMATCH),
    ]:
        if first.startswith(prefix):
            return code
    raise AssertionError(first)


@pytest.mark.parametrize("day_as_text", [False, True], ids=["date", "date_and_text"])
def test_every_row_is_typed_and_judged_as_the_oracle_rules_say(spark, day_as_text):
    """Random rows of tricky cells, against the independent oracle's rules: the same verdict,
    the same first broken rule, the same typed values of every accepted row (with the file's
    day as a date only, and as the landing reader gives it, also as text)."""
    import random

    from sales_platform_tests import oracle

    rng = random.Random(11)
    kinds = {
        "customer_id": "id",
        "store_id": "id",
        "sales_person_id": "id",
        "quantity": "id",
        "price": "money",
        "total_cost": "money",
        "sales_date": "date",
        "product_name": "name",
    }
    rows = []
    for i in range(3000):
        # Mostly good cells, so that rows fail on one rule at a time and many pass.
        cells = {
            c: rng.choice(TRICKY[k]) if rng.random() < 0.3 else GOOD[c] for c, k in kinds.items()
        }
        if rng.random() < 0.5 and (price := oracle._money((cells["price"] or "").strip(), 8)):
            quantity = oracle._positive_int((cells["quantity"] or "").strip(oracle.WHITESPACE))
            if quantity is not None:
                cells["total_cost"] = str(price * quantity)
        rows.append(
            (*[cells[c] for c in SALES_CSV_COLUMNS], None, f"r{i}", BUSINESS_DATE, False, i)
        )
    from pyspark.sql import functions as F

    raw = spark.createDataFrame(rows, INPUT_SCHEMA)
    if day_as_text:
        raw = raw.withColumn(v.BUSINESS_DAY, F.lit(BUSINESS_DATE.isoformat()))

    validated = v.validate_sales(raw)
    # A rejected row's typed cells may hold what Python has no type for (the year 0).
    accepted_only = [
        F.when(F.col("reject_reason").isNull(), F.col(c)).alias(c) for c in RAW_SALES_SCHEMA.names
    ]
    got = {
        r["i"]: r
        for r in validated.select(
            F.col("line_number").alias("i"), *accepted_only, "reject_reason", "raw_record"
        ).collect()
    }

    accepted = 0
    for i, row in enumerate(rows):
        fields = dict(zip(SALES_CSV_COLUMNS, row[:8], strict=True))
        reason = _oracle_reason(fields)
        assert got[i]["reject_reason"] == reason, repr(fields)
        if reason is None:
            accepted += 1
            expected = oracle.parse_row(fields, BUSINESS_DATE)
            assert {c: got[i][c] for c in expected} == expected, fields
            assert got[i]["sales_date"] == BUSINESS_DATE
        else:
            assert json.loads(got[i]["raw_record"]) == fields
    assert 300 < accepted < 2700  # both verdicts are exercised


def test_digits_counts_every_power_of_ten_boundary_exactly(spark):
    """The int shortcut's length test rests on log10 being exact at the boundaries."""
    from pyspark.sql import functions as F

    values = sorted({1, 2**31 - 1} | {10**n + d for n in range(1, 10) for d in (-1, 0, 1)})
    df = spark.createDataFrame([(n,) for n in values], "n INT")
    got = df.select("n", v._digits(F.col("n")).alias("d")).collect()
    assert {r.n: r.d for r in got} == {n: len(str(n)) for n in values}
