"""Data-quality thresholds and the helpers every domain's checks share."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field
from pyspark.sql import types as T


class QualityThresholds(dg.ConfigurableResource):
    """How much imperfection the business tolerates before a check warns or fails."""

    quarantine_warn_rate: float = Field(
        default=0.005, description="share of a day's rows quarantined above which a check warns"
    )
    quarantine_error_rate: float = Field(
        default=0.05, description="share of a day's rows quarantined above which it errors"
    )
    max_unknown_key_share: float = Field(
        default=0.02,
        description="share of sales with an unknown customer, store, seller or product above "
        "which the fact is not published",
    )


def same_columns(actual: T.StructType, expected: T.StructType) -> list[str]:
    """Differences in column names and types (nullability aside), as readable lines."""
    want = [(f.name, f.dataType.simpleString()) for f in expected.fields]
    got = [(f.name, f.dataType.simpleString()) for f in actual.fields]
    if want == got:
        return []
    return [f"expected {name} {kind}" for name, kind in want if (name, kind) not in got] + [
        f"unexpected {name} {kind}" for name, kind in got if (name, kind) not in want
    ] or ["same columns in another order"]


class StageTimer:
    """Seconds spent in each stage of a step, for the materialization's metadata."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 3)

    def metadata(self) -> dict[str, float]:
        return {f"seconds_{name}": value for name, value in self.seconds.items()}


def blocking_failure(
    asset: str, results: list[dg.AssetCheckResult], blocking: set[str]
) -> dg.Failure | None:
    """The step's failure when a blocking check failed: the staged data is never published."""
    failed = [r.check_name for r in results if not r.passed and r.check_name in blocking]
    if not failed:
        return None
    return dg.Failure(
        description=f"{asset} not published: check(s) failed: {', '.join(failed)}",
        metadata={"failed_checks": dg.MetadataValue.json(failed)},
    )
