"""Photo sources: files in capture order past bad ones, a watched folder, a camera (video file)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import need, shared_path

from edge_agent.config import DeviceConfig, GotchaConfig
from edge_agent.errors import BadInputError
from edge_agent.io.exif import read_exif, write_exif
from edge_agent.io.photo import Photo
from edge_agent.io.sources import (
    CameraSource,
    capture_time_hint,
    expand_paths,
    iter_photo_files,
    watch_folder,
)
from edge_agent.results import GeoPoint

KST = timezone(timedelta(hours=9))


@pytest.fixture()
def config() -> GotchaConfig:
    return GotchaConfig(device=DeviceConfig(lat=37.5665, lon=126.978, location_accuracy_m=20.0))


@pytest.fixture(scope="module")
def scenes() -> Path:
    return shared_path("data/scenes/korea-a")


def test_files_come_in_capture_order_and_a_bad_file_does_not_stop_the_batch(
        scenes: Path, tmp_path: Path, config: GotchaConfig) -> None:
    base = datetime(2025, 6, 1, 9, 0, tzinfo=KST)
    sources = ["802.jpg", "803.jpg", "804.jpg"]
    # File names sort a, b, c; capture times run c (09:00), a (09:01), b (09:02).
    for name, source, minutes in zip("abc", sources, (1, 2, 0), strict=True):
        data = write_exif((scenes / source).read_bytes(), base + timedelta(minutes=minutes), None)
        (tmp_path / f"{name}.jpg").write_bytes(data)
    bad = tmp_path / "b-broken.jpg"
    bad.write_text("this is a text file, not a photo\n")
    (tmp_path / "notes.txt").write_text("ignored: not a photo name\n")
    (tmp_path / ".hidden.jpg").write_bytes(b"")
    no_exif = tmp_path / "d-no-exif.png"
    image = cv2.imdecode(np.frombuffer((scenes / "805.jpg").read_bytes(), np.uint8), 1)
    no_exif.write_bytes(cv2.imencode(".png", image)[1].tobytes())
    early = (base - timedelta(hours=1)).timestamp()
    os.utime(no_exif, (early, early))  # oldest by file time
    os.utime(bad, (early + 60, early + 60))

    items = list(iter_photo_files([tmp_path], config))
    names = [path.name for path, _ in items]
    assert names == ["d-no-exif.png", "b-broken.jpg", "c.jpg", "a.jpg", "b.jpg"]
    photos = [item for _, item in items if isinstance(item, Photo)]
    errors = [item for _, item in items if isinstance(item, BadInputError)]
    assert len(photos) == 4 and len(errors) == 1
    assert "not an image" in str(errors[0])
    times = [p.meta.captured_at for p in photos]
    assert times == sorted(times)
    assert photos[0].meta.time_source == "file"


def test_named_missing_file_is_reported_not_skipped(scenes: Path, tmp_path: Path,
                                                     config: GotchaConfig) -> None:
    items = list(iter_photo_files([tmp_path / "gone.jpg", scenes / "802.jpg"], config))
    assert [type(item) for _, item in items].count(BadInputError) == 1
    assert any(isinstance(item, Photo) for _, item in items)
    error = next(item for _, item in items if isinstance(item, BadInputError))
    assert "no such file" in str(error)


def test_expand_paths_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.JPG").write_bytes(b"x")
    (tmp_path / "y.heic").write_bytes(b"y")
    assert [p.name for p in expand_paths([tmp_path])] == ["y.heic"]
    assert sorted(p.name for p in expand_paths([tmp_path], recursive=True)) == ["x.JPG", "y.heic"]


def _collect(generator, out: list) -> None:
    for item in generator:
        out.append(item)


def test_watch_folder_takes_new_files_once_they_stop_growing(scenes: Path, tmp_path: Path,
                                                              config: GotchaConfig) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "old.jpg").write_bytes((scenes / "802.jpg").read_bytes())  # there before: skipped
    stop = threading.Event()
    seen: list = []
    worker = threading.Thread(target=_collect, name="watch-test",
                              args=(watch_folder(inbox, config, stop, poll_s=0.1, settle_s=0.6),
                                    seen))
    worker.start()
    try:
        data = (scenes / "KR_multiple.jpg").read_bytes()
        target = inbox / "new.jpg"
        step = len(data) // 12 + 1
        with target.open("wb") as handle:  # copied in slowly, as over a network share
            for start in range(0, len(data), step):
                handle.write(data[start:start + step])
                handle.flush()
                time.sleep(0.05)
                assert seen == [], "a file still being written was taken"
        (inbox / "junk.jpg").write_bytes(b"\x00\x01not a jpeg at all")
        (inbox / "empty.jpg").write_bytes(b"")  # reported only after it stays empty a while
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=5)
    assert not worker.is_alive(), "watch_folder did not stop when asked"
    by_name = {path.name: item for path, item in seen}
    assert set(by_name) == {"new.jpg", "junk.jpg", "empty.jpg"}
    assert seen[-1][0].name == "empty.jpg"
    assert "empty file" in str(by_name["empty.jpg"])
    assert isinstance(by_name["new.jpg"], Photo)
    assert by_name["new.jpg"].data == data
    assert isinstance(by_name["junk.jpg"], BadInputError)


def test_watch_folder_needs_a_folder(tmp_path: Path, config: GotchaConfig) -> None:
    with pytest.raises(BadInputError, match="not a folder"):
        watch_folder(tmp_path / "missing", config, threading.Event())


@pytest.fixture()
def video(scenes: Path, tmp_path: Path) -> tuple[Path, int]:
    frame = cv2.imdecode(np.frombuffer((scenes / "4vehicles.jpg").read_bytes(), np.uint8), 1)
    frame = cv2.resize(frame, (320, 240))
    path = tmp_path / "street.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    count = 6
    for shift in range(count):
        writer.write(np.roll(frame, shift * 4, axis=1))
    writer.release()
    return path, count


def test_camera_source_yields_frames_with_device_time_and_place(
        video: tuple[Path, int], config: GotchaConfig) -> None:
    path, count = video
    before = datetime.now(UTC)
    with CameraSource(str(path), config) as camera:
        photos = list(camera.frames(threading.Event()))
    assert len(photos) == count
    place = GeoPoint(37.5665, 126.978, accuracy_m=20.0)
    for photo in photos:
        assert photo.image.shape == (240, 320, 3) and photo.image.dtype == np.uint8
        assert photo.meta.time_source == "device" and photo.meta.location_source == "device"
        assert photo.meta.location == place
        assert photo.meta.captured_at >= before - timedelta(seconds=1)
        stored = read_exif(photo.data)  # the evidence JPEG carries its own time and place
        assert stored.location is not None
        assert stored.location.lat == pytest.approx(place.lat, abs=1e-6)
        assert abs(stored.captured_at - photo.meta.captured_at) < timedelta(seconds=1)
    assert len({p.sha256 for p in photos}) == count


def test_camera_source_stops_on_request(video: tuple[Path, int], config: GotchaConfig) -> None:
    path, _ = video
    stop = threading.Event()
    taken = []
    with CameraSource(str(path), config) as camera:
        for photo in camera.frames(stop):
            taken.append(photo)
            stop.set()
    assert len(taken) == 1


def test_camera_that_cannot_open(tmp_path: Path, config: GotchaConfig) -> None:
    with pytest.raises(BadInputError, match="cannot open the camera"):
        CameraSource(str(tmp_path / "no-such-stream.avi"), config).open()


def test_frame_to_photo_without_device_place() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    photo = CameraSource(0, GotchaConfig()).frame_to_photo(frame, captured_at=when)
    assert photo.meta.location is None and photo.meta.location_source == "none"
    assert photo.meta.captured_at == when
    assert read_exif(photo.data).captured_at == when


def test_capture_time_hint_reads_heic_exif(scenes: Path, tmp_path: Path) -> None:
    try:
        import pillow_heif
    except ImportError:
        need(False, "pillow-heif is not installed (pip install -e '.[dev]')")
    import io

    import piexif
    from PIL import Image

    pillow_heif.register_heif_opener()
    when = datetime(2025, 3, 3, 3, 3, 3, tzinfo=UTC)
    block = piexif.load(write_exif((scenes / "802.jpg").read_bytes(), when, None))
    out = io.BytesIO()
    Image.open(scenes / "802.jpg").save(out, format="HEIF", exif=piexif.dump(block))
    path = tmp_path / "IMG_0002.HEIC"
    path.write_bytes(out.getvalue())
    assert capture_time_hint(path) == when
