"""Encryption in transit and at rest at the edges: S3 server-side encryption on every kind of
write (against moto's real S3 API), and MySQL TLS that cannot silently fall back to plaintext
(against the real MariaDB)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sales_platform.storage.database import Database
from sales_platform.storage.object_store import ObjectStoreResource
from sales_platform_tests.conftest import MARIADB_ADMIN_URL, _mariadb_engine

pytestmark = pytest.mark.integration

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _write_every_way(store, tmp_path) -> list[str]:
    """put_bytes (manifests, reason files), put_file (Parquet, generated CSVs), copy and move
    (landing -> archive / error)."""
    local = tmp_path / "part.parquet"
    local.write_bytes(b"PAR1 not really")
    store.put_bytes("lake/x/__all__/_manifest.json", b"{}")
    store.put_file(local, "lake/x/__all__/v-1/part-00000.parquet")
    store.put_bytes("sales_data/2023-01-01/a.csv", b"customer_id\n1\n")
    store.copy("sales_data/2023-01-01/a.csv", "sales_data_processed/2023-01-01/a.csv")
    keys = [
        "lake/x/__all__/_manifest.json",
        "lake/x/__all__/v-1/part-00000.parquet",
        "sales_data/2023-01-01/a.csv",
        "sales_data_processed/2023-01-01/a.csv",
    ]
    store.put_bytes("sales_data/2023-01-01/b.csv", b"customer_id\n2\n")
    assert store.move("sales_data/2023-01-01/b.csv", "sales_data_error/2023-01-01/b.csv")
    keys.append("sales_data_error/2023-01-01/b.csv")
    return keys


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, {"ServerSideEncryption": "AES256"}),
        (
            {"server_side_encryption": "aws:kms", "sse_kms_key_id": KMS_KEY},
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY},
        ),
    ],
    ids=["aes256-default", "aws-kms-key-id"],
)
def test_every_write_requests_server_side_encryption(
    s3_endpoint, s3_bucket, tmp_path, options, expected
):
    store = ObjectStoreResource(
        location=f"s3://{s3_bucket}", endpoint_url=s3_endpoint, **options
    ).open()
    keys = _write_every_way(store, tmp_path)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for key in keys:
        head = client.head_object(Bucket=s3_bucket, Key=key)
        for field, value in expected.items():
            assert head.get(field) == value, (key, field)


def _self_signed_ca(tmp_path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sales-platform test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_mysql_tls_option_refuses_a_server_without_verified_tls(tmp_path):
    _mariadb_engine().dispose()  # skips (or fails in CI) when the server is unreachable
    db = Database(url=MARIADB_ADMIN_URL, ssl_ca=_self_signed_ca(tmp_path))
    engine = db.engine()
    try:
        # Plaintext server (TLS disabled) or a certificate our CA did not sign: either way the
        # connection is refused rather than continued without a verified TLS channel.
        with pytest.raises(sa.exc.OperationalError) as info, engine.connect():
            pass
        text = str(info.value).lower()
        assert "ssl" in text or "tls" in text or "certificate" in text, text
    finally:
        engine.dispose()
