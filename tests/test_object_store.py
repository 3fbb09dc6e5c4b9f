"""The object stores (local folder, S3 on a real moto server), their error classes, the
uploader's backoff and circuit breaker: the parts under the uploader, each on its own."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from s3_helpers import own_bucket as _bucket
from s3_helpers import own_bucket_store as _s3

from edge_agent.config import UploadConfig
from edge_agent.errors import UploadError
from edge_agent.upload.object_store import (
    LocalObjectStore,
    S3ObjectStore,
    TransientStoreError,
    sha256_hex,
)
from edge_agent.upload.uploader import (
    CircuitBreaker,
    backoff_delay,
)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", ".", "a\\b", ".meta/x"])
def test_local_store_refuses_bad_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(UploadError):
        LocalObjectStore(tmp_path).put(key, b"x")


def test_local_store_head_and_overwrite(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path)
    assert objects.head("a/b.jpg") is None
    objects.put("a/b.jpg", b"one", {"report-id": "r"})
    objects.put("a/b.jpg", b"two")
    info = objects.head("a/b.jpg")
    assert info.size == 3 and info.sha256 == sha256_hex(b"two")
    assert objects.get("a/b.jpg") == b"two"
    with pytest.raises(UploadError, match="no object"):
        objects.get("a/c.jpg")


def test_s3_store_metadata_and_missing_keys(moto_s3) -> None:
    objects = _s3(moto_s3)
    assert objects.head("reports/x.jpg") is None
    objects.put("reports/x.jpg", b"jpeg", {"report-id": "r1"})
    raw = moto_s3.client().head_object(Bucket=_bucket(moto_s3), Key="reports/x.jpg")
    assert raw["Metadata"]["sha256"] == sha256_hex(b"jpeg")
    assert raw["ContentType"] == "image/jpeg"
    assert objects.head("reports/x.jpg").metadata["report-id"] == "r1"
    moto_s3.stop()
    with pytest.raises(TransientStoreError, match="will retry"):
        objects.head("reports/x.jpg")
    with pytest.raises(TransientStoreError):
        objects.put("reports/y.jpg", b"y")


def test_s3_store_from_config(moto_s3) -> None:
    cfg = UploadConfig(backend="s3", bucket=_bucket(moto_s3), region="us-east-1",
                       endpoint_url=moto_s3.endpoint_url)
    objects = S3ObjectStore.from_config(cfg)
    objects.client.create_bucket(Bucket=_bucket(moto_s3))
    objects.put("k/v.json", b"{}")
    assert objects.get("k/v.json") == b"{}"


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        cap = min(2.0, 0.1 * 2 ** attempt)
        delays = [backoff_delay(attempt, 0.1, 2.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap and min(delays) < 0.2 * cap  # spread over [0, cap]


def test_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: now[0])
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.remaining_s() == 10
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()  # the trial failed: open again
    assert breaker.state == "open"
    now[0] = 20.5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(("code", "status", "transient", "fragment"), [
    ("InternalError", 500, True, "will retry"),
    ("ServiceUnavailable", 503, True, "will retry"),
    ("SlowDown", 503, True, "will retry"),
    ("RequestTimeout", 400, True, "will retry"),
    ("BadDigest", 400, True, "will retry"),
    ("", 502, True, "will retry"),
    ("TooManyRequests", 429, True, "will retry"),
    ("NoSuchBucket", 404, False, "fix upload.bucket"),
    ("AccessDenied", 403, False, "s3:PutObject"),
    ("InvalidAccessKeyId", 403, False, "credentials"),
    ("SignatureDoesNotMatch", 403, False, "secret key"),
    ("PermanentRedirect", 301, False, "upload.region"),
    ("SomethingNew", 403, False, "access denied"),
    ("EntityTooLarge", 400, False, "EntityTooLarge"),
])
def test_s3_errors_are_classified(code: str, status: int, transient: bool,
                                  fragment: str) -> None:
    from edge_agent.upload.object_store import classify_s3_error

    err = classify_s3_error(_client_error(code, status), "b", "k")
    assert isinstance(err, TransientStoreError) is transient
    assert isinstance(err, UploadError) is not transient
    assert fragment in str(err) and "s3://b/k" in str(err)


@pytest.mark.parametrize("exc_name", ["EndpointConnectionError", "ConnectTimeoutError",
                                      "ReadTimeoutError", "ConnectionClosedError"])
def test_network_exceptions_are_transient(exc_name: str) -> None:
    from botocore import exceptions as bex

    from edge_agent.upload.object_store import classify_s3_error

    exc = getattr(bex, exc_name)(endpoint_url="http://x", error="down")
    assert isinstance(classify_s3_error(exc, "b", "k"), TransientStoreError)


def test_missing_credentials_are_permanent() -> None:
    from botocore.exceptions import NoCredentialsError

    from edge_agent.upload.object_store import classify_s3_error

    err = classify_s3_error(NoCredentialsError(), "b", "k")
    assert isinstance(err, UploadError) and "AWS_ACCESS_KEY_ID" in str(err)


def test_local_store_half_written_object_is_absent(tmp_path: Path) -> None:
    """A crash between the metadata and the object leaves no object: head says absent."""
    objects = LocalObjectStore(tmp_path)
    meta = tmp_path / ".meta" / "r" / "photo-1.jpg.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"sha256": "00"}')
    assert objects.head("r/photo-1.jpg") is None
    objects.put("r/photo-1.jpg", b"abc")
    assert objects.head("r/photo-1.jpg").sha256 == sha256_hex(b"abc")
