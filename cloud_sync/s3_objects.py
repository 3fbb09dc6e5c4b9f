"""Reading the objects of a report from S3: the manifest (bounded) and each photo's sha256.

Why the cloud hashes every photo itself: object metadata is written by whoever uploaded the
object, so a photo replaced with the old ``sha256`` metadata would pass a metadata check. Each
photo is read once, streamed in chunks, and refused past a size bound before it is all read.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cloud_sync.errors import RejectedObjectError

CHUNK_BYTES = 1 << 20


def s3_missing(exc: BaseException) -> bool:
    """Whether a boto3 error means the object (or key) is not there."""
    response = getattr(exc, "response", None)
    error = (response or {}).get("Error", {}) if isinstance(response, dict) else {}
    return str(error.get("Code", "")) in {"404", "NoSuchKey", "NotFound"}


def read_bounded(s3: Any, bucket: str, key: str, max_bytes: int, what: str) -> bytes:
    """The object's bytes; RejectedObjectError when it is gone or larger than ``max_bytes``."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if s3_missing(exc):
            raise RejectedObjectError(f"{what} object no longer exists in S3") from None
        raise
    length = response.get("ContentLength")
    if isinstance(length, int) and length > max_bytes:
        response["Body"].close()
        raise RejectedObjectError(f"{what} is {length} bytes, more than the {max_bytes} allowed")
    data = response["Body"].read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RejectedObjectError(f"{what} is more than the {max_bytes} bytes allowed")
    return data


def object_sha256(s3: Any, bucket: str, key: str, max_bytes: int) -> str | None:
    """The sha256 of the object's body, streamed; None when the object is not in S3.

    RejectedObjectError when it is larger than ``max_bytes`` (stated or read).
    """
    name = key.rsplit("/", 1)[-1]
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if s3_missing(exc):
            return None
        raise
    body = response["Body"]
    length = response.get("ContentLength")
    if isinstance(length, int) and length > max_bytes:
        body.close()
        raise RejectedObjectError(f"photo {name} is {length} bytes, more than the {max_bytes} "
                                  "allowed")
    digest = hashlib.sha256()
    read = 0
    try:
        for chunk in iter(lambda: body.read(CHUNK_BYTES), b""):
            read += len(chunk)
            if read > max_bytes:
                raise RejectedObjectError(f"photo {name} is more than the {max_bytes} bytes "
                                          "allowed")
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()
