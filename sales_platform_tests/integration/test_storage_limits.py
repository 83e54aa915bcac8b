"""Paths the end-to-end runs never reach: a mart writer waiting out the lock, and a delete of
more keys than one S3 DeleteObjects call takes."""

from __future__ import annotations

import boto3
import pytest
import sqlalchemy as sa

from sales_platform.storage.object_store import S3ObjectStore
from sales_platform.storage.write_lock import WriteLockTimeout, table_write_lock

pytestmark = pytest.mark.integration


def test_a_writer_gives_up_with_write_lock_timeout_while_another_holds_the_table(mariadb_url):
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.connect() as holder, engine.connect() as waiter:
            with table_write_lock(holder, "customers_data_mart"):
                with (
                    pytest.raises(WriteLockTimeout, match="customers_data_mart"),
                    table_write_lock(waiter, "customers_data_mart", timeout=1),
                ):
                    pytest.fail("the second writer got the lock while the first held it")
                # Another table is not blocked by this one.
                with table_write_lock(waiter, "sales_team_data_mart", timeout=1):
                    pass
            # Released with the first block: the next writer gets it at once.
            with table_write_lock(waiter, "customers_data_mart", timeout=1):
                pass
    finally:
        engine.dispose()


def test_deleting_more_keys_than_one_request_takes_deletes_them_all(s3_endpoint, s3_bucket):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    store = S3ObjectStore(client, s3_bucket, prefix="lake")
    keys = [f"old/{i:05d}.parquet" for i in range(2001)]  # three DeleteObjects batches
    for key in keys:
        store.put_bytes(key, b"x")
    store.put_bytes("keep/me.parquet", b"y")
    store.delete(keys)
    assert [o.key for o in store.list("")] == ["keep/me.parquet"]
