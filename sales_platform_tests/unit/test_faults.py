"""The fault seam (sales_platform/faults.py): inert unless armed, exact about where it fires."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sales_platform import faults
from sales_platform.faults import FAULT_EXIT_CODE, FAULT_VAR, InjectedFault, arm, fault


@pytest.fixture(autouse=True)
def disarmed():
    arm(None)
    yield
    arm(None)


def test_unarmed_every_point_is_a_no_op():
    for point in faults.POINTS:
        fault(point)
        fault(point, "raw_sales")


def test_raise_fires_on_the_nth_arrival_only_and_for_the_named_asset():
    arm("lake.uploaded@raw_sales:2:raise")
    fault("lake.uploaded", "raw_sales_quarantine")  # another asset: not counted
    fault("ledger.settled")  # another point
    fault("lake.uploaded", "raw_sales")  # first arrival
    with pytest.raises(InjectedFault, match="lake.uploaded raw_sales"):
        fault("lake.uploaded", "raw_sales")
    fault("lake.uploaded", "raw_sales")  # fired once; the third passes


@pytest.mark.parametrize(
    "spec", ["no.such.point", "ledger.settled:0", "ledger.settled:kill", "ledger.settled:-1"]
)
def test_a_mistyped_spec_is_refused_naming_the_variable(spec):
    with pytest.raises(ValueError, match=FAULT_VAR):
        arm(spec)


def test_exit_ends_the_process_at_once_with_its_code_and_no_cleanup():
    code = (
        "import atexit\n"
        "from sales_platform.faults import fault\n"
        "atexit.register(lambda: print('cleanup ran'))\n"
        "try:\n"
        "    fault('archive.copied')\n"
        "finally:\n"
        "    print('finally ran')\n"
    )
    env = {**os.environ, FAULT_VAR: "archive.copied"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert done.returncode == FAULT_EXIT_CODE, done.stderr
    assert done.stdout == b""
