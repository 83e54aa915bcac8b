"""The Dagster UI tried as an operator would: the real webserver, on an instance holding a day and
its month that were materialized, asked through its GraphQL API (what the UI itself calls) for
the asset graph, the checks and their last results, the sensors and schedules. Headless Chromium
renders the asset graph page; the screenshot is an artifact of the test run.

What the UI shows is compared with the definitions and with what the run recorded, so the UI
telling something else than the truth fails the test. The day has 2 % bad rows, so one check
result is a failure (a warning) and the UI must say so.
"""

from __future__ import annotations

import os
import shutil
import struct
from datetime import date
from urllib.parse import quote

import dagster as dg
import pytest

from sales_platform.cli import _resources, materialize
from sales_platform.definitions import build_definitions
from sales_platform.generate import generate
from sales_platform.settings import Settings
from sales_platform_tests.processes import (
    REPO_ROOT,
    chromium,
    free_port,
    running,
    start,
    wait_for_code_location,
    wait_for_http,
    webserver_command,
)

pytestmark = pytest.mark.integration

DAY, MONTH = date(2023, 3, 14), "2023-03-01"
ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "asset-graph.png"
WINDOW = (1920, 1400)

# Issue 5: every asset in its domain's group.
GROUPS = {
    "raw_sales_files": "ingest",
    "raw_sales": "ingest",
    "customers": "dimensions",
    "stores": "dimensions",
    "products": "dimensions",
    "sales_team": "dimensions",
    "sales_enriched": "fact",
    "customer_monthly_mart": "marts",
    "sales_team_monthly_mart": "marts",
}
# docs/architecture.md §2's graph: what each asset is built from (at least).
BUILT_FROM = {
    "raw_sales": {"raw_sales_files"},
    "sales_enriched": {"raw_sales", "customers", "stores", "products", "sales_team"},
    "customer_monthly_mart": {"sales_enriched"},
    "sales_team_monthly_mart": {"sales_enriched"},
}
# 2 % of rows quarantined: above raw_sales' 0.5 % warn rate, below its 5 % error rate.
BAD_ROW_FRACTION = 0.02
EXPECTED_FAILURES = {("raw_sales", "quarantine_rate"): "WARN"}

_LOCAL_ONLY = (
    "SALES_PLATFORM_ENV",
    "SALES_PLATFORM_S3_BUCKET",
    "SALES_PLATFORM_S3_ENDPOINT_URL",
    "SALES_PLATFORM_LAKE_URI",
    "SALES_PLATFORM_SOURCE_DB_URL",
    "SALES_PLATFORM_WAREHOUSE_DB_URL",
    "SALES_PLATFORM_MASTER_KEY",
)

ASSET_GRAPH = """
{ assetNodes {
    assetKey { path } groupName isPartitioned
    dependencyKeys { path }
    partitionStats { numMaterialized numFailed }
    assetMaterializations(limit: 1) {
      partition runId
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    }
} }
"""
CHECKS = """
{ assetNodes {
    assetKey { path }
    assetChecksOrError { __typename ... on AssetChecks { checks {
      name blocking
      executionForLatestMaterialization { status runId evaluation { success severity } }
    } } }
} }
"""
AUTOMATION = """
{ shouldShowNux
  repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name sensorState { status } }
    schedules { name cronSchedule executionTimezone scheduleState { status } }
} } } }
"""


