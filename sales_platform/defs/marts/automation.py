"""The marts follow the sales fact by themselves: Dagster's declarative automation, per month.

Both marts carry `MARTS_FOLLOW_FACT`, evaluated month by month by the sensor `marts_follow_fact`.
A month gets one refresh of both marts once days of it in `sales_enriched` changed (whoever
changed them: the landing sensor's daily runs, the UI, a backfill) since the month's last
refresh request and since any other rebuild of it (the month-end close, `sales-platform
materialize`) that was not already running when they changed. It waits while a run or an asset
backfill still has days of the month or its marts to build (queued runs count), so a batch of
days gives one refresh, not one per day. Any month qualifies (a late file refreshes a closed
month), and days that do not exist (the rest of the current month, days without files) never
hold one back: the mart decides at run time what the month holds and whether it is final
(`finality`). The dimension snapshots, rewritten by every daily run, are no reason to refresh.
The UI shows, per month and per evaluation, which clause held. README, "How the marts follow the
fact", lists what this cannot express.
"""

from __future__ import annotations

import dagster as dg

from sales_platform.defs.jobs import MART_ASSETS
from sales_platform.defs.marts.finality import FACT_KEY

MART_KEYS = [dg.AssetKey(name) for name in MART_ASSETS]
TRIGGER_TAG = "sales_platform/trigger"

_FACT_ONLY = dg.AssetSelection.assets(FACT_KEY)
_AC = dg.AutomationCondition
_REFRESH_TAGS = {TRIGGER_TAG: "fact_update"}

# Timed: when a day and a request or rebuild are seen in the same evaluation, Dagster compares
# the day's materialization time with theirs (the built-in `any_deps_updated` is not timed).
days_updated = (
    _AC.any_deps_match(_AC.newly_updated())
    .allow(_FACT_ONLY)
    .with_label("days of the month updated")
)
days_in_progress = (
    _AC.any_deps_in_progress().allow(_FACT_ONLY).with_label("days of the month in progress")
)
rebuilt_by_others = (
    _AC.newly_updated() & ~_AC.executed_with_tags(tag_values=_REFRESH_TAGS)
).with_label("marts rebuilt by another run (month-end close, materialize, UI)")

# A refresh is owed when a day changed after the month's last refresh request (a refresh reads
# the fact after its request) and after any other rebuild of the month, unless that rebuild was
# running when the day changed (it may have read the fact before).
since_requested = days_updated.since(_AC.newly_requested()).with_label(
    "days updated since the last refresh request"
)
since_rebuilt = days_updated.since(rebuilt_by_others).with_label(
    "days updated since another run rebuilt the marts"
)
during_rebuild = (
    (days_updated & _AC.run_in_progress())
    .since(_AC.newly_requested())
    .with_label("days updated while another run was rebuilding the marts")
)

MARTS_FOLLOW_FACT = (
    since_requested & (since_rebuilt | during_rebuild) & ~days_in_progress & ~_AC.in_progress()
).with_label("marts follow the fact")


def with_marts_automation(assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The marts with their automation condition (left off where no sensor may launch runs)."""
    return [
        a.map_asset_specs(lambda s: s.replace_attributes(automation_condition=MARTS_FOLLOW_FACT))
        for a in assets
    ]


marts_follow_fact = dg.AutomationConditionSensorDefinition(
    "marts_follow_fact",
    target=dg.AssetSelection.assets(*MART_KEYS),
    run_tags=_REFRESH_TAGS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    # One run per month, as the month-end close makes: a month that cannot publish (a day with
    # files but no fact) fails alone, and each run says which month it refreshed.
    emit_backfills=False,
    # Evaluated in the code location, where the condition is defined (no version skew with the
    # daemon) and where tests evaluate it as the sensor daemon does.
    use_user_code_server=True,
    description=(
        "Keeps the customer and sales-team marts up to date with the sales: whenever days of "
        "sales_enriched change (daily files, reruns, backfills), both marts of their months are "
        "rebuilt for the month so far, once per month, after every in-flight day of that month "
        "has finished. Late data for a closed month republishes its final report."
    ),
)
