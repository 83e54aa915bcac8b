"""One run in a process of its own, for the kill tests (integration/test_fault_injection.py).

`python -m sales_platform_tests.fault_run <first day> <last day> <job>...` executes the runs
`sales-platform materialize` would launch for the range (cli.range_plan), the named jobs only,
in this process, on the stack and Spark engine the environment selects. A point armed with
SALES_PLATFORM_FAULT ends the process there (sales_platform/faults.py); otherwise the exit code
is 0 when every run succeeded, 1 when one failed (the step errors' first lines on stderr).
"""

from __future__ import annotations

import sys
from datetime import date

import dagster as dg

from sales_platform.cli import range_plan
from sales_platform.definitions import build_definitions
from sales_platform.launch import error_summary
from sales_platform.settings import Settings


def main(argv: list[str]) -> int:
    first, last, *jobs = argv
    defs = build_definitions(Settings.from_env())
    with dg.DagsterInstance.ephemeral() as instance:
        for job, tags in range_plan(date.fromisoformat(first), date.fromisoformat(last)):
            if job not in jobs:
                continue
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, raise_on_error=False
            )
            if not result.success:
                errors = [
                    error_summary(e.step_failure_data.error)
                    for e in result.all_events
                    if e.is_step_failure and e.step_failure_data.error is not None
                ]
                print(f"{job} failed: {'; '.join(errors) or 'see the log'}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
