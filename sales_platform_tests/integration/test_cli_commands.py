"""The `sales-platform` commands an operator types, run as the installed script in a subprocess.

Each is judged by what it leaves behind, not by its exit code: `generate` writes files into the
data dir's bucket that the oracle reads; `materialize --show` runs through the code location (a
queue daemon, DAGSTER_HOME) and prints the month's marts, whose numbers equal the oracle's;
`show-marts` prints the same; `db init` creates the tables on MariaDB; `db grant-runtime-user`
reads the password on stdin, never prints it, and makes a user that can read the source and
write the marts but not drop or create (the grants themselves are checked in depth by
test_security_pipeline.py, which calls `ddl.grant_runtime_user` directly).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import URL, make_url

from sales_platform.cli import _resources
from sales_platform.launch import CODE_LOCATION_MODULE
from sales_platform.schemas import MART_TABLES, SOURCE_TABLES, customers_data_mart_table
from sales_platform.settings import Settings
from sales_platform.storage.ddl import LEDGER_TABLE
from sales_platform_tests.oracle import expect_before_run
from sales_platform_tests.support import stack_environ

pytestmark = pytest.mark.integration

SCRIPT = str(Path(sys.executable).parent / "sales-platform")
START, END = date(2023, 5, 10), date(2023, 5, 11)
MONTH = date(2023, 5, 1)
# Where Dagster's run launcher records the code server that started a run.
GRPC_INFO_TAG = ".dagster/grpc_info"


def _run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SALES_PLATFORM_")}
    done = subprocess.run(
        [SCRIPT, *args],
        env={**base, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def _cells(block: str, title: str) -> list[list[str]]:
    """The rows of the table printed under `title` (the header and rule lines left out)."""
    lines = block.split(title, 1)[1].splitlines()[3:]
    rows = []
    for line in lines:
        if not line.strip():
            break
        rows.append(re.split(r" {2,}", line.strip()))
    return rows


def _assert_runs_shared_one_stopped_server(home: Path) -> None:
    log = (home / "queue_daemon_logs" / "spark-connect-server.log").read_text()
    port = int(re.findall(r"SparkConnectService' on port (\d+)", log)[-1])
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["daily_sales_job", "monthly_marts_job"]
        for run in runs:
            opened = [
                e.user_message
                for e in instance.all_logs(run.run_id)
                if e.user_message.startswith("Spark: ")
            ]
            # Once per resource that opens it (the IO managers hold the run's too).
            assert set(opened) == {f"Spark: a Spark Connect session on localhost:{port}"}, opened
            # Filed under the location the UI loads (workspace.yaml), started by the command's
            # one code server (launch.py), whose private folder went with it.
            assert run.remote_job_origin.location_name == CODE_LOCATION_MODULE
            started_by = json.loads(run.tags[GRPC_INFO_TAG])
            assert Path(started_by["socket"]).parent.name.startswith("sales-platform-code-")
            assert not Path(started_by["socket"]).parent.exists()
        assert len({r.tags[GRPC_INFO_TAG] for r in runs}) == 1
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the server outlived the command"


def test_generate_materialize_show_and_show_marts(spark, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = stack_environ("local", tmp_path / "data") | {"DAGSTER_HOME": str(home)}

    out = _run(
        env,
        "generate",
        "--start-date",
        START.isoformat(),
        "--days",
        "2",
        "--rows-per-day",
        "200",
        "--customers",
        "30",
        "--seed",
        "3",
        "--quiet",
    )
    assert "generated 2 file(s), 400 row(s)" in out, out
    files = sorted(
        p.relative_to(tmp_path / "data" / "bucket").as_posix()
        for p in (tmp_path / "data" / "bucket").rglob("*")
        if p.is_file()
    )
    assert len(files) == 2 and START.isoformat() in files[0] and END.isoformat() in files[1], files

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with _resources(Settings.from_env(), "landing", "source_db") as res:
        expected = expect_before_run(res.landing.open(), res.source_db.engine())
    assert sum(f.rows_accepted for f in expected.files) == 400
    customers = expected.customer_mart(MONTH)
    sellers = expected.sales_team_mart(MONTH)

    scratch = tmp_path / "spark-scratch"
    run_env = env | {"SALES_PLATFORM_SPARK_CONF": f"spark.local.dir={scratch}"}
    out = _run(
        run_env, "materialize", "--from", START.isoformat(), "--to", END.isoformat(), "--show"
    )
    assert "2 run(s) succeeded" in out, out
    # The runs went through the instance in DAGSTER_HOME, where the UI finds them, and both
    # used the one Spark Connect server the command started; it stopped with the command and
    # its scratch files went with it.
    _assert_runs_shared_one_stopped_server(home)
    assert scratch.is_dir() and not any(scratch.iterdir()), list(scratch.iterdir())
    marts = out[out.index("customers_data_mart 2023-05") :]
    assert f"customers_data_mart 2023-05: {len(customers)} customers" in marts, marts
    top = sorted(customers, key=lambda r: (-r["total_sales"], r["customer_id"]))[:10]
    printed = _cells(marts, "customers_data_mart 2023-05")
    assert [(int(r[0]), r[2], r[3]) for r in printed] == [
        (r["customer_id"], str(r["total_sales"]), r["coupon_tier"]) for r in top
    ]
    assert f"sales_team_data_mart 2023-05: {len(sellers)} sellers" in marts
    printed = _cells(marts, "sales_team_data_mart 2023-05")
    want = sorted(sellers, key=lambda r: (r["store_id"], r["sales_rank"], r["sales_person_id"]))
    assert [(int(r[0]), int(r[2]), r[-2], r[-1]) for r in printed] == [
        (r["store_id"], r["sales_person_id"], str(r["total_sales"]), str(r["incentive"]))
        for r in want
    ]

    shown = _run(env, "show-marts", "--month", "2023-05-20")
    assert shown.strip() == marts.strip()


def test_db_init_and_grant_runtime_user(mariadb_url):
    database = make_url(mariadb_url).database
    env = {
        "SALES_PLATFORM_ENV": "prod",
        "SALES_PLATFORM_S3_BUCKET": "not-used",
        "SALES_PLATFORM_SOURCE_DB_URL": mariadb_url,
        "SALES_PLATFORM_WAREHOUSE_DB_URL": mariadb_url,
        "SALES_PLATFORM_MASTER_KEY": Fernet.generate_key().decode(),
    }
    admin = sa.create_engine(mariadb_url)
    out = _run(env, "db", "init")
    tables = set(sa.inspect(admin).get_table_names())
    wanted = {*SOURCE_TABLES, *MART_TABLES, LEDGER_TABLE}
    assert wanted <= tables, wanted - tables
    assert all(name in out for name in wanted), out

    user = f"sp_cli_{uuid.uuid4().hex[:10]}"
    password = secrets.token_urlsafe(18)
    try:
        out = _run(env, "db", "grant-runtime-user", "--user", user, stdin=password + "\n")
        assert "GRANT" in out.upper() and user in out and password not in out
        runtime = sa.create_engine(
            URL.create(
                "mysql+pymysql",
                username=user,
                password=password,
                host=admin.url.host,
                port=admin.url.port,
                database=database,
            )
        )
        with runtime.connect() as conn:
            # Databases defaulted from the URLs: the source readable, the marts writable.
            assert conn.execute(sa.text("SELECT COUNT(*) FROM customer")).scalar() == 0
            conn.execute(
                customers_data_mart_table.insert(),
                {
                    "customer_id": 1,
                    "sales_date_month": MONTH,
                    "total_sales": 1,
                    "coupon_tier": "NONE",
                    "discount_percent": 0,
                },
            )
            conn.commit()
            for statement in ("DROP TABLE customers_data_mart", "CREATE TABLE intruder (id INT)"):
                with pytest.raises(sa.exc.DBAPIError) as info:
                    conn.execute(sa.text(statement))
                assert info.value.orig.args[0] in (1044, 1142), statement  # access denied
                conn.rollback()
        runtime.dispose()
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM customers_data_mart")).scalar() == 1
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP USER IF EXISTS %(user)s@'%%'", {"user": user})
        admin.dispose()
