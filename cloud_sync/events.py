"""S3 event notifications: read the records Lambda receives, and build the same JSON.

The ingest handler is invoked with S3's ObjectCreated notification (directly, or wrapped in
SQS messages). Keys arrive URL-encoded with ``+`` for spaces, so they are decoded with
``unquote_plus``. ``s3_event`` builds a record exactly as S3 sends it: the CLI uses it to
replay objects already in a bucket, and the tests use it to drive the handler.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from cloud_sync.errors import EventError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3ObjectEvent:
    """One ObjectCreated record: which object, and what S3 said about it."""

    bucket: str
    key: str
    size: int | None
    etag: str | None
    event_name: str
    event_time: datetime | None
    sequencer: str | None = None


def parse_s3_event(event: object) -> list[S3ObjectEvent]:
    """The ObjectCreated records of a Lambda event; EventError when it is not S3 event JSON.

    S3's one-off ``s3:TestEvent`` and non-ObjectCreated records yield nothing (logged).
    """
    if isinstance(event, str | bytes):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise EventError(f"event is not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise EventError(f"event must be a JSON object with Records, got {type(event).__name__}")
    if event.get("Event") == "s3:TestEvent":
        log.info("ignoring s3:TestEvent for bucket %s", event.get("Bucket"))
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventError("event has no Records list: not an S3 event notification (expected "
                         "{'Records': [{'eventSource': 'aws:s3', 's3': {...}}]})")
    out: list[S3ObjectEvent] = []
    for index, record in enumerate(records):
        out.extend(_parse_record(record, index))
    return out


def _parse_record(record: object, index: int) -> Iterable[S3ObjectEvent]:
    if not isinstance(record, Mapping):
        raise EventError(f"Records[{index}] is not an object")
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:sqs":  # S3 -> SQS -> Lambda: the S3 event is the message body
        return parse_s3_event(record.get("body", ""))
    if source == "aws:sns":
        return parse_s3_event((record.get("Sns") or {}).get("Message", ""))
    if source != "aws:s3":
        raise EventError(f"Records[{index}].eventSource is {source!r}, expected 'aws:s3'")
    name = str(record.get("eventName", ""))
    if not name.startswith("ObjectCreated:"):
        log.info("ignoring %s event (only ObjectCreated is ingested)", name or "unnamed")
        return []
    s3 = record.get("s3")
    try:
        bucket = s3["bucket"]["name"]
        raw_key = s3["object"]["key"]
    except (KeyError, TypeError):
        raise EventError(f"Records[{index}] lacks s3.bucket.name or s3.object.key") from None
    if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket or not raw_key:
        raise EventError(f"Records[{index}] has an empty bucket name or object key")
    obj = s3["object"]
    size = obj.get("size")
    return [S3ObjectEvent(
        bucket=bucket, key=unquote_plus(raw_key),
        size=size if isinstance(size, int) else None,
        etag=obj.get("eTag") or obj.get("etag"), event_name=name,
        event_time=_parse_time(record.get("eventTime")), sequencer=obj.get("sequencer"))]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def s3_event_record(bucket: str, key: str, *, size: int, etag: str,
                    event_time: datetime | None = None, region: str = "ap-northeast-2",
                    event_name: str = "ObjectCreated:Put", sequencer: str = "0",
                    ) -> dict[str, Any]:
    """One record of an S3 ObjectCreated notification, field for field as S3 sends it."""
    when = (event_time or datetime.now(UTC)).astimezone(UTC)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAGOTCHADEVICE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "GOTCHA0REQUEST0ID",
                             "x-amz-id-2": "gotcha/local/replay"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "gotcha-manifest-created",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "GOTCHAOWNER"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": size,
                       "eTag": etag.strip('"'), "sequencer": sequencer},
        },
    }


def s3_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The notification body: ``{"Records": [...]}``."""
    return {"Records": records}
