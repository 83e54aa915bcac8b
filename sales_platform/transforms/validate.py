"""Row validation of a landed sales file: which rows the business accepts, and why the others not.

Every row that arrives ends up either accepted (typed, in `raw_sales`) or quarantined with exactly
one reason code: the first rule it breaks, in the order of `REASON_CODES`. Nothing is dropped
silently, so for every file rows read = rows accepted + rows quarantined.

All parsing is safe (regex gates plus `try_cast`): under ANSI mode a bad value becomes a null that
is flagged, never an exception that would fail the whole day for one bad cell.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sales_platform.schemas import (
    LINE_TOTAL_TYPE,
    PRICE_TYPE,
    QUARANTINE_SCHEMA,
    RAW_SALES_SCHEMA,
    SALES_CSV_COLUMNS,
)

STRAY_LINE_BREAK = "stray_line_break"
MULTILINE_RECORD = "multiline_record"
MALFORMED_ROW = "malformed_row"
INVALID_CUSTOMER_ID = "invalid_customer_id"
INVALID_STORE_ID = "invalid_store_id"
INVALID_SALES_PERSON_ID = "invalid_sales_person_id"
MISSING_PRODUCT_NAME = "missing_product_name"
INVALID_SALES_DATE = "invalid_sales_date"
SALES_DATE_MISMATCH = "sales_date_mismatch"
INVALID_PRICE = "invalid_price"
INVALID_QUANTITY = "invalid_quantity"
INVALID_TOTAL_COST = "invalid_total_cost"
TOTAL_COST_MISMATCH = "total_cost_mismatch"

# The order in which rules are checked; a row is quarantined for the first one it breaks.
REASON_CODES: tuple[str, ...] = (
    # Flagged by the byte pass (storage/landing.py `_Lines`) in the optional `line_problem`.
    STRAY_LINE_BREAK,
    MULTILINE_RECORD,
    MALFORMED_ROW,
    INVALID_CUSTOMER_ID,
    INVALID_STORE_ID,
    INVALID_SALES_PERSON_ID,
    MISSING_PRODUCT_NAME,
    INVALID_SALES_DATE,
    SALES_DATE_MISMATCH,
    INVALID_PRICE,
    INVALID_QUANTITY,
    INVALID_TOTAL_COST,
    TOTAL_COST_MISMATCH,
)

# `\z` rather than `$`: Java's `$` also matches before a trailing line terminator ("12\u2028").
_DIGITS = r"^[0-9]+\z"
# Plain notation only: no exponent, no thousands separator, no sign other than a leading minus,
# at most two fractional digits (a third digit would be silently rounded by the cast).
_MONEY = r"^-?[0-9]+(\.[0-9]{1,2})?\z"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\z"
# Spark's plain trim() only strips spaces; CSV exports also leave tabs and stray CRs behind.
_WHITESPACE = " \t\r\n\f\u000b"

# Optional input columns carried through untouched: where the row sits in its file.
PASSTHROUGH = ("line_number",)

REJECT_REASON = "reject_reason"
# Optional input column: the file's business date as yyyy-MM-dd text.
BUSINESS_DAY = "business_day"
RAW_RECORD = "raw_record"


def _trimmed(cell: Column) -> Column:
    # btrim with a set allocates for every cell, but each cheap test of a cell's ends tried
    # first cost about what it saved (README, Performance).
    return F.btrim(cell, F.lit(_WHITESPACE))


def _raw(name: str) -> str:
    return f"_raw_{name}"


def _by_the_rules(cell: Column, data_type: T.DataType, pattern: str) -> Column:
    """The cell as `data_type` when its trimmed text matches `pattern` and fits; else null."""
    trimmed = _trimmed(cell)
    return F.when(trimmed.rlike(pattern), trimmed.try_cast(data_type))


def _digits(value: Column) -> Column:
    """How many decimal digits a positive int32 has, without making its text: log10 is exact
    at powers of ten (Java's contract), and an int32 is far from the next power's doubles.
    (A CASE over the ten lengths made the generated code too long to be compiled: 5x slower.)
    """
    return F.floor(F.log10(value)).cast(T.IntegerType()) + 1


# Most cells are already the canonical text of their value ("12", "212.50"): for those the
# cast alone gives what trimming and the pattern would (a canonical text has no whitespace and
# matches the pattern; a negative id is refused by the range rules either way), so the trim
# and the regex, which cost more than the cast, are skipped for them.


def _int(cell: Column) -> Column:
    """An integer in plain digits that fits int32; null for anything else.

    Canonical when cast from exactly as many bytes as the positive value has digits: Spark's
    cast takes ASCII digits only, plus a sign and whitespace or control bytes around them, and
    each of those or a leading zero adds a byte (making the value's text cost a string per
    cell).
    """
    value = cell.try_cast(T.IntegerType())
    canonical = (value > 0) & (F.octet_length(cell) == _digits(value))
    return F.when(canonical, value).otherwise(_by_the_rules(cell, T.IntegerType(), _DIGITS))


def _money(cell: Column, money_type: T.DecimalType) -> Column:
    """An amount in plain decimal notation that fits `money_type` exactly; null otherwise.

    Canonical when the value's text is the cell itself."""
    value = cell.try_cast(money_type)
    return F.when(value.cast(T.StringType()) == cell, value).otherwise(
        _by_the_rules(cell, money_type, _MONEY)
    )


def _date(cell: Column, business_date: Column, business_day: Column) -> Column:
    """An ISO date (yyyy-MM-dd); null for anything else. Nearly every cell is the file's own
    business date, `business_day` as text: compared as text, it needs no parsing."""
    trimmed = _trimmed(cell)
    return F.when(cell == business_day, business_date).otherwise(
        F.when(trimmed.rlike(_ISO_DATE), F.try_to_date(trimmed, "yyyy-MM-dd"))
    )


def _positive(name: str) -> Column:
    return F.when(F.col(name) > 0, F.col(name))


def validate_sales(raw: DataFrame) -> DataFrame:
    """Type the raw text of a sales file and give each row that breaks a row rule its reason.

    Input: the 8 contract columns as CSV text (may be null) plus `additional_column`,
    `source_key` and `business_date` (the file's business date, a DateType); optionally
    `malformed` (the line had more fields than its header), `line_number` and `business_day`
    (the business date as yyyy-MM-dd text).
    Output: the typed columns of RAW_SALES_SCHEMA, then `business_date`, `reject_reason` (null when
    the sale is accepted) and `raw_record` (the 8 contract columns exactly as they arrived, as a
    JSON object with nulls kept; only filled for rejected rows, the only place it is read).
    Typed columns of a rejected row may be null. Pure column expressions: one pass, no UDF.
    """
    # Two projections: parse, then range checks and the reason, each reading the previous
    # one's columns, so every cell is parsed once: written as one nested expression, Spark
    # evaluated a cell's parse again for each rule using it (it does not share a
    # subexpression inside a CASE branch).
    cell = {name: F.col(name) for name in SALES_CSV_COLUMNS}
    # The landing reader gives each row its file's day as text too (formatting it per row
    # cost 1-1.5 s per 8 M rows).
    day_text = (
        F.col(BUSINESS_DAY)
        if BUSINESS_DAY in raw.columns
        else F.col("business_date").cast(T.StringType())
    )
    parsed = raw.select(
        _int(cell["customer_id"]).alias("customer_id"),
        _int(cell["store_id"]).alias("store_id"),
        F.nullif(_trimmed(cell["product_name"]), F.lit("")).alias("product_name"),
        _date(cell["sales_date"], F.col("business_date"), day_text).alias("sales_date"),
        _int(cell["sales_person_id"]).alias("sales_person_id"),
        _money(cell["price"], PRICE_TYPE).alias("price"),
        _int(cell["quantity"]).alias("quantity"),
        _money(cell["total_cost"], LINE_TOTAL_TYPE).alias("total_cost"),
        F.col("additional_column").cast(T.StringType()).alias("additional_column"),
        F.col("source_key"),
        F.col("business_date"),
        (F.col("malformed") if "malformed" in raw.columns else F.lit(False)).alias("_malformed"),
        (F.col("line_problem") if "line_problem" in raw.columns else F.lit(None))
        .cast("string")
        .alias("_line_problem"),
        *[_column(raw, c).cast(RAW_SALES_SCHEMA[c].dataType).alias(c) for c in PASSTHROUGH],
        # Untrimmed on purpose: the quarantine shows what the sender actually sent.
        *[cell[name].alias(_raw(name)) for name in SALES_CSV_COLUMNS],
    )
    typed = parsed.withColumns(
        {
            "customer_id": _positive("customer_id"),
            "store_id": _positive("store_id"),
            "sales_person_id": _positive("sales_person_id"),
            "price": F.when(F.col("price") >= 0, F.col("price")),
            "quantity": _positive("quantity"),
        }
    )

    # decimal(10,2) x decimal(10,0) is exact in decimal(21,2): no rounding, no overflow.
    line_total = F.col("price") * F.col("quantity").cast(T.DecimalType(10, 0))
    broken: dict[str, Column] = {
        STRAY_LINE_BREAK: F.col("_line_problem") == STRAY_LINE_BREAK,
        MULTILINE_RECORD: F.col("_line_problem") == MULTILINE_RECORD,
        MALFORMED_ROW: F.col("_malformed"),
        INVALID_CUSTOMER_ID: F.col("customer_id").isNull(),
        INVALID_STORE_ID: F.col("store_id").isNull(),
        INVALID_SALES_PERSON_ID: F.col("sales_person_id").isNull(),
        MISSING_PRODUCT_NAME: F.col("product_name").isNull(),
        INVALID_SALES_DATE: F.col("sales_date").isNull(),
        SALES_DATE_MISMATCH: ~F.col("sales_date").eqNullSafe(F.col("business_date")),
        INVALID_PRICE: F.col("price").isNull(),
        INVALID_QUANTITY: F.col("quantity").isNull(),
        INVALID_TOTAL_COST: F.col("total_cost").isNull(),
        TOTAL_COST_MISMATCH: F.col("total_cost") != line_total,
    }
    # A CASE WHEN in REASON_CODES order: the first broken rule names the reason.
    reason: Column = F.when(broken[REASON_CODES[0]], F.lit(REASON_CODES[0]))
    for code in REASON_CODES[1:]:
        reason = reason.when(broken[code], F.lit(code))

    raw_json = F.to_json(
        F.struct(*[F.col(_raw(name)).alias(name) for name in SALES_CSV_COLUMNS]),
        {"ignoreNullFields": "false"},
    )
    return typed.withColumn(REJECT_REASON, reason).select(
        *[field.name for field in RAW_SALES_SCHEMA.fields],
        "business_date",
        REJECT_REASON,
        # Only rejected rows are encoded: a JSON encode per accepted sale would be for nothing.
        F.when(F.col(REJECT_REASON).isNotNull(), raw_json).alias(RAW_RECORD),
    )


def staged_sales(validated: DataFrame) -> DataFrame:
    """Every validated row shaped as `raw_sales` stores it, plus `reject_reason`: what one write
    stages, the accepted rows as the asset and the rejected ones set aside by their reason.
    A rejected row's typed columns may be null, and its `sales_date` is the file's business
    date: set aside under its file's day, it is found again by `source_key` and `line_number`.
    """
    day = F.when(F.col(REJECT_REASON).isNull(), F.col("sales_date")).otherwise(
        F.col("business_date")
    )
    columns = {field.name: F.col(field.name) for field in RAW_SALES_SCHEMA} | {"sales_date": day}
    return validated.select(
        *[columns[field.name].cast(field.dataType).alias(field.name) for field in RAW_SALES_SCHEMA],
        REJECT_REASON,
    )


def accepted_sales(validated: DataFrame) -> DataFrame:
    """The sales the business accepts, shaped exactly as the `raw_sales` asset stores them."""
    return staged_sales(validated).where(F.col(REJECT_REASON).isNull()).drop(REJECT_REASON)


def _column(df: DataFrame, name: str) -> Column:
    """A column of df; a passthrough column absent from the input reads as null."""
    return F.col(name) if name in df.columns or name not in PASSTHROUGH else F.lit(None)


def quarantined_sales(validated: DataFrame) -> DataFrame:
    """The rejected rows with their reason, shaped as the quarantine stores them."""
    columns = {
        "source_key": F.col("source_key"),
        "line_number": F.col("line_number"),
        "business_date": F.col("business_date"),
        "reason": F.col(REJECT_REASON),
        "raw_record": F.col(RAW_RECORD),
    }
    return validated.where(F.col(REJECT_REASON).isNotNull()).select(
        *[columns[field.name].cast(field.dataType).alias(field.name) for field in QUARANTINE_SCHEMA]
    )
