"""The deployed platform running unattended (issue 7), as production runs it.

A Dagster instance on MariaDB (deploy/dagster.prod.yaml, tables made by deploy/migrate.sh); the
webserver and the daemon started by `sales-platform serve` as real subprocesses; the prod stack
(moto's S3 endpoint, MariaDB). Files for two days land in S3 and nothing else is done: the
landing sensor starts the daily runs, the mart sensor refreshes the month, and the marts in MySQL
equal the independent recompute. Then a day of the fact is deleted from the lake and backfilled
through the webserver's GraphQL API, the way the UI launches a backfill; the partition and the
marts come back identical. At the end serve stops on SIGTERM and no process is left.

Prints how long the flow took from the first file landing to the marts being written.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from sales_platform.cli import _resources
from sales_platform.defs.marts.automation import TRIGGER_TAG
from sales_platform.generate import generate
from sales_platform.schemas import (
    LANDING_PREFIX,
    customers_data_mart_table,
    sales_team_data_mart_table,
)
from sales_platform.storage.lake import Lake
from sales_platform.storage.ledger import Ledger
from sales_platform.storage.object_store import LocalObjectStore
from sales_platform_tests.integration.test_automation import assert_marts_match_oracle
from sales_platform_tests.oracle import expect_before_run
from sales_platform_tests.processes import (
    REPO_ROOT,
    Service,
    children,
    free_port,
    running,
    serve_command,
    start,
    stop,
    wait_for_code_location,
    wait_for_http,
    wait_until_gone,
)
from sales_platform_tests.support import stack_settings

pytestmark = pytest.mark.integration

DAYS = (date(2023, 3, 14), date(2023, 3, 15))
MONTH = date(2023, 3, 1)
FACT = dg.AssetKey("sales_enriched")
MARTS = (dg.AssetKey("customer_monthly_mart"), dg.AssetKey("sales_team_monthly_mart"))
# Sensors tick every 30 s (landing) and 60 s (marts); a run starts a Spark driver (~15 s here).
# The flow took 7-9 minutes in CI on a slow day of this host, with another heavy test beside
# it: the timeout only has to catch a flow that never ends.
FLOW_TIMEOUT = 15 * 60
READY_TIMEOUT = 180

DAEMON_HEALTH = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""
SENSORS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name }
    sensors { name sensorState { status } }
} } } }
"""
START_SENSOR = """
mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""
# The mutation and the parameters the UI sends when a backfill is launched from the asset graph.
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL_STATUS = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture
def instance_db(mariadb_url):
    """A second fresh database, for the Dagster instance's own tables; dropped afterwards."""
    url = sa.engine.make_url(mariadb_url)
    name = f"{url.database}_dagster"
    admin = sa.create_engine(url.set(database=None))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield url.set(database=name)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def _instance_env(db_url: sa.URL, home: Path) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_MYSQL_HOST": db_url.host,
        "DAGSTER_MYSQL_PORT": str(db_url.port or 3306),
        "DAGSTER_MYSQL_USER": db_url.username,
        "DAGSTER_MYSQL_PASSWORD": db_url.password or "",
        "DAGSTER_MYSQL_DB": db_url.database,
    }


def _wait(what: str, probe, timeout: float, service: Service, instance=None, every=2.0):
    """Poll probe() until it returns something truthy; fail early on a dead service or a failed
    run, with the reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.alive(), f"serve exited while waiting for {what}:\n{service.log_tail()}"
        if instance is not None:
            _fail_on_failed_runs(instance)
        if result := probe():
            return result
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}\n{service.log_tail()}"
    )


def _fail_on_failed_runs(instance: dg.DagsterInstance) -> None:
    failed = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED])
    )
    if not failed:
        return
    run = failed[0]
    events = instance.all_logs(
        run.run_id,
        of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE},
    )
    details = []
    for event in events:
        error = getattr(event.dagster_event.event_specific_data, "error", None)
        details.append(error.to_string() if error else event.message or "")
    raise AssertionError(
        f"run {run.run_id} of {run.job_name} {dict(run.tags)} ended {run.status}:\n"
        + "\n".join(details)[-6000:]
    )


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0] if records else None


def _marts_after(instance: dg.DagsterInstance, storage_id: int):
    """Both marts' latest records for the month, if both were written after `storage_id`."""
    records = [_latest(instance, key, MONTH.isoformat()) for key in MARTS]
    if all(r is not None and r.storage_id > storage_id for r in records):
        return records
    return None


