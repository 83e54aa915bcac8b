"""SQL databases through SQLAlchemy Core: SQLite locally, MySQL / MariaDB in prod."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import sqlalchemy as sa
import tenacity
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import make_url

from sales_platform.storage.crypto import ENC_PREFIX, KeyringResource, SecretDecryptionError


def tls_connect_args(url: str, ssl_ca: str | None) -> dict:
    """PyMySQL arguments that require TLS and verify the server's certificate and host name.

    With them a server without TLS is refused (PyMySQL never falls back to plaintext).
    """
    if not ssl_ca:
        return {}
    if make_url(url).get_driver_name() != "pymysql":
        raise ValueError("the TLS option (ssl_ca) is for mysql+pymysql:// URLs")
    return {"ssl_ca": ssl_ca, "ssl_verify_cert": True, "ssl_verify_identity": True}


# Every MySQL / MariaDB session of the platform: a value that does not fit its column (a total
# beyond DECIMAL(p,s), a name longer than its VARCHAR, a character outside the charset, an
# invalid date) is an error, never silently clipped, whatever the server's default sql_mode.
STRICT_SQL_MODE = ",".join(
    (
        "STRICT_ALL_TABLES",
        "NO_ZERO_IN_DATE",
        "NO_ZERO_DATE",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "NO_ENGINE_SUBSTITUTION",
    )
)


def _strict_session(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET SESSION sql_mode = %s", (STRICT_SQL_MODE,))
    finally:
        cursor.close()


# MySQL / MariaDB errors after which the whole transaction may simply run again: the server has
# rolled it back (a deadlock victim), or only its last statement (a lock wait timeout: the caller's
# `begin()` block rolls back the rest), or the connection is gone (lost, server gone away, killed
# by an operator or a failover), so nothing uncommitted survives. Anything else (a duplicate key,
# a syntax error, a value that does not fit) would fail the same way again: it is raised at once.
TRANSIENT_MYSQL_ERRORS = {
    1205: "lock wait timeout",
    1213: "deadlock",
    1927: "connection killed",
    2006: "server has gone away",
    2013: "lost connection",
}
TRANSACTION_ATTEMPTS = 5
_BACKOFF_SECONDS, _BACKOFF_MAX_SECONDS = 0.2, 5.0

log = logging.getLogger(__name__)
T = TypeVar("T")


class TransactionRetriesExhausted(RuntimeError):
    """A transaction failed with a transient error on every attempt."""


def transient_error_code(exc: BaseException) -> int | None:
    """The MySQL error number of `exc` when it is one a retry may cure, else None."""
    orig = getattr(exc, "orig", None) if isinstance(exc, sa.exc.DBAPIError) else None
    code = orig.args[0] if orig is not None and orig.args else None
    return code if code in TRANSIENT_MYSQL_ERRORS else None


def retry_transaction(work: Callable[[], T], what: str, attempts: int = TRANSACTION_ATTEMPTS) -> T:
    """`work()` (one whole transaction: it opens, commits and closes its own connection), run
    again with exponential backoff and jitter while it fails with a transient MySQL error.

    `work` must be safe to run twice, even when its commit went through but the reply was lost:
    each caller makes it so (a month replaced whole, a conditional or repeated update). When the
    attempts run out, the error names `what` (the table, and the month or file).
    """

    def retrying(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        code = transient_error_code(exc)
        log.warning(
            "%s: MySQL error %s (%s), attempt %d of %d; again in %.1f s",
            what,
            code,
            TRANSIENT_MYSQL_ERRORS[code],
            state.attempt_number,
            attempts,
            state.upcoming_sleep,
        )

    try:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: transient_error_code(e) is not None),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_random_exponential(
                multiplier=_BACKOFF_SECONDS, max=_BACKOFF_MAX_SECONDS
            ),
            before_sleep=retrying,
            reraise=True,
        )(work)
    except sa.exc.DBAPIError as exc:
        code = transient_error_code(exc)
        if code is None:
            raise
        raise TransactionRetriesExhausted(
            f"{what}: failed {attempts} times, the last with MySQL error {code} "
            f"({TRANSIENT_MYSQL_ERRORS[code]}): {exc.orig}"
        ) from exc


def create_engine(url: str, ssl_ca: str | None = None, timeout: int | None = None) -> sa.Engine:
    """An engine for `url`; with `timeout`, a MySQL connection that gets no answer (not even
    the server's greeting) for that many seconds fails instead of waiting forever."""
    parsed = make_url(url)
    # hide_parameters: bound values (names, phone numbers) never reach logs or error messages.
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, hide_parameters=True)
    connect_args = tls_connect_args(url, ssl_ca)
    mysql = parsed.get_backend_name() in ("mysql", "mariadb")
    if mysql and "charset" not in parsed.query:
        # The connection's own charset: utf8mb4, so any name or key travels intact.
        connect_args["charset"] = "utf8mb4"
    if mysql and timeout is not None:
        connect_args |= {"connect_timeout": timeout, "read_timeout": timeout}
        connect_args["write_timeout"] = timeout
    # pre_ping: a daemon-launched run may reuse a pool entry the server already closed.
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=3600,
        hide_parameters=True,
        connect_args=connect_args,
    )
    if mysql:
        sa.event.listen(engine, "connect", _strict_session)
    return engine


class Database(dg.ConfigurableResource):
    """A database reached by a SQLAlchemy URL (credentials belong in the environment)."""

    url: str = Field(
        description="SQLAlchemy URL, e.g. mysql+pymysql://user:pw@host/db, or its enc: token"
    )
    keyring: KeyringResource | None = Field(
        default=None, description="master key that decrypts an enc: url"
    )
    ssl_ca: str | None = Field(
        default=None, description="CA bundle (PEM): connect over TLS, verifying the server"
    )

    _engine: sa.Engine | None = PrivateAttr(default=None)

    def _plain_url(self) -> str:
        if not self.url.startswith(ENC_PREFIX):
            return self.url
        if self.keyring is None:
            raise SecretDecryptionError("the database URL is an enc: token; no master key is set")
        return self.keyring.keyring().reveal(self.url, "the database URL")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # An enc: URL that does not decrypt fails the run at its start, with the reason.
        self._plain_url()

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = create_engine(self._plain_url(), self.ssl_ca)
        return self._engine

    def ping(self, timeout: int) -> None:
        """Connect and run `SELECT 1`, each wait bounded by `timeout` seconds; raises if not."""
        engine = create_engine(self._plain_url(), self.ssl_ca, timeout=timeout)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def describe(self) -> str:
        """The URL without its password: safe for logs and metadata."""
        return make_url(self._plain_url()).render_as_string(hide_password=True)
