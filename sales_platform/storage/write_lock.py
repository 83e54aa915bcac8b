"""One writer per mart table at a time, whatever launched it (a run, a CLI call, a backfill);
one load of a lake day at a time (`write_locks`).

The Dagster pool on the mart assets already keeps runs of one instance apart; this lock also
covers writers that share the database but not the instance, and it is what makes concurrent
replaces safe on MySQL: the month column is not the leading key, so `DELETE … WHERE month` scans
and gap-locks the whole table, and two such transactions inserting afterwards deadlock each other
(InnoDB error 1213) instead of queueing. SQLite needs nothing: it admits one writer per file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from sales_platform.log_config import get_logger

log = get_logger(__name__)

LOCK_TIMEOUT_SECONDS = 600
# A run waits this long for another run's load of the same days: a long backfill holds them
# for its whole load (the CLI waits as long for a run by default).
DAY_LOCK_TIMEOUT_SECONDS = 3600
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
    name = _acquire(conn, table_name, timeout)
    try:
        yield
    finally:
        _release(conn, [name])


@contextmanager
def write_locks(
    engine: sa.Engine, names: Iterable[str], timeout: int = DAY_LOCK_TIMEOUT_SECONDS
) -> Iterator[None]:
    """Hold the named locks (one per lake day a step replaces, say `raw_sales/2024-03-14`) on
    a connection of their own until the block ends.

    Taken in name order, so two holders of overlapping sets queue instead of deadlocking. A
    process that dies loses its session and with it its locks: a crash never leaves a day
    locked. SQLite (the local stack) takes none.
    """
    if engine.dialect.name not in ("mysql", "mariadb"):
        yield
        return
    with engine.connect() as conn:
        held: list[str] = []
        try:
            for name in sorted(set(names)):
                held.append(_acquire(conn, name, timeout))
            yield
        finally:
            _release(conn, held)


def _get_lock(conn: sa.Connection, name: str, timeout: int) -> int | None:
    acquired = conn.execute(
        sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": timeout}
    ).scalar()
    conn.commit()  # end the implicit transaction, so the caller can begin its own
    return acquired


def _acquire(conn: sa.Connection, what: str, timeout: int) -> str:
    name = lock_name(conn, what)
    if _get_lock(conn, name, 0) != 1:
        log.info(f"{what}: another writer holds it; waiting up to {timeout}s")
        if _get_lock(conn, name, timeout) != 1:
            raise WriteLockTimeout(f"{what}: another writer held {name!r} for {timeout}s")
    return name


def _release(conn: sa.Connection, names: list[str]) -> None:
    # A connection that died has lost the locks with its session; nothing left to release.
    if names and not conn.invalidated and not conn.closed:
        for name in names:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
        conn.commit()
