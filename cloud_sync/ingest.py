"""The ingest handler's work: an S3 ObjectCreated event -> a row in `temporary`, exactly once.

For ``reports/{device}/{yyyy}/{mm}/{dd}/{report_id}/manifest.json`` it fetches the manifest,
validates it (schema, plate grammar, that its key matches its content), range-checks every
time and place against the cloud's limits (cloud_sync.limits), hashes each photo in S3 under
the same prefix (streamed, bounded; never trusting object metadata) and compares it with the
manifest, and inserts the report as ``pending``.

* A replayed event (same manifest bytes) changes nothing.
* A bad manifest or photo is recorded in `rejected_events` with its reason (keyed by bucket,
  key and ETag, so even an unreadable one is recorded, once), never dropped silently. A second,
  different manifest for a report already received is rejected the same way. So is a record
  of the event that is not S3's, and an object whose content makes the handler fail: one bad
  record never stops the others, and Lambda never retries it for ever.
* A manifest whose photos are not in S3: the device writes the manifest last, so this means
  photos vanished or events arrived out of order. The report is recorded as ``waiting`` (so it
  is visible) and PhotosNotReadyError is raised so Lambda retries the event; a later delivery
  that finds the photos turns it ``pending``. If the retries run out the row stays ``waiting``
  and ``gotcha cloud ingest --scan`` re-drives it.
* ``raw/{device_id}/{name}.jpg`` (devices without the agent) becomes a ``raw`` single sighting
  for the vision service; it is not a report and the promoter leaves it alone.
* Any other key is ignored with a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pymysql

from cloud_sync import db
from cloud_sync.errors import PhotosNotReadyError, RejectedObjectError
from cloud_sync.events import (
    BadRecord,
    S3ObjectEvent,
    s3_event,
    s3_event_record,
    split_s3_event,
)
from cloud_sync.limits import CloudLimits, limits_from_env
from cloud_sync.rejections import MAX_REASON, peek_ids, record_rejected
from cloud_sync.s3_objects import object_sha256, read_bounded
from cloud_sync.s3_objects import s3_missing as _s3_missing
from gotcha_contracts.errors import ManifestError
from gotcha_contracts.manifest import MAX_MANIFEST_BYTES, SCHEMA_V1, Manifest, validate_manifest
from gotcha_contracts.rules_diff import RULES_VERSION
from gotcha_contracts.s3_layout import MANIFEST_NAME, parse_report_key

log = logging.getLogger(__name__)

RAW_KEY = re.compile(r"^raw/(?P<device>[A-Za-z0-9_.-]{1,64})/(?P<name>[^/]+)\.(?:jpe?g|JPE?G)$")
RAW_NAMESPACE = uuid.UUID("6b1f4f5e-3d0a-4c1e-9a57-0c2f5a7d9e11")

INSERT_TEMPORARY_COLUMNS = (
    "report_id", "source", "status", "reason", "device_id", "plate", "plate_confidence",
    "plate_use", "zone", "lat", "lon", "accuracy_m", "first_seen_at", "confirmed_at",
    "scene_score", "photo_distance_m", "bucket", "manifest_key", "manifest_etag",
    "manifest_sha256", "photo1_key", "photo1_sha256", "photo2_key", "photo2_sha256",
    "manifest", "received_at", "plate_char_confidences", "rules")
INSERT_TEMPORARY_SQL = (
    f"INSERT INTO `temporary` ({', '.join(INSERT_TEMPORARY_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(INSERT_TEMPORARY_COLUMNS))})")
UPDATE_WAITING_SQL = (
    "UPDATE `temporary` SET "
    + ", ".join(f"{c} = %s" for c in INSERT_TEMPORARY_COLUMNS if c != "report_id")
    + " WHERE id = %s AND status = 'waiting'")


Rejected = RejectedObjectError  # the object cannot be accepted (recorded, not retried)

# What a hostile object can make the code below raise: recorded as a rejection, never retried.
# (Network and connection errors are not among them: those propagate, and Lambda retries.)
CONTENT_ERRORS = (ValueError, ArithmeticError, RecursionError, TypeError, KeyError,
                  pymysql.err.DataError, pymysql.err.IntegrityError)


@dataclass(frozen=True)
class Outcome:
    """What became of one S3 object: accepted|replayed|waiting|rejected|raw|ignored."""

    status: str
    key: str
    detail: str = ""
    report_id: str | None = None


OUTCOMES = ("accepted", "replayed", "waiting", "rejected", "raw", "ignored")


def handle_event(event: object, conn: db.Connection, s3: Any, *,
                 raise_on_waiting: bool = True,
                 limits: CloudLimits | None = None) -> dict[str, Any]:
    """Ingest every ObjectCreated record of a Lambda event; return counts and outcomes.

    A record that is not S3's (or an event that is not S3 JSON at all) is recorded in
    `rejected_events` with the reason. Raises PhotosNotReadyError after all records are done
    if any manifest is waiting for its photos (Lambda then retries the whole event, which is
    safe: the other records replay as no-ops). ``limits``: default from the environment.
    """
    limits = limits or limits_from_env()
    objects, bad = split_s3_event(event)
    outcomes = [_reject_record(conn, record) for record in bad]
    outcomes += [ingest_object(obj, conn, s3, limits) for obj in objects]
    counts = Counter(o.status for o in outcomes)
    summary = {"records": len(outcomes), **{k: counts.get(k, 0) for k in OUTCOMES},
               "outcomes": [o.__dict__ for o in outcomes]}
    waiting = [o for o in outcomes if o.status == "waiting"]
    if waiting and raise_on_waiting:
        raise PhotosNotReadyError(
            f"{len(waiting)} manifest(s) name photos not in S3 yet ({waiting[0].key}: "
            f"{waiting[0].detail}); recorded as waiting, retry the event later")
    return summary


def bucket_events(s3: Any, bucket: str, prefix: str = "reports/",
                  records_per_event: int = 100) -> Iterator[dict[str, Any]]:
    """S3 events, as S3 would have sent them, for the manifests and raw photos under ``prefix``.

    Re-drives what is already in a bucket (a backfill, or reports left ``waiting`` after
    Lambda's retries ran out); ingesting is idempotent, so replaying everything is safe.
    """
    records: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if not (key.endswith("/" + MANIFEST_NAME) or key.startswith("raw/")):
                continue
            records.append(s3_event_record(bucket, key, size=item["Size"], etag=item["ETag"],
                                           event_time=item["LastModified"]))
            if len(records) >= records_per_event:
                yield s3_event(records)
                records = []
    if records:
        yield s3_event(records)


def ingest_bucket(s3: Any, conn: db.Connection, bucket: str, prefix: str = "reports/",
                  limits: CloudLimits | None = None) -> dict[str, int]:
    """Ingest every manifest (and raw photo) under ``prefix``; return the summed counts."""
    limits = limits or limits_from_env()
    totals: Counter[str] = Counter()
    for event in bucket_events(s3, bucket, prefix):
        summary = handle_event(event, conn, s3, raise_on_waiting=False, limits=limits)
        totals.update({k: summary[k] for k in ("records", *OUTCOMES)})
    return {k: totals.get(k, 0) for k in ("records", *OUTCOMES)}


def _reject_record(conn: db.Connection, record: BadRecord) -> Outcome:
    record_rejected(conn, bucket=record.bucket, key=record.key, etag=None,
                    reason=record.reason, fingerprint=record.fingerprint)
    log.warning("rejected event record (s3://%s/%s): %s", record.bucket, record.key,
                record.reason)
    return Outcome("rejected", record.key, record.reason)


def ingest_object(obj: S3ObjectEvent, conn: db.Connection, s3: Any,
                  limits: CloudLimits | None = None) -> Outcome:
    """Ingest one created object; the decision is logged and stored, never silent.

    An object whose content makes the checks below fail in a way they did not foresee is
    rejected with the error as its reason (and logged with its traceback), not retried.
    """
    limits = limits or limits_from_env()
    try:
        return _ingest_object(obj, conn, s3, limits)
    except Rejected as exc:  # e.g. a raw photo gone between two reads
        reason = str(exc)
    except CONTENT_ERRORS as exc:
        log.exception("ingest failed on s3://%s/%s", obj.bucket, obj.key)
        reason = f"ingest could not process this object: {type(exc).__name__}: {exc}"
    _record_rejected(conn, obj, reason, (None, None))
    return Outcome("rejected", obj.key, reason[:MAX_REASON])


def _ingest_object(obj: S3ObjectEvent, conn: db.Connection, s3: Any,
                   limits: CloudLimits) -> Outcome:
    if obj.key.startswith("raw/"):
        return _ingest_raw(obj, conn, s3)
    parsed_key = parse_report_key(obj.key)
    if parsed_key is None and obj.key.endswith("/" + MANIFEST_NAME):
        reason = ("manifest key is not reports/{device_id}/{yyyy}/{mm}/{dd}/{report_id}/"
                  "manifest.json")
        _record_rejected(conn, obj, reason, (None, None))
        log.warning("rejected s3://%s/%s: %s", obj.bucket, obj.key, reason)
        return Outcome("rejected", obj.key, reason)
    if parsed_key is None or not parsed_key.is_manifest:
        log.info("ignoring s3://%s/%s: not a report manifest", obj.bucket, obj.key)
        return Outcome("ignored", obj.key, "not a manifest")
    body: bytes | None = None
    try:
        body = read_bounded(s3, obj.bucket, obj.key, MAX_MANIFEST_BYTES, "manifest")
        report = _check_manifest(body, obj)
        out_of_range = limits.manifest_failures(report, _received_at(obj))
        if out_of_range:
            raise Rejected("; ".join(out_of_range))
        photo_problem = _check_photos(s3, obj.bucket, report, limits.max_photo_bytes)
    except Rejected as exc:
        reason = str(exc)[:MAX_REASON]
        _record_rejected(conn, obj, reason, peek_ids(body), settle_waiting=True)
        log.warning("rejected s3://%s/%s: %s", obj.bucket, obj.key, reason)
        return Outcome("rejected", obj.key, reason)
    row = _row(obj, body, report, waiting_reason=photo_problem)
    status = db.run_transaction(conn, lambda cur: _store(cur, row),
                                retry_on=db.RETRYABLE | {1062})
    if status == "conflict":
        reason = (f"report {row['report_id']} was already received with a different manifest; "
                  "a report is immutable once sent")
        _record_rejected(conn, obj, reason, (row["report_id"], row["device_id"]))
        log.warning("rejected s3://%s/%s: %s", obj.bucket, obj.key, reason)
        return Outcome("rejected", obj.key, reason, row["report_id"])
    if photo_problem and status in ("accepted", "waiting"):
        log.warning("waiting s3://%s/%s: %s", obj.bucket, obj.key, photo_problem)
        return Outcome("waiting", obj.key, photo_problem, row["report_id"])
    log.info("%s report %s from s3://%s/%s", status, row["report_id"], obj.bucket, obj.key)
    return Outcome(status, obj.key, "", row["report_id"])


# --- manifest -----------------------------------------------------------------------------

def _check_manifest(body: bytes, obj: S3ObjectEvent) -> Manifest:
    try:
        report = validate_manifest(body)
    except ManifestError as exc:
        raise Rejected(f"invalid manifest: {exc.reason}") from None
    if obj.key != report.key:
        raise Rejected(f"manifest key does not match its content: expected {report.key}")
    return report


def _check_photos(s3: Any, bucket: str, report: Manifest, max_bytes: int) -> str | None:
    """None when every photo is in S3 with its sha256; a reason while one is missing.

    validate_manifest already holds photo keys to the report's own folder. Each photo is
    hashed here (object metadata is the uploader's word, not evidence); one whose sha256
    differs from the manifest's, or that is too large, is Rejected.
    """
    missing: list[str] = []
    for photo in report.photos:
        name = photo.key.rsplit("/", 1)[-1]
        actual = object_sha256(s3, bucket, photo.key, max_bytes)
        if actual is None:
            missing.append(name)
        elif actual != photo.sha256:
            raise Rejected(f"photo {name} sha256 {actual[:12]}... does not match the "
                           f"manifest's {photo.sha256[:12]}...")
    return f"photo(s) not in S3: {', '.join(missing)}" if missing else None


def _hash_object(s3: Any, bucket: str, key: str,
                 max_bytes: int = CloudLimits.max_photo_bytes) -> str:
    """The sha256 of an object's body (streamed, at most ``max_bytes``); Rejected if gone."""
    sha = object_sha256(s3, bucket, key, max_bytes)
    if sha is None:
        raise Rejected(f"{key.rsplit('/', 1)[-1]} no longer exists in S3")
    return sha


def _received_at(obj: S3ObjectEvent) -> datetime:
    """When the object reached S3: the event's time (S3's clock), else now."""
    return obj.event_time or datetime.now(UTC)


# --- rows ---------------------------------------------------------------------------------

def _row(obj: S3ObjectEvent, body: bytes, report: Manifest,
         waiting_reason: str | None) -> dict[str, Any]:
    photos = report.photos
    parsed = report.parsed_plate
    loc = report.location
    return {
        "report_id": str(report.report_id), "source": "agent",
        "status": "waiting" if waiting_reason else "pending", "reason": waiting_reason,
        "device_id": report.device_id, "plate": parsed.text,
        "plate_confidence": report.plate_confidence, "plate_use": parsed.use,
        "zone": report.zone, "lat": loc.lat, "lon": loc.lon, "accuracy_m": loc.accuracy_m,
        "first_seen_at": db.db_time(report.first_seen_at),
        "confirmed_at": db.db_time(report.confirmed_at),
        "scene_score": report.scene_score, "photo_distance_m": report.photo_distance_m,
        "bucket": obj.bucket, "manifest_key": obj.key, "manifest_etag": obj.etag,
        "manifest_sha256": hashlib.sha256(body).hexdigest(),
        "photo1_key": photos[0].key, "photo1_sha256": photos[0].sha256,
        "photo2_key": photos[1].key, "photo2_sha256": photos[1].sha256,
        "manifest": body.decode("utf-8"), "received_at": db.db_time(_received_at(obj)),
        "plate_char_confidences": None if report.plate_char_confidences is None
        else json.dumps(list(report.plate_char_confidences)),
        "rules": None if report.schema == SCHEMA_V1 else json.dumps(
            {"version": RULES_VERSION, "overrides": report.rules_overrides}, sort_keys=True,
            separators=(",", ":")),
    }


def _store(cur: db.pymysql.cursors.DictCursor, row: dict[str, Any]) -> str:
    """Insert, or settle against the row already there; returns the outcome."""
    cur.execute("SELECT id, status, manifest_sha256 FROM `temporary` WHERE report_id = %s "
                "FOR UPDATE", (row["report_id"],))
    existing = cur.fetchone()
    if existing is None:
        cur.execute(INSERT_TEMPORARY_SQL, [row[c] for c in INSERT_TEMPORARY_COLUMNS])
        if row["status"] == "pending":
            _touch_device(cur, row)
        return "accepted" if row["status"] == "pending" else "waiting"
    if existing["manifest_sha256"] != row["manifest_sha256"]:
        return "conflict"
    if existing["status"] == "waiting":
        values = [row[c] for c in INSERT_TEMPORARY_COLUMNS if c != "report_id"]
        cur.execute(UPDATE_WAITING_SQL, [*values, existing["id"]])
        if row["status"] == "pending":
            _touch_device(cur, row)
            return "accepted"
        return "waiting"
    return "replayed"


def _touch_device(cur: db.pymysql.cursors.DictCursor, row: dict[str, Any]) -> None:
    t = row["confirmed_at"] or row["received_at"]
    cur.execute("INSERT INTO devices (device_id, first_report_at, last_report_at, reports) "
                "VALUES (%s, %s, %s, 1) ON DUPLICATE KEY UPDATE reports = reports + 1, "
                "first_report_at = LEAST(first_report_at, %s), "
                "last_report_at = GREATEST(last_report_at, %s)",
                (row["device_id"], t, t, t, t))


def _record_rejected(conn: db.Connection, obj: S3ObjectEvent, reason: str,
                     ids: tuple[str | None, str | None], *, settle_waiting: bool = False
                     ) -> None:
    """Record a rejected object once per (bucket, key, ETag, reason); see record_rejected."""
    record_rejected(conn, bucket=obj.bucket, key=obj.key, etag=obj.etag, reason=reason,
                    ids=ids, received_at=obj.event_time, settle_waiting=settle_waiting)


# --- raw photos ---------------------------------------------------------------------------

def _ingest_raw(obj: S3ObjectEvent, conn: db.Connection, s3: Any) -> Outcome:
    """A raw photo from a device without the agent: one `raw` sighting for the vision service.

    Its time is the upload time (EXIF is read by the vision service, not this lean handler).
    """
    match = RAW_KEY.match(obj.key)
    if match is None:
        reason = "raw photo key must be raw/{device_id}/{name}.jpg with device_id [A-Za-z0-9_.-]"
        _record_rejected(conn, obj, reason, (None, None))
        return Outcome("rejected", obj.key, reason)
    try:
        s3.head_object(Bucket=obj.bucket, Key=obj.key)
    except Exception as exc:
        if _s3_missing(exc):
            reason = "raw photo no longer exists in S3"
            _record_rejected(conn, obj, reason, (None, match["device"]))
            return Outcome("rejected", obj.key, reason)
        raise
    sha = _hash_object(s3, obj.bucket, obj.key)
    sighting_id = str(uuid.uuid5(RAW_NAMESPACE, f"{obj.bucket}/{obj.key}/{sha}"))
    when = db.db_time(obj.event_time or datetime.now(UTC))

    def work(cur: db.pymysql.cursors.DictCursor) -> str:
        cur.execute("INSERT INTO `temporary` (report_id, source, status, reason, device_id, "
                    "first_seen_at, bucket, manifest_key, manifest_etag, photo1_key, "
                    "photo1_sha256, received_at) VALUES (%s, 'raw', 'raw', %s, %s, %s, %s, %s, "
                    "%s, %s, %s, %s) ON DUPLICATE KEY UPDATE id = id",
                    (sighting_id, "waiting for the vision service", match["device"], when,
                     obj.bucket, obj.key, obj.etag, obj.key, sha, when))
        return "raw" if cur.rowcount == 1 else "replayed"

    status = db.run_transaction(conn, work)
    log.info("%s raw sighting %s from s3://%s/%s", status, sighting_id, obj.bucket, obj.key)
    return Outcome(status, obj.key, "", sighting_id)
