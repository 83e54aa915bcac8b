"""One writer per mart table at a time, whatever launched it (a run, a CLI call, a backfill).

The Dagster pool on the mart assets already keeps runs of one instance apart; this lock also
covers writers that share the database but not the instance, and it is what makes concurrent
replaces safe on MySQL: the month column is not the leading key, so `DELETE … WHERE month` scans
and gap-locks the whole table, and two such transactions inserting afterwards deadlock each other
(InnoDB error 1213) instead of queueing. SQLite needs nothing: it admits one writer per file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

LOCK_TIMEOUT_SECONDS = 600
_MYSQL_LOCK_NAME_LIMIT = 64


class WriteLockTimeout(RuntimeError):
    """Another writer held the table longer than the timeout."""


def lock_name(conn: sa.Connection, table_name: str) -> str:
    # User locks are server-wide: the schema name keeps two databases on one server apart.
    schema = conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
    return f"sales_platform/{schema}/{table_name}"[:_MYSQL_LOCK_NAME_LIMIT]


@contextmanager
def table_write_lock(
    conn: sa.Connection, table_name: str, timeout: int = LOCK_TIMEOUT_SECONDS
) -> Iterator[None]:
    """Hold the table's write lock on `conn` (no transaction left open) until the block ends.

    Use it around the transaction, so the lock is released only after the commit: the next
    writer then sees the committed month, never a half-replaced one.
    """
    if conn.dialect.name not in ("mysql", "mariadb"):
        yield
        return
    name = lock_name(conn, table_name)
    acquired = conn.execute(
        sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": timeout}
    ).scalar()
    conn.commit()  # end the implicit transaction, so the caller can begin its own
    if acquired != 1:
        raise WriteLockTimeout(f"{table_name}: another writer held {name!r} for {timeout}s")
    try:
        yield
    finally:
        # A connection that died has lost the lock with its session; nothing left to release.
        if not conn.invalidated and not conn.closed:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            conn.commit()
