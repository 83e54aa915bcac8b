"""What landed for a business day: the event that makes `raw_sales_files` show its files.

`raw_sales_files` is an external asset (a plain AssetSpec: the platform does not produce the
files). The event is an `AssetMaterialization`, not an `AssetObservation`: in Dagster 1.13 only
materializations count in a non-observable asset's partition status, so an observation would
leave the first node of the graph grey at 0 % however many files landed. The data version
(a digest of the day's keys and ETags) still changes exactly when the day's files change.

Used by the demo (reported as a run-less event) and by the landing sensor (as an asset event).
"""

from __future__ import annotations

import hashlib
from datetime import date

import dagster as dg

from sales_platform.storage.object_store import StoredObject

ASSET_KEY = dg.AssetKey("raw_sales_files")
# Dagster's tag for an event's data version (what `dg.DataVersion` values are stored as).
DATA_VERSION_TAG = "dagster/data_version"
_MAX_LISTED = 200


def files_data_version(objects: list[StoredObject]) -> dg.DataVersion:
    """A digest of the day's (key, ETag) pairs: any new, changed or removed file changes it."""
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(f"{obj.key}\0{obj.etag}\n".encode())
    return dg.DataVersion(digest.hexdigest()[:32])


def files_landed_event(day: date | str, objects: list[StoredObject]) -> dg.AssetMaterialization:
    """The day's files as landed: their keys and sizes (no content), bytes and a data version."""
    objects = sorted(objects, key=lambda o: o.key)
    version = files_data_version(objects)
    return dg.AssetMaterialization(
        asset_key=ASSET_KEY,
        partition=day if isinstance(day, str) else day.isoformat(),
        metadata={
            "files": len(objects),
            "bytes": sum(o.size for o in objects),
            "sizes": dg.MetadataValue.json({o.key: o.size for o in objects[:_MAX_LISTED]}),
            "keys": dg.MetadataValue.json([o.key for o in objects[:_MAX_LISTED]]),
            "data_version": version.value,
        },
        tags={DATA_VERSION_TAG: version.value},
    )
