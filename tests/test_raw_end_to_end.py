"""Cameras without the agent, end to end: raw photos in S3 -> raw_handler -> the real vision
service over HTTP -> sightings in MariaDB -> promote_handler pairs and promotes -> `final`.

The two photos of one parked vehicle are made from one real photo: the second with the camera
moved a little and the light changed, six minutes later in its EXIF, same GPS. S3 delivers
every event twice. A third photo of the same plate at another spot makes no report.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from cloud_helpers import BUCKET, event_for, query, settings
from conftest import shared_path
from serve_helpers import KEY, service_config

from cloud_sync import handlers, raw
from cloud_sync.errors import ServiceUnavailableError
from cloud_sync.service_client import ServiceClient, ServiceSettings
from edge_agent.io.exif import write_exif
from edge_agent.results import GeoPoint
from edge_agent.service.server import ServiceServer, create_server

PHOTO = "scenes/e2e-dev/인천71바4770.jpg"
NO_EXIF_PHOTO, NO_EXIF_PLATE = "scenes/e2e-dev/253라2081.jpg", "253라2081"
PLATE = "인천71바4770"
SPOT = GeoPoint(37.56647, 126.97796, accuracy_m=5.0)
ELSEWHERE = GeoPoint(37.56917, 126.97796, accuracy_m=5.0)  # 300 m north


@pytest.fixture(scope="module")
def service(models_dir: Path) -> Iterator[ServiceServer]:
    server = create_server(service_config(models_dir, workers=1, queue=4), "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def original() -> bytes:
    return shared_path("data/" + PHOTO).read_bytes()


def reshot(data: bytes, angle: float, shift: tuple[float, float], light: tuple[float, float]
           ) -> bytes:
    """The same scene with the camera turned, moved and zoomed a little, and other light."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.02)
    matrix[0, 2] += shift[0] * width
    matrix[1, 2] += shift[1] * height
    moved = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    lit = cv2.convertScaleAbs(moved, alpha=light[0], beta=light[1])
    ok, encoded = cv2.imencode(".jpg", lit, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return encoded.tobytes()


@pytest.fixture()
def lambda_env(monkeypatch: pytest.MonkeyPatch, mysql_database, moto_s3, service) -> None:
    """What the Lambdas' configuration would hold; their cached clients start fresh."""
    db = settings(mysql_database)
    for name, value in {"RDS_HOST": db.host, "RDS_PORT": str(db.port), "RDS_USERNAME": db.user,
                        "RDS_PASSWORD": db.password, "RDS_DATABASE": db.database,
                        "S3_ENDPOINT_URL": moto_s3.endpoint_url, "AWS_REGION": "us-east-1",
                        "GOTCHA_SERVICE_URL": service.url, "GOTCHA_SERVICE_API_KEY": KEY,
                        "GOTCHA_SERVICE_BACKOFF_S": "0.05"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handlers, "_conn", None)
    monkeypatch.setattr(handlers, "_s3", None)
    yield
    if handlers._conn is not None:
        handlers._conn.close()


def _put(s3, key: str, data: bytes, **metadata: str) -> dict:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType="image/jpeg",
                  Metadata=metadata)
    return event_for(s3, BUCKET, key)


