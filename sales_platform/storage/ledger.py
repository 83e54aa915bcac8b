"""The file ledger (`product_staging_table`): one row per file version that landed.

It answers, for any file, whether it was processed (I), rejected (E, with the reason) or is
being processed / failed mid-way (A), with its row counts and the run that handled it. Every
statement is SQLAlchemy Core with bound parameters; it runs the same on MySQL and SQLite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa

from sales_platform.schemas import product_staging_table as ledger_table
from sales_platform.storage.database import retry_transaction
from sales_platform.storage.warehouse import ensure_tables

PROCESSING, COMPLETED, REJECTED = "A", "I", "E"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class FileVersion:
    bucket: str
    key: str
    etag: str
    location: str
    business_date: date | None
    size: int | None = None


class Ledger:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        ensure_tables(engine, [ledger_table])

    def _where(self, version: FileVersion):
        t = ledger_table.c
        return sa.and_(
            t.bucket == version.bucket,
            t.key_hash == key_hash(version.key),
            t.etag == version.etag,
        )

    def start(
        self,
        version: FileVersion,
        run_id: str,
        sha256: str | None = None,
        reprocess_reason: str | None = None,
    ) -> None:
        """Record that run_id is processing this file version (status A)."""
        now = _now()
        values = {"run_id": run_id, "status": PROCESSING, "reason": None, "updated_date": now}
        if sha256 is not None:
            values["sha256"] = sha256
        if reprocess_reason is not None:
            values["reprocess_reason"] = reprocess_reason

        def record() -> None:
            with self.engine.begin() as conn:
                updated = conn.execute(
                    ledger_table.update().where(self._where(version)).values(**values)
                ).rowcount
                if updated == 0:
                    conn.execute(
                        ledger_table.insert().values(
                            file_name=version.key.rsplit("/", 1)[-1][:255],
                            file_location=version.location,
                            bucket=version.bucket,
                            object_key=version.key,
                            key_hash=key_hash(version.key),
                            etag=version.etag,
                            size_bytes=version.size,
                            business_date=version.business_date,
                            created_date=now,
                            **values,
                        )
                    )

        # Run again after a lost commit reply, the row is there: the update matches it (MySQL
        # counts matched rows, not changed ones) and nothing is inserted twice.
        self._retried(record, version.key)

    def complete(
        self,
        version: FileVersion,
        rows_read: int,
        rows_accepted: int,
        rows_quarantined: int,
    ) -> None:
        self._finish(
            version,
            status=COMPLETED,
            rows_read=rows_read,
            rows_accepted=rows_accepted,
            rows_quarantined=rows_quarantined,
        )

    def reject(self, version: FileVersion, reason: str, rows_read: int | None = None) -> None:
        self._finish(
            version,
            status=REJECTED,
            reason=reason,
            rows_read=rows_read,
            rows_accepted=0,
            rows_quarantined=0,
        )

    def archived(self, version: FileVersion, archived_key: str) -> None:
        """Record where the version was archived; a row that already says so is left as is
        (its updated_date orders the key's versions for the sensor)."""
        t = ledger_table.c
        self._update(
            version.key,
            ledger_table.update()
            .where(
                self._where(version),
                sa.or_(t.archived_key.is_(None), t.archived_key != archived_key),
            )
            .values(updated_date=_now(), archived_key=archived_key),
        )

    def _finish(self, version: FileVersion, **values) -> None:
        self._update(
            version.key,
            ledger_table.update().where(self._where(version)).values(updated_date=_now(), **values),
        )

    def _update(self, key: str, statement: sa.Update) -> int:
        """One UPDATE in its own transaction, retried: the same values set twice are set once."""

        def update() -> int:
            with self.engine.begin() as conn:
                return conn.execute(statement).rowcount

        return self._retried(update, key)

    @staticmethod
    def _retried(work, key: str):
        # A deadlock or a lost connection is retried (storage/database.py); the error that
        # outlasts the retries names the ledger table and the file.
        return retry_transaction(work, f"{ledger_table.name} {key}")

    def original_of(
        self, sha256: str, key: str, bucket: str, business_date: date | None = None
    ) -> str | None:
        """The other key whose identical content already gave accepted sales to the same day.

        An original that contributed nothing (say, every row `sales_date_mismatch` because it
        landed in the wrong day's folder) does not make a corrected re-send a duplicate.
        """
        t = ledger_table.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.object_key)
                .where(
                    t.bucket == bucket,
                    t.sha256 == sha256,
                    t.key_hash != key_hash(key),
                    t.status == COMPLETED,
                    t.rows_accepted > 0,
                    t.business_date == business_date,
                )
                .order_by(t.id)
                .limit(1)
            ).first()
        return row.object_key if row else None

    def latest(self, bucket: str, key: str) -> dict | None:
        """The newest ledger row of a landing key."""
        t = ledger_table.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(ledger_table)
                .where(t.bucket == bucket, t.key_hash == key_hash(key))
                .order_by(t.id.desc())
                .limit(1)
            ).first()
        return dict(row._mapping) if row else None

    def allow_reprocess(self, bucket: str, key: str, sha256: str, reason: str) -> int:
        """Record an operator's decision that this content of `key` is loaded even if it looks
        like a duplicate. Returns the number of ledger rows marked."""
        t = ledger_table.c
        return self._update(
            key,
            ledger_table.update()
            .where(t.bucket == bucket, t.key_hash == key_hash(key), t.sha256 == sha256)
            .values(reprocess_reason=reason, updated_date=_now()),
        )

    def reprocess_reason(self, bucket: str, key: str, sha256: str) -> str | None:
        """The operator's reason to push this content of `key` through, if one was recorded."""
        t = ledger_table.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.reprocess_reason)
                .where(
                    t.bucket == bucket,
                    t.key_hash == key_hash(key),
                    t.sha256 == sha256,
                    t.reprocess_reason.is_not(None),
                )
                .order_by(t.id.desc())
                .limit(1)
            ).first()
        return row.reprocess_reason if row else None

    def history(self, bucket: str, keys: list[str]) -> dict[str, list[dict]]:
        """For each key the ledger knows, its versions' rows (`etag`, `status`, `run_id`), the
        most recently handled last (a revert makes an older version's row the latest again)."""
        t = ledger_table.c
        by_hash = {key_hash(k): k for k in keys}
        hashes = sorted(by_hash)
        found: dict[str, list[dict]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(hashes), 500):
                rows = conn.execute(
                    sa.select(t.id, t.key_hash, t.etag, t.status, t.run_id, t.updated_date).where(
                        t.bucket == bucket, t.key_hash.in_(hashes[i : i + 500])
                    )
                )
                for r in rows:
                    found.setdefault(by_hash[r.key_hash], []).append(dict(r._mapping))
        for versions in found.values():
            versions.sort(key=lambda r: (r["updated_date"], r["id"]))
        return found

    def entry(self, version: FileVersion) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ledger_table).where(self._where(version))).first()
        return dict(row._mapping) if row else None

    def entries(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(ledger_table).order_by(ledger_table.c.id))
            return [dict(r._mapping) for r in rows]