@pytest.fixture(scope="module")
def ui(spark, tmp_path_factory):
    """A local stack with one materialized day and its month, and the webserver on it."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # the local instance config
    with pytest.MonkeyPatch.context() as env:
        for name in _LOCAL_ONLY:
            env.delenv(name, raising=False)
        env.setenv("SALES_PLATFORM_DATA_DIR", str(root / "data"))
        env.setenv("DAGSTER_HOME", str(home))
        settings = Settings.from_env()
        with _resources(settings, "landing", "source_db") as res:
            summary = generate(
                res.landing.open(),
                res.source_db.engine(),
                start_date=DAY,
                days=1,
                rows_per_day=400,
                seed=21,
                customers=60,
                stores=3,
                sellers_per_store=3,
                bad_row_fraction=BAD_ROW_FRACTION,
                progress=False,
            )
        with dg.DagsterInstance.get() as instance:
            results = materialize(DAY, DAY, settings=settings, instance=instance)
        run_ids = {r.run_id for r in results}
        defs = build_definitions(settings)

        port = free_port()
        service = start(
            "webserver",
            webserver_command(port),
            dict(os.environ),
            root / "logs",
            base_url=f"http://127.0.0.1:{port}",
        )
        with running(service):
            wait_for_http(service)
            wait_for_code_location(service)
            yield service, defs, summary, run_ids, root


def _key(node: dict) -> str:
    return "/".join(node["assetKey"]["path"])


def _metadata(materialization: dict) -> dict:
    return {e["label"]: e.get("intValue") for e in materialization["metadataEntries"]}


def test_asset_graph_is_the_defined_one_with_what_was_materialized(ui):
    service, defs, summary, run_ids, _ = ui
    nodes = {_key(n): n for n in service.graphql(ASSET_GRAPH)["assetNodes"]}

    graph = defs.resolve_asset_graph()
    defined = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    shown = {key: {"/".join(d["path"]) for d in n["dependencyKeys"]} for key, n in nodes.items()}
    assert shown == defined
    assert {key: n["groupName"] for key, n in nodes.items()} == GROUPS
    for asset, sources in BUILT_FROM.items():
        assert sources <= shown[asset], f"{asset} is not built from {sources - shown[asset]}"

    # The run's results as the UI reports them: one day, its month, the snapshots.
    for asset, partition in (
        ("raw_sales", DAY.isoformat()),
        ("sales_enriched", DAY.isoformat()),
        ("customer_monthly_mart", MONTH),
        ("sales_team_monthly_mart", MONTH),
    ):
        node = nodes[asset]
        assert node["partitionStats"] == {"numMaterialized": 1, "numFailed": 0}, asset
        (latest,) = node["assetMaterializations"]
        assert latest["partition"] == partition and latest["runId"] in run_ids
    for asset in ("customers", "stores", "products", "sales_team"):
        (latest,) = nodes[asset]["assetMaterializations"]
        assert not nodes[asset]["isPartitioned"] and latest["runId"] in run_ids
    assert summary.bad_rows > 0
    raw = _metadata(nodes["raw_sales"]["assetMaterializations"][0])
    assert raw["dagster/row_count"] == summary.accepted_rows


def test_checks_and_their_last_results_are_shown_truthfully(ui):
    service, defs, _, run_ids, _ = ui
    shown = {}
    for node in service.graphql(CHECKS)["assetNodes"]:
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", checks
        for check in checks["checks"]:
            shown[(_key(node), check["name"])] = check

    graph = defs.resolve_asset_graph()
    defined = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert set(shown) == defined
    # Checks evaluated in the asset's own step ran with the materialization; standalone checks
    # (the files-overdue schedule's) run on their own and have no result tied to it.
    in_step = {
        (k.asset_key.to_user_string(), k.name)
        for a in graph.assets_defs
        if a.keys
        for k in a.check_keys
    }
    assert in_step, "no asset carries an in-step check"
    for key in sorted(in_step):
        execution = shown[key]["executionForLatestMaterialization"]
        assert execution is not None, f"{key}: no result shown for the latest materialization"
        assert execution["runId"] in run_ids, key
        if key in EXPECTED_FAILURES:
            assert execution["status"] == "FAILED", key
            assert execution["evaluation"] == {
                "success": False,
                "severity": EXPECTED_FAILURES[key],
            }, key
        else:
            assert execution["status"] == "SUCCEEDED", (key, execution)
            assert execution["evaluation"]["success"] is True, key


def test_sensors_and_schedules_are_on_without_anyone_switching_them_on(ui):
    service, defs, *_ = ui
    data = service.graphql(AUTOMATION)
    assert data["shouldShowNux"] is False  # no community pop-up over the operator's first page
    (repository,) = data["repositoriesOrError"]["nodes"]
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    schedules = {s["name"]: s for s in repository["schedules"]}

    repo = defs.get_repository_def()
    assert sensors == {s.name: s.default_status.value for s in repo.sensor_defs}
    assert set(schedules) == {s.name for s in repo.schedule_defs}
    for schedule in repo.schedule_defs:
        shown = schedules[schedule.name]
        assert shown["cronSchedule"] == schedule.cron_schedule
        assert shown["executionTimezone"] == schedule.execution_timezone
        assert shown["scheduleState"]["status"] == schedule.default_status.value
    # The platform runs unattended: nothing an operator must remember to switch on.
    assert set(sensors.values()) == {"RUNNING"}
    assert {s["scheduleState"]["status"] for s in schedules.values()} == {"RUNNING"}
    assert {"landing_sensor", "marts_follow_fact"} <= set(sensors)
    assert "month_end_marts" in schedules


def test_asset_graph_page_renders_and_is_saved_as_a_screenshot(ui, capsys):
    service, _, _, _, root = ui
    expanded = ",".join(f"global@global:{g}" for g in sorted(set(GROUPS.values())))
    url = f"{service.base_url}/asset-groups?expanded={quote(expanded, safe='')}"
    window = f"{WINDOW[0]},{WINDOW[1]}"

    # The rendered page (after the UI's own GraphQL calls) names every asset of every group.
    dom = chromium(url, ["--dump-dom"], root / "chromium-dom", window)
    assert "Global asset lineage" in dom
    missing = [asset for asset in GROUPS if f">{asset}<" not in dom]
    assert not missing, f"asset graph page does not show {missing}"

    ARTIFACTS.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    chromium(url, [f"--screenshot={SCREENSHOT}"], root / "chromium-shot", window)
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == WINDOW
    assert len(data) > 50_000, "the screenshot is nearly blank"
    with capsys.disabled():  # the artifact's path belongs in the test output
        print(f"\nasset graph screenshot: {SCREENSHOT}", flush=True)
