"""Shared by the cloud tests: device-style reports in S3, the S3 events AWS would send, a DB.

A report here is exactly what a device uploads (gotcha_contracts.manifest_build, photo keys
from the shared layout, ``sha256`` object metadata, manifest last); events come from
cloud_sync.events.s3_event_record, field for field as S3 sends them.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql

from cloud_sync import db
from cloud_sync.config import DbSettings
from cloud_sync.events import s3_event, s3_event_record
from gotcha_contracts.manifest import parse_time
from gotcha_contracts.manifest_build import build_manifest, manifest_bytes
from gotcha_contracts.rules import DEFAULT_RULES, Rules
from gotcha_contracts.s3_layout import manifest_key, photo_keys

BUCKET = "gotcha-reports"
SEOUL_CITY_HALL = (37.56647, 126.97796)


@dataclass
class Report:
    """One confirmed report as a device would upload it."""

    doc: dict[str, Any]
    photos: dict[str, bytes] = field(default_factory=dict)

    @property
    def report_id(self) -> str:
        return self.doc["report_id"]

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.doc["device_id"], parse_time(self.doc["confirmed_at"]),
                            self.report_id)

    @property
    def manifest_body(self) -> bytes:
        return manifest_bytes(self.doc)


def photo_bytes(seed: str) -> bytes:
    """A small, real baseline JPEG whose pixels depend on ``seed`` (so sha256 differs)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def make_report(*, device_id: str = "dev-01", plate: str = "12가3456", zone: str = "sidewalk",
                where: tuple[float, float] = SEOUL_CITY_HALL,
                where2: tuple[float, float] | None = None,
                confirmed_at: datetime | None = None, interval_s: float = 90.0,
                scene_score: float = 0.9, report_id: str | None = None,
                photos: tuple[bytes, bytes] | None = None,
                char_confidences: list[float] | None = None,
                rules: Rules = DEFAULT_RULES) -> Report:
    """A device's report: photo 1 taken at ``where``, photo 2 at ``where2`` (default the same)."""
    confirmed = (confirmed_at or datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    first = confirmed - timedelta(seconds=interval_s)
    report_id = report_id or str(uuid.uuid4())
    data = photos or (photo_bytes(report_id + "-1"), photo_bytes(report_id + "-2"))
    places = (where, where2 or where)
    shots = [{"sha256": hashlib.sha256(b).hexdigest(), "captured_at": t,
              "location": {"lat": p[0], "lon": p[1], "accuracy_m": 8.0},
              "vehicle_box": [10, 10, 200, 150], "plate_box": [60, 100, 120, 120],
              "scene_embedding": [0.1, 0.2, 0.3]}
             for b, t, p in zip(data, (first, confirmed), places, strict=True)]
    doc = build_manifest(
        report_id=report_id, device_id=device_id, plate=plate, plate_confidence=0.93, zone=zone,
        plate_char_confidences=char_confidences, first_seen_at=first, confirmed_at=confirmed,
        photos=shots, scene_score=scene_score, rules=rules,
        models={"vehicle_detector": "yolov8n-coco", "plate_reader": "gotcha-kr-plate-crnn",
                "scene_embedder": None})
    keys = photo_keys(device_id, confirmed, report_id)
    return Report(doc=doc, photos=dict(zip(keys, data, strict=True)))


def put_photos(s3: Any, report: Report, bucket: str = BUCKET, *, metadata: bool = True) -> None:
    for key, body in report.photos.items():
        extra = {"Metadata": {"sha256": hashlib.sha256(body).hexdigest()}} if metadata else {}
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/jpeg", **extra)


def put_manifest(s3: Any, report: Report, bucket: str = BUCKET,
                 body: bytes | None = None, key: str | None = None) -> str:
    key = key or report.manifest_key
    s3.put_object(Bucket=bucket, Key=key, Body=report.manifest_body if body is None else body,
                  ContentType="application/json")
    return key


def upload(s3: Any, report: Report, bucket: str = BUCKET) -> dict[str, Any]:
    """Photos, then the manifest (as the device does); returns the S3 event for the manifest."""
    put_photos(s3, report, bucket)
    key = put_manifest(s3, report, bucket)
    return event_for(s3, bucket, key)


def event_for(s3: Any, bucket: str, *keys: str) -> dict[str, Any]:
    """The ObjectCreated:Put notification S3 sends for objects already stored."""
    records = []
    for i, key in enumerate(keys):
        head = s3.head_object(Bucket=bucket, Key=key)
        records.append(s3_event_record(bucket, key, size=head["ContentLength"],
                                       etag=head["ETag"], sequencer=f"{i:016X}"))
    return s3_event(records)


def settings(database: dict[str, Any]) -> DbSettings:
    return DbSettings(host=database["host"], port=database["port"], user=database["user"],
                      password=database["password"], database=database["database"])


def fresh_db(database: dict[str, Any]) -> pymysql.connections.Connection:
    """Apply schema, zones and views to the test database; return a connection to it."""
    db.init_db(settings(database))
    return db.connect(settings(database))


def query(conn: pymysql.connections.Connection, sql: str, args: Any = None) -> list[dict]:
    conn.commit()  # end any open snapshot so we see other connections' commits
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = list(cur.fetchall())
    conn.commit()
    return rows


def run_at_once(database: dict[str, Any], count: int,
                work: Callable[[pymysql.connections.Connection], Any],
                timeout_s: float = 120.0) -> list[Any]:
    """``work`` in ``count`` threads, each on its own connection, released together (two
    Lambdas at once); the results, after asserting that none raised."""
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        own = db.connect(settings(database))
        try:
            barrier.wait()
            results.append(work(own))
        except Exception as exc:  # surfaced below, in the test's thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run, name=f"worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    assert not errors, errors
    assert not [t.name for t in threads if t.is_alive()], "a worker hung"
    assert len(results) == count
    return results

