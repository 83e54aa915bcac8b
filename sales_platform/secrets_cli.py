"""`sales-platform secrets …` and `sales-platform db …`: configuration secrets, key rotation,
and the administrator's database setup.

    sales-platform secrets new-key              print a fresh master key (to add in front)
    sales-platform secrets encrypt < value      print the value as an enc: token
    sales-platform secrets rotate               re-encrypt the lake's PII with the newest key
    sales-platform secrets rotate --token T     print the enc: token T under the newest key
    sales-platform secrets status               key ids configured, and which ones the lake uses
    sales-platform db init                      create the tables (admin URLs in the environment)
    sales-platform db check                     compare the existing tables with schemas.py
    sales-platform db grant-runtime-user --user U < password

Secrets are read from stdin (or a no-echo prompt), never from the command line, where other users
could see them in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass, field

import dagster as dg

from sales_platform.settings import Settings
from sales_platform.storage.crypto import Keyring, generate_master_key


def _resources(settings: Settings, *keys: str):
    from sales_platform.defs.resources import build_resources

    every = build_resources(settings)
    return dg.build_resources({k: every[k] for k in keys})


def _keyring(settings: Settings) -> Keyring:
    with _resources(settings, "pii_keys") as res:
        return res.pii_keys.keyring()


def _read_secret(prompt: str) -> str:
    """One value from stdin (a trailing newline dropped), or typed without echo on a terminal."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.read()
        if value.endswith("\n"):
            value = value[:-1]
            if value.endswith("\r"):
                value = value[:-1]
    if not value:
        raise SystemExit("no value given on stdin")
    return value


# --- key rotation of the lake ----------------------------------------------------------------


@dataclass
class RotationReport:
    """What a rotation did to one PII snapshot in the lake."""

    asset: str
    rows: int = 0
    key_ids_before: dict[str, int] = field(default_factory=dict)
    key_ids_after: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.asset}: {self.rows} row(s); values by key id before {self.key_ids_before}, "
            f"after {self.key_ids_after}"
        )


def rotate_lake(lake, keyring: Keyring, spark) -> list[RotationReport]:
    """Re-encrypt every PII snapshot in the lake under the newest master key.

    Each snapshot is read, every value authenticated, values on an older key re-encrypted, and
    the snapshot written back whole (one Iceberg commit: readers see old or new).
    A value that does not decrypt stops the rotation with PiiDecryptionError, lake unchanged.
    """
    from sales_platform.schemas import LAKE_SCHEMAS
    from sales_platform.storage.lake import UNPARTITIONED
    from sales_platform.transforms import pii

    cipher = keyring.field_cipher()
    reports = []
    for asset, spec in pii.PII_SPECS.items():
        if not lake.existing_partitions(asset, [UNPARTITIONED]):
            continue
        report = RotationReport(asset)
        df, _ = lake.read(spark, asset, [UNPARTITIONED], schema=LAKE_SCHEMAS[asset])
        report.key_ids_before = pii.key_id_counts(df, spec)
        with pii.surface_pii_errors():
            writes = lake.write(pii.reencrypt_columns(df, spec, cipher), asset, [UNPARTITIONED])
        report.rows = sum(w.rows for w in writes)
        df, _ = lake.read(spark, asset, [UNPARTITIONED], schema=LAKE_SCHEMAS[asset])
        report.key_ids_after = pii.key_id_counts(df, spec)
        reports.append(report)
    return reports


def lake_key_usage(lake, spark) -> dict[str, dict[str, int]]:
    """{asset: {key id: values}} for the PII snapshots in the lake."""
    from sales_platform.schemas import LAKE_SCHEMAS
    from sales_platform.storage.lake import UNPARTITIONED
    from sales_platform.transforms import pii

    usage = {}
    for asset, spec in pii.PII_SPECS.items():
        if not lake.existing_partitions(asset, [UNPARTITIONED]):
            continue
        df, _ = lake.read(spark, asset, [UNPARTITIONED], schema=LAKE_SCHEMAS[asset])
        usage[asset] = pii.key_id_counts(df, spec)
    return usage


# --- commands --------------------------------------------------------------------------------


def _new_key(args: argparse.Namespace) -> None:
    print(generate_master_key())


def _encrypt(args: argparse.Namespace) -> None:
    keyring = _keyring(Settings.from_env())
    print(keyring.encrypt_secret(_read_secret("value to encrypt: ")))


