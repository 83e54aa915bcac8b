"""Administration: create the platform's tables, and its least-privilege runtime user.

The pipeline connects as a runtime user that can read the source tables and write the marts and
the ledger, and nothing else: no CREATE, ALTER or DROP. So the tables exist before the first run,
created by an administrator with `sales-platform db init`, and the user is set up from
`deploy/mysql/runtime_user.sql` (`sales-platform db grant-runtime-user`, or envsubst + mysql).

Identifiers come from the fixed lists in `schemas` and a checked pattern; the password is a bound
parameter, never pasted into SQL text.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from sales_platform.schemas import MART_TABLES, SOURCE_TABLES, metadata

RUNTIME_USER_SQL = Path(__file__).resolve().parents[2] / "deploy" / "mysql" / "runtime_user.sql"
LEDGER_TABLE = "product_staging_table"
_IDENTIFIER = re.compile(r"[A-Za-z0-9_]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9_.%:-]{1,255}")
_PASSWORD_SLOT = "'${RUNTIME_PASSWORD}'"


def warehouse_tables() -> list[sa.Table]:
    """The tables the pipeline writes: the marts and the file ledger."""
    return [*MART_TABLES.values(), metadata.tables[LEDGER_TABLE]]


def create_tables(source: sa.Engine, warehouse: sa.Engine) -> list[str]:
    """Create the source tables and the warehouse tables that are missing (an admin step).

    Returns the names of the tables that exist afterwards, source first.
    """
    metadata.create_all(source, tables=list(SOURCE_TABLES.values()), checkfirst=True)
    metadata.create_all(warehouse, tables=warehouse_tables(), checkfirst=True)
    # The lake's Iceberg catalog (SqlCatalog) lives beside the marts: its tables too.
    from pyiceberg.catalog.sql import SqlCatalogBaseTable

    SqlCatalogBaseTable.metadata.create_all(warehouse, checkfirst=True)
    catalog = sorted(SqlCatalogBaseTable.metadata.tables)
    return [*SOURCE_TABLES, *(t.name for t in warehouse_tables()), *catalog]


def runtime_user_statements(
    user: str,
    host: str,
    source_db: str,
    warehouse_db: str,
    sql_path: Path = RUNTIME_USER_SQL,
) -> list[str]:
    """The statements of runtime_user.sql for these names; the password stays a placeholder."""
    for label, value, pattern in (
        ("user", user, _IDENTIFIER),
        ("source database", source_db, _IDENTIFIER),
        ("warehouse database", warehouse_db, _IDENTIFIER),
        ("host", host, _HOST),
    ):
        if not pattern.fullmatch(value or ""):
            raise ValueError(f"{label} {value!r} is not a plain identifier")
    if not sql_path.is_file():
        raise FileNotFoundError(
            f"{sql_path} not found: run from a checkout of the repository "
            "(deploy/mysql/runtime_user.sql)"
        )
    text = "\n".join(
        line for line in sql_path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    names = {
        "${RUNTIME_USER}": user,
        "${RUNTIME_HOST}": host,
        "${SOURCE_DB}": source_db,
        "${WAREHOUSE_DB}": warehouse_db,
    }
    statements = []
    for raw in text.split(";"):
        statement = " ".join(raw.split())
        if not statement:
            continue
        for slot, value in names.items():
            statement = statement.replace(slot, value)
        statements.append(statement)
    return statements


def grant_runtime_user(
    admin: sa.Engine,
    user: str,
    password: str,
    source_db: str,
    warehouse_db: str,
    host: str = "%",
) -> list[str]:
    """Create (or reset) the runtime user with exactly the grants of runtime_user.sql.

    Runs on a MySQL / MariaDB connection with admin rights. Returns the statements run, with the
    password left out.
    """
    if not password:
        raise ValueError("the runtime user needs a password")
    if admin.dialect.name not in ("mysql", "mariadb"):
        raise ValueError(f"runtime users are for MySQL / MariaDB, not {admin.dialect.name}")
    statements = runtime_user_statements(user, host, source_db, warehouse_db)
    with admin.begin() as conn:
        for statement in statements:
            # Driver-level binding: PyMySQL quotes and escapes the password itself. It formats
            # every statement with the parameters, so a literal % (the host '%') is doubled.
            sql = statement.replace("%", "%%").replace(_PASSWORD_SLOT, "%(password)s")
            conn.exec_driver_sql(sql, {"password": password})
    return statements
