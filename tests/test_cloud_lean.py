"""The Lambda code stays lean, and its configuration comes only from the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloud_sync.config import db_settings_from_env, s3_settings_from_env
from cloud_sync.errors import CloudConfigError

HEAVY = ("numpy", "cv2", "onnxruntime", "edge_agent", "PIL", "pydantic", "typer")


def test_handlers_import_without_heavy_modules():
    code = ("import sys, cloud_sync.handlers; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout}"


ENV = {"RDS_HOST": "db.example", "RDS_USERNAME": "gotcha", "RDS_DATABASE": "gotcha"}


@pytest.mark.parametrize("missing", sorted(ENV))
def test_missing_variable_is_named(missing):
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(CloudConfigError, match=missing):
        db_settings_from_env(env)


def test_settings_from_env():
    s = db_settings_from_env({**ENV, "RDS_PORT": "3307", "RDS_PASSWORD": "pw"})
    assert (s.host, s.port, s.user, s.password, s.database) == (
        "db.example", 3307, "gotcha", "pw", "gotcha")
    assert "pw" not in repr(s)
    with pytest.raises(CloudConfigError, match="RDS_PORT"):
        db_settings_from_env({**ENV, "RDS_PORT": "http"})
    s3 = s3_settings_from_env({"S3_BUCKET": "b", "S3_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert (s3.bucket, s3.region, s3.endpoint_url) == ("b", "ap-northeast-2",
                                                       "http://127.0.0.1:9")
    with pytest.raises(CloudConfigError, match="S3_BUCKET"):
        s3_settings_from_env({}, need_bucket=True)
