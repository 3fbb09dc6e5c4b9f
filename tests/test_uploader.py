"""The uploader against the real store and a real moto S3 server: order, resume, outages."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from s3_helpers import own_bucket as _bucket
from s3_helpers import own_bucket_store as _s3

from edge_agent.config import StoreConfig
from edge_agent.errors import UploadError
from edge_agent.results import Box, GeoPoint
from edge_agent.store.records import Sighting
from edge_agent.store.store import Store
from edge_agent.upload.object_store import (
    LocalObjectStore,
    ObjectInfo,
    S3ObjectStore,
    make_s3_client,
    sha256_hex,
)
from edge_agent.upload.uploader import (
    StoreOutbox,
    Uploader,
    UploadSettings,
)
from gotcha_contracts.manifest import validate_manifest
from gotcha_contracts.s3_layout import PHOTO_NAMES, parse_report_key

MODELS = {"vehicle_detector": "yolov8n-coco", "plate_reader": "gotcha-kr-plate-crnn",
          "scene_embedder": None}
FAST = UploadSettings(max_attempts=3, backoff_base_s=0.005, backoff_max_s=0.02,
                      breaker_failures=3, breaker_cooldown_s=0.3, blur_people=False,
                      blur_other_plates=False)


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (160, 120),
                       interpolation=cv2.INTER_LINEAR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def _confirmed_report(store: Store, i: int, t0: datetime,
                      people: tuple[Box, ...] | None = None) -> str:
    """A confirmed report made through the store's own state changes (as the lifecycle does);
    ``people``: the boxes recorded to blur (None: recorded before the store kept them)."""
    sightings = []
    for k in range(2):
        data = _jpeg(1000 * i + k)
        sha = store.put_photo(data)
        sightings.append(Sighting(
            device_id="dev-1", photo_sha256=sha, captured_at=t0 + timedelta(seconds=70 * k),
            plate=f"12가{1000 + i}", plate_raw=f"12가{1000 + i}", char_confidences=(0.9,) * 7,
            plate_box=Box(60, 70, 100, 82), location=GeoPoint(37.5665, 126.978, 5.0),
            vehicle_box=Box(20, 30, 140, 100), people_boxes=people,
            other_plate_boxes=None if people is None else ()))
    with store.transaction():
        first_id = store.insert_sighting(sightings[0], "first")
        report_id = store.create_candidate(store.sighting(first_id), first_id, "sidewalk",
                                           t0 + timedelta(hours=2))
        second_id = store.insert_sighting(sightings[1], "confirming", report_id)
        store.confirm(report_id, store.sighting(first_id), store.sighting(second_id),
                      f"12가{1000 + i}", None, t0 + timedelta(days=1), 0.91, "same scene", 0.0,
                      MODELS)
    return report_id


@pytest.fixture()
def store(tmp_path: Path):
    with Store.open(StoreConfig(path=tmp_path / "g.db", photo_dir=tmp_path / "photos")) as s:
        yield s


def _reports(store: Store, n: int) -> list[str]:
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    return [_confirmed_report(store, i, t0) for i in range(n)]


class Recording:
    """Wraps a real object store; records successful puts in order, can fire a hook."""

    def __init__(self, inner, on_put=None) -> None:
        self.inner = inner
        self.puts: list[str] = []
        self.calls = 0
        self.on_put = on_put

    def put(self, key, data, metadata=None):
        self.calls += 1
        self.inner.put(key, data, metadata)
        self.puts.append(key)
        if self.on_put:
            self.on_put(self)

    def head(self, key) -> ObjectInfo | None:
        self.calls += 1
        return self.inner.head(key)

    def get(self, key) -> bytes:
        return self.inner.get(key)


def _all_keys(moto_s3) -> list[str]:
    client = moto_s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=_bucket(moto_s3))
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _assert_manifest_after_photos(puts: list[str]) -> None:
    """In the order objects were stored, no manifest comes before both of its photos."""
    seen: set[str] = set()
    for key in puts:
        parsed = parse_report_key(key)
        assert parsed is not None, key
        if parsed.is_manifest:
            assert {parsed.prefix + n for n in PHOTO_NAMES} <= seen, key
        seen.add(key)


def _assert_complete(moto_s3, store: Store, report_ids: list[str]) -> None:
    keys = set(_all_keys(moto_s3))
    client = moto_s3.client()
    for rid in report_ids:
        manifest_keys = [k for k in keys if rid in k and k.endswith("manifest.json")]
        assert len(manifest_keys) == 1, rid
        body = client.get_object(Bucket=_bucket(moto_s3), Key=manifest_keys[0])["Body"].read()
        manifest = validate_manifest(body)
        assert manifest.report_id == rid and manifest.plate.startswith("12가")
        for photo in manifest.photos:
            obj = client.get_object(Bucket=_bucket(moto_s3), Key=photo.key)
            data = obj["Body"].read()
            assert sha256_hex(data) == photo.sha256 == obj["Metadata"]["sha256"]
        assert store.report(rid).state == "uploaded"
    assert store.outbox_depth() == 0


def test_upload_then_rerun_puts_nothing_twice(moto_s3, store: Store) -> None:
    ids = _reports(store, 3)
    objects = Recording(_s3(moto_s3))
    uploader = Uploader(objects, StoreOutbox(store), FAST)
    result = uploader.run_pass()
    assert sorted(result.uploaded) == sorted(ids) and not result.failed
    assert result.objects_put == 9 and result.objects_skipped == 0
    _assert_complete(moto_s3, store, ids)
    _assert_manifest_after_photos(objects.puts)
    before = {k: moto_s3.client().head_object(Bucket=_bucket(moto_s3), Key=k)["ETag"]
              for k in _all_keys(moto_s3)}

    # nothing pending: a second pass does nothing
    assert uploader.run_pass().to_dict()["objects_put"] == 0
    # a crash after the upload but before the outbox was marked done: the rows come back
    with store.transaction():
        store.db.execute("UPDATE outbox SET state = 'uploading'")
    store.check_integrity()  # start-up check queues interrupted uploads again
    again = Uploader(objects, StoreOutbox(store), FAST).run_pass()
    assert sorted(again.uploaded) == sorted(ids)
    assert again.objects_put == 0 and again.objects_skipped == 9
    after = {k: moto_s3.client().head_object(Bucket=_bucket(moto_s3), Key=k)["ETag"]
             for k in _all_keys(moto_s3)}
    assert after == before and len(after) == 9


def test_server_stopped_mid_run_then_restarted(moto_s3, store: Store) -> None:
    ids = _reports(store, 5)

    def cut_network(rec: Recording) -> None:
        if len(rec.puts) == 4:  # report 1 complete, report 2 has one photo
            moto_s3.stop()

    objects = Recording(_s3(moto_s3), on_put=cut_network)
    uploader = Uploader(objects, StoreOutbox(store), FAST)
    first = uploader.run_pass()  # must not raise
    assert len(first.uploaded) == 1 and first.failed and first.stopped_early
    assert first.breaker == "open"
    calls_while_down = objects.calls
    assert uploader.run_pass().uploaded == []  # breaker open: no call goes out
    assert objects.calls == calls_while_down
    moto_s3.start()
    # while it was down, no manifest is present without both its photos
    keys = set(_all_keys(moto_s3))
    for key in keys:
        parsed = parse_report_key(key)
        if parsed.is_manifest:
            assert {parsed.prefix + n for n in PHOTO_NAMES} <= keys
    deadline = time.monotonic() + 10
    done = set(first.uploaded)
    while len(done) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
        done.update(uploader.run_pass().uploaded)
    assert done == set(ids)
    assert uploader.breaker.state == "closed"
    _assert_complete(moto_s3, store, ids)
    _assert_manifest_after_photos(objects.puts)
    # the photo stored before the cut was not uploaded again
    assert len(objects.puts) == len(set(objects.puts)) == 15


def test_dead_endpoint_opens_then_closes_the_breaker(moto_s3, store: Store) -> None:
    ids = _reports(store, 2)
    objects = Recording(_s3(moto_s3))
    moto_s3.stop()
    uploader = Uploader(objects, StoreOutbox(store), FAST)
    result = uploader.run_pass()
    assert result.breaker == "open" and result.stopped_early and not result.uploaded
    assert objects.calls == FAST.breaker_failures  # stopped hammering after the threshold
    item = store.outbox_item(ids[0])
    assert item.last_error and "will retry" in item.last_error
    assert item.next_attempt_at > datetime.now(UTC)  # rescheduled, not retried in a loop
    moto_s3.start()
    time.sleep(FAST.breaker_cooldown_s + 0.05)
    assert uploader.breaker.state == "half_open"
    result = uploader.run_pass()
    assert sorted(result.uploaded) == sorted(ids) and result.breaker == "closed"
    _assert_complete(moto_s3, store, ids)


def test_missing_bucket_is_a_permanent_error(moto_s3, store: Store) -> None:
    _reports(store, 1)
    client = make_s3_client(moto_s3.endpoint_url, "us-east-1")
    uploader = Uploader(S3ObjectStore("no-such-bucket", client), StoreOutbox(store),
                        FAST)
    with pytest.raises(UploadError, match=r"NoSuchBucket.*fix upload\.bucket"):
        uploader.run_pass()
    assert store.outbox_depth() == 1  # still queued for when the bucket is fixed


def test_redacted_copies_are_what_the_manifest_names(moto_s3, store: Store) -> None:
    ids = [_confirmed_report(store, 0, datetime.now(UTC) - timedelta(minutes=10),
                             people=(Box(0, 0, 40, 40),))]
    settings = UploadSettings(**{**FAST.__dict__, "blur_people": True})
    uploader = Uploader(_s3(moto_s3), StoreOutbox(store), settings)
    assert uploader.run_pass().uploaded == ids
    _assert_complete(moto_s3, store, ids)
    key = next(k for k in _all_keys(moto_s3) if k.endswith(".json"))
    body = moto_s3.client().get_object(Bucket=_bucket(moto_s3), Key=key)["Body"].read()
    manifest = validate_manifest(body)
    report = store.report(ids[0])
    stored = store.sighting(report.first_sighting_id).photo_sha256
    assert manifest.photos[0].sha256 != stored  # the copy that left was redacted
    # redaction is deterministic: a resumed upload finds the same objects
    with store.transaction():
        store.db.execute("UPDATE outbox SET state = 'pending'")
    again = Uploader(_s3_existing(moto_s3), StoreOutbox(store), settings).run_pass()
    assert again.objects_put == 0 and again.objects_skipped == 3


def test_a_sighting_without_recorded_boxes_is_never_uploaded_unblurred(
        tmp_path: Path, store: Store) -> None:
    """Boxes unknown (a report confirmed before schema 2) and blur on: nothing leaves, the
    report waits with the way out in its error; with blur off it goes as it is."""
    ids = _reports(store, 1)
    blurring = UploadSettings(**{**FAST.__dict__, "blur_people": True})
    result = Uploader(LocalObjectStore(tmp_path / "out"), StoreOutbox(store),
                      blurring).run_pass()
    assert result.uploaded == [] and "gotcha store fill-blur-boxes" in result.failed[ids[0]]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jpg"))
    assert store.outbox_item(ids[0]).state == "pending"
    with store.transaction():
        store.db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    plain = Uploader(LocalObjectStore(tmp_path / "out"), StoreOutbox(store), FAST).run_pass()
    assert plain.uploaded == ids


def _s3_existing(moto_s3) -> S3ObjectStore:
    return S3ObjectStore(_bucket(moto_s3), make_s3_client(moto_s3.endpoint_url, "us-east-1"))


def test_local_store_end_to_end(tmp_path: Path, store: Store) -> None:
    ids = _reports(store, 2)
    objects = LocalObjectStore(tmp_path / "out")
    result = Uploader(objects, StoreOutbox(store), FAST).run_pass()
    assert sorted(result.uploaded) == sorted(ids)
    files = sorted(p.relative_to(tmp_path / "out").as_posix()
                   for p in (tmp_path / "out" / "reports").rglob("*") if p.is_file())
    assert len(files) == 6 and all(parse_report_key(f) for f in files)
    for f in files:
        info = objects.head(f)
        assert info.sha256 == sha256_hex(objects.get(f))
    assert not list((tmp_path / "out").rglob(".tmp-*"))
    manifest = json.loads(objects.get(next(f for f in files if f.endswith(".json"))))
    assert validate_manifest(manifest).device_id == "dev-1"


def _sync_app():
    """`gotcha sync` alone (the other command modules are not under test here)."""
    import typer

    from edge_agent.cli import sync

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test root."""

    sync.register(app)
    return app


