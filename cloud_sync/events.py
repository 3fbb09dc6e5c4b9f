"""S3 event notifications: read the records Lambda receives, and build the same JSON.

The ingest handler is invoked with S3's ObjectCreated notification (directly, or wrapped in
SQS or SNS messages). Reading never raises on what a record holds (split_s3_event): a record
that is not usable comes back as a BadRecord with its reason, for the handler to record.
Keys arrive URL-encoded with ``+`` for spaces, so they are decoded with ``unquote_plus``.
``s3_event`` builds a record exactly as S3 sends it: the CLI uses it to replay objects already
in a bucket, and the tests use it to drive the handler.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


MAX_ENVELOPE_DEPTH = 4  # S3 -> SNS -> SQS -> Lambda is three; more is not S3's doing
MAX_KEY_CHARS = 1024  # S3's own limit on a key (in bytes; characters is the looser test)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BadRecord:
    """A record (or a whole event) that is not an S3 ObjectCreated notification.

    ``bucket`` and ``key`` are what could be read of it (sanitised, maybe empty) and
    ``fingerprint`` identifies it, so a redelivered bad record is recorded once.
    """

    reason: str
    bucket: str = ""
    key: str = ""
    fingerprint: str = ""


def _fingerprint(value: object, reason: str) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=True)
    except (ValueError, TypeError, RecursionError):
        text = ""  # too deep or too odd to write out: the reason alone identifies it
    return hashlib.sha256((text + "\x00" + reason).encode("utf-8")).hexdigest()


def split_s3_event(event: object, depth: int = 0) -> tuple[list[S3ObjectEvent], list[BadRecord]]:
    """The ObjectCreated records of a Lambda event, and the records that are not usable.

    Never raises: whatever a record holds, it is either an S3ObjectEvent or a BadRecord with
    the reason. S3's one-off ``s3:TestEvent`` and non-ObjectCreated records yield nothing
    (logged). SQS and SNS envelopes are opened up to MAX_ENVELOPE_DEPTH deep.
    """
    if depth > MAX_ENVELOPE_DEPTH:
        reason = f"event envelopes nested more than {MAX_ENVELOPE_DEPTH} deep"
        return [], [BadRecord(reason, fingerprint=_fingerprint(None, reason))]
    if isinstance(event, str | bytes):
        try:
            event = json.loads(event)
        except (ValueError, RecursionError) as exc:
            reason = f"event is not JSON: {str(exc)[:120]}"
            return [], [BadRecord(reason, fingerprint=_fingerprint(None, reason))]
    if not isinstance(event, Mapping):
        reason = f"event must be a JSON object with Records, got {type(event).__name__}"
        return [], [BadRecord(reason, fingerprint=_fingerprint(event, reason))]
    if event.get("Event") == "s3:TestEvent":
        log.info("ignoring s3:TestEvent for bucket %s", event.get("Bucket"))
        return [], []
    records = event.get("Records")
    if not isinstance(records, list):
        reason = ("event has no Records list: not an S3 event notification (expected "
                  "{'Records': [{'eventSource': 'aws:s3', 's3': {...}}]})")
        return [], [BadRecord(reason, fingerprint=_fingerprint(event, reason))]
    good: list[S3ObjectEvent] = []
    bad: list[BadRecord] = []
    for index, record in enumerate(records):
        try:
            more_good, more_bad = _split_record(record, index, depth)
        except RecursionError:
            reason = f"Records[{index}] is nested too deeply"
            more_good, more_bad = [], [BadRecord(reason, fingerprint=_fingerprint(None, reason))]
        good += more_good
        bad += more_bad
    return good, bad


def parse_s3_event(event: object) -> list[S3ObjectEvent]:
    """The ObjectCreated records of a Lambda event; EventError when one is not usable."""
    good, bad = split_s3_event(event)
    if bad:
        raise EventError(bad[0].reason)
    return good


def _text(value: object, max_chars: int) -> str | None:
    """A string fit to store (no lone surrogate, not too long), else None."""
    if not isinstance(value, str) or len(value) > max_chars:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _split_record(record: object, index: int, depth: int
                  ) -> tuple[list[S3ObjectEvent], list[BadRecord]]:
    def bad(reason: str, bucket: str = "", key: str = "") -> tuple[list, list[BadRecord]]:
        return [], [BadRecord(reason, bucket, key, _fingerprint(record, reason))]

    if not isinstance(record, Mapping):
        return bad(f"Records[{index}] is not an object")
    source = record.get("eventSource") or record.get("EventSource")
    if source == "aws:sqs":  # S3 -> SQS -> Lambda: the S3 event is the message body
        return split_s3_event(record.get("body", ""), depth + 1)
    if source == "aws:sns":
        sns = record.get("Sns")
        return split_s3_event(sns.get("Message", "") if isinstance(sns, Mapping) else "",
                              depth + 1)
    if source != "aws:s3":
        shown = _text(source, 40)
        return bad(f"Records[{index}].eventSource is {shown!r}, expected 'aws:s3'")
    name = _text(record.get("eventName"), 80) or ""
    if not name.startswith("ObjectCreated:"):
        log.info("ignoring %s event (only ObjectCreated is ingested)", name or "unnamed")
        return [], []
    s3 = record.get("s3")
    try:
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        raw_key = obj["key"]
    except (KeyError, TypeError, IndexError):
        return bad(f"Records[{index}] lacks s3.bucket.name or s3.object.key")
    if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket or not raw_key:
        return bad(f"Records[{index}] has an empty bucket name or object key")
    if not _BUCKET_RE.match(bucket):
        return bad(f"Records[{index}] names no valid S3 bucket")
    key = _text(unquote_plus(raw_key), MAX_KEY_CHARS) if len(raw_key) <= 3 * MAX_KEY_CHARS \
        else None
    if key is None:
        return bad(f"Records[{index}] has an object key that is not an S3 key (over "
                   f"{MAX_KEY_CHARS} characters or not text)", bucket)
    size = obj.get("size") if isinstance(obj, Mapping) else None
    etag = obj.get("eTag") or obj.get("etag") if isinstance(obj, Mapping) else None
    sequencer = obj.get("sequencer") if isinstance(obj, Mapping) else None
    return [S3ObjectEvent(
        bucket=bucket, key=key,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0
        else None,
        etag=_text(etag, 80), event_name=name,
        event_time=_parse_time(record.get("eventTime")), sequencer=_text(sequencer, 80))], []


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    # S3 stamps events with its own clock: a time it cannot have written is no time at all
    if parsed.year < 2000 or parsed > datetime.now(UTC) + timedelta(days=1):
        return None
    return parsed


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
