"""Secrets in configuration: EnvVar-only master key in prod, enc: database URLs, TLS options,
https-only S3 endpoints in prod, and the `secrets` commands."""

from __future__ import annotations

import io
import secrets
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.cli import main
from sales_platform.defs.resources import build_resources, require_tls_endpoint
from sales_platform.settings import Settings
from sales_platform.storage.crypto import (
    MASTER_KEY_VAR,
    Keyring,
    SecretDecryptionError,
    generate_master_key,
)
from sales_platform.storage.database import Database, KeyringResource, tls_connect_args

PROD = {"SALES_PLATFORM_ENV": "prod", "SALES_PLATFORM_S3_BUCKET": "sales-bucket"}


def _resolved(settings: Settings, *keys: str):
    every = build_resources(settings)
    return dg.build_resources({k: every[k] for k in keys})


# --- the master key ------------------------------------------------------------------------


def test_prod_master_key_comes_only_from_the_environment(monkeypatch):
    monkeypatch.delenv(MASTER_KEY_VAR, raising=False)
    settings = Settings.from_env(PROD)
    with pytest.raises(dg.DagsterInvalidConfigError) as info, _resolved(settings, "pii_keys"):
        pass
    assert MASTER_KEY_VAR in str(info.value) or any(
        MASTER_KEY_VAR in e.message for e in info.value.errors
    )

    key = generate_master_key()
    monkeypatch.setenv(MASTER_KEY_VAR, key)
    with _resolved(settings, "pii_keys") as res:
        assert res.pii_keys.keyring().key_ids == Keyring.from_text(key).key_ids
    # The definitions hold a reference to the variable, never its value.
    assert key not in repr(build_resources(settings)["pii_keys"])


def test_local_master_key_is_generated_into_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(MASTER_KEY_VAR, raising=False)
    settings = Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(tmp_path)})
    with _resolved(settings, "pii_keys") as res:
        first = res.pii_keys.keyring().key_ids
    with _resolved(settings, "pii_keys") as res:
        assert res.pii_keys.keyring().key_ids == first
    assert (tmp_path / "master.key").stat().st_mode & 0o077 == 0


def test_prod_database_urls_have_no_default(monkeypatch):
    monkeypatch.setenv(MASTER_KEY_VAR, generate_master_key())
    monkeypatch.delenv("SALES_PLATFORM_WAREHOUSE_DB_URL", raising=False)
    with (
        pytest.raises(dg.DagsterInvalidConfigError),
        _resolved(Settings.from_env(PROD), "warehouse_db"),
    ):
        pass


# --- enc: database URLs --------------------------------------------------------------------


def test_enc_database_url_is_decrypted_when_the_resource_starts(tmp_path, monkeypatch):
    key = generate_master_key()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    token = Keyring.from_text(key).encrypt_secret(url)
    monkeypatch.setenv(MASTER_KEY_VAR, key)
    monkeypatch.setenv("SALES_PLATFORM_WAREHOUSE_DB_URL", token)
    settings = Settings.from_env(
        {
            "SALES_PLATFORM_DATA_DIR": str(tmp_path),
            "SALES_PLATFORM_WAREHOUSE_DB_URL": token,
            MASTER_KEY_VAR: key,
        }
    )
    with _resolved(settings, "warehouse_db") as res:
        with res.warehouse_db.engine().connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert res.warehouse_db.describe() == url


def test_enc_database_url_under_a_wrong_key_fails_at_start(monkeypatch):
    token = Keyring.from_text(generate_master_key()).encrypt_secret("sqlite://")
    monkeypatch.setenv(MASTER_KEY_VAR, generate_master_key())
    keyring = KeyringResource(master_key=dg.EnvVar(MASTER_KEY_VAR))
    with (
        pytest.raises(dg.DagsterResourceFunctionError) as info,
        dg.build_resources({"db": Database(url=token, keyring=keyring)}),
    ):
        pass
    cause = info.value.__cause__
    assert isinstance(cause, SecretDecryptionError) and "wrong master key" in str(cause)