def test_two_raw_photos_of_one_parked_vehicle_make_one_final(s3, conn, lambda_env,
                                                             original: bytes) -> None:
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    photos = {
        "raw/cam-7/0901.jpg": write_exif(original, first, SPOT, tz="Asia/Seoul"),
        # camera turned 1 degree and moved, light changed; the model reads this view's plate
        # at 0.83, surely enough to be evidence
        "raw/cam-7/0907.jpg": write_exif(reshot(original, 1.0, (0.015, -0.01), (0.85, 12)),
                                         first + timedelta(minutes=6), SPOT, tz="Asia/Seoul"),
    }
    events = [_put(s3, key, data) for key, data in photos.items()]
    summaries = [handlers.raw_handler(event) for event in events + events]  # at least once
    assert [s["processed"] for s in summaries] == [1, 1, 0, 0]
    assert [s["replayed"] for s in summaries] == [0, 0, 1, 1]
    assert [s["sightings"] for s in summaries[:2]] == [1, 1]

    result = handlers.promote_handler({}, None)
    assert result["pairing"]["paired"] == 1 and result["final"] == 1, result
    [final] = query(conn, "SELECT * FROM final")
    assert final["plate"] == PLATE and final["device_id"] == "cam-7"
    assert (final["photo1_key"], final["photo2_key"]) == tuple(photos)
    assert final["scene_score"] >= 0.5 and final["zone"] == "other"
    assert final["confirmed_at"] - final["first_seen_at"] == timedelta(minutes=6)

    # a third photo of the same plate, at another spot: no partner, no second report
    third = write_exif(reshot(original, -1.0, (-0.01, 0.01), (1.1, -8)),
                       first + timedelta(minutes=12), ELSEWHERE, tz="Asia/Seoul")
    event = _put(s3, "raw/cam-7/0913.jpg", third)
    assert [handlers.raw_handler(event)["processed"] for _ in range(2)] == [1, 0]
    result = handlers.promote_handler({}, None)
    assert result["pairing"] == {"paired": 0, "duplicate": 0, "expired": 0, "waiting": 1,
                                 "skipped": False}
    assert len(query(conn, "SELECT * FROM final")) == 1
    rows = query(conn, "SELECT status, plate FROM `temporary` ORDER BY id")
    statuses = sorted(r["status"] for r in rows)
    assert statuses == ["final", "paired", "paired", "processed", "processed", "processed",
                        "sighting"], rows


def test_a_photo_without_exif_is_processed_but_never_evidence(s3, conn, lambda_env) -> None:
    # a plate the default models read surely after re-encoding without its EXIF
    original = shared_path("data/" + NO_EXIF_PHOTO).read_bytes()
    plain = reshot(original, 0.0, (0.0, 0.0), (1.0, 0))  # re-encoded: no EXIF at all
    assert raw.read_raw_exif(plain).captured_at is None
    summary = handlers.raw_handler(_put(s3, "raw/phone-3/IMG_0001.jpg", plain))
    assert summary["processed"] == 1 and summary["sightings"] == 1
    [sighting] = query(conn, "SELECT * FROM `temporary` WHERE plate IS NOT NULL")
    assert sighting["status"] == "rejected" and sighting["plate"] == NO_EXIF_PLATE
    assert "no capture time in EXIF" in sighting["reason"]
    assert "no GPS in EXIF" in sighting["reason"]
    [photo] = query(conn, "SELECT * FROM `temporary` WHERE plate IS NULL")
    assert photo["status"] == "processed" and "no EXIF" in photo["reason"]
    assert handlers.promote_handler({}, None)["final"] == 0


def test_service_down_is_retried_recorded_and_nothing_is_lost(s3, conn, lambda_env, service,
                                                              original: bytes) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sleeps: list[float] = []
    down = ServiceClient(ServiceSettings(url=dead, api_key=KEY, attempts=3, timeout_s=5,
                                         backoff_s=0.01), sleep=sleeps.append)
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    event = _put(s3, "raw/cam-9/a.jpg", write_exif(original, taken, SPOT), zone="sidewalk")
    with pytest.raises(ServiceUnavailableError, match="1 raw photo"):
        raw.handle_event(event, conn, s3, down)
    assert len(sleeps) == 2  # three attempts, backing off between them
    [photo] = query(conn, "SELECT * FROM `temporary`")
    assert photo["status"] == "failed" and "failed 3 attempt" in photo["reason"]

    # the service is back: a retry of the backlog processes it, once
    up = ServiceClient(ServiceSettings(url=service.url, api_key=KEY))
    summary = raw.retry_failed(conn, s3, up)
    assert summary["processed"] == 1 and summary["sightings"] == 1
    assert raw.retry_failed(conn, s3, up)["records"] == 0
    rows = {r["status"]: r for r in query(conn, "SELECT * FROM `temporary`")}
    assert set(rows) == {"processed", "sighting"}
    assert rows["sighting"]["zone"] == "sidewalk" and rows["sighting"]["plate"] == PLATE
    assert rows["sighting"]["confirmed_at"] == taken.replace(tzinfo=None)
