"""Kill points: a run dies (`os._exit`) at each fault point, the same run goes again, and the
platform converges to what one clean run gives, row for row.

One production stack (moto S3 + MariaDB) for the module, two days across a month and year end
with a bad file and bad rows. Each run is a process of its own (`sales_platform_tests.fault_run`)
armed with SALES_PLATFORM_FAULT, a thin client of one Spark Connect server started for the
module, so a run pays no JVM start. The kills are chained, in the order a run reaches them: each
restart recovers from what the previous kill left (as a retried run does), and after every kill
the invariants that must hold at any instant are checked (no file lost, no day or month half
published). The end state is compared with the independent oracle (oracle.py), read from the
landing bytes before any run. README, "Fault points", lists what each point proves.
"""

from __future__ import annotations

from datetime import date

import pytest

from sales_platform.faults import FAULT_EXIT_CODE, InjectedFault, arm
from sales_platform.schemas import LANDING_PREFIX
from sales_platform_tests.convergence import (
    DAILY,
    MARTS,
    assert_converged,
    assert_nothing_lost_or_half_published,
    landed_stack,
    ledger,
)

pytestmark = pytest.mark.integration

START, END = date(2023, 12, 31), date(2024, 1, 1)
DAYS = (START, END)
FILES = 4  # two a day, one of them a bad file

# (point armed, jobs the killed run executes), in the order a run reaches them. The restart of
# a killed run is the next line's run; the last run goes to completion.
CHAIN = [
    ("landing.listed", (DAILY,)),
    ("lake.uploaded@raw_sales_quarantine:1", (DAILY,)),
    ("ingest.quarantine_published", (DAILY,)),
    ("lake.uploaded@raw_sales:1", (DAILY,)),
    ("ingest.accepted_published", (DAILY,)),
    ("ledger.settled:1", (DAILY,)),
    # Every file settled (I or E), none moved: see test's SETTLED_IN_LANDING below.
    (f"ledger.settled:{FILES}", (DAILY,)),
    ("archive.copied:1", (DAILY,)),
    ("ingest.archived:2", (DAILY,)),
    ("lake.committed@sales_enriched:1", (DAILY,)),
    ("warehouse.deleted:1", (DAILY, MARTS)),
    ("warehouse.committed:1", (MARTS,)),
]


@pytest.fixture(scope="module")
def stack(s3_endpoint, connect_server, tmp_path_factory):
    url, _ = connect_server
    tmp = tmp_path_factory.mktemp("faults")
    with landed_stack(
        s3_endpoint, url, tmp, START, len(DAYS), 2, bad_file_fraction=1 / FILES, seed=5
    ) as s:
        assert len(s.summary.files) == FILES and len(s.summary.bad_files) == 1
        yield s


# --- the tests ----------------------------------------------------------------------------


# About 7 minutes in CI on a slow day of this host, beside another heavy test.
@pytest.mark.timeout(900)
def test_killed_at_every_point_the_reruns_converge_to_one_clean_run(stack):
    # The sensor dies after building its requests, before the daemon saves its cursor: the next
    # tick asks again for the same days under the same run keys (Dagster starts a run key once).
    arm("sensor.requested:1:raise")
    try:
        with pytest.raises(InjectedFault):
            stack.tick(None)
    finally:
        arm(None)
    first = stack.tick(None)
    assert sorted(r.partition_key for r in first.run_requests) == [str(d) for d in DAYS]
    assert [r.run_key for r in stack.tick(None).run_requests] == [
        r.run_key for r in first.run_requests
    ]

    for point, jobs in CHAIN:
        code = stack.run(point, jobs, START, END)
        assert code == FAULT_EXIT_CODE, (point, code, stack.last_log)
        assert_nothing_lost_or_half_published(stack, point)
        if point == f"ledger.settled:{FILES}":
            # Settled in the ledger, still in landing: nothing is new to the ledger, yet the
            # sensor asks for both days again, under new run keys (the first ones were used).
            assert {e["status"] for e in ledger(stack)} == {"I", "E"}
            assert len(list(stack.store.list(LANDING_PREFIX))) == FILES
            again = stack.tick(None).run_requests
            assert sorted(r.partition_key for r in again) == [str(d) for d in DAYS]
            assert not {r.run_key for r in again} & {r.run_key for r in first.run_requests}

    assert stack.run(None, (MARTS,), START, END) == 0, stack.last_log
    assert_converged(stack)
    print(f"\nrun seconds: {stack.seconds}")