def test_describe_hides_the_password():
    password = secrets.token_urlsafe(16)
    db = Database(url=f"mysql+pymysql://app:{password}@db.internal:3306/sales")
    assert password not in db.describe()


def test_bound_values_never_appear_in_sql_errors(tmp_path):
    """hide_parameters: an error while writing a mart row does not copy the row into the log."""
    db = Database(url=f"sqlite:///{tmp_path / 'x.db'}")
    engine = db.engine()
    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("phone", sa.String(20)),
    )
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "phone": "+91 9876543210"}])
    with pytest.raises(sa.exc.IntegrityError) as info, engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "phone": "+91 9876543210"}])
    assert "9876543210" not in str(info.value)


# --- TLS to MySQL --------------------------------------------------------------------------


def test_tls_option_requires_a_verified_server():
    url = "mysql+pymysql://app@db.internal/sales"
    assert tls_connect_args(url, None) == {}
    assert tls_connect_args(url, "/etc/ssl/ca.pem") == {
        "ssl_ca": "/etc/ssl/ca.pem",
        "ssl_verify_cert": True,
        "ssl_verify_identity": True,
    }
    with pytest.raises(ValueError, match="pymysql"):
        tls_connect_args("sqlite:///x.db", "/etc/ssl/ca.pem")


def test_tls_option_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SALES_PLATFORM_DB_SSL_CA", "/etc/ssl/db-ca.pem")
    settings = Settings.from_env({**PROD, "SALES_PLATFORM_DB_SSL_CA": "/etc/ssl/db-ca.pem"})
    db = build_resources(settings)["source_db"]
    assert db.ssl_ca is not None  # an EnvVar, resolved at run start
    monkeypatch.setenv(MASTER_KEY_VAR, generate_master_key())
    monkeypatch.setenv("SALES_PLATFORM_SOURCE_DB_URL", "mysql+pymysql://app@db.internal/sales")
    with _resolved(settings, "source_db") as res:
        assert res.source_db.ssl_ca == "/etc/ssl/db-ca.pem"


# --- S3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint, allowed",
    [
        ("https://s3.eu-west-1.amazonaws.com", True),
        ("https://minio.internal:9000", True),
        ("http://127.0.0.1:5000", True),
        ("http://localhost:9000", True),
        ("http://minio.internal:9000", False),
        ("http://10.0.0.5:9000", False),
        ("ftp://minio.internal", False),
    ],
)
def test_prod_s3_endpoint_must_be_https(endpoint, allowed):
    settings = Settings.from_env({**PROD, "SALES_PLATFORM_S3_ENDPOINT_URL": endpoint})
    if allowed:
        require_tls_endpoint(settings)
        build_resources(settings)
    else:
        with pytest.raises(ValueError, match="https"):
            build_resources(settings)
        # ...unless someone opts in explicitly; and local never talks to S3 anyway.
        require_tls_endpoint(
            Settings.from_env(
                {
                    **PROD,
                    "SALES_PLATFORM_S3_ENDPOINT_URL": endpoint,
                    "SALES_PLATFORM_ALLOW_HTTP_ENDPOINT": "1",
                }
            )
        )


