"""Redacted upload copies: people and other plates blurred, the reported plate and EXIF kept."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import cv2
import numpy as np
import piexif
import pytest
from conftest import shared_path

from edge_agent.errors import BadInputError
from edge_agent.io.exif import read_exif, write_exif
from edge_agent.results import Box, GeoPoint
from edge_agent.upload.privacy import (
    BlurBoxesMissingError,
    blur_regions,
    redact_photo,
    upload_copy,
)


def _detail(image: np.ndarray) -> float:
    """High-frequency energy: a blurred region has almost none."""
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def _noise(h: int = 240, w: int = 320, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8),
                        cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)


def test_blur_changes_only_the_boxes() -> None:
    image = _noise()
    out = blur_regions(image, [Box(40, 40, 120, 100)], margin=0.0)
    assert out is not image and np.array_equal(image, _noise())  # input untouched
    assert _detail(out[40:100, 40:120]) < 0.05 * _detail(image[40:100, 40:120])
    mask = np.ones(image.shape[:2], bool)
    mask[40:100, 40:120] = False
    assert np.array_equal(out[mask], image[mask])


@pytest.mark.parametrize("box", [Box(300, 200, 400, 300), Box(-50, -50, 10, 10),
                                 Box(1000, 1000, 1001, 1001), Box(5, 5, 5, 5)])
def test_blur_clips_boxes_at_the_border(box: Box) -> None:
    out = blur_regions(_noise(), [box])
    assert out.shape == (240, 320, 3)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), float),
                                   np.zeros((10, 10, 4), np.uint8)])
def test_blur_refuses_non_bgr(image: np.ndarray) -> None:
    with pytest.raises(BadInputError, match="BGR uint8"):
        blur_regions(image, [Box(0, 0, 5, 5)])


def test_nothing_to_blur_keeps_the_original_bytes() -> None:
    data = _jpeg(_noise())
    assert redact_photo(data, Box(10, 10, 50, 30), [], []) is data
    # a detected plate on the reported plate's place is the reported plate
    assert redact_photo(data, Box(10, 10, 50, 30), [Box(12, 11, 51, 31)], []) is data


def test_reported_plate_stays_sharp_under_a_person_box() -> None:
    image = _noise()
    data = _jpeg(image)
    keep = Box(100, 100, 180, 130)
    out = _decode(redact_photo(data, keep, [Box(250, 20, 300, 40)], [Box(80, 60, 220, 200)]))
    original = _decode(data)
    plate = (slice(100, 130), slice(100, 180))
    assert np.abs(out[plate].astype(int) - original[plate].astype(int)).mean() < 8
    person_only = (slice(60, 95), slice(80, 220))
    assert _detail(out[person_only]) < 0.1 * _detail(original[person_only])
    other_plate = (slice(20, 40), slice(250, 300))
    assert _detail(out[other_plate]) < 0.1 * _detail(original[other_plate])


def test_redaction_is_deterministic() -> None:
    data = _jpeg(_noise())
    args = (Box(10, 10, 60, 30), [Box(200, 100, 260, 120)], [Box(0, 150, 80, 240)])
    assert redact_photo(data, *args) == redact_photo(data, *args)


def test_exif_time_and_place_kept_orientation_applied_thumbnail_dropped() -> None:
    when = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    place = GeoPoint(37.5665, 126.978)
    stored = _noise(240, 320)  # as the sensor stored it; orientation 6 = rotate 90° clockwise
    data = write_exif(_jpeg(stored), when, place, orientation=6)
    exif = piexif.load(data)
    exif["thumbnail"] = _jpeg(_noise(16, 16, seed=9))
    exif["1st"] = {piexif.ImageIFD.JPEGInterchangeFormat: 0,
                   piexif.ImageIFD.JPEGInterchangeFormatLength: 0}
    buffer = io.BytesIO()
    piexif.insert(piexif.dump(exif), data, buffer)
    data = buffer.getvalue()
    assert piexif.load(data)["thumbnail"]
    # boxes are given in the upright photo (240 wide, 320 high)
    out = redact_photo(data, Box(20, 250, 100, 280), [], [Box(0, 0, 120, 120)])
    decoded = _decode(out)
    assert decoded.shape[:2] == (320, 240)
    info = read_exif(out)
    assert info.captured_at == when and info.orientation == 1
    assert info.location is not None
    assert abs(info.location.lat - place.lat) < 1e-5 and abs(info.location.lon - place.lon) < 1e-5
    assert not piexif.load(out)["thumbnail"]
    upright = cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE)
    assert _detail(decoded[0:110, 0:110]) < 0.1 * _detail(upright[0:110, 0:110])


def test_undecodable_photo_is_a_bad_input() -> None:
    with pytest.raises(BadInputError, match="cannot be decoded"):
        redact_photo(b"\xff\xd8not a jpeg", None, [], [Box(0, 0, 5, 5)])


def test_real_detector_blurs_the_person_in_a_korean_street_photo() -> None:
    """A real photo with a pedestrian, the real COCO detector: the person is blurred."""
    from edge_agent.config import load_config
    from edge_agent.vision.vehicle_detector import VehicleDetector

    models = shared_path("models")
    photo = shared_path("data/scenes/korea-a/20200814000665_0.jpg")
    config = load_config(None, environ={"GOTCHA_MODEL_DIR": str(models)})
    detector = VehicleDetector.from_config(config)
    data = photo.read_bytes()
    original = _decode(data)
    people = detector.detect_people(original)
    assert people, "the detector found no person in a photo that shows one"
    out = upload_copy(data, None, people, [], blur_people=True, blur_other_plates=True)
    assert out != data
    redacted = _decode(out)
    for box in people:
        x1, y1, x2, y2 = (int(v) for v in (box.x1, box.y1, box.x2, box.y2))
        assert _detail(redacted[y1:y2, x1:x2]) < 0.3 * _detail(original[y1:y2, x1:x2])


def test_png_evidence_becomes_a_jpeg_copy_with_its_time() -> None:
    from PIL import Image

    from edge_agent.upload.privacy import is_jpeg, to_upload_jpeg

    when = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    jpeg_with_exif = write_exif(_jpeg(_noise()), when, GeoPoint(37.5, 127.0))
    exif_block = piexif.dump(piexif.load(jpeg_with_exif))
    buffer = io.BytesIO()
    Image.fromarray(_noise()[:, :, ::-1]).save(buffer, format="PNG", exif=exif_block)
    png = buffer.getvalue()
    assert not is_jpeg(png)
    out = to_upload_jpeg(png)
    assert is_jpeg(out) and _decode(out).shape == (240, 320, 3)
    assert read_exif(out).captured_at == when
    assert to_upload_jpeg(jpeg_with_exif) is jpeg_with_exif
    blurred = redact_photo(png, None, [], [Box(0, 0, 50, 50)])
    assert is_jpeg(blurred) and read_exif(blurred).captured_at == when


def test_upload_copy_refuses_a_photo_whose_boxes_were_never_recorded() -> None:
    """None is "not recorded" (a sighting from before schema 2), unlike () "nothing there":
    with that blur on, the copy is refused, never sent as it is."""
    data = _jpeg(_noise())
    with pytest.raises(BlurBoxesMissingError, match=r"people.*fill-blur-boxes"):
        upload_copy(data, None, None, [], blur_people=True, blur_other_plates=True,
                    what="photo-1.jpg of report r1")
    with pytest.raises(BlurBoxesMissingError, match="people and other plates"):
        upload_copy(data, None, None, None, blur_people=True, blur_other_plates=True)
    # only the blur that is off may lack its boxes
    assert upload_copy(data, None, None, [], blur_people=False, blur_other_plates=True) is data
    assert upload_copy(data, None, [Box(0, 0, 40, 40)], None, blur_people=False,
                       blur_other_plates=False) is data
    assert upload_copy(data, None, (), (), blur_people=True, blur_other_plates=True) is data


def test_upload_copy_blurs_only_the_kinds_switched_on() -> None:
    image = _noise()
    data = _jpeg(image)
    person, plate = Box(0, 0, 60, 60), Box(200, 150, 300, 200)
    only_people = _decode(upload_copy(data, None, [person], [plate], blur_people=True,
                                      blur_other_plates=False))
    original = _decode(data)
    assert _detail(only_people[0:60, 0:60]) < 0.1 * _detail(original[0:60, 0:60])
    assert np.abs(only_people[150:200, 200:300].astype(int)
                  - original[150:200, 200:300].astype(int)).mean() < 8
