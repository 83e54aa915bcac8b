"""Do the warehouse's existing tables match `schemas.py`? Checked before the platform writes.

`create_all(checkfirst=True)` creates a missing table but never looks at one that exists: a
mart table made by hand with `DECIMAL(10,2)` would clip (or, without strict mode, silently
store) totals, a latin1 column would refuse or mangle names. So every run that writes the
warehouse compares column types (DECIMAL precision and scale, string lengths, the kind of the
other types), on MySQL / MariaDB also the charset and collation of text columns, and each
table's primary key, and fails on the first difference with the full list.
`sales-platform db check` prints the same comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from sales_platform.schemas import TABLE_CHARSET, TABLE_COLLATION

_INT_WIDTH = re.compile(r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT)\(\d+\)")
_ALIASES = {"NUMERIC": "DECIMAL", "INT": "INTEGER", "BOOL": "BOOLEAN"}


class WarehouseSchemaMismatch(RuntimeError):
    """An existing table differs from schemas.py; the message lists every difference."""


@dataclass(frozen=True)
class ColumnReport:
    table: str
    column: str
    expected: str
    actual: str | None  # None: the column is missing

    @property
    def ok(self) -> bool:
        return self.actual == self.expected

    def __str__(self) -> str:
        state = "ok" if self.ok else "MISMATCH"
        found = self.actual or "no such column"
        return f"{state:8} {self.table}.{self.column}: expected {self.expected}, found {found}"


def _canonical(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    """A type as comparable text: DECIMAL(18,2), VARCHAR(101), INTEGER, TEXT, DATE ..."""
    text = type_.compile(dialect=dialect).upper().replace(" ", "")
    text = re.sub(r"\s*(CHARACTERSET|COLLATE)\w+", "", text)
    text = _INT_WIDTH.sub(r"\1", text)
    head, sep, tail = text.partition("(")
    return _ALIASES.get(head, head) + sep + tail


def _text_settings(conn: sa.Connection, table: str) -> dict[str, tuple[str, str]]:
    """(charset, collation) of each text column, from information_schema (MySQL only)."""
    rows = conn.execute(
        sa.text(
            "SELECT column_name, character_set_name, collation_name "
            "FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = :table "
            "AND character_set_name IS NOT NULL"
        ),
        {"table": table},
    )
    return {name: (charset, collation) for name, charset, collation in rows}


def _is_text(type_: sa.types.TypeEngine) -> bool:
    return isinstance(type_, sa.String)


def compare_tables(engine: sa.Engine, tables: list[sa.Table]) -> list[ColumnReport]:
    """One report per expected column (and per primary key) of every existing table."""
    reports: list[ColumnReport] = []
    mysql = engine.dialect.name in ("mysql", "mariadb")
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in tables:
            if not inspector.has_table(table.name):
                continue
            found = {c["name"]: c["type"] for c in inspector.get_columns(table.name)}
            text = _text_settings(conn, table.name) if mysql else {}
            for column in table.columns:
                expected = _canonical(column.type, engine.dialect)
                actual = found.get(column.name)
                actual_text = None if actual is None else _canonical(actual, engine.dialect)
                if mysql and _is_text(column.type):
                    expected += f" {TABLE_CHARSET}/{TABLE_COLLATION}"
                    if actual is not None:
                        charset, collation = text.get(column.name, ("?", "?"))
                        actual_text += f" {charset}/{collation}"
                reports.append(ColumnReport(table.name, column.name, expected, actual_text))
            pk = inspector.get_pk_constraint(table.name).get("constrained_columns") or []
            reports.append(
                ColumnReport(
                    table.name,
                    "PRIMARY KEY",
                    "(" + ", ".join(c.name for c in table.primary_key.columns) + ")",
                    "(" + ", ".join(pk) + ")",
                )
            )
    return reports


def verify_tables(engine: sa.Engine, tables: list[sa.Table]) -> None:
    """Raise WarehouseSchemaMismatch naming every difference between the tables and schemas."""
    wrong = [r for r in compare_tables(engine, tables) if not r.ok]
    if wrong:
        where = engine.url.render_as_string(hide_password=True)
        lines = "\n".join(f"  {r}" for r in wrong)
        raise WarehouseSchemaMismatch(
            f"{len(wrong)} column(s) of existing tables in {where} differ from schemas.py; "
            f"the platform would store wrong values there. Fix the tables (ALTER TABLE, or "
            f"rename them and let the platform create them), then rerun; "
            f"`sales-platform db check` prints the comparison:\n{lines}"
        )
