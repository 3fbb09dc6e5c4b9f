"""`gotcha run`'s DeviceRunner against the real parts: a watched folder, the real models, the
real Mosquitto, the local object store; two photos of one parked car 70 s apart (the demo's)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import free_port, need
from test_telemetry import Listener, body, forget_device, is_status

from edge_agent.config import GotchaConfig, load_config
from edge_agent.demo import DEMO_PLATE, write_demo_photos
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import load_catalog
from edge_agent.run_settings import RunnerSettings
from edge_agent.runner import DeviceRunner
from gotcha_contracts.manifest import validate_manifest

FAST = {"poll_s": 0.1, "settle_s": 0.2, "maintenance_every_s": 0.5, "join_timeout_s": 20.0}


def plate_reader_on_disk(config: GotchaConfig) -> bool:
    spec = load_catalog(config.models.catalog).get(config.models.plate_reader)
    return spec is not None and spec.find(config.models.dir) is not None


def write_config(path: Path, models_dir: Path, mqtt_port: int, upload: str = "",
                 device_id: str | None = None) -> GotchaConfig:
    """A device config file (reload_config re-reads it); every store under ``path``'s folder;
    ``upload``: lines for the [upload] section (default: the local object store)."""
    root = path.parent
    device_id = device_id or f"run-{uuid.uuid4().hex[:10]}"
    upload = upload or f'backend = "local"\nlocal_dir = "{root / "objects"}"'
    path.write_text(f"""
