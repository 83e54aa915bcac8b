"""SQL databases through SQLAlchemy Core: SQLite locally, MySQL / MariaDB in prod."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import make_url


def create_engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url)
    # pre_ping: a daemon-launched run may reuse a pool entry the server already closed.
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600)


class Database(dg.ConfigurableResource):
    """A database reached by a SQLAlchemy URL (credentials belong in the environment)."""

    url: str = Field(description="SQLAlchemy URL, e.g. mysql+pymysql://user:pw@host/db")

    _engine: sa.Engine | None = PrivateAttr(default=None)

    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = create_engine(self.url)
        return self._engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def describe(self) -> str:
        """The URL without its password: safe for logs and metadata."""
        return make_url(self.url).render_as_string(hide_password=True)
