"""Platform settings from the environment (DESIGN.md §7): the one place that reads them.

Secrets (database URLs, the master key) are not read here: resources receive them as Dagster
`EnvVar`s, resolved when a run starts, so they never appear in definitions or the UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "prod")


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    s3_bucket: str | None
    s3_endpoint_url: str | None
    lake_uri: str
    landing_uri: str
    # Names of the DESIGN.md §7 variables that are set (values of secrets are not kept here).
    configured: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        env = environ.get("SALES_PLATFORM_ENV", "local")
        if env not in ENVIRONMENTS:
            raise ValueError(f"SALES_PLATFORM_ENV must be one of {ENVIRONMENTS}, not {env!r}")
        data_dir = Path(environ.get("SALES_PLATFORM_DATA_DIR", ".data")).resolve()
        bucket = environ.get("SALES_PLATFORM_S3_BUCKET") or None
        if env == "prod":
            if not bucket:
                raise ValueError("SALES_PLATFORM_ENV=prod needs SALES_PLATFORM_S3_BUCKET")
            landing = f"s3://{bucket}"
            lake_default = f"s3://{bucket}/lake"
        else:
            landing = str(data_dir / "bucket")
            lake_default = str(data_dir / "lake")
        return cls(
            env=env,
            data_dir=data_dir,
            s3_bucket=bucket,
            s3_endpoint_url=environ.get("SALES_PLATFORM_S3_ENDPOINT_URL") or None,
            lake_uri=environ.get("SALES_PLATFORM_LAKE_URI") or lake_default,
            landing_uri=landing,
            configured=frozenset(k for k, v in environ.items() if k.startswith("SALES_") and v),
        )

    def local_db_url(self, name: str) -> str:
        return f"sqlite:///{self.data_dir / f'{name}.db'}"
