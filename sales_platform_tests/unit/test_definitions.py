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


def _check(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    assert defs.resolve_job_def("daily_sales_job") is not None
    assert defs.resolve_job_def("monthly_marts_job") is not None


def test_local_definitions_validate(tmp_path):
    _check(build_definitions(Settings.from_env({"SALES_PLATFORM_DATA_DIR": str(tmp_path)})))


def test_prod_definitions_validate():
    settings = Settings.from_env(
        {"SALES_PLATFORM_ENV": "prod", "SALES_PLATFORM_S3_BUCKET": "sales-bucket"}
    )
    _check(build_definitions(settings))


def test_module_definitions_load():
    import sales_platform.definitions as module

    dg.Definitions.validate_loadable(module.defs)