def _fact_rows(lake: Lake, day: date, scratch: Path) -> list[dict]:
    live = lake.live_files(lake.table("sales_enriched"), [day.isoformat()])
    assert live, f"no sales_enriched partition for {day}"
    rows = []
    for i, data_file in enumerate(live):
        local = scratch / f"{day}-{len(list(scratch.iterdir()))}-{i}.parquet"
        lake.store.download(lake.key_of(data_file.file_path), local)
        rows.extend(pq.read_table(local).to_pylist())
    return sorted(rows, key=lambda r: (r["source_key"], r["line_number"]))


def _mart_rows(engine: sa.Engine) -> dict[str, list[dict]]:
    out = {}
    for table, column, value in (
        (customers_data_mart_table, "sales_date_month", MONTH),
        (sales_team_data_mart_table, "sales_month", f"{MONTH:%Y-%m}"),
    ):
        pk = [c.name for c in table.primary_key.columns]
        with engine.connect() as conn:
            rows = [
                dict(r)
                for r in conn.execute(sa.select(table).where(table.c[column] == value)).mappings()
            ]
        out[table.name] = sorted(rows, key=lambda r: tuple(r[c] for c in pk))
    return out


def _ensure_sensors_running(service: Service) -> list[str]:
    """Start, as an operator would in the UI, any sensor that is not running; returns those."""
    (repo,) = service.graphql(SENSORS)["repositoriesOrError"]["nodes"]
    started = []
    for sensor in repo["sensors"]:
        if sensor["sensorState"]["status"] == "RUNNING":
            continue
        selector = {
            "repositoryLocationName": repo["location"]["name"],
            "repositoryName": repo["name"],
            "sensorName": sensor["name"],
        }
        result = service.graphql(START_SENSOR, {"sensorSelector": selector})["startSensor"]
        assert result.get("sensorState", {}).get("status") == "RUNNING", result
        started.append(sensor["name"])
    return started