[device]
id = "{device_id}"
zone = "sidewalk"
[models]
dir = "{models_dir}"
[store]
path = "{root / 'gotcha.db'}"
photo_dir = "{root / 'photos'}"
[upload]
{upload}
[mqtt]
enabled = true
port = {mqtt_port}
commands_trusted_by_acl = true  # the shared test broker is anonymous: see test_mqtt_security
event_plates = "clear"
keepalive_s = 5
reconnect_max_s = 1.0
heartbeat_s = 0.5
""", encoding="utf-8")
    config = load_config(path, environ={})
    need(plate_reader_on_disk(config), f"plate reader {config.models.plate_reader} is not in "
         f"{config.models.dir} or models/ (OCR trains it)")
    return config


def drop(photo: Path, folder: Path) -> Path:
    """Copy a photo into the watched folder the way a camera upload lands: written under a
    hidden name, then renamed into place."""
    hidden = folder / f".{photo.name}.part"
    shutil.copyfile(photo, hidden)
    target = folder / photo.name
    os.replace(hidden, target)
    return target


def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def is_event(kind: str) -> Callable[[mqtt.MQTTMessage], bool]:
    return lambda msg: msg.topic.endswith("/events") and body(msg).get("type") == kind


def uploaded_objects(root: Path, report_id: str) -> dict[str, Path]:
    folders = [p for p in (root / "reports").rglob(report_id) if p.is_dir()]
    assert len(folders) == 1, f"report folder {report_id} not found under {root}"
    return {p.name: p for p in folders[0].iterdir()}


@pytest.fixture()
def demo_photos(tmp_path: Path) -> list[Path]:
    first_at = datetime.now(UTC) - timedelta(seconds=120)
    return write_demo_photos(tmp_path / "camera-roll", first_at)


@pytest.fixture()
def runners() -> Iterator[list[DeviceRunner]]:
    made: list[DeviceRunner] = []
    yield made
    for runner in made:
        runner.close()


def test_watched_folder_to_mqtt_events_and_uploaded_report(
        tmp_path: Path, models_dir: Path, mqtt_broker: tuple[str, int],
        demo_photos: list[Path], runners: list[DeviceRunner]) -> None:
    host, port = mqtt_broker
    config_file = tmp_path / "device" / "gotcha.toml"
    config_file.parent.mkdir()
    config = write_config(config_file, models_dir, port)
    config.mqtt.host = host
    device = config.device.id
    watched = tmp_path / "incoming"
    watched.mkdir()
    listener = Listener(host, port, f"gotcha/{device}/#")
    runner = DeviceRunner(config, RunnerSettings(watch_dir=watched, upload_every_s=3600,
                                                 config_path=config_file, **FAST))
    runners.append(runner)
    try:
        runner.start()
        listener.wait_for(is_status("online"), 15)

        drop(demo_photos[0], watched)
        candidate = body(listener.wait_for(is_event("report_candidate"), 20))
        assert candidate["plate"] == DEMO_PLATE and candidate["state"] == "candidate"
        drop(demo_photos[1], watched)
        confirmed = body(listener.wait_for(is_event("report_confirmed"), 20))
        assert confirmed["report_id"] == candidate["report_id"]
        assert confirmed["plate"] == DEMO_PLATE
        objects_root = config.upload.local_dir
        assert not list(objects_root.rglob("manifest.json")), "uploaded before sync_now"

        listener.client.publish(f"gotcha/{device}/commands", json.dumps(
            {"command": "sync_now"}), qos=1)
        uploaded = body(listener.wait_for(is_event("report_uploaded"), 20))
        assert uploaded["report_id"] == confirmed["report_id"]
        objects = uploaded_objects(objects_root, uploaded["report_id"])
        assert set(objects) == {"photo-1.jpg", "photo-2.jpg", "manifest.json"}
        manifest = validate_manifest(objects["manifest.json"].read_bytes())
        assert manifest.plate == DEMO_PLATE and manifest.device_id == device
        assert 69 <= manifest.interval_s <= 71
        for photo in manifest.photos:
            data = objects[photo.key.rsplit("/", 1)[1]].read_bytes()
            assert hashlib.sha256(data).hexdigest() == photo.sha256

        beat = body(listener.wait_for(lambda m: m.topic.endswith("/heartbeat")
                                      and body(m).get("uploaded") == 1, 10))
        assert beat["photos_processed"] == 2 and beat["photos_failed"] == 0
        assert beat["candidates"] == 1 and beat["confirmed"] == 1 and beat["sightings"] == 2
        assert beat["outbox_depth"] == 0
        assert beat["model_latency_ms"]["photos"] == 2
        assert beat["model_latency_ms"]["median"]["total"] > 0

        # reload_config: the rules change now, a model setting waits for a restart
        config_file.write_text(config_file.read_text(encoding="utf-8")
                               + "[rules]\nradius_m = 22.0\n[vision]\nvehicle_score = 0.4\n",
                               encoding="utf-8")
        listener.client.publish(f"gotcha/{device}/commands", b"reload_config", qos=1)
        reloaded = body(listener.wait_for(is_event("config_reloaded"), 10))
        assert reloaded["applied"] == ["rules.radius_m"]
        assert reloaded["needs_restart"] == ["vision.vehicle_score"]
        assert runner.config.rules.radius_m == 22.0
        assert runner.config.vision.vehicle_score != 0.4
    finally:
        runner.close()
        listener.close()
    try:
        after = Listener(host, port, f"gotcha/{device}/status")
        offline = after.wait_for(is_status("offline"), 10)
        assert offline.retain and body(offline)["reason"] == "stopped"
        after.close()
    finally:
        forget_device(host, port, device)
    assert not [t for t in threading.enumerate() if t.name.startswith("gotcha-")
                and t.is_alive() and not t.name.startswith("gotcha-mqtt")]


def test_dead_broker_still_confirms_and_uploads(
        tmp_path: Path, models_dir: Path, demo_photos: list[Path],
        runners: list[DeviceRunner]) -> None:
    dead_port = free_port()  # nothing listens here
    config_file = tmp_path / "device" / "gotcha.toml"
    config_file.parent.mkdir()
    config = write_config(config_file, models_dir, dead_port)
    watched = tmp_path / "incoming"
    watched.mkdir()
    runner = DeviceRunner(config, RunnerSettings(watch_dir=watched, upload_every_s=0.5,
                                                 **FAST))
    runners.append(runner)
    runner.start()
    (watched / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    until(lambda: runner.stats.count("photos_failed") == 1, 10, "the broken photo")
    drop(demo_photos[0], watched)
    until(lambda: runner.stats.count("candidates") == 1, 20, "a candidate")
    drop(demo_photos[1], watched)
    until(lambda: runner.stats.count("uploaded") == 1, 25, "the upload")
    assert not runner.telemetry.connected
    stats = runner.heartbeat()
    assert stats["confirmed"] == 1 and stats["photos_processed"] == 2
    assert stats["outbox_depth"] == 0 and stats["photos_failed"] == 1
    [manifest] = list(config.upload.local_dir.rglob("manifest.json"))
    assert validate_manifest(manifest.read_bytes()).plate == DEMO_PLATE
    started = time.monotonic()
    runner.close()
    assert time.monotonic() - started < 10, "stop must not wait for a broker that is not there"
    assert runner.error is None


def test_no_network_reports_wait_in_the_outbox_until_s3_is_back(
        tmp_path: Path, models_dir: Path, demo_photos: list[Path], moto_s3: Any,
        runners: list[DeviceRunner]) -> None:
    bucket = f"gotcha-run-{moto_s3.port}"
    moto_s3.client().create_bucket(Bucket=bucket)
    config_file = tmp_path / "device" / "gotcha.toml"
    config_file.parent.mkdir()
    config = write_config(config_file, models_dir, free_port(), upload=f"""
