"""Blur people and every plate but the reported one in the copies that leave the device.

Why: a report needs the offending vehicle's plate and the scene, not the faces of passers-by
or the plates of cars parked legally beside it. The evidence photo on the device stays as it
was taken; only the uploaded copy is redacted. What to blur was found by the vision pipeline
when the photo was processed and is stored with the sighting, so uploading loads no model.
Redaction is deterministic (same input, same output bytes), so a resumed upload produces
objects with the same sha256 and skips them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
import piexif

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import BadInputError, StoreError
from edge_agent.io.exif import write_exif
from edge_agent.io.photo import decode_photo, photo_exif
from edge_agent.results import Box

if TYPE_CHECKING:
    from PIL import Image

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
    from PIL import Image

    out = image_bgr.copy()
    for x1, y1, x2, y2 in _regions(boxes, margin, out.shape[1], out.shape[0]):
        out[y1:y2, x1:x2] = np.asarray(_pixelate(Image.fromarray(out[y1:y2, x1:x2])))
    return out


def _regions(boxes: Sequence[Box], margin: float, width: int,
             height: int) -> list[tuple[int, int, int, int]]:
    """Each box grown by ``margin`` and clipped to the picture, as pixel boxes; empty ones
    left out."""
    grown = Detections.from_boxes(boxes).grow(margin, margin, width, height)
    pixels = [grown.pixel_box(i) for i in range(len(grown))]
    return [(x1, y1, x2, y2) for x1, y1, x2, y2 in pixels if x2 - x1 >= 1 and y2 - y1 >= 1]


def _pixelate(region: Image.Image) -> Image.Image:
    """One region, pixelated to about 8 blocks across and then blurred (any channel order).

    Pillow, not OpenCV: OpenCV's first resize starts its thread pool and optimised-kernel
    tables (about 6 MB), which the uploader otherwise never needs."""
    from PIL import Image, ImageFilter  # only a blurring upload pays for Pillow's modules

    w, h = region.size
    block = max(1, max(w, h) // 8)
    small = region.resize((max(1, w // block), max(1, h // block)), Image.Resampling.BOX)
    coarse = small.resize((w, h), Image.Resampling.NEAREST)
    return coarse.filter(ImageFilter.GaussianBlur(0.15 * block + 0.5))


def _open_upright(data: bytes) -> Image.Image:
    """The upright RGB picture of a stored photo.

    Why Pillow for a JPEG: the upload then holds one full-size picture and never starts
    OpenCV's image codecs (about 8 MB of memory on first use), so `gotcha sync` with the blur
    stays within 10 % of its memory without it (measured: +7 %). PNG and HEIC go through
    ``decode_photo``.
    """
    from PIL import Image, ImageOps

    if not is_jpeg(data):
        return Image.fromarray(cv2.cvtColor(_decode_upright(data), cv2.COLOR_BGR2RGB))
    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
        ImageOps.exif_transpose(picture, in_place=True)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInputError(f"photo to redact cannot be decoded ({exc}); the stored evidence "
                            "photo is damaged, check it with `gotcha reports show`") from exc
    return picture if picture.mode == "RGB" else picture.convert("RGB")


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
    picture = _open_upright(jpeg_bytes)
    keep = None
    if keep_plate_box is not None and boxes:  # only the plate is kept aside, not the photo
        x1, y1, x2, y2 = Detections.from_boxes([keep_plate_box]).clip(*picture.size).pixel_box(0)
        keep = ((x1, y1), picture.crop((x1, y1, x2, y2)))
    for x1, y1, x2, y2 in _regions(boxes, MARGIN_FRAC, *picture.size):
        picture.paste(_pixelate(picture.crop((x1, y1, x2, y2))), (x1, y1))
    if keep is not None:
        picture.paste(keep[1], keep[0])
    encoded = io.BytesIO()
    picture.save(encoded, format="JPEG", quality=int(quality))
    return _with_exif(encoded.getvalue(), jpeg_bytes)


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


class BlurBoxesMissingError(StoreError):
    """A sighting recorded before the store kept its blur boxes (schema 1): what to blur in
    its photo is unknown, so its upload copy cannot be made."""


def upload_copy(data: bytes, keep_plate_box: Box | None,
                people_boxes: Sequence[Box] | None, other_plate_boxes: Sequence[Box] | None,
                blur_people: bool, blur_other_plates: bool, what: str = "photo") -> bytes:
    """The bytes that leave the device for one evidence photo, blurred from the boxes the
    pipeline recorded with its sighting (no model is loaded here).

    Boxes that are None were never recorded (a sighting from before schema 2). Uploading
    that photo unblurred would leak whoever stood beside the car, and guessing would need
    the detectors again, so the copy is refused with BlurBoxesMissingError: the report stays
    in the outbox until `gotcha store fill-blur-boxes` records the boxes (or the operator
    turns that blur off on purpose).
    """
    missing = [kind for kind, on, boxes in (("people", blur_people, people_boxes),
                                            ("other plates", blur_other_plates,
                                             other_plate_boxes))
               if on and boxes is None]
    if missing:
        raise BlurBoxesMissingError(
            f"{what} has no recorded {' and '.join(missing)} to blur (recorded before gotcha "
            "kept them, or without the vehicle detector), so its upload copy cannot be blurred "
            "and is not uploaded; run `gotcha store fill-blur-boxes` once (it finds them with "
            "the vision models), then sync again")
    people = list(people_boxes or []) if blur_people else []
    others = list(other_plate_boxes or []) if blur_other_plates else []
    if not people and not others:
        return to_upload_jpeg(data)
    return redact_photo(data, keep_plate_box, others, people)
