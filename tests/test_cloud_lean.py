"""The Lambda configuration comes only from the environment.

That the Lambda code stays lean (no device libraries) is tests/test_architecture_imports.py.
"""

from __future__ import annotations

import pytest

from cloud_sync.config import db_settings_from_env, s3_settings_from_env
from cloud_sync.errors import CloudConfigError

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
