"""The raw-photo handler: ``raw/{device_id}/{name}.jpg`` created -> the vision service -> sightings.

For each ObjectCreated record under ``raw/`` (docs/design.md, "Cloud"):

1. the photo is recorded as a ``raw`` row of `temporary` (the ingest handler's own step, so a
   bucket scan and this handler agree), keyed by bucket, key and sha256;
2. its EXIF time (with offset) and GPS (with its S/W references) are read here with piexif,
   its zone from the object's ``zone`` metadata (default ``other``);
3. the vision service reads vehicles and plates (:mod:`cloud_sync.service_client`, retried);
4. each plate sure enough to be evidence becomes a ``sighting`` row (plate, per-character
   confidences, place, time, scene embeddings), and the photo row turns ``processed``, in one
   transaction. The promoter later pairs sightings into reports (:mod:`cloud_sync.pairing`).

At-least-once delivery is safe: a processed photo is a replay; sighting ids are derived from
the photo's id and the plate, so a second run inserts nothing new. A service that does not
answer leaves the photo ``failed`` with the reason (the event is raised so Lambda retries it;
``gotcha cloud raw --retry`` or a re-delivered event picks it up again): nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud_sync import db, ingest
from cloud_sync.errors import PhotoRefusedError, ServiceUnavailableError
from cloud_sync.events import S3ObjectEvent, split_s3_event
from cloud_sync.exif import RawExif, read_raw_exif
from cloud_sync.service_client import ServiceClient
from gotcha_contracts.plate_grammar import parse_plate
from gotcha_contracts.rules import ZONES

log = logging.getLogger(__name__)

MAX_RAW_BYTES = 25_000_000
DEFAULT_ZONE = "other"
SIGHTING_SCHEMA = "gotcha.sighting/1"
OUTCOMES = ("processed", "replayed", "failed", "refused", "rejected", "ignored")

INSERT_SIGHTING_SQL = (
    "INSERT INTO `temporary` (report_id, source, status, reason, device_id, plate, "
    "plate_confidence, plate_use, zone, lat, lon, accuracy_m, first_seen_at, confirmed_at, "
    "bucket, manifest_key, manifest_etag, manifest_sha256, photo1_key, photo1_sha256, manifest, "
    "received_at) VALUES (%s, 'raw', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE id = id")


@dataclass(frozen=True)
class RawOutcome:
    """What became of one raw photo: processed|replayed|failed|refused|rejected|ignored."""

    status: str
    key: str
    detail: str = ""
    sightings: int = 0


def handle_event(event: object, conn: db.Connection, s3: Any, client: ServiceClient, *,
                 raise_on_failure: bool = True) -> dict[str, Any]:
    """Process every raw photo of an S3 event; return counts and outcomes.

    Raises ServiceUnavailableError after every record is done (and recorded) if the service
    could not be reached for any of them, so Lambda retries the event.
    """
    objects, bad = split_s3_event(event)
    outcomes = [RawOutcome("rejected", r.key, r.detail)
                for r in (ingest._reject_record(conn, record) for record in bad)]
    outcomes += [process_object(obj, conn, s3, client) for obj in objects]
    counts = Counter(o.status for o in outcomes)
    summary = {"records": len(outcomes), **{k: counts.get(k, 0) for k in OUTCOMES},
               "sightings": sum(o.sightings for o in outcomes),
               "outcomes": [o.__dict__ for o in outcomes]}
    failed = [o for o in outcomes if o.status == "failed"]
    if failed and raise_on_failure:
        raise ServiceUnavailableError(f"{len(failed)} raw photo(s) recorded as failed "
                                      f"({failed[0].key}: {failed[0].detail})"[:900])
    return summary


def process_object(obj: S3ObjectEvent, conn: db.Connection, s3: Any, client: ServiceClient
                   ) -> RawOutcome:
    """Record, read and process one raw photo; every outcome is stored, never dropped."""
    if not obj.key.startswith("raw/"):
        log.info("ignoring s3://%s/%s: not a raw photo", obj.bucket, obj.key)
        return RawOutcome("ignored", obj.key, "not under raw/")
    recorded = ingest.ingest_object(obj, conn, s3)
    if recorded.status == "rejected" or recorded.report_id is None:
        return RawOutcome("rejected", obj.key, recorded.detail)
    row = _photo_row(conn, recorded.report_id)
    if row is None or row["status"] == "processed":
        return RawOutcome("replayed", obj.key, "photo already processed")
    head = s3.head_object(Bucket=obj.bucket, Key=obj.key)
    if head["ContentLength"] > MAX_RAW_BYTES:
        reason = f"photo is {head['ContentLength']} bytes, over {MAX_RAW_BYTES}"
        _settle(conn, row["id"], "failed", reason)
        return RawOutcome("refused", obj.key, reason)
    data = s3.get_object(Bucket=obj.bucket, Key=obj.key)["Body"].read(MAX_RAW_BYTES + 1)
    exif = read_raw_exif(data)
    zone, zone_note = _zone(head)
    params = {"name": obj.key, "device_id": row["device_id"],
              "captured_at": exif.captured_at.isoformat() if exif.captured_at else None,
              "lat": exif.lat, "lon": exif.lon, "accuracy_m": exif.accuracy_m}
    try:
        answer = client.process_photo(data, params)
    except PhotoRefusedError as exc:
        _settle(conn, row["id"], "failed", str(exc))
        log.warning("s3://%s/%s: %s", obj.bucket, obj.key, exc)
        return RawOutcome("refused", obj.key, str(exc))
    except ServiceUnavailableError as exc:
        _settle(conn, row["id"], "failed", str(exc))
        log.warning("s3://%s/%s recorded as failed: %s", obj.bucket, obj.key, exc)
        return RawOutcome("failed", obj.key, str(exc))
    notes = [*exif.warnings, *([zone_note] if zone_note else [])]
    try:
        rows = sighting_rows(row, answer, exif, zone, notes)
    except (*ingest.CONTENT_ERRORS, AttributeError) as exc:  # an answer of the wrong shape
        reason = f"the vision service's answer is unusable ({type(exc).__name__}: {exc})"
        _settle(conn, row["id"], "failed", reason[:ingest.MAX_REASON])
        log.warning("s3://%s/%s: %s", obj.bucket, obj.key, reason)
        return RawOutcome("refused", obj.key, reason)
    summary = (f"{len(rows)} sighting(s): {', '.join(r['plate'] for r in rows)}" if rows
               else f"no plate sure enough to be evidence ({len(answer.get('plates') or [])} "
               "plate(s) seen)")
    if notes:
        summary += "; " + "; ".join(notes)

    def work(cur: db.pymysql.cursors.DictCursor) -> None:
        for r in rows:
            cur.execute(INSERT_SIGHTING_SQL, [r[c] for c in SIGHTING_COLUMNS])
        cur.execute("UPDATE `temporary` SET status = 'processed', reason = %s, processed_at = %s "
                    "WHERE id = %s AND status IN ('raw', 'failed')",
                    (summary[:ingest.MAX_REASON], db.utc_now(), row["id"]))

    db.run_transaction(conn, work)
    log.info("raw photo s3://%s/%s: %s", obj.bucket, obj.key, summary)
    return RawOutcome("processed", obj.key, summary, len(rows))


SIGHTING_COLUMNS = (
    "report_id", "status", "reason", "device_id", "plate", "plate_confidence", "plate_use",
    "zone", "lat", "lon", "accuracy_m", "first_seen_at", "confirmed_at", "bucket",
    "manifest_key", "manifest_etag", "manifest_sha256", "photo1_key", "photo1_sha256",
    "manifest", "received_at")


def sighting_rows(photo: dict[str, Any], answer: dict[str, Any], exif: RawExif, zone: str,
                  notes: list[str]) -> list[dict[str, Any]]:
    """One `temporary` row per evidence plate of the service's answer.

    Time and place are the photo's own (EXIF, read here or by the service); without them a
    sighting is kept but ``rejected`` with the reason, since it can never be evidence.
    """
    meta = answer.get("meta") or {}
    captured = exif.captured_at or _answer_time(meta)
    place = ((exif.lat, exif.lon, exif.accuracy_m) if exif.lat is not None
             else _answer_place(meta))
    missing = [what for what, gone in (("no capture time in EXIF", captured is None),
                                       ("no GPS in EXIF", place is None)) if gone]
    rows = []
    for sighting in answer.get("sightings") or []:
        parsed = parse_plate(str(sighting.get("plate", "")))
        if parsed is None:
            continue
        doc = {"schema": SIGHTING_SCHEMA, "photo_report_id": photo["report_id"],
               "time_source": "exif" if captured is not None else None, "notes": notes,
               **{k: sighting.get(k) for k in (
                   "plate_raw", "char_confidences", "plate_box", "vehicle_box",
                   "scene_embedding", "vehicle_embedding", "scene_model_id")},
               "models": answer.get("models")}
        body = json.dumps(doc, ensure_ascii=False, sort_keys=True)
        when = db.db_time(captured) if captured is not None else None
        rows.append({
            "report_id": str(uuid.uuid5(ingest.RAW_NAMESPACE,
                                        f"{photo['report_id']}/{parsed.text}")),
            "status": "rejected" if missing else "sighting",
            "reason": "; ".join(missing) + " (cannot be evidence)" if missing else None,
            "device_id": photo["device_id"], "plate": parsed.text,
            "plate_confidence": float(sighting.get("confidence") or 0.0),
            "plate_use": parsed.use, "zone": zone,
            "lat": place[0] if place else None, "lon": place[1] if place else None,
            "accuracy_m": place[2] if place else None,
            "first_seen_at": when, "confirmed_at": when, "bucket": photo["bucket"],
            "manifest_key": photo["manifest_key"], "manifest_etag": photo["manifest_etag"],
            "manifest_sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
            "photo1_key": photo["photo1_key"], "photo1_sha256": photo["photo1_sha256"],
            "manifest": body, "received_at": photo["received_at"]})
    return rows


def _answer_time(meta: dict[str, Any]) -> datetime | None:
    if meta.get("time_source") not in ("exif", "request"):
        return None
    try:
        return datetime.fromisoformat(str(meta.get("captured_at")))
    except ValueError:
        return None


def _answer_place(meta: dict[str, Any]) -> tuple[float, float, float | None] | None:
    loc = meta.get("location")
    if meta.get("location_source") not in ("exif", "request") or not isinstance(loc, dict):
        return None
    return float(loc["lat"]), float(loc["lon"]), loc.get("accuracy_m")


def _zone(head: dict[str, Any]) -> tuple[str, str | None]:
    zone = (head.get("Metadata") or {}).get("zone", "").strip()
    if not zone:
        return DEFAULT_ZONE, None
    if zone not in ZONES:
        return DEFAULT_ZONE, f"unknown zone {zone[:32]!r} in the object's metadata; using other"
    return zone, None


def _photo_row(conn: db.Connection, report_id: str) -> dict[str, Any] | None:
    def work(cur: db.pymysql.cursors.DictCursor) -> dict[str, Any] | None:
        cur.execute("SELECT id, report_id, status, device_id, bucket, manifest_key, "
                    "manifest_etag, photo1_key, photo1_sha256, received_at FROM `temporary` "
                    "WHERE report_id = %s", (report_id,))
        return cur.fetchone()

    return db.run_transaction(conn, work)


def _settle(conn: db.Connection, row_id: int, status: str, reason: str) -> None:
    def work(cur: db.pymysql.cursors.DictCursor) -> None:
        cur.execute("UPDATE `temporary` SET status = %s, reason = %s, processed_at = %s "
                    "WHERE id = %s AND status IN ('raw', 'failed')",
                    (status, reason[:ingest.MAX_REASON], db.utc_now(), row_id))

    db.run_transaction(conn, work)


def retry_failed(conn: db.Connection, s3: Any, client: ServiceClient, limit: int = 100
                 ) -> dict[str, Any]:
    """Process again the raw photos left ``raw`` or ``failed`` (a backlog, an outage)."""
    from cloud_sync.events import s3_event, s3_event_record

    def work(cur: db.pymysql.cursors.DictCursor) -> list[dict[str, Any]]:
        cur.execute("SELECT bucket, photo1_key, manifest_etag, received_at FROM `temporary` "
                    "WHERE source = 'raw' AND status IN ('raw', 'failed') AND photo2_key IS NULL "
                    "AND plate IS NULL ORDER BY id LIMIT %s", (limit,))
        return list(cur.fetchall())

    rows = db.run_transaction(conn, work)
    event = s3_event([s3_event_record(r["bucket"], r["photo1_key"], size=0,
                                      etag=r["manifest_etag"] or "",
                                      event_time=r["received_at"].replace(tzinfo=UTC))
                      for r in rows])
    return handle_event(event, conn, s3, client, raise_on_failure=False)