def test_sync_command_uploads_to_the_local_store(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    app = _sync_app()
    with Store.open(StoreConfig(path=tmp_path / "g.db", photo_dir=tmp_path / "photos")) as s:
        ids = _reports(s, 2)
    env = {"GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos"),
           "GOTCHA_UPLOAD__LOCAL_DIR": str(tmp_path / "out"),
           "GOTCHA_UPLOAD__BLUR_PEOPLE": "false", "GOTCHA_UPLOAD__BLUR_OTHER_PLATES": "false"}
    runner = CliRunner()
    result = runner.invoke(app, ["sync", "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert sorted(summary["uploaded"]) == sorted(ids) and summary["outbox_depth"] == 0
    again = runner.invoke(app, ["sync"], env=env)
    assert again.exit_code == 0 and "uploaded 0 report(s)" in again.output
    assert len(list((tmp_path / "out" / "reports").rglob("manifest.json"))) == 2


def test_sync_command_with_a_dead_endpoint_exits_1(tmp_path: Path) -> None:
    from conftest import free_port
    from typer.testing import CliRunner

    app = _sync_app()

    with Store.open(StoreConfig(path=tmp_path / "g.db", photo_dir=tmp_path / "photos")) as s:
        _reports(s, 1)
    env = {"GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
           "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos"),
           "GOTCHA_UPLOAD__BACKEND": "s3", "GOTCHA_UPLOAD__BUCKET": "gotcha-x",
           "GOTCHA_UPLOAD__ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
           "GOTCHA_UPLOAD__MAX_ATTEMPTS": "2", "GOTCHA_UPLOAD__BACKOFF_BASE_S": "0.01",
           "GOTCHA_UPLOAD__BLUR_PEOPLE": "false", "GOTCHA_UPLOAD__BLUR_OTHER_PLATES": "false",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == 1, result.output
    assert "will retry" in result.output and "1 left in the outbox" in result.output


def test_report_with_a_lost_photo_is_rescheduled_and_others_go_on(tmp_path: Path,
                                                                  store: Store) -> None:
    ids = _reports(store, 2)
    lost = store.sighting(store.report(ids[0]).first_sighting_id).photo_sha256
    store.photos.path(lost).unlink()
    result = Uploader(LocalObjectStore(tmp_path / "out"), StoreOutbox(store), FAST).run_pass()
    assert result.uploaded == [ids[1]]
    assert "missing or altered" in result.failed[ids[0]]
    item = store.outbox_item(ids[0])
    assert item.state == "pending" and item.next_attempt_at > datetime.now(UTC) + timedelta(
        minutes=30)
    assert not list((tmp_path / "out").rglob(f"{ids[0]}/*"))  # nothing of it left the device
