"""The dimension snapshot check passes on a clean master table and blocks a dirty one."""

import dagster as dg
import pytest
import sqlalchemy as sa

from sales_platform.defs.dimensions.assets import dimension_assets
from sales_platform.defs.resources import build_resources
from sales_platform.settings import Settings

STORES = next(a for a in dimension_assets if a.key == dg.AssetKey("stores"))


def _settings(tmp_path, rows: list[tuple]) -> Settings:
    settings = Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(tmp_path)})
    engine = sa.create_engine(settings.local_db_url("source"))
    with engine.begin() as conn:
        # A source table without its primary key, as some operational databases have.
        conn.execute(
            sa.text(
                "CREATE TABLE store (id INTEGER, address TEXT, store_pincode TEXT, "
                "store_manager_name TEXT, store_opening_date DATE, reviews TEXT)"
            )
        )
        for row in rows:
            conn.execute(
                sa.text("INSERT INTO store (id, address) VALUES (:id, :a)"),
                {"id": row[0], "a": row[1]},
            )
    return settings


@pytest.mark.parametrize(
    ("rows", "passed", "duplicates", "nulls"),
    [
        ([(121, "a"), (122, "b")], True, 0, 0),
        ([(121, "a"), (121, "again")], False, 1, 0),
        ([(121, "a"), (None, "no id")], False, 0, 1),
        ([], False, 0, 0),
    ],
)
def test_store_snapshot_check(spark, tmp_path, rows, passed, duplicates, nulls):
    settings = _settings(tmp_path, rows)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [STORES],
            resources=build_resources(settings),
            instance=instance,
            raise_on_error=False,
        )
    assert result.success is passed  # blocking: a failed check fails the run
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is passed
    assert evaluation.metadata["duplicate_keys"].value == duplicates
    assert evaluation.metadata["null_keys"].value == nulls
    if passed:
        assert result.asset_materializations_for_node("stores")
    else:
        # Blocked before the output: nothing is written to the lake, the failure names the check.
        assert not result.asset_materializations_for_node("stores")
        (failure,) = result.get_step_failure_events()
        assert "primary_key_valid" in str(failure.step_failure_data.error)
