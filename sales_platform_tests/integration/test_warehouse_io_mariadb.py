"""The warehouse IO manager's `load_input` and out-of-month guard on the real MariaDB.

The same checks as unit/test_warehouse_io.py (on SQLite), through real Dagster runs.
"""

import pytest

from sales_platform.schemas import MART_TABLES
from sales_platform_tests.unit.test_warehouse_io import (
    check_a_row_outside_the_month_is_refused,
    check_load_input_reads_its_month_only,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("table", sorted(MART_TABLES))
def test_load_input_reads_its_month_only(spark, mariadb_url, table):
    check_load_input_reads_its_month_only(mariadb_url, table)


@pytest.mark.parametrize("table", sorted(MART_TABLES))
def test_a_row_outside_the_month_is_refused(spark, mariadb_url, table):
    check_a_row_outside_the_month_is_refused(mariadb_url, table)
