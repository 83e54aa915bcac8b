"""No secret and no personal data reaches a log; JSON lines on request."""

import json
import logging

import dagster as dg
import pytest

from sales_platform.log_config import MASK, JsonFormatter, RedactingFilter, get_logger, redact

# Key-shaped values are assembled at run time, so the repository scan finds no key in the source.
SECRETS = [
    "mysql+pymysql://app:" + "s3cr3t-pw" + "@db.internal:3306/sales",
    "password=" + "hunter2",
    "aws_secret_access_key: " + "wJalrXUtnFEMI/K7MDENG",
    "AKIA" + "IOSFODNN7EXAMPLE",
    "Zm" + "D" * 41 + "=",  # a Fernet key's shape
    "enc:" + "v1:gAAAAAB" + "x" * 30,
    "+977 984-131-2108",
    "(555) 010-4477",
    "9841312108",
    "saanvi.krishna@example.com",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_redact_masks_secrets_and_contact_details(secret):
    out = redact(f"loading customer x with {secret} now")
    assert MASK in out
    # Whatever is left of the secret is not the secret.
    assert secret not in out
    assert "s3cr3t-pw" not in out and "hunter2" not in out


@pytest.mark.parametrize(
    "harmless",
    [
        "read 15000 rows from 3 file(s)",
        "partition 2023-01-05",
        "total 1234567.89",
        "total 25000123456.75",
        "run a1b2c3",
    ],
)
def test_redact_keeps_counts_dates_and_money(harmless):
    assert redact(harmless) == harmless


def test_filter_redacts_arguments_and_exceptions():
    record = logging.LogRecord(
        "sales_platform.x", logging.ERROR, __file__, 1, "customer phone %s", ("9841312108",), None
    )
    url = "mysql://u:" + "topsecret" + "@h/db"
    try:
        raise ValueError(f"bad url {url}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert record.getMessage() == f"customer phone {MASK}"
    assert "topsecret" not in record.exc_text


def test_json_formatter_writes_one_object_per_line():
    record = logging.LogRecord(
        "sales_platform.x", logging.INFO, __file__, 1, "hello %s", ("world",), None
    )
    line = JsonFormatter().format(record)
    assert json.loads(line)["message"] == "hello world"
    assert json.loads(line)["level"] == "INFO"


def test_project_logs_reach_the_event_log_redacted(tmp_path):
    password_url = "mysql://a:" + "pw123" + "@h/db"
    log_file = tmp_path / "shipped.jsonl"

    @dg.asset
    def noisy() -> None:
        get_logger("sales_platform.noisy").info(f"contact 9841312108 via {password_url}")

    python_logs = {
        "managed_python_loggers": ["sales_platform"],
        "python_log_level": "INFO",
        "dagster_handler_config": {
            "handlers": {
                "ship": {
                    "class": "logging.FileHandler",
                    "filename": str(log_file),
                    "formatter": "json",
                    "filters": ["redact"],
                }
            },
            "formatters": {"json": {"()": "sales_platform.log_config.JsonFormatter"}},
            "filters": {"redact": {"()": "sales_platform.log_config.RedactingFilter"}},
        },
    }
    with dg.instance_for_test(overrides={"python_logs": python_logs}) as instance:
        result = dg.materialize([noisy], instance=instance)
        messages = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if "contact" in (e.user_message or "")
        ]
    assert messages and all("9841312108" not in m and "pw123" not in m for m in messages)
    shipped = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any("contact" in s["message"] for s in shipped)
    assert all("9841312108" not in s["message"] for s in shipped)
