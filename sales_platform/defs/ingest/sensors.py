"""The landing sensor: notices new sales files in S3 and starts the daily load for their days."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from sales_platform.defs.ingest.daily_load import move_to_error
from sales_platform.defs.ingest.observations import files_landed_event
from sales_platform.defs.jobs import daily_sales_job
from sales_platform.defs.partitions import has_day
from sales_platform.faults import fault
from sales_platform.log_config import get_logger
from sales_platform.schemas import LANDING_PREFIX
from sales_platform.storage.database import Database
from sales_platform.storage.landing import business_date_from_key
from sales_platform.storage.ledger import COMPLETED, REJECTED, Ledger
from sales_platform.storage.object_store import ObjectStoreResource, StoredObject

log = get_logger(__name__)

# Run keys requested recently, so a file waiting for its run is not re-announced every tick.
# Bounded: the cursor must stay far below MySQL storage's 64 KB.
MAX_RECENT_RUN_KEYS = 500
RECENT_FOR = timedelta(minutes=20)
TRIGGER_TAG = "sales_platform/trigger"
SETTLED = (COMPLETED, REJECTED)


def run_key_for(day: str, objects: list[StoredObject], after: dict[str, str] | None = None) -> str:
    """The day plus a digest of its files' versions: (key, ETag, and the run that last settled
    the key). The same delivery twice is one run; any new version is a new run, a revert to an
    earlier version included (a later run has settled the key since)."""
    after = after or {}
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(f"{obj.key}\0{obj.etag}\0{after.get(obj.key) or ''}\n".encode())
    return f"{day}:{digest.hexdigest()[:32]}"


def _read_cursor(cursor: str | None) -> dict[str, float]:
    return json.loads(cursor).get("recent", {}) if cursor else {}


def _write_cursor(recent: dict[str, float]) -> str:
    newest = sorted(recent.items(), key=lambda kv: kv[1])[-MAX_RECENT_RUN_KEYS:]
    return json.dumps({"recent": dict(newest)})


def _reject_undated(store, obj: StoredObject, day) -> None:
    """Move a file no daily partition can take to the error prefix; never fail the tick."""
    if day is None:
        reason = f"{obj.key!r}: the key names no business date (YYYY-MM-DD)"
    else:
        reason = f"{obj.key!r}: business date {day} is outside the daily partitions"
    try:
        if move_to_error(store, obj.key, obj.key, day, reason, obj.etag, None):
            log.warning(f"moved {obj.key!r} to the error prefix: {reason}")
    except Exception as exc:  # noqa: BLE001 - one object never stops the others
        log.error(f"could not move {obj.key!r} to the error prefix: {exc}")


@dg.sensor(
    job=daily_sales_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the S3 landing prefix; for each business day with a file version the ledger "
        "has not settled, starts the daily load. Files whose key names no business date, or a "
        "date outside the partitions, are moved to sales_data_error/ with a reason."
    ),
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: ObjectStoreResource, warehouse_db: Database
) -> dg.SensorResult:
    now = datetime.now(UTC)
    recent = _read_cursor(context.cursor)
    store = landing.open()
    # The whole listing, diffed against the ledger: a file is new until the ledger has settled
    # its version, whatever its LastModified says (a long multipart upload, a copy that keeps
    # its stamp).
    objects = [o for o in store.list(LANDING_PREFIX) if not o.key.endswith("/")]
    history = Ledger(warehouse_db.engine()).history(store.uri(""), [o.key for o in objects])

    by_day: dict[str, list[StoredObject]] = defaultdict(list)
    after: dict[str, str] = {}
    for obj in objects:
        day = business_date_from_key(obj.key)
        versions = history.get(obj.key, [])
        if day is None or not has_day(day.isoformat()):
            _reject_undated(store, obj, day)
        elif (
            not versions
            or versions[-1]["etag"] != obj.etag
            or versions[-1]["status"] not in SETTLED
        ):
            by_day[day.isoformat()].append(obj)
            # The run that last handled another version of the key: a revert is a new run.
            others = [v for v in versions if v["etag"] != obj.etag]
            after[obj.key] = others[-1]["run_id"] if others else ""
        else:
            # Settled, yet still in landing: its run died between the ledger and the move (or
            # the same bytes were sent again). The day runs again to move it; the run that
            # settled it is in the key, so this is a new run key, once per such run.
            by_day[day.isoformat()].append(obj)
            after[obj.key] = f"settled-by:{versions[-1]['run_id']}"

    cutoff = (now - RECENT_FOR).timestamp()
    recent = {k: t for k, t in recent.items() if t >= cutoff}
    run_requests, events = [], []
    for day, day_objects in sorted(by_day.items()):
        run_key = run_key_for(day, day_objects, after)
        if run_key in recent:
            continue
        recent[run_key] = now.timestamp()
        run_requests.append(
            dg.RunRequest(
                partition_key=day,
                run_key=run_key,
                # Runs queue one at a time on a Spark host: the day's files go before backfills.
                tags={TRIGGER_TAG: "landing", "dagster/priority": "1"},
            )
        )
        events.append(files_landed_event(day, day_objects))
    # A crash from here until the daemon has stored the tick (cursor and reserved run keys
    # together, before it submits the runs) leaves no cursor: the next tick asks again under
    # the same run keys, and Dagster starts each run key once.
    fault("sensor.requested")
    return dg.SensorResult(
        run_requests=run_requests,
        asset_events=events,
        cursor=_write_cursor(recent),
        skip_reason=None if run_requests else "no new sales files",
    )