def _daemon_healthy(service: Service) -> bool:
    statuses = service.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(s["healthy"] for s in statuses if s["required"])


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.timeout(1800)
def test_daemon_on_mysql_storage_runs_the_platform_unattended(
    tmp_path, request, monkeypatch, capsys, instance_db
):
    settings = stack_settings("prod", tmp_path, request, monkeypatch)
    home = tmp_path / "dagster_home"
    for name, value in _instance_env(instance_db, home).items():
        monkeypatch.setenv(name, value)
    env = dict(os.environ)

    # The operator's first step: the instance config and its tables.
    migrated = subprocess.run(
        [str(REPO_ROOT / "deploy" / "migrate.sh")],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert (home / "dagster.yaml").read_text() == (
        REPO_ROOT / "deploy" / "dagster.prod.yaml"
    ).read_text()

    with _resources(settings, "landing", "lake", "source_db", "warehouse_db") as res:
        landing, warehouse = res.landing.open(), res.warehouse_db.engine()
        lake: Lake = res.lake.lake()
        # The day's files are made aside; they land only once the platform is up.
        staged = LocalObjectStore(tmp_path / "outbox")
        summary = generate(
            staged,
            res.source_db.engine(),
            start_date=DAYS[0],
            days=len(DAYS),
            rows_per_day=300,
            seed=17,
            files_per_day=2,
            customers=60,
            stores=3,
            sellers_per_store=3,
            bad_row_fraction=0.01,
            progress=False,
        )
        # What the marts must hold, read from the files before the platform sees them.
        expected = expect_before_run(staged, res.source_db.engine(), summary.written)
        files = sorted(o.key for o in staged.list(LANDING_PREFIX))
        assert len(files) == 2 * len(DAYS)

        port = free_port()
        service = start(
            "serve",
            serve_command(port),
            env,
            tmp_path / "logs",
            base_url=f"http://127.0.0.1:{port}",
        )
        with running(service), dg.DagsterInstance.get() as instance:
            wait_for_http(service, timeout=READY_TIMEOUT)
            wait_for_code_location(service, timeout=READY_TIMEOUT)
            _wait(
                "the daemon's heartbeats", lambda: _daemon_healthy(service), READY_TIMEOUT, service
            )
            assert service.graphql("{ shouldShowNux }")["shouldShowNux"] is False
            started = _ensure_sensors_running(service)
            _say(capsys, f"sensors started through the API: {started or 'none, all on by default'}")

            # Files land. From here on nobody does anything.
            landed_at = time.time()
            for key in files:
                landing.put_bytes(key, staged.get_bytes(key))

            def days_and_marts_done():
                facts = [_latest(instance, FACT, d.isoformat()) for d in DAYS]
                if not all(facts):
                    return None
                return _marts_after(instance, max(f.storage_id for f in facts))

            marts = _wait(
                "the days and the month's marts",
                days_and_marts_done,
                FLOW_TIMEOUT,
                service,
                instance,
            )
            marts_written = max(r.timestamp for r in marts)
            _say(capsys, _flow_report(instance, landed_at, marts_written))

            assert_marts_match_oracle(res, expected, MONTH)
            entries = Ledger(warehouse).entries()
            assert sorted(e["object_key"] for e in entries) == files
            assert {e["status"] for e in entries} == {"I"}
            assert list(landing.list(LANDING_PREFIX)) == []
            # One run per delivery at most (normally one per day; two if a tick fell between
            # the uploads), not one per tick.
            daily = instance.get_runs(filters=dg.RunsFilter(job_name="daily_sales_job"))
            assert {r.tags["dagster/partition"] for r in daily} == {d.isoformat() for d in DAYS}
            assert len(daily) <= len(files)
            # What the daemon recorded is in MariaDB, not in a file beside it.
            with sa.create_engine(instance_db).connect() as conn:
                stored_runs = conn.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar()
            assert stored_runs == len(instance.get_runs()) > len(daily)
            assert summary.bad_rows > 0

            # A day of the fact is lost from the lake; the operator backfills it from the UI.
            day = DAYS[0]
            fact_before = _fact_rows(lake, day, tmp_path)
            marts_before = _mart_rows(warehouse)
            lake.delete_partitions("sales_enriched", [day.isoformat()])
            assert not lake.existing_partitions("sales_enriched", [day.isoformat()])
            last_fact = _latest(instance, FACT, day.isoformat()).storage_id

            launched_at = time.time()
            params = {
                "tags": [],
                "assetSelection": [{"path": FACT.path}],
                "partitionNames": [day.isoformat()],
                "fromFailure": False,
            }
            launch = service.graphql(LAUNCH_BACKFILL, {"backfillParams": params})
            result = launch["launchPartitionBackfill"]
            assert result["__typename"] == "LaunchBackfillSuccess", result
            backfill_id = result["backfillId"]

            def backfill_done():
                status = service.graphql(BACKFILL_STATUS, {"backfillId": backfill_id})
                backfill = status["partitionBackfillOrError"]
                assert backfill["__typename"] == "PartitionBackfill", backfill
                assert backfill["status"] in ("REQUESTED", "COMPLETED_SUCCESS"), backfill
                return backfill["status"] == "COMPLETED_SUCCESS"

            _wait("the backfill", backfill_done, FLOW_TIMEOUT, service, instance)
            refact = _latest(instance, FACT, day.isoformat())
            assert refact.storage_id > last_fact
            (backfill_run,) = instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})
            )
            assert refact.run_id == backfill_run.run_id
            remarts = _wait(
                "the marts after the backfill",
                lambda: _marts_after(instance, refact.storage_id),
                FLOW_TIMEOUT,
                service,
                instance,
            )
            _say(
                capsys,
                f"backfill of {day} launched through GraphQL: fact back after "
                f"{refact.timestamp - launched_at:.0f} s, marts rewritten after "
                f"{max(r.timestamp for r in remarts) - launched_at:.0f} s",
            )

            assert _fact_rows(lake, day, tmp_path) == fact_before
            assert _mart_rows(warehouse) == marts_before
            assert_marts_match_oracle(res, expected, MONTH)

            # The operator stops the service: both processes and everything under them end.
            stopped = stop(service)
            assert stopped.exit_code == 0, service.log_tail()
            assert stopped.survivors == [], stopped.survivors
            assert _port_closed(port)
            assert "signal SIGTERM received" in service.log_tail(20_000)


