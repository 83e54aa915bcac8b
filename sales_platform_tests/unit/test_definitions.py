"""The Definitions load and validate in both environments, with the documented asset graph."""

import dagster as dg

from sales_platform.definitions import build_definitions
from sales_platform.settings import Settings

EXPECTED_ASSETS = {
    "raw_sales_files",
    "raw_sales",
    "customers",
    "stores",
    "products",
    "sales_team",
    "sales_enriched",
    "customer_monthly_mart",
    "sales_team_monthly_mart",
}


# What each job materializes: the daily job stops at the fact, the monthly job builds the marts.
EXPECTED_JOBS = {
    "daily_sales_job": {
        "raw_sales",
        "customers",
        "stores",
        "products",
        "sales_team",
        "sales_enriched",
    },
    "monthly_marts_job": {"customer_monthly_mart", "sales_team_monthly_mart"},
}
PARTITIONS = {"daily_sales_job": "2023-01-01", "monthly_marts_job": "2023-01-01"}


def _check(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    for name, assets in EXPECTED_JOBS.items():
        job = defs.resolve_job_def(name)  # raises when the job is missing
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == assets
        # Both start with the origin's first day, so every historical day can be loaded.
        assert job.partitions_def.get_first_partition_key() == PARTITIONS[name]


def test_local_definitions_validate(tmp_path):
    _check(build_definitions(Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(tmp_path)})))


def test_prod_definitions_validate():
    settings = Settings.from_env(
        {"SALES_PLATFORM_ENV": "prod", "SALES_PLATFORM_S3_BUCKET": "sales-bucket"}
    )
    _check(build_definitions(settings))


def test_module_definitions_load():
    import sales_platform.definitions as module

    # What `dagster dev` loads: the same graph and jobs as the built definitions.
    _check(module.defs)