backend = "s3"
bucket = "{bucket}"
region = "us-east-1"
endpoint_url = "{moto_s3.endpoint_url}"
max_attempts = 2
backoff_base_s = 0.05
backoff_max_s = 0.2
breaker_failures = 2
breaker_cooldown_s = 1.0""")
    moto_s3.stop()  # the network is gone before the report exists
    watched = tmp_path / "incoming"
    watched.mkdir()
    runner = DeviceRunner(config, RunnerSettings(watch_dir=watched, upload_every_s=0.3,
                                                 **FAST))
    runners.append(runner)
    runner.start()
    for n, photo in enumerate(demo_photos, 1):
        drop(photo, watched)
        until(lambda n=n: runner.stats.count("photos_processed") == n, 20,
              f"{photo.name} processed")
    assert runner.stats.count("confirmed") == 1
    until(lambda: runner.stats.count("upload_failures") >= 1, 10, "a failed upload attempt")
    assert runner.heartbeat()["outbox_depth"] == 1 and runner.stats.count("uploaded") == 0
    moto_s3.start()
    until(lambda: runner.stats.count("uploaded") == 1, 20, "the upload after S3 came back")
    keys = sorted(o["Key"] for o in moto_s3.client().list_objects_v2(
        Bucket=bucket)["Contents"])
    assert [k.rsplit("/", 1)[1] for k in keys] == ["manifest.json", "photo-1.jpg",
                                                    "photo-2.jpg"]
    runner.close()
    assert runner.heartbeat()["outbox_depth"] == 0

def test_broken_model_stops_the_start_with_a_clear_error(tmp_path: Path,
                                                         models_dir: Path) -> None:
    """A damaged model file stops the start; only an absent optional one is left out."""
    watched = tmp_path / "incoming"
    watched.mkdir()
    folder = tmp_path / "models"
    folder.mkdir()
    data = (models_dir / "yolox-nano-coco.onnx").read_bytes()
    (folder / "yolox-nano-coco.onnx").write_bytes(data[: len(data) // 2])
    config = load_config(None, environ={"GOTCHA_MODEL_DIR": str(folder),
                                        "GOTCHA_STORE__PATH": str(tmp_path / "g.db"),
                                        "GOTCHA_STORE__PHOTO_DIR": str(tmp_path / "photos")})
    config.models.vehicle_detector = "yolox-nano-coco"
    runner = DeviceRunner(config, RunnerSettings(watch_dir=watched, **FAST))
    with pytest.raises(ModelError, match=r"yolox-nano-coco.*sha256"):
        runner.start()
    assert not [t for t in threading.enumerate() if t.name in
                ("gotcha-capture", "gotcha-upload", "gotcha-maintenance")]
    assert not (tmp_path / "g.db").exists(), "nothing is opened before the models load"
    runner.close()  # closing a runner that never started is harmless


def test_moved_vehicle_expires_its_candidate_and_says_so(
        tmp_path: Path, models_dir: Path, mqtt_broker: tuple[str, int],
        runners: list[DeviceRunner]) -> None:
    host, port = mqtt_broker
    config_file = tmp_path / "device" / "gotcha.toml"
    config_file.parent.mkdir()
    config = write_config(config_file, models_dir, port)
    config.mqtt.host = host
    device = config.device.id
    photos = write_demo_photos(tmp_path / "roll", datetime.now(UTC) - timedelta(seconds=120),
                               moved_px=250)
    watched = tmp_path / "incoming"
    watched.mkdir()
    listener = Listener(host, port, f"gotcha/{device}/events")
    runner = DeviceRunner(config, RunnerSettings(watch_dir=watched, **FAST))
    runners.append(runner)
    try:
        runner.start()
        drop(photos[0], watched)
        first = body(listener.wait_for(is_event("report_candidate"), 20))
        drop(photos[1], watched)
        expired = body(listener.wait_for(is_event("report_expired"), 20))
        assert expired["report_id"] == first["report_id"]
        assert "moved" in expired["reason"]
        assert runner.stats.count("candidates") == 2 and runner.stats.count("confirmed") == 0
    finally:
        runner.close()
        listener.close()
        forget_device(host, port, device)
    assert runner.stats.count("expired") == 1


def _bundled_reader_config(tmp_path: Path, models_dir: Path, port: int) -> Path:
    """A config whose plate reader ships inside a package (PaddleOCR's, no Hangul): enough
    to run the device where no Korean plate has to be read."""
    config_file = tmp_path / "device" / "gotcha.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f"""
[device]
id = "run-{uuid.uuid4().hex[:10]}"
lat = 37.5663
lon = 126.9779
[models]
dir = "{models_dir}"
plate_reader = "ppocrv4-rec"
[store]
path = "{tmp_path / 'device' / 'gotcha.db'}"
photo_dir = "{tmp_path / 'device' / 'photos'}"
[upload]
local_dir = "{tmp_path / 'device' / 'objects'}"
[mqtt]
enabled = true
port = {port}
keepalive_s = 5
""", encoding="utf-8")
    return config_file


def test_camera_video_file_is_processed_frame_by_frame_then_the_runner_stops(
        tmp_path: Path, models_dir: Path) -> None:
    import cv2

    from edge_agent.demo import demo_images

    video = tmp_path / "patrol.avi"
    frame = cv2.resize(demo_images()[0], (640, 360))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 360))
    need(writer.isOpened(), "OpenCV cannot write MJPG video here")
    for _ in range(3):
        writer.write(frame)
    writer.release()
    config = load_config(_bundled_reader_config(tmp_path, models_dir, free_port()), environ={})
    runner = DeviceRunner(config, RunnerSettings(camera=str(video), frame_interval_s=0.05,
                                                 **FAST))
    try:
        runner.start()
        assert runner.stop_event.wait(30), "the runner did not stop at the end of the video"
    finally:
        runner.close()
    assert runner.error is None
    assert runner.stats.count("photos_processed") == 3
    assert runner.stats.count("photos_failed") == 0


def test_gotcha_run_stops_cleanly_on_sigterm(tmp_path: Path, models_dir: Path,
                                             mqtt_broker: tuple[str, int]) -> None:
    import signal
    import subprocess
    import sys

    host, port = mqtt_broker
    config_file = _bundled_reader_config(tmp_path, models_dir, port)
    device = load_config(config_file, environ={}).device.id
    watched = tmp_path / "incoming"
    watched.mkdir()
    listener = Listener(host, port, f"gotcha/{device}/status")
    gotcha = Path(sys.executable).with_name("gotcha")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOTCHA_")}
    env["GOTCHA_MQTT__HOST"] = host
    proc = subprocess.Popen([str(gotcha), "run", "--watch", str(watched), "-c",
                             str(config_file)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        listener.wait_for(is_status("online"), 25)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped: 0 photo(s) processed" in err
        offline = listener.wait_for(is_status("offline"), 10)
        assert body(offline)["reason"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()
        forget_device(host, port, device)
