"""The landing sensor: notices new sales files in S3 and starts the daily load for their days."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from sales_platform.defs.ingest.daily_load import move_to_error
from sales_platform.defs.jobs import daily_sales_job
from sales_platform.defs.partitions import has_day
from sales_platform.log_config import get_logger
from sales_platform.schemas import LANDING_PREFIX
from sales_platform.storage.landing import business_date_from_key
from sales_platform.storage.object_store import ObjectStoreResource, StoredObject

log = get_logger(__name__)

# Listing is by LastModified at 1-second resolution and objects can appear late in a listing:
# each tick looks this far behind its watermark; run keys make the overlap harmless.
LOOKBACK = timedelta(minutes=10)
# Run keys already requested inside the look-back window, so a re-seen file is not re-announced.
# Bounded: the cursor must stay far below MySQL storage's 64 KB.
MAX_RECENT_RUN_KEYS = 500
TRIGGER_TAG = "sales_platform/trigger"


def run_key_for(day: str, objects: list[StoredObject]) -> str:
    """The day plus a digest of its (key, ETag) pairs: a new version of any file is a new run."""
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(f"{obj.key}\0{obj.etag}\n".encode())
    return f"{day}:{digest.hexdigest()[:32]}"


def _read_cursor(cursor: str | None) -> tuple[datetime | None, dict[str, float]]:
    if not cursor:
        return None, {}
    state = json.loads(cursor)
    watermark = state.get("watermark")
    return (datetime.fromisoformat(watermark) if watermark else None), state.get("recent", {})


def _write_cursor(watermark: datetime | None, recent: dict[str, float]) -> str:
    newest = sorted(recent.items(), key=lambda kv: kv[1])[-MAX_RECENT_RUN_KEYS:]
    return json.dumps(
        {"watermark": watermark.isoformat() if watermark else None, "recent": dict(newest)}
    )


@dg.sensor(
    job=daily_sales_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the S3 landing prefix; for each business day with new or changed files, starts "
        "the daily load. Files whose key names no business date, or a date outside the "
        "partitions, are moved to sales_data_error/ with a reason."
    ),
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: ObjectStoreResource
) -> dg.SensorResult:
    now = datetime.now(UTC)
    watermark, recent = _read_cursor(context.cursor)
    store = landing.open()
    objects = store.list_since(LANDING_PREFIX, watermark - LOOKBACK if watermark else None)

    by_day: dict[str, list[StoredObject]] = defaultdict(list)
    for obj in objects:
        if obj.key.endswith("/"):
            continue
        day = business_date_from_key(obj.key)
        if day is None:
            reason = "the key names no business date (YYYY-MM-DD)"
        elif not has_day(day.isoformat()):
            reason = f"business date {day} is outside the daily partitions"
        else:
            by_day[day.isoformat()].append(obj)
            continue
        if move_to_error(store, obj.key, obj.key, day, reason, obj.etag, None):
            log.warning(f"moved {obj.key!r} to the error prefix: {reason}")

    cutoff = (now - 2 * LOOKBACK).timestamp()
    recent = {k: t for k, t in recent.items() if t >= cutoff}
    run_requests, events = [], []
    for day, day_objects in sorted(by_day.items()):
        run_key = run_key_for(day, day_objects)
        if run_key in recent:
            continue
        recent[run_key] = now.timestamp()
        keys = sorted(o.key for o in day_objects)
        run_requests.append(
            dg.RunRequest(
                partition_key=day,
                run_key=run_key,
                # Runs queue one at a time on a Spark host: the day's files go before backfills.
                tags={TRIGGER_TAG: "landing", "dagster/priority": "1"},
            )
        )
        events.append(
            dg.AssetMaterialization(
                asset_key="raw_sales_files",
                partition=day,
                metadata={
                    "files": len(keys),
                    "bytes": sum(o.size for o in day_objects),
                    "keys": dg.MetadataValue.json(keys[:200]),
                },
            )
        )
    if objects:
        newest = max(o.last_modified for o in objects)
        watermark = max(watermark, newest) if watermark else newest
    return dg.SensorResult(
        run_requests=run_requests,
        asset_events=events,
        cursor=_write_cursor(watermark, recent),
        skip_reason=None if run_requests else "no new sales files",
    )
