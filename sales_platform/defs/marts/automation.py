"""The marts run themselves: they follow the sales fact, and each month is finalized once closed.

`marts_follow_fact` reads new `sales_enriched` materializations from the event log (whoever made
them: the landing sensor's daily runs, the UI, a backfill), groups their days by month and asks
for one refresh of both marts per month. A month waits while any run or backfill still builds
its days or its marts, so a batch of days gives one refresh, not one per day.

Why a sensor and not Declarative Automation: `AutomationCondition.eager()` only targets the
latest month (a late file for a closed month would never refresh it), never fires while a day
of the month is missing (a day without files has no partition, and the month-to-date report
always lacks the days still to come), and counts the dimension snapshots that every daily run
rewrites as an update of every month. A custom condition could drop those clauses, but the
sensor states the rule directly, waits on queued runs and on backfills whose runs do not exist
yet, keeps a cursor of one storage id plus the months still waiting (a few hundred bytes), and
gives each refresh a run key, so a repeated tick never launches a second run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.errors import DagsterDefinitionChangedDeserializationError
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from sales_platform.defs.jobs import MART_ASSETS, daily_sales_job, monthly_marts_job
from sales_platform.defs.marts.finality import FACT_KEY, FINAL_TAG, closed_and_due
from sales_platform.defs.partitions import monthly_partitions

MART_KEYS = [dg.AssetKey(name) for name in MART_ASSETS]
TRIGGER_TAG = "sales_platform/trigger"
_PAGE = 1000
_MAX_PAGES_PER_TICK = 20  # a first tick over a long history catches up over a few ticks


def month_of(partition_key: str) -> str:
    """The monthly partition key ('YYYY-MM-01') of a daily or monthly key."""
    return f"{partition_key[:7]}-01"


def months_between(first_key: str, last_key: str) -> list[str]:
    year, month = int(first_key[:4]), int(first_key[5:7])
    last = (int(last_key[:4]), int(last_key[5:7]))
    months = []
    while (year, month) <= last:
        months.append(f"{year:04d}-{month:02d}-01")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


@dataclass
class Update:
    """The newest fact materialization seen for a month: its storage id and when it happened."""

    storage_id: int
    timestamp: float


@dataclass
class FactCursor:
    """Event-log watermark plus the months seen changing whose refresh is still owed."""

    after: int = 0
    pending: dict[str, Update] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> FactCursor:
        if not text:
            return cls()
        raw = json.loads(text)
        pending = {m: Update(int(s), float(t)) for m, (s, t) in raw.get("pending", {}).items()}
        return cls(after=int(raw["after"]), pending=pending)

    def dump(self) -> str:
        pending = {m: [u.storage_id, u.timestamp] for m, u in sorted(self.pending.items())}
        return json.dumps({"after": self.after, "pending": pending}, separators=(",", ":"))

    def note(self, month: str, storage_id: int, timestamp: float) -> None:
        seen = self.pending.get(month)
        if seen is None or storage_id > seen.storage_id:
            self.pending[month] = Update(storage_id, max(timestamp, seen.timestamp if seen else 0))


def collect_fact_updates(instance: dg.DagsterInstance, cursor: FactCursor) -> int:
    """Add the months of fact materializations after the watermark; returns events read."""
    read = 0
    for _ in range(_MAX_PAGES_PER_TICK):
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=FACT_KEY, after_storage_id=cursor.after),
            limit=_PAGE,
            ascending=True,
        )
        for record in result.records:
            if record.partition_key:
                cursor.note(month_of(record.partition_key), record.storage_id, record.timestamp)
            cursor.after = max(cursor.after, record.storage_id)
        read += len(result.records)
        if not result.has_more:
            break
    return read


def _builds(run: dg.DagsterRun, keys: set[dg.AssetKey], job_name: str) -> bool:
    if run.asset_selection is not None:
        return bool(run.asset_selection & keys)
    return run.job_name == job_name


def _run_months(run: dg.DagsterRun) -> list[str] | None:
    """Months whose days or marts the run targets; None when it names no partition."""
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return [month_of(tags[PARTITION_NAME_TAG])]
    if ASSET_PARTITION_RANGE_START_TAG in tags and ASSET_PARTITION_RANGE_END_TAG in tags:
        return months_between(
            tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
        )
    return None


@dataclass
class InFlight:
    """Months that some unfinished run or backfill is still building (days or marts)."""

    months: set[str] = field(default_factory=set)
    everything: bool = False  # a run of the fact or marts that names no partition

    def __contains__(self, month: str) -> bool:
        return self.everything or month in self.months


def in_flight(instance: dg.DagsterInstance, asset_graph, log) -> InFlight:
    busy = InFlight()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=NOT_FINISHED_STATUSES)):
        if not (
            _builds(run, {FACT_KEY}, daily_sales_job.name)
            or _builds(run, set(MART_KEYS), monthly_marts_job.name)
        ):
            continue
        months = _run_months(run)
        if months is None:
            busy.everything = True
        else:
            busy.months.update(months)
    backfills = instance.get_backfills(
        filters=BulkActionsFilter(statuses=[BulkActionStatus.REQUESTED])
    )
    for backfill in backfills:
        months = _backfill_months(backfill, asset_graph, log)
        if months is None:
            busy.everything = True
        else:
            busy.months.update(months)
    return busy


def _backfill_months(backfill, asset_graph, log) -> set[str] | None:
    """Months of fact days or marts a backfill has yet to build (its runs may not exist yet);
    None when that cannot be told."""
    if not backfill.is_asset_backfill:
        if backfill.job_name in (daily_sales_job.name, monthly_marts_job.name):
            return {month_of(k) for k in backfill.partition_names or []}
        return set()
    if asset_graph is None:
        return None
    try:
        target = backfill.get_asset_backfill_data(asset_graph).target_subset
    except DagsterDefinitionChangedDeserializationError as exc:
        # Such a backfill cannot make progress either; waiting on it would stall the marts.
        log.warning(f"backfill {backfill.backfill_id} no longer matches the definitions: {exc}")
        return set()
    months: set[str] = set()
    for key in (FACT_KEY, *MART_KEYS):
        if key in target.asset_keys:
            keys = target.get_partitions_subset(key).get_partition_keys()
            months.update(month_of(k) for k in keys)
    return months


def marts_include(instance: dg.DagsterInstance, month: str, since: float) -> bool:
    """Both marts of the month were last built by runs that started after `since`, so they
    already read the fact as it is (for example `sales-platform materialize` runs them itself)."""
    for key in MART_KEYS:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[month]), limit=1
        )
        if not result.records:
            return False
        run = instance.get_run_record_by_id(result.records[0].run_id)
        if run is None or run.start_time is None or run.start_time <= since:
            return False
    return True


def mart_refresh_request(month: str, reason: str, run_key: str) -> dg.RunRequest:
    tags = {TRIGGER_TAG: reason}
    if closed_and_due(month):  # the mart itself still refuses an incomplete month
        tags[FINAL_TAG] = "true"
    return dg.RunRequest(partition_key=month, run_key=run_key, asset_selection=MART_KEYS, tags=tags)


@dg.sensor(
    name="marts_follow_fact",
    job=monthly_marts_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Keeps the customer and sales-team marts up to date with the sales: whenever days of "
        "sales_enriched change (daily files, reruns, backfills), both marts of their months are "
        "rebuilt for the month so far, once per month, after every in-flight day of that month "
        "has finished. Late data for a closed month republishes its final report."
    ),
)
def marts_follow_fact(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    cursor = FactCursor.parse(context.cursor)
    read = collect_fact_updates(instance, cursor)
    if not cursor.pending:
        return dg.SensorResult(cursor=cursor.dump(), skip_reason="no new days of sales_enriched")

    asset_graph = context.repository_def.asset_graph if context.repository_def else None
    busy = in_flight(instance, asset_graph, context.log)
    requests, waiting = [], []
    for month, update in sorted(cursor.pending.items()):
        if month in busy:
            waiting.append(month)
            continue
        del cursor.pending[month]
        if not monthly_partitions.has_partition_key(month):
            context.log.warning(f"sales_enriched changed in {month}, which is no mart partition")
        elif marts_include(instance, month, update.timestamp):
            context.log.info(f"marts of {month} were rebuilt after its last change; no refresh")
        else:
            key = f"marts:{month}:{update.storage_id}"
            requests.append(mart_refresh_request(month, "fact_update", key))
    context.log.info(
        f"{read} new fact event(s); refreshing {[r.partition_key for r in requests]}; "
        f"waiting for in-flight runs of {waiting}"
    )
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor.dump())
    reason = (
        f"waiting for in-flight days or marts of {', '.join(waiting)}"
        if waiting
        else "the marts already include every change"
    )
    return dg.SensorResult(cursor=cursor.dump(), skip_reason=reason)