def _say(capsys, line: str) -> None:
    """Straight to the terminal, even with pytest capturing output: these figures are reported."""
    with capsys.disabled():
        print(f"\n[unattended] {line}", flush=True)


def _flow_report(instance: dg.DagsterInstance, landed_at: float, marts_written: float) -> str:
    """Where the time went between the first file landing and the marts being written."""
    records = instance.get_run_records()
    daily = [r for r in records if r.dagster_run.job_name == "daily_sales_job"]
    # The marts' automation tags its refreshes.
    marts = [r for r in records if r.dagster_run.tags.get(TRIGGER_TAG) == "fact_update"]
    first_start = min(r.start_time for r in daily if r.start_time)
    daily_end = max(r.end_time for r in daily if r.end_time)
    mart_start = max(r.start_time for r in marts if r.start_time)
    return (
        f"first file landed -> marts written: {marts_written - landed_at:.0f} s "
        f"(first daily run started +{first_start - landed_at:.0f} s, daily runs "
        f"({len(daily)}) done +{daily_end - landed_at:.0f} s, mart run ({len(marts)}) started "
        f"+{mart_start - landed_at:.0f} s)"
    )


def _local_instance_env(tmp_path: Path, monkeypatch) -> dict[str, str]:
    """The local stack and a SQLite instance in tmp_path (no database server needed)."""
    for name in list(os.environ):
        if name.startswith(("SALES_PLATFORM_", "DAGSTER_MYSQL_")):
            monkeypatch.delenv(name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("SALES_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dict(os.environ)


def test_serve_refuses_prod_on_an_instance_without_mysql_storage(tmp_path, monkeypatch):
    env = _local_instance_env(tmp_path, monkeypatch)
    env |= {"SALES_PLATFORM_ENV": "prod", "SALES_PLATFORM_S3_BUCKET": "sales"}
    refused = subprocess.run(
        serve_command(free_port()),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "needs MySQL instance storage" in refused.stderr


def test_serve_stops_the_webserver_when_the_daemon_dies(tmp_path, monkeypatch):
    env = _local_instance_env(tmp_path, monkeypatch)
    port = free_port()
    service = start(
        "serve", serve_command(port), env, tmp_path / "logs", base_url=f"http://127.0.0.1:{port}"
    )
    with running(service):
        wait_for_http(service, timeout=READY_TIMEOUT)
        (daemon,) = [pid for pid, cmd in children(service.process.pid) if "dagster-daemon" in cmd]
        os.kill(daemon, signal.SIGKILL)
        # A non-zero exit, so that the service manager restarts the pair.
        assert service.process.wait(90) == 1, service.log_tail()
        assert "dagster-daemon exited with code -9" in service.log_tail(20_000)
        assert wait_until_gone(service.marker) == []
        assert _port_closed(port)