def test_kms_key_id_switches_every_store_to_sse_kms(monkeypatch, tmp_path):
    kms = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    monkeypatch.setenv("SALES_PLATFORM_S3_SSE_KMS_KEY_ID", kms)
    # The lake's catalog lives in the warehouse database: resolving the lake resolves it.
    monkeypatch.setenv("SALES_PLATFORM_WAREHOUSE_DB_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv(MASTER_KEY_VAR, generate_master_key())
    settings = Settings.from_env({**PROD, "SALES_PLATFORM_S3_SSE_KMS_KEY_ID": kms})
    with _resolved(settings, "landing", "lake") as res:
        for store in (res.landing, res.lake.store):
            assert store.server_side_encryption == "aws:kms"
            assert store.sse_kms_key_id == kms
    with _resolved(Settings.from_env(PROD), "landing", "lake") as res:
        assert res.landing.server_side_encryption == "AES256"
        assert res.lake.store.server_side_encryption == "AES256"


# --- the secrets commands ------------------------------------------------------------------


def test_secrets_encrypt_reads_stdin_and_rotate_re_encrypts_a_token(monkeypatch, capsys):
    old, new = generate_master_key(), generate_master_key()
    monkeypatch.setenv(MASTER_KEY_VAR, old)
    monkeypatch.setattr(sys, "stdin", io.StringIO("p@ss'word\n"))
    assert main(["secrets", "encrypt"]) == 0
    token = capsys.readouterr().out.strip()
    assert Keyring.from_text(old).reveal(token) == "p@ss'word"

    monkeypatch.setenv(MASTER_KEY_VAR, f"{new},{old}")
    assert main(["secrets", "rotate", "--token", token]) == 0
    rotated = capsys.readouterr().out.strip()
    assert Keyring.from_text(new).reveal(rotated) == "p@ss'word"


def test_secrets_new_key_prints_a_usable_key(capsys):
    assert main(["secrets", "new-key"]) == 0
    assert Keyring.from_text(capsys.readouterr().out.strip()).key_ids


def test_only_the_snapshots_and_the_customer_mart_hold_the_pii_key(tmp_path):
    """The two snapshots with personal data encrypt; the customer mart is the one place that
    decrypts. No other asset can reach the key."""
    from sales_platform.definitions import build_definitions

    defs = build_definitions(Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(tmp_path)}))
    holders = {
        key.to_user_string()
        for assets_def in defs.resolve_asset_graph().assets_defs
        for key in assets_def.keys
        if "pii_keys" in assets_def.required_resource_keys
    }
    assert holders == {"customers", "sales_team", "customer_monthly_mart"}


# --- the MySQL runtime user ------------------------------------------------------------------


def test_runtime_user_script_grants_only_data_rights():
    from sales_platform.schemas import MART_TABLES, SOURCE_TABLES
    from sales_platform.storage.ddl import LEDGER_TABLE, runtime_user_statements

    statements = runtime_user_statements("sales_platform", "%", "src", "wh")
    grants = {}
    for statement in statements:
        if statement.startswith("GRANT "):
            privileges, target = statement[6:].split(" ON ", 1)
            grants[target.split(" TO ")[0]] = {p.strip() for p in privileges.split(",")}
    assert grants == {
        **{f"`src`.`{t}`": {"SELECT"} for t in SOURCE_TABLES},
        **{f"`wh`.`{t}`": {"SELECT", "INSERT", "DELETE"} for t in MART_TABLES},
        f"`wh`.`{LEDGER_TABLE}`": {"SELECT", "INSERT", "UPDATE", "DELETE"},
        # The lake's Iceberg catalog: commits are compare-and-swap UPDATEs.
        **{
            f"`wh`.`{t}`": {"SELECT", "INSERT", "UPDATE", "DELETE"}
            for t in ("iceberg_tables", "iceberg_namespace_properties")
        },
    }
    # The password is never part of the statement text: it is bound when the script runs.
    assert all("IDENTIFIED BY '${RUNTIME_PASSWORD}'" in s for s in statements if "IDENTIFIED" in s)


@pytest.mark.parametrize(
    "user, host, db",
    [("x'; DROP USER root;--", "%", "sales"), ("app", "%' OR 1", "sales"), ("app", "%", "a`b")],
)
def test_runtime_user_script_refuses_hostile_names(user, host, db):
    from sales_platform.storage.ddl import runtime_user_statements

    with pytest.raises(ValueError, match="not a plain identifier"):
        runtime_user_statements(user, host, db, db)
