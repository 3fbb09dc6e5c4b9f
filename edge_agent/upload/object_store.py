"""Where confirmed reports go: one small interface (put / head / get) and two stores.

Why an interface: the embedded default writes to a local folder (no cloud needed), the field
device writes to S3; the uploader does not care which. Every object carries the sha256 of its
content in its metadata, so a resumed upload can tell "already there, same bytes" from "there,
but different" without downloading anything.

Errors: a failure retrying may fix (network down, timeout, 5xx, throttling) raises
:class:`TransientStoreError`; one it will not (no such bucket, bad credentials, access denied)
raises :class:`~edge_agent.errors.UploadError` with what to do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge_agent.durable import atomic_write
from edge_agent.errors import GotchaError, UploadError

log = logging.getLogger(__name__)

SHA256_META = "sha256"  # S3 shows it as x-amz-meta-sha256


class TransientStoreError(GotchaError):
    """The object store could not be reached or answered with a retryable error."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``head`` knows about a stored object."""

    key: str
    size: int
    sha256: str | None  # from the object's metadata; None when it carries none
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    """An object store: ``put`` overwrites, ``head`` returns None when the key is absent."""

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def get(self, key: str) -> bytes: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """Object keys are relative POSIX paths without '.', '..' or empty parts."""
    parts = key.split("/") if isinstance(key, str) else []
    if not parts or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
        raise UploadError(f"object key {key!r} is not a clean relative path; this is a bug in "
                          "the caller, report it")
    return key


def _content_type(key: str) -> str:
    if key.endswith(".json"):
        return "application/json"
    if key.endswith((".jpg", ".jpeg")):
        return "image/jpeg"
    return "application/octet-stream"


# ---------------------------------------------------------------------------- local folder

class LocalObjectStore:
    """Objects as files under ``root``; metadata beside them under ``root/.meta``.

    The metadata is written before the object, so an object that exists always has its
    metadata (a crash in between leaves only metadata, which the next put overwrites).
    """

    META_DIR = ".meta"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        if key.split("/")[0] == self.META_DIR:
            raise UploadError(f"object key {key!r} uses the reserved folder {self.META_DIR}")
        return self.root / key, self.root / self.META_DIR / (key + ".json")

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        path, meta_path = self._paths(key)
        meta = {**(metadata or {}), SHA256_META: sha256_hex(data)}
        try:
            atomic_write(meta_path, json.dumps(meta, sort_keys=True).encode())
            atomic_write(path, data)
        except OSError as exc:
            raise UploadError(f"cannot write {path}: {exc.strerror or exc}; check that "
                              f"upload.local_dir ({self.root}) is writable and has space") from exc

    def head(self, key: str) -> ObjectInfo | None:
        path, meta_path = self._paths(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            meta = {}
        return ObjectInfo(key=key, size=size, sha256=meta.get(SHA256_META), metadata=meta)

    def get(self, key: str) -> bytes:
        path, _ = self._paths(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise UploadError(f"no object {key!r} in {self.root}") from exc


# ---------------------------------------------------------------------------- S3

_TRANSIENT_CODES = {"RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "Throttling",
                    "ThrottlingException", "InternalError", "ServiceUnavailable", "BadDigest",
                    "XAmzContentSHA256Mismatch", "RequestTimeoutException"}
_PERMANENT_HINTS = {
    "NoSuchBucket": "the bucket does not exist; create it or fix upload.bucket",
    "AccessDenied": "access denied; give the device's credentials s3:PutObject and "
                    "s3:GetObject on the bucket",
    "InvalidAccessKeyId": "the access key is unknown; fix the device's AWS credentials",
    "SignatureDoesNotMatch": "the secret key is wrong; fix the device's AWS credentials",
    "InvalidBucketName": "the bucket name is invalid; fix upload.bucket",
    "PermanentRedirect": "the bucket is in another region; fix upload.region",
    "AuthorizationHeaderMalformed": "the region is wrong for this bucket; fix upload.region",
    "ExpiredToken": "the session token expired; refresh the device's credentials",
}


def make_s3_client(endpoint_url: str | None = None, region: str = "ap-northeast-2",
                   connect_timeout_s: float = 5.0, read_timeout_s: float = 30.0) -> Any:
    """A boto3 S3 client that fails fast: our uploader does the retrying, not botocore.

    Credentials come from the environment / instance profile (never from config files).
    """
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
                    retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def classify_s3_error(exc: BaseException, bucket: str, key: str) -> GotchaError:
    """Turn a botocore exception into TransientStoreError or UploadError."""
    from botocore import exceptions as bex

    where = f"s3://{bucket}/{key}"
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return UploadError(f"no AWS credentials for {where}; set AWS_ACCESS_KEY_ID/"
                           "AWS_SECRET_ACCESS_KEY or an instance role")
    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _PERMANENT_HINTS:
            return UploadError(f"{where}: {code}: {_PERMANENT_HINTS[code]}")
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStoreError(f"{where}: {code or status} (will retry)")
        if status in (401, 403):
            return UploadError(f"{where}: {code or status}: access denied; check the "
                               "device's AWS credentials and bucket policy")
        return UploadError(f"{where}: {code or status}: {error.get('Message', exc)}")
    if isinstance(exc, bex.ParamValidationError):
        return UploadError(f"{where}: invalid request ({exc}); this is a bug, report it")
    if isinstance(exc, bex.BotoCoreError | OSError):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError
        return TransientStoreError(f"{where}: {type(exc).__name__}: {exc} (will retry)")
    return UploadError(f"{where}: unexpected {type(exc).__name__}: {exc}")


class S3ObjectStore:
    """Objects in an S3 bucket, with Content-MD5 and a SHA-256 checksum the server verifies,
    and the content sha256 in ``x-amz-meta-sha256``."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    @classmethod
    def from_config(cls, upload: Any) -> S3ObjectStore:
        """From an UploadConfig (bucket, region, endpoint_url)."""
        return cls(upload.bucket, make_s3_client(upload.endpoint_url, upload.region))

    def _call(self, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, Key=key, **kwargs)
        except Exception as exc:
            raise classify_s3_error(exc, self.bucket, key) from exc

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        check_key(key)
        sha = hashlib.sha256(data)
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        self._call(key, self.client.put_object, Body=data, ContentType=_content_type(key),
                   ContentMD5=base64.b64encode(md5).decode(),
                   ChecksumSHA256=base64.b64encode(sha.digest()).decode(),
                   Metadata={**(metadata or {}), SHA256_META: sha.hexdigest()})

    def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        from botocore.exceptions import ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if status == 404 and code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise classify_s3_error(exc, self.bucket, key) from exc
        except Exception as exc:
            raise classify_s3_error(exc, self.bucket, key) from exc
        meta = {str(k).lower(): str(v) for k, v in response.get("Metadata", {}).items()}
        return ObjectInfo(key=key, size=int(response.get("ContentLength", 0)),
                          sha256=meta.get(SHA256_META), metadata=meta)

    def get(self, key: str) -> bytes:
        check_key(key)
        response = self._call(key, self.client.get_object)
        return response["Body"].read()


def object_store_from_config(upload: Any) -> ObjectStore:
    """The configured store: a local folder (embedded default) or S3."""
    if upload.backend == "s3":
        return S3ObjectStore.from_config(upload)
    return LocalObjectStore(upload.local_dir)
