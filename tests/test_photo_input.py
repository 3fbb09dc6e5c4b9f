"""Photo decoding on the real korea-a scenes, and every kind of bad input refused in one line."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
from conftest import need, shared_path

from edge_agent.config import DeviceConfig, GotchaConfig, VisionConfig
from edge_agent.errors import BadInputError
from edge_agent.io.exif import read_exif, write_exif
from edge_agent.io.photo import HEIC_HINT, decode_photo, image_dimensions, load_photo, to_bgr8
from edge_agent.results import GeoPoint

SEOUL = DeviceConfig(lat=37.5665, lon=126.978, location_accuracy_m=25.0)


@pytest.fixture(scope="module")
def scenes() -> Path:
    return shared_path("data/scenes/korea-a")


@pytest.fixture()
def config() -> GotchaConfig:
    return GotchaConfig(device=SEOUL)


@pytest.fixture(scope="module")
def scene_bytes(scenes: Path) -> bytes:
    return (scenes / "4vehicles.jpg").read_bytes()


def strip_exif(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    piexif.remove(jpeg, out)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def png_declaring(width: int, height: int) -> bytes:
    """A small, valid-looking PNG whose header declares ``width``×``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """The real JPEG with its frame header (SOF) rewritten to claim other dimensions."""
    offset = 2
    while True:
        marker = jpeg[offset + 1]
        length = struct.unpack(">H", jpeg[offset + 2:offset + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            start = offset + 5
            return jpeg[:start] + struct.pack(">HH", height, width) + jpeg[start + 4:]
        offset += 2 + length


# --- good photos -------------------------------------------------------------------------------


def test_every_korea_a_photo_loads_upright_bgr(scenes: Path, config: GotchaConfig) -> None:
    photos = sorted(scenes.glob("*.jpg"))
    assert len(photos) >= 50
    for path in photos:
        photo = load_photo(path, config)
        data = path.read_bytes()
        width, height = image_dimensions(data, "jpeg")
        assert photo.image.dtype == np.uint8 and photo.image.ndim == 3, path
        assert photo.image.shape[2] == 3, path
        upright = (width, height) if read_exif(data).orientation <= 4 else (height, width)
        assert photo.size == upright, path
        assert photo.sha256 == hashlib.sha256(data).hexdigest()
        assert photo.data == data
        assert photo.path == path
        assert photo.meta.captured_at.tzinfo is not None


def test_photo_with_exif_time_and_gps(scene_bytes: bytes, tmp_path: Path,
                                      config: GotchaConfig) -> None:
    when = datetime(2025, 9, 1, 8, 15, 0, tzinfo=timezone(timedelta(hours=9)))
    place = GeoPoint(35.1796, 129.0756, accuracy_m=6.0, altitude_m=12.0)
    path = tmp_path / "busan.jpg"
    path.write_bytes(write_exif(scene_bytes, when, place))
    meta = load_photo(path, config).meta
    assert meta.captured_at == when.astimezone(UTC)
    assert (meta.time_source, meta.location_source) == ("exif", "exif")
    assert meta.location == place
    assert meta.warnings == ()
    assert meta.source_id == str(path)


def test_no_exif_uses_device_place_and_file_time(scene_bytes: bytes, tmp_path: Path,
                                                  config: GotchaConfig) -> None:
    path = tmp_path / "plain.jpg"
    path.write_bytes(strip_exif(scene_bytes))
    mtime = datetime(2025, 10, 2, 3, 4, 5, tzinfo=UTC)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    meta = load_photo(path, config).meta
    assert meta.captured_at == mtime
    assert meta.time_source == "file"
    assert meta.location == GeoPoint(37.5665, 126.978, accuracy_m=25.0)
    assert meta.location_source == "device"
    assert any("file's modification time" in w for w in meta.warnings)
    assert any("device's configured place" in w for w in meta.warnings)


def test_no_exif_and_no_device_place(scene_bytes: bytes) -> None:
    before = datetime.now(UTC)
    meta = decode_photo(strip_exif(scene_bytes), GotchaConfig(), name="upload").meta
    assert meta.location is None and meta.location_source == "none"
    assert meta.time_source == "device" and meta.captured_at >= before
    assert any("no place" in w for w in meta.warnings)


def test_absurd_exif_falls_back_and_says_why(scene_bytes: bytes, config: GotchaConfig) -> None:
    block = piexif.dump({"Exif": {piexif.ExifIFD.DateTimeOriginal: b"1970:01:01 00:00:00"},
                         "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N",
                                 piexif.GPSIFD.GPSLatitude: ((200, 1), (0, 1), (0, 1)),
                                 piexif.GPSIFD.GPSLongitudeRef: b"E",
                                 piexif.GPSIFD.GPSLongitude: ((127, 1), (0, 1), (0, 1))}})
    out = io.BytesIO()
    piexif.insert(block, scene_bytes, out)
    file_time = datetime(2025, 1, 2, tzinfo=UTC)
    meta = decode_photo(out.getvalue(), config, file_time=file_time).meta
    assert meta.captured_at == file_time and meta.time_source == "file"
    assert meta.location_source == "device"
    assert any("before 2000" in w for w in meta.warnings)
    assert any("off the globe" in w for w in meta.warnings)


@pytest.mark.parametrize(("orientation", "rotate"), [
    (3, cv2.ROTATE_180), (6, cv2.ROTATE_90_CLOCKWISE), (8, cv2.ROTATE_90_COUNTERCLOCKWISE),
])
def test_exif_orientation_is_applied(scene_bytes: bytes, config: GotchaConfig,
                                     orientation: int, rotate: int) -> None:
    upright = decode_photo(scene_bytes, config).image
    height, width = upright.shape[:2]
    assert width != height
    tagged = write_exif(scene_bytes, datetime(2025, 1, 1, tzinfo=UTC), None, orientation)
    photo = decode_photo(tagged, config)
    expected = (height, width) if orientation == 3 else (width, height)
    assert photo.image.shape[:2] == expected
    assert np.array_equal(photo.image, cv2.rotate(upright, rotate))


def test_png_variants_become_bgr8(scene_bytes: bytes, config: GotchaConfig) -> None:
    bgr = cv2.imdecode(np.frombuffer(scene_bytes, np.uint8), cv2.IMREAD_COLOR)[:120, :160]
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[:, :80, 3] = 0  # left half fully transparent
    deep = bgr.astype(np.uint16) * 257
    for image in (gray, bgra, deep, bgr):
        ok, encoded = cv2.imencode(".png", image)
        assert ok
        photo = decode_photo(encoded.tobytes(), config, name="x.png")
        assert photo.image.dtype == np.uint8 and photo.image.shape == (120, 160, 3)
    photo = decode_photo(cv2.imencode(".png", bgra)[1].tobytes(), config)
    assert (photo.image[:, :80] == 255).all()  # transparent -> white, not hidden colours
    assert np.array_equal(photo.image[:, 80:], bgr[:, 80:])
    assert np.array_equal(decode_photo(cv2.imencode(".png", deep)[1].tobytes(), config).image,
                          bgr)


def test_to_bgr8_float_and_two_channel() -> None:
    assert to_bgr8(np.full((4, 5), 0.5, np.float32)).tolist() == [[[128] * 3] * 5] * 4
    two = np.dstack([np.full((3, 3), 10, np.uint8), np.full((3, 3), 255, np.uint8)])
    assert to_bgr8(two).tolist() == [[[10] * 3] * 3] * 3


# --- bad input ---------------------------------------------------------------------------------


def _scan_start(jpeg: bytes) -> int:
    return jpeg.rfind(b"\xff\xda")


def _tiny(ext: str) -> bytes:
    return cv2.imencode(ext, np.zeros((8, 8, 3), np.uint8))[1].tobytes()


# file name, how to build its bytes from a real JPEG, words the error must contain
BAD_CASES = [
    ("zero-byte.jpg", lambda j: b"", "empty file"),
    ("text-renamed.jpg", lambda j: "주차 위반 신고\nplate,time\n12가3456,09:00\n".encode(),
     "not an image"),
    ("random.jpg", lambda j: bytes(range(256)) * 8, "not an image"),
    ("truncated-half.jpg", lambda j: j[: len(j) // 2], "truncated JPEG"),
    ("truncated-last-bytes.jpg", lambda j: j[:-2], "truncated JPEG"),
    ("truncated-header.jpg", lambda j: j[:400], "truncated JPEG"),
    ("corrupt-header.jpg", lambda j: j[:2] + b"\x00" * 64 + j[66:], "corrupt JPEG"),
    ("corrupt-scan.jpg", lambda j: j[: _scan_start(j) + 4] + b"\xff\xd9", "corrupt JPEG"),
    ("no-frame.jpg", lambda j: b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 16 + b"\xff\xd9",
     "corrupt JPEG"),
    ("bomb-20000.png", lambda j: png_declaring(20000, 20000), "decompression bomb"),
    ("bomb-20000.jpg", lambda j: jpeg_declaring(j, 20000, 20000), "decompression bomb"),
    ("zero-size.png", lambda j: png_declaring(0, 10), "corrupt PNG"),
    ("truncated.png", lambda j: png_declaring(40, 30)[:-12], "truncated PNG"),
    ("picture.gif", lambda j: b"GIF89a" + b"\x00" * 64, "GIF is not supported"),
    ("picture.bmp", lambda j: _tiny(".bmp"), "BMP is not supported"),
    ("picture.webp", lambda j: _tiny(".webp"), "WebP is not supported"),
    ("picture.pdf", lambda j: b"%PDF-1.7\n" + b"\x00\x01" * 64, "PDF is not supported"),
]


@pytest.mark.parametrize(("name", "build", "expected"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_file_is_refused_in_one_line(name: str, build, expected: str, scene_bytes: bytes,
                                         tmp_path: Path, config: GotchaConfig) -> None:
    path = tmp_path / name
    path.write_bytes(build(scene_bytes))
    with pytest.raises(BadInputError) as caught:
        load_photo(path, config)
    message = str(caught.value)
    assert expected in message
    assert message.startswith(str(path))
    assert "\n" not in message
    assert ";" in message  # what is wrong; what to do


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.99])
def test_truncated_jpeg_is_named_truncated(scenes: Path, config: GotchaConfig,
                                           fraction: float) -> None:
    """Some OpenCV builds decode a cut-off JPEG silently (grey rows), others fail: either
    way the user must hear 'truncated', not a vague decode error."""
    for name in ("802.jpg", "4vehicles.jpg"):
        data = (scenes / name).read_bytes()
        with pytest.raises(BadInputError, match="truncated JPEG"):
            decode_photo(data[: int(len(data) * fraction)], config, name=name)


def test_file_too_large(scene_bytes: bytes, tmp_path: Path) -> None:
    config = GotchaConfig(vision=VisionConfig(max_file_bytes=100_000))
    path = tmp_path / "big.jpg"
    path.write_bytes(scene_bytes + b"\x00" * max(0, 100_001 - len(scene_bytes)))
    with pytest.raises(BadInputError, match=r"above vision\.max_file_bytes"):
        load_photo(path, config)
    with pytest.raises(BadInputError, match=r"above vision\.max_file_bytes"):
        decode_photo(path.read_bytes(), config)


def test_pixel_limit_is_configurable(scene_bytes: bytes) -> None:
    config = GotchaConfig(vision=VisionConfig(max_image_pixels=1_000_000))
    width, height = image_dimensions(scene_bytes, "jpeg")
    assert width * height > 1_000_000
    with pytest.raises(BadInputError, match=f"{width}×{height}.*max_image_pixels"):
        decode_photo(scene_bytes, config)
    small = cv2.imencode(".jpg", np.zeros((900, 1000, 3), np.uint8))[1].tobytes()
    assert decode_photo(small, config).size == (1000, 900)


def test_missing_file_and_directory(tmp_path: Path, config: GotchaConfig) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        load_photo(tmp_path / "nope.jpg", config)
    with pytest.raises(BadInputError, match="is a directory"):
        load_photo(tmp_path, config)


def _heic_from(jpeg: bytes, exif_block: bytes) -> bytes:
    try:
        import pillow_heif
    except ImportError:
        need(False, "pillow-heif is not installed (pip install -e '.[dev]')")
    from PIL import Image

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, format="HEIF", exif=exif_block, quality=85)
    return out.getvalue()


def test_heic_photo_with_exif(scenes: Path, config: GotchaConfig) -> None:
    jpeg = (scenes / "802.jpg").read_bytes()
    when = datetime(2025, 4, 5, 6, 7, 8, tzinfo=timezone(timedelta(hours=9)))
    place = GeoPoint(-33.8568, 151.2153, altitude_m=-2.5)
    block = piexif.load(write_exif(jpeg, when, place, orientation=6))
    heic = _heic_from(jpeg, piexif.dump(block))
    photo = decode_photo(heic, config, name="IMG_0001.HEIC")
    width, height = image_dimensions(jpeg, "jpeg")
    assert photo.size == (height, width)  # rotated once (by libheif), not twice
    assert photo.meta.captured_at == when.astimezone(UTC)
    assert photo.meta.location is not None
    assert photo.meta.location.lat == pytest.approx(place.lat, abs=1e-6)
    assert photo.meta.location.altitude_m == pytest.approx(-2.5)
    assert photo.sha256 == hashlib.sha256(heic).hexdigest()


def test_truncated_heic_is_refused(scenes: Path, config: GotchaConfig) -> None:
    heic = _heic_from((scenes / "802.jpg").read_bytes(), piexif.dump({}))
    with pytest.raises(BadInputError, match="corrupt HEIC"):
        decode_photo(heic[: len(heic) // 2], config, name="cut.heic")


def test_heic_without_pillow_heif_says_how_to_install(config: GotchaConfig,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if it were not installed
    fake = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(BadInputError) as caught:
        decode_photo(fake, config, name="IMG_0001.HEIC")
    assert HEIC_HINT in str(caught.value)


def test_png_exif_chunk_time_and_orientation(scene_bytes: bytes, config: GotchaConfig) -> None:
    image = cv2.imdecode(np.frombuffer(scene_bytes, np.uint8), cv2.IMREAD_COLOR)[:90, :160]
    png = cv2.imencode(".png", image)[1].tobytes()
    block = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 8},
                         "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2025:11:12 13:14:15",
                                  piexif.ExifIFD.OffsetTimeOriginal: b"+09:00"}})
    ihdr_end = 8 + 25
    tagged = png[:ihdr_end] + png_chunk(b"eXIf", block[6:]) + png[ihdr_end:]  # TIFF, no header
    photo = decode_photo(tagged, config, name="shot.png")
    assert photo.meta.captured_at == datetime(2025, 11, 12, 4, 14, 15, tzinfo=UTC)
    assert np.array_equal(photo.image, cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE))
