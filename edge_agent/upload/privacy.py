"""Blur people and every plate but the reported one in the copies that leave the device.

Why: a report needs the offending vehicle's plate and the scene, not the faces of passers-by
or the plates of cars parked legally beside it. The evidence photo on the device stays as it
was taken; only the uploaded copy is redacted. Redaction is deterministic (same input, same
output bytes), so a resumed upload produces objects with the same sha256 and skips them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import piexif

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import BadInputError
from edge_agent.io.exif import write_exif
from edge_agent.io.photo import decode_photo, photo_exif
from edge_agent.results import Box

log = logging.getLogger(__name__)

JPEG_QUALITY = 92
MARGIN_FRAC = 0.08  # grow each box a little: detectors cut faces and plate rims tight
KEEP_PLATE_IOU = 0.3  # a detected plate this close to the reported one is the reported one


def blur_regions(image_bgr: np.ndarray, boxes: Sequence[Box],
                 margin: float = MARGIN_FRAC) -> np.ndarray:
    """A copy of ``image_bgr`` with each box pixelated and blurred beyond recognition.

    Pixelating to about 8 blocks across first, then blurring, removes the detail a plain
    Gaussian blur of a small region would leave (characters stay guessable under mild blur).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise BadInputError(f"blur_regions needs a BGR uint8 image, got shape "
                            f"{image_bgr.shape} {image_bgr.dtype}")
    out = image_bgr.copy()
    height, width = out.shape[:2]
    regions = Detections.from_boxes(boxes).grow(margin, margin, width, height)
    for i in range(len(regions)):
        x1, y1, x2, y2 = regions.pixel_box(i)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        region = out[y1:y2, x1:x2]
        h, w = region.shape[:2]
        block = max(1, max(w, h) // 8)
        small = cv2.resize(region, (max(1, w // block), max(1, h // block)),
                           interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        k = max(3, (block // 2) * 2 + 1)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(coarse, (k, k), 0)
    return out


def _decode_upright(data: bytes) -> np.ndarray:
    """The upright BGR image of a stored photo (JPEG, PNG or HEIC), as the pipeline saw it."""
    try:
        return decode_photo(data, GotchaConfig(), name="evidence photo").image
    except BadInputError as exc:
        raise BadInputError(f"photo to redact cannot be decoded ({exc}); the stored evidence "
                            "photo is damaged, check it with `gotcha reports show`") from exc


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def _exif_for_copy(data: bytes) -> bytes | None:
    """The original EXIF with orientation reset (pixels are now upright) and no thumbnail
    (a thumbnail would carry the unredacted scene)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        exif = piexif.load(data)
    except Exception as exc:  # piexif raises anything from struct.error to KeyError on junk
        log.warning("EXIF of an uploaded copy is unreadable (%s); the manifest keeps the "
                    "capture time and place", type(exc).__name__)
        return None
    if not any(exif.get(ifd) for ifd in ("0th", "Exif", "GPS")):
        return None
    exif["0th"][piexif.ImageIFD.Orientation] = 1
    exif["thumbnail"] = None
    exif["1st"] = {}
    try:
        return piexif.dump(exif)
    except Exception:  # a tag piexif cannot write back: keep time and place only
        try:
            return piexif.dump({"0th": {piexif.ImageIFD.Orientation: 1},
                                "Exif": exif.get("Exif", {}), "GPS": exif.get("GPS", {})})
        except Exception:
            log.warning("EXIF of an uploaded copy could not be kept")
            return None


def redact_photo(jpeg_bytes: bytes, keep_plate_box: Box | None, other_plate_boxes: Sequence[Box],
                 person_boxes: Sequence[Box], quality: int = JPEG_QUALITY) -> bytes:
    """The upload copy: people and other plates blurred, the reported plate left sharp.

    Boxes are in the upright (orientation-applied) photo, as the vision pipeline gives them.
    With nothing to blur a JPEG comes back untouched (same sha256 as the evidence); a PNG or
    HEIC photo always becomes a JPEG copy.
    The reported plate is restored after blurring, so a person box overlapping it cannot hide
    it; EXIF (time, GPS) is kept with orientation 1 and without the thumbnail.
    """
    others = [b for b in other_plate_boxes
              if keep_plate_box is None or b.iou(keep_plate_box) < KEEP_PLATE_IOU]
    boxes = [*others, *person_boxes]
    if not boxes and is_jpeg(jpeg_bytes):
        return jpeg_bytes
    image = _decode_upright(jpeg_bytes)
    redacted = blur_regions(image, boxes) if boxes else image
    if keep_plate_box is not None and boxes:
        height, width = image.shape[:2]
        x1, y1, x2, y2 = Detections.from_boxes([keep_plate_box]).clip(width, height).pixel_box(0)
        redacted[y1:y2, x1:x2] = image[y1:y2, x1:x2]
    ok, encoded = cv2.imencode(".jpg", redacted, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise BadInputError("could not encode the redacted photo as JPEG")
    return _with_exif(encoded.tobytes(), jpeg_bytes)


def to_upload_jpeg(data: bytes) -> bytes:
    """JPEG bytes as they are; a PNG or HEIC evidence photo as a JPEG copy (keys are .jpg)."""
    return data if is_jpeg(data) else redact_photo(data, None, [], [])


def _with_exif(out: bytes, original: bytes) -> bytes:
    """Carry the original's EXIF time and place over to the re-encoded copy."""
    if is_jpeg(original):
        exif = _exif_for_copy(original)
        if exif is None:
            return out
        buffer = io.BytesIO()
        piexif.insert(exif, out, buffer)
        return buffer.getvalue()
    info = photo_exif(original)
    if info.captured_at is None:
        return out
    return write_exif(out, info.captured_at, info.location)


Redactor = Callable[[bytes, Box | None], bytes]
"""Takes the stored photo and the reported plate's box, returns the bytes to upload."""


Finder = Callable[[np.ndarray], Sequence[Box]]


class DetectingRedactor:
    """A Redactor that finds people and other plates in the photo itself.

    ``find_people(image) -> boxes`` is typically ``VehicleDetector.detect_people``;
    ``find_plates(image) -> boxes`` any plate locator; ``find_regions(image) -> (plates,
    people)`` does both in one pass (see :meth:`from_config`). A finder left None means that
    kind is not blurred.
    """

    def __init__(self, find_people: Finder | None = None, find_plates: Finder | None = None,
                 quality: int = JPEG_QUALITY,
                 find_regions: Callable[[np.ndarray], tuple[Sequence[Box], Sequence[Box]]]
                 | None = None) -> None:
        self.find_people = find_people
        self.find_plates = find_plates
        self.find_regions = find_regions
        self.quality = quality

    @classmethod
    def from_config(cls, config: object) -> DetectingRedactor | None:
        """The configured redactor (None when both blurs are off). Loads the vehicle detector
        (people come from its COCO "person" class) and, for other plates, the plate locator;
        a missing model raises ModelError, so nothing leaves the device unredacted by
        accident."""
        upload = config.upload  # type: ignore[attr-defined]
        if not (upload.blur_people or upload.blur_other_plates):
            return None
        from edge_agent.plates.locate import PlateLocator
        from edge_agent.vision.vehicle_detector import VehicleDetector

        detector = VehicleDetector.from_config(config)  # type: ignore[arg-type]
        locator = PlateLocator.from_config(config) if upload.blur_other_plates else None

        def find_regions(image: np.ndarray) -> tuple[list[Box], list[Box]]:
            found = detector.detect_all(image)
            plates = [p.box for p in locator.locate(image, found.vehicles)] if locator else []
            return plates, (list(found.people) if upload.blur_people else [])

        return cls(find_regions=find_regions)

    def __call__(self, data: bytes, keep_plate_box: Box | None) -> bytes:
        if self.find_people is None and self.find_plates is None and self.find_regions is None:
            return data
        image = _decode_upright(data)
        plates: list[Box] = []
        people: list[Box] = []
        if self.find_regions is not None:
            found_plates, found_people = self.find_regions(image)
            plates += found_plates
            people += found_people
        if self.find_people is not None:
            people += self.find_people(image)
        if self.find_plates is not None:
            plates += self.find_plates(image)
        return redact_photo(data, keep_plate_box, plates, people, self.quality)