def _rotate(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    if args.token is not None:
        token = _read_secret("enc: token: ") if args.token == "-" else args.token
        print(_keyring(settings).rotate_secret(token.strip()))
        return
    from sales_platform.storage.spark import build_spark_session

    spark = build_spark_session()
    with _resources(settings, "lake", "pii_keys") as res:
        keyring = res.pii_keys.keyring()
        reports = rotate_lake(res.lake.lake(), keyring, spark)
    print(f"newest key id {keyring.newest_key_id}")
    for report in reports:
        print(report)
    if not reports:
        print("no PII snapshot in the lake yet: nothing to re-encrypt")


def _status(args: argparse.Namespace) -> None:
    from sales_platform.storage.spark import build_spark_session

    settings = Settings.from_env()
    spark = build_spark_session()
    with _resources(settings, "lake", "pii_keys") as res:
        keyring = res.pii_keys.keyring()
        usage = lake_key_usage(res.lake.lake(), spark)
    print(f"configured key ids (newest first): {', '.join(keyring.key_ids)}")
    for asset, counts in usage.items():
        print(f"{asset}: values by key id {counts}")
    stale = {kid for counts in usage.values() for kid in counts if kid != keyring.newest_key_id}
    if stale:
        print(f"values still on older key id(s) {sorted(stale)}: run `secrets rotate`")


def _db_init(args: argparse.Namespace) -> None:
    from sales_platform.storage.ddl import create_tables

    with _resources(Settings.from_env(), "source_db", "warehouse_db") as res:
        names = create_tables(res.source_db.engine(), res.warehouse_db.engine())
        where = f"{res.source_db.describe()} and {res.warehouse_db.describe()}"
    print(f"tables present in {where}: {', '.join(names)}")


def _db_check(args: argparse.Namespace) -> None:
    from sales_platform.schemas import SOURCE_TABLES
    from sales_platform.storage.ddl import warehouse_tables
    from sales_platform.storage.warehouse_check import compare_tables

    wrong = 0
    with _resources(Settings.from_env(), "source_db", "warehouse_db") as res:
        for label, db, tables in (
            ("warehouse", res.warehouse_db, warehouse_tables()),
            ("source", res.source_db, list(SOURCE_TABLES.values())),
        ):
            reports = compare_tables(db.engine(), tables)
            present = sorted({r.table for r in reports})
            absent = [t.name for t in tables if t.name not in present]
            print(f"{label} database {db.describe()}: tables {', '.join(present) or 'none'}")
            if absent:
                print(f"  not created yet (`db init`): {', '.join(absent)}")
            for report in reports:
                print(f"  {report}")
            wrong += sum(not r.ok for r in reports)
    if wrong:
        raise SystemExit(f"{wrong} difference(s) from schemas.py (MISMATCH lines above)")
    print("every existing table matches schemas.py")


def _db_grant(args: argparse.Namespace) -> None:
    from sales_platform.storage.ddl import grant_runtime_user

    password = _read_secret(f"password for {args.user}: ")
    with _resources(Settings.from_env(), "source_db", "warehouse_db") as res:
        source_db = args.source_db or res.source_db.engine().url.database
        warehouse_db = args.warehouse_db or res.warehouse_db.engine().url.database
        statements = grant_runtime_user(
            res.warehouse_db.engine(), args.user, password, source_db, warehouse_db, args.host
        )
    print("\n".join(statements))


def add_secrets_commands(subparsers) -> None:
    """Register `secrets encrypt | rotate | new-key | status` on the CLI's subparsers."""
    secrets = subparsers.add_parser("secrets", help="configuration secrets and key rotation")
    sub = secrets.add_subparsers(dest="secrets_command", required=True)

    sub.add_parser("new-key", help="print a fresh master key").set_defaults(func=_new_key)
    sub.add_parser(
        "encrypt", help="read a value on stdin, print it as an enc: token (newest key)"
    ).set_defaults(func=_encrypt)
    rotate = sub.add_parser(
        "rotate", help="re-encrypt the lake's PII snapshots (or one enc: token) with the newest key"
    )
    rotate.add_argument(
        "--token", default=None, help="an enc: token to re-encrypt instead ('-' reads stdin)"
    )
    rotate.set_defaults(func=_rotate)
    sub.add_parser(
        "status", help="configured key ids and the key ids the lake's PII uses"
    ).set_defaults(func=_status)


def add_db_commands(subparsers) -> None:
    """Register `db init | check | grant-runtime-user`: administrator steps (admin URLs)."""
    db = subparsers.add_parser("db", help="administrator database setup")
    sub = db.add_subparsers(dest="db_command", required=True)
    sub.add_parser(
        "init", help="create the source, mart and ledger tables that are missing"
    ).set_defaults(func=_db_init)
    sub.add_parser(
        "check", help="compare the existing tables' columns, charsets and keys with schemas.py"
    ).set_defaults(func=_db_check)
    grant = sub.add_parser(
        "grant-runtime-user",
        help="create or reset the least-privilege runtime user (password on stdin)",
    )
    grant.add_argument("--user", required=True)
    grant.add_argument("--host", default="%", help="host part of the account (default %%)")
    grant.add_argument("--source-db", default=None, help="default: the source URL's database")
    grant.add_argument("--warehouse-db", default=None, help="default: the warehouse URL's database")
    grant.set_defaults(func=_db_grant)
