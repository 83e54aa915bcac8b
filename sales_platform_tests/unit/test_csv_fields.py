"""The landing reader's two ways to a line's fields give the same fields.

A line without a quote, with as many fields as its header, is split on its commas; every other
line goes through Spark's CSV parser. The split must return exactly what the parser would, for
every line it takes: these lines are chosen to sit on the boundary between the two.
"""

from __future__ import annotations

import random

from pyspark.sql import functions as F

from sales_platform.storage import landing

HEADER = ("customer_id", "store_id", "product_name", "note")

LINES = [
    "1,2,Sugar,x",
    "1,2,Sugar,",  # an empty last field: null, as the parser reads it
    ",,,",
    "1,,Sugar,x",
    " 1 , 2 ,  Sugar  , x ",  # whitespace is the validator's to trim, not the reader's
    "\t1,2\t,Sugar\r,x\x0b",
    "1,2,Sugar,x,extra",  # more fields than the header: malformed
    "1,2,Sugar,x,",  # a trailing comma is a fifth, empty field
    "1,2,Sugar",  # fewer fields: the missing ones are null
    "1",
    '1,2,"Sugar, fine",x',  # a comma inside quotes
    '1,2,"Su""gar",x',  # a doubled quote inside quotes
    '1,2,Su"gar,x',  # a quote inside an unquoted field
    '"1","2","Sugar","x"',
    '1,2,"",x',  # quoted empty: the parser's call
    '1,2,"Sugar",x,"y"',
    "1,2,Su\\gar,x",  # a backslash is a character, not an escape
    "#1,2,Sugar,x",  # no comment character is set
    "\x001,2,Sugar,x",
    "1,2,\x01Sugar\x01,x",
    "1,2,null,NaN",
    "1,2,Zucker \u00fc\u00df,\u00a0",
    "1,2,\U0001f600,x",
    "1,2," + "s" * 5000 + ",x",
    "   ",
]


def _fuzzed(n: int, seed: int = 7) -> list[str]:
    """Lines of 3 to 5 fields made of the characters the boundary is drawn with (mostly 4
    fields, as many as the header; a quote in about one line in four)."""
    rng = random.Random(seed)
    chars = ["1", "a", " ", "\t", "\\", "\x00", "#", "\u00e9", "\r"]

    def field() -> str:
        text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 4)))
        if rng.random() < 0.07:
            text = rng.choice(['"', '""', f'"{text}"', f'"{text},"', f'{text}"'])
        return text

    return [",".join(field() for _ in range(rng.choice([3, 4, 4, 4, 4, 5]))) for _ in range(n)]


def _by_parser(lines):
    """What Spark's CSV parser alone makes of each line (the reader's only way before)."""
    schema = landing._ddl([*HEADER, landing._EXTRA_FIELD])
    parsed = F.from_csv(F.col("value"), schema, {"mode": "PERMISSIVE", "escape": '"'})
    row = lines.select("i", parsed.alias("r"))
    return row.select(
        "i",
        *[F.col("r").getField(c).alias(c) for c in HEADER],
        F.col("r").getField(landing._EXTRA_FIELD).isNotNull().alias("malformed"),
    )


def test_split_lines_get_the_fields_the_csv_parser_gives(spark):
    lines = [line for line in LINES + _fuzzed(3000) if line]  # the reader drops empty lines
    df = spark.createDataFrame(list(enumerate(lines)), "i INT, value STRING")
    row, fields = landing._fields(df, HEADER)
    got = row.select(
        "i",
        "_plain",
        *[fields[c].alias(c) for c in HEADER],
        fields[landing._EXTRA_FIELD].alias("malformed"),
    ).collect()
    expected = {r.i: r.asDict() for r in _by_parser(df).collect()}

    split = [r for r in got if r._plain]
    assert len(split) > len(got) // 4  # both ways are exercised
    assert len(split) < len(got)
    for r in got:
        assert {k: v for k, v in r.asDict().items() if k != "_plain"} == expected[r.i], lines[r.i]
