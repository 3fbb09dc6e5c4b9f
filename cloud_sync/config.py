"""Cloud settings from the environment (Lambda configuration, or a shell for the CLI).

No secret lives in the repository: the database password comes from RDS_PASSWORD (in AWS,
set it from Secrets Manager). A missing variable is named in the error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cloud_sync.errors import CloudConfigError

DEFAULT_REGION = "ap-northeast-2"


@dataclass(frozen=True)
class DbSettings:
    """Where the RDS (MySQL/MariaDB) database is."""

    host: str
    port: int
    user: str
    password: str
    database: str
    connect_timeout_s: float = 10.0

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return (f"DbSettings(host={self.host!r}, port={self.port}, user={self.user!r}, "
                f"database={self.database!r})")


@dataclass(frozen=True)
class S3Settings:
    """Which bucket and endpoint; the event names the bucket, S3_BUCKET is for scans."""

    bucket: str | None
    region: str
    endpoint_url: str | None


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise CloudConfigError(f"environment variable {name} is not set; set it to the "
                               f"{_WHAT[name]}")
    return value


_WHAT = {
    "RDS_HOST": "database host name (e.g. the RDS endpoint)",
    "RDS_USERNAME": "database user",
    "RDS_DATABASE": "database (schema) name",
    "S3_BUCKET": "bucket the devices upload to",
}


def db_settings_from_env(env: Mapping[str, str] | None = None) -> DbSettings:
    """Read RDS_HOST, RDS_PORT (3306), RDS_USERNAME, RDS_PASSWORD (may be empty), RDS_DATABASE."""
    env = os.environ if env is None else env
    port_text = env.get("RDS_PORT", "3306").strip() or "3306"
    try:
        port = int(port_text)
    except ValueError:
        raise CloudConfigError(f"RDS_PORT must be a port number, got {port_text!r}") from None
    if not 0 < port < 65536:
        raise CloudConfigError(f"RDS_PORT must be between 1 and 65535, got {port}")
    return DbSettings(host=_require(env, "RDS_HOST"), port=port,
                      user=_require(env, "RDS_USERNAME"),
                      password=env.get("RDS_PASSWORD", ""),
                      database=_require(env, "RDS_DATABASE"))


def s3_settings_from_env(env: Mapping[str, str] | None = None, *,
                         need_bucket: bool = False) -> S3Settings:
    """Read S3_BUCKET, AWS_REGION (else AWS_DEFAULT_REGION, else Seoul), S3_ENDPOINT_URL."""
    env = os.environ if env is None else env
    bucket = _require(env, "S3_BUCKET") if need_bucket else (env.get("S3_BUCKET") or None)
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return S3Settings(bucket=bucket, region=region,
                      endpoint_url=env.get("S3_ENDPOINT_URL") or None)
