"""Fault injection: make the process die, or a call fail, at a named point of a run.

`SALES_PLATFORM_FAULT=<point>[@<what>][:<n>][:<action>]` arms one point: the n-th time
(default 1) the run reaches it (for `<what>` only, when given: a lake write's asset), the action
happens: `exit` (default) ends the process at once with
`os._exit(FAULT_EXIT_CODE)` (no cleanup, no `finally`, no commit: as a killed pod or an OOM
kill), `raise` raises `InjectedFault` (a transient error the caller did not expect). The kill
tests (sales_platform_tests/integration/test_fault_injection.py) prove the platform converges
from every point; README "Fault points" lists them.

Unset, `fault(point)` is one truth test of a module constant: nothing to configure in prod.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FAULT_VAR = "SALES_PLATFORM_FAULT"
FAULT_EXIT_CODE = 86

# Every point the code calls, in the order a run reaches them (README, "Fault points").
POINTS = {
    "sensor.requested": "the landing sensor built its run requests; its cursor is not saved",
    "landing.listed": "the day's files in landing and the archive are listed; nothing written",
    "lake.uploaded": "one more Parquet file of a lake write is uploaded; not committed",
    "lake.committed": "a lake write's Iceberg commit is done (old files stay for vacuum)",
    "ingest.quarantine_published": "raw_sales_quarantine's days are committed",
    "ingest.accepted_published": "raw_sales's days are committed too",
    "ledger.settled": "one more file's ledger row is I or E; no file moved yet",
    "archive.copied": "a file's copy under the archive or error prefix exists; landing not deleted",
    "ingest.archived": "a file is moved to the archive; the ledger has no archived_key for it",
    "warehouse.deleted": "inside a mart month's transaction: its rows deleted, none inserted",
    "warehouse.committed": "a mart month's delete-and-insert is committed",
}
ACTIONS = ("exit", "raise")


class InjectedFault(RuntimeError):
    """A fault raised on purpose at a point (SALES_PLATFORM_FAULT=<point>:<n>:raise)."""


@dataclass
class _Armed:
    point: str
    what: str | None
    nth: int
    action: str
    seen: int = 0


def parse(spec: str | None) -> _Armed | None:
    if not spec:
        return None
    point, *rest = spec.strip().split(":")
    point, _, what = point.partition("@")
    if point not in POINTS:
        raise ValueError(f"{FAULT_VAR}: unknown point {point!r}; known: {', '.join(POINTS)}")
    nth, action = 1, "exit"
    for part in rest:
        if part in ACTIONS:
            action = part
        elif part.isdigit() and int(part) >= 1:
            nth = int(part)
        else:
            raise ValueError(f"{FAULT_VAR}={spec!r}: {part!r} is neither a count nor {ACTIONS}")
    return _Armed(point, what or None, nth, action)


_armed = parse(os.environ.get(FAULT_VAR))


def arm(spec: str | None) -> None:
    """Arm (or with None disarm) a point in this process; tests only."""
    global _armed
    _armed = parse(spec)


def fault(point: str, what: str | None = None) -> None:
    """The run reached `point` (for `what`): fail here if this is the armed n-th arrival."""
    if _armed is None or _armed.point != point or _armed.what not in (None, what):
        return
    _armed.seen += 1
    if _armed.seen != _armed.nth:
        return
    if _armed.action == "raise":
        raise InjectedFault(f"injected fault at {point} {what or ''} (arrival {_armed.nth})")
    os._exit(FAULT_EXIT_CODE)
