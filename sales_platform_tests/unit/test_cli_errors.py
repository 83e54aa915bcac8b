"""A missing or invalid setting at the command line: one line naming the fix, exit code 2.

Run as a user runs it (the installed `sales-platform` script in a subprocess), so a stack trace
printed by anything on the way fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

SCRIPT = str(Path(sys.executable).parent / "sales-platform")
PROD = {
    "SALES_PLATFORM_ENV": "prod",
    "SALES_PLATFORM_S3_BUCKET": "sales",
    # A fake password: the test checks that it is never echoed.
    "SALES_PLATFORM_SOURCE_DB_URL": "mysql+pymysql://u:" + "secret-pw@127.0.0.1:3306/s",
    "SALES_PLATFORM_WAREHOUSE_DB_URL": "mysql+pymysql://u:" + "secret-pw@127.0.0.1:3306/w",
    "SALES_PLATFORM_MASTER_KEY": Fernet.generate_key().decode(),
}


def _run(tmp_path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALES_PLATFORM_")}
    env |= {"SALES_PLATFORM_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path), **environ}
    command = [SCRIPT, *(args or ("materialize", "--from", "2023-01-01", "--to", "2023-01-01"))]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"SALES_PLATFORM_MASTER_KEY": None}, "run `sales-platform secrets new-key` and set"),
        ({"SALES_PLATFORM_MASTER_KEY": "not-a-key"}, "sales-platform secrets new-key"),
        ({"SALES_PLATFORM_SOURCE_DB_URL": None}, "SALES_PLATFORM_SOURCE_DB_URL is not set"),
        ({"SALES_PLATFORM_WAREHOUSE_DB_URL": "no url"}, "is not a database URL"),
        ({"SALES_PLATFORM_S3_BUCKET": None}, "set it to the bucket"),
        ({"SALES_PLATFORM_MONTH_END_CRON": "every month"}, "use five cron fields"),
        ({"SALES_PLATFORM_FILES_DUE_HOUR": "25"}, "0..23"),
        ({"SALES_PLATFORM_ENV": "staging"}, "set it to local or prod"),
    ],
)
def test_a_bad_setting_is_one_line_with_the_fix(tmp_path, change, says):
    environ = {k: v for k, v in {**PROD, **change}.items() if v is not None}
    done = _run(tmp_path, environ)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("sales-platform: ") and says in lines[0], lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert "secret-pw" not in done.stderr  # a URL is never echoed: it holds a password


def test_other_commands_report_settings_the_same_way(tmp_path):
    environ = {k: v for k, v in PROD.items() if k != "SALES_PLATFORM_MASTER_KEY"}
    for args in (("show-marts", "--month", "2023-01-01"), ("demo", "--days", "1")):
        done = _run(tmp_path, environ, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "sales-platform secrets new-key" in done.stderr and "Traceback" not in done.stderr
