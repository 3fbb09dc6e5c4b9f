"""A moto S3 bucket of a test's own, as the uploader's object store sees it."""

from __future__ import annotations

from edge_agent.upload.object_store import S3ObjectStore, make_s3_client


def own_bucket(moto_s3) -> str:
    """A bucket of this test's own (moto keeps state in process memory between servers)."""
    return f"gotcha-test-{moto_s3.port}"


def own_bucket_store(moto_s3) -> S3ObjectStore:
    """An S3ObjectStore on :func:`own_bucket`, created, with short timeouts."""
    client = make_s3_client(moto_s3.endpoint_url, "us-east-1", connect_timeout_s=1,
                            read_timeout_s=5)
    client.create_bucket(Bucket=own_bucket(moto_s3))
    return S3ObjectStore(own_bucket(moto_s3), client)
