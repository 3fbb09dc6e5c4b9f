"""The whole path, device -> S3 -> `temporary` -> `final`, with the network cut again and again.

Device side: the real SQLite store (confirmed reports in the outbox) and the real uploader
(S3ObjectStore, retries, circuit breaker). Cloud side: S3 notifications delivered at least once
(some twice) to the ingest handler, and two promoters running all the while. The moto S3
server is stopped and started several times during the upload. Nothing may be lost and
nothing may arrive twice: exactly 500 rows in `final`.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from cloud_helpers import BUCKET, fresh_db, photo_bytes, query, settings

from cloud_sync import db, ingest, promote
from cloud_sync.events import s3_event, s3_event_record
from edge_agent.config import StoreConfig
from edge_agent.results import Box, GeoPoint
from edge_agent.store.records import Sighting
from edge_agent.store.store import Store
from edge_agent.upload.object_store import S3ObjectStore, make_s3_client
from edge_agent.upload.uploader import StoreOutbox, Uploader, UploadSettings
from gotcha_contracts.plate_grammar import PRIVATE_LETTERS, parse_plate

REPORTS = 500
OUTAGES = 4
MODELS = {"vehicle_detector": "yolov8n-coco", "plate_reader": "gotcha-kr-plate-crnn",
          "scene_embedder": None}


def _plate(i: int) -> str:
    plate = f"{100 + i}{PRIVATE_LETTERS[i % len(PRIVATE_LETTERS)]}{1000 + i}"
    assert parse_plate(plate) is not None
    return plate


def _confirm_reports(store: Store, count: int) -> list[str]:
    """``count`` confirmed reports in the device outbox, as the lifecycle leaves them."""
    base = datetime.now(UTC) - timedelta(minutes=30)
    ids = []
    for i in range(count):
        plate = _plate(i)
        where = GeoPoint(37.50 + i * 0.001, 127.00, 6.0)  # ~111 m apart: distinct places
        t1 = base + timedelta(seconds=i)
        shots = []
        for n, t in enumerate((t1, t1 + timedelta(seconds=75))):
            sha = store.put_photo(photo_bytes(f"e2e-{i}-{n}"))
            shots.append(Sighting(device_id=f"dev-{i % 3}", photo_sha256=sha, captured_at=t,
                                  plate=plate, plate_raw=plate,
                                  char_confidences=(0.97,) * len(plate),
                                  plate_box=Box(60, 100, 120, 120), location=where,
                                  vehicle_box=Box(10, 10, 200, 150)))
        with store.transaction():
            sid1 = store.insert_sighting(shots[0], "first")
            rid = store.create_candidate(store.sighting(sid1), sid1, "sidewalk",
                                         t1 + timedelta(hours=1))
            sid2 = store.insert_sighting(shots[1], "confirming", rid)
            store.confirm(rid, store.sighting(sid1), store.sighting(sid2), plate, None,
                          t1 + timedelta(days=1), 0.92, "same scene", 0.0, MODELS)
        ids.append(rid)
    return ids


class Notifier(threading.Thread):
    """S3 event notifications to the ingest handler: at least once, sometimes twice.

    Each new or changed manifest (by ETag) is delivered; a delivery that fails (S3 down
    mid-ingest) is delivered again later, as Lambda retries. One in ten is delivered twice.
    """

    def __init__(self, s3, conn, stop: threading.Event) -> None:
        super().__init__(name="s3-notifier", daemon=True)
        self.s3, self.conn, self.stop_event = s3, conn, stop
        self.delivered: dict[str, str] = {}
        self.deliveries = self.failures = 0
        self.rng = random.Random(7)
        self.error: BaseException | None = None

    def sweep(self) -> None:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                  Prefix="reports/")
        for page in pages:
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"]
                if not key.endswith("/manifest.json") or self.delivered.get(key) == etag:
                    continue
                event = s3_event([s3_event_record(BUCKET, key, size=item["Size"], etag=etag)])
                for _ in range(2 if self.rng.random() < 0.1 else 1):
                    ingest.handle_event(event, self.conn, self.s3)
                    self.deliveries += 1
                self.delivered[key] = etag

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self.sweep()
                except (BotoCoreError, ClientError):  # S3 down: redelivered next sweep
                    self.failures += 1
                self.stop_event.wait(0.2)
        except BaseException as exc:
            self.error = exc


class Promoter(threading.Thread):
    def __init__(self, name: str, conn, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.conn, self.stop_event = conn, stop
        self.final = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.final += promote.promote_pending(self.conn, batch_size=25).final
                self.stop_event.wait(0.1)
        except BaseException as exc:
            self.error = exc


@pytest.mark.slow
def test_500_reports_through_outages_end_exactly_once_in_final(tmp_path, moto_s3,
                                                               mysql_database):
    conn = fresh_db(mysql_database)
    admin = moto_s3.client()
    admin.create_bucket(Bucket=BUCKET)
    store = Store.open(StoreConfig(path=tmp_path / "gotcha.db", photo_dir=tmp_path / "photos"))
    report_ids = _confirm_reports(store, REPORTS)
    assert store.outbox_depth() == REPORTS

    device_s3 = make_s3_client(moto_s3.endpoint_url, "us-east-1", connect_timeout_s=0.5,
                               read_timeout_s=5.0)
    uploader = Uploader(S3ObjectStore(BUCKET, device_s3), StoreOutbox(store),
                        UploadSettings(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.05,
                                       breaker_failures=3, breaker_cooldown_s=0.2,
                                       blur_people=False, blur_other_plates=False),
                        rng=random.Random(1))
    stop = threading.Event()
    cloud_s3 = make_s3_client(moto_s3.endpoint_url, "us-east-1", connect_timeout_s=0.5,
                              read_timeout_s=5.0)
    notifier = Notifier(cloud_s3, db.connect(settings(mysql_database)), stop)
    promoters = [Promoter(f"promoter-{i}", db.connect(settings(mysql_database)), stop)
                 for i in range(2)]
    outages: list[float] = []

    def chaos() -> None:  # cut the network mid-upload, several times
        rng = random.Random(3)
        for _ in range(OUTAGES):
            time.sleep(rng.uniform(0.8, 1.6))
            moto_s3.stop()
            outages.append(time.monotonic())
            time.sleep(rng.uniform(0.3, 0.8))
            moto_s3.start()

    cutter = threading.Thread(target=chaos, name="network-cutter", daemon=True)
    for thread in (notifier, *promoters, cutter):
        thread.start()

    failed_passes = uploaded = 0
    deadline = time.monotonic() + 150
    while (store.outbox_depth() or cutter.is_alive()) and time.monotonic() < deadline:
        result = uploader.run_pass(limit=20)
        uploaded += len(result.uploaded)
        failed_passes += bool(result.failed)
        if not result.uploaded:
            time.sleep(0.05)
    cutter.join(timeout=10)
    assert store.outbox_depth() == 0, "the device did not get everything out"

    # let the notifier and the promoters catch up, then stop them
    catch_up = time.monotonic() + 60
    while time.monotonic() < catch_up:
        done = query(conn, "SELECT COUNT(*) AS n FROM `temporary` WHERE status = 'final'")
        if done[0]["n"] >= REPORTS and len(notifier.delivered) >= REPORTS:
            break
        time.sleep(0.3)
    stop.set()
    for thread in (notifier, *promoters):
        thread.join(timeout=30)
        assert thread.error is None, f"{thread.name}: {thread.error!r}"
    # S3 may deliver any event again, long after: replaying one device's manifests is a no-op
    replay = ingest.ingest_bucket(cloud_s3, conn, BUCKET, prefix="reports/dev-1/")
    assert replay["records"] == replay["replayed"] == len(range(1, REPORTS, 3))
    assert promote.promote_pending(conn).processed == 0

    # the network really was cut mid-upload, and the uploader noticed
    assert len(outages) == OUTAGES and failed_passes >= 1
    assert uploaded == REPORTS
    assert notifier.deliveries > REPORTS  # some events were delivered twice
    # nothing lost, nothing twice
    finals = query(conn, "SELECT report_id FROM final")
    assert len(finals) == REPORTS
    assert {r["report_id"] for r in finals} == set(report_ids)
    statuses = query(conn, "SELECT status, COUNT(*) AS n FROM `temporary` GROUP BY status")
    assert {r["status"]: r["n"] for r in statuses} == {"final": REPORTS}
    assert query(conn, "SELECT * FROM rejected_events") == []
    assert all(store.report(rid).state == "uploaded" for rid in report_ids)
    assert sum(p.final for p in promoters) <= REPORTS
    keys = sum(page.get("KeyCount", 0) for page in admin.get_paginator(
        "list_objects_v2").paginate(Bucket=BUCKET))
    assert keys == 3 * REPORTS
    store.close()
    conn.close()
