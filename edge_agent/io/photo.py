"""Turn photo bytes into a ``Photo``: checked, decoded, upright, with time and place.

Every input is checked before the expensive part: that it is a regular file (a FIFO would
block for ever), its size on disk, its magic bytes, and the decoded size its header promises
(width × height × channels × bytes per channel, see ``headers``), so a decompression bomb is
refused without allocating a byte of pixels. OpenCV decodes a damaged JPEG without an error
(the missing rows come out grey; libjpeg only prints a warning), so a JPEG must end with its
EOI marker and the decoder's warnings are captured (``native_stderr``): a JPEG libjpeg calls
corrupt is refused, never evidence. Anything unusable raises ``BadInputError`` with a
one-line message naming the problem and the fix; file names in messages are escaped.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import BadInputError
from edge_agent.io.exif import ExifInfo, read_exif
from edge_agent.io.files import read_regular, stat_regular
from edge_agent.io.headers import (
    HEIC_HINT,
    HEIF_BRANDS,
    Format,
    ImageLayout,
    check_jpeg_complete,
    check_png_complete,
    heif_module,
    image_dimensions,
    image_layout,
    open_heic,
    sniff_format,
)
from edge_agent.io.native_stderr import DAMAGE_LINE, native_stderr
from edge_agent.printable import printable
from edge_agent.results import GeoPoint, PhotoMeta

log = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif")
"""File name endings the folder sources pick up."""
_COMPOSITE_ROWS = 256  # alpha compositing works on this many rows at a time (bounded memory)

__all__ = ["HEIC_HINT", "SUFFIXES", "Format", "Photo", "apply_orientation", "decode_photo",
           "image_dimensions", "load_photo", "photo_exif", "sniff_format", "to_bgr8"]


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded photo. ``image`` is BGR uint8 with EXIF orientation applied; treat it as
    read-only. ``data`` and ``sha256`` are the original file bytes, which are the evidence."""

    image: np.ndarray
    meta: PhotoMeta
    path: Path | None
    sha256: str
    data: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return int(self.image.shape[1]), int(self.image.shape[0])


def load_photo(path: Path, config: GotchaConfig) -> Photo:
    """Read and decode one photo file; the file's mtime is the fallback capture time.
    Only a regular file is opened (a FIFO, device or socket is refused before any open)."""
    path = Path(path)
    _check_file_size(printable(path), stat_regular(path).st_size, config)
    data, info = read_regular(path, config.vision.max_file_bytes)
    _check_file_size(printable(path), len(data), config)  # it may have changed meanwhile
    file_time = datetime.fromtimestamp(info.st_mtime, UTC)
    photo = decode_photo(data, config, name=str(path), file_time=file_time)
    return replace(photo, path=path)


def decode_photo(data: bytes, config: GotchaConfig, name: str = "photo",
                 file_time: datetime | None = None) -> Photo:
    """Check and decode photo bytes. ``name`` labels messages (escaped: see ``printable``)
    and becomes the source id; ``file_time`` (aware) is used when EXIF has no usable time,
    else the device clock."""
    name = printable(name)
    _check_file_size(name, len(data), config)
    kind = sniff_format(data, name)
    layout = image_layout(data, kind, name)
    _check_layout(name, layout, config)
    if kind == "heic":
        image, exif_bytes = _decode_heic(data, name)
        exif = read_exif(exif_bytes, config.device.timezone) if exif_bytes else ExifInfo()
        exif = replace(exif, orientation=1)  # libheif already applied the HEIF transforms
    else:
        if kind == "jpeg":
            check_jpeg_complete(data, name)
        else:
            check_png_complete(data, name)
        image = _decode_cv(data, kind, name)
        exif = read_exif(data, config.device.timezone)
    image = apply_orientation(image, exif.orientation)
    meta = _meta(exif, name, file_time, config)
    return Photo(image=image, meta=meta, path=None, sha256=hashlib.sha256(data).hexdigest(),
                 data=data)


def photo_exif(data: bytes, default_tz: str = "Asia/Seoul") -> ExifInfo:
    """EXIF of JPEG, PNG or HEIC bytes without decoding pixels (HEIC needs pillow-heif;
    without it, or for anything unreadable, an empty ExifInfo)."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        heif = heif_module()
        if heif is None:
            return ExifInfo()
        try:
            block = heif.open_heif(io.BytesIO(data)).info.get("exif")
        except Exception:  # a damaged HEIC is reported when it is decoded, not here
            return ExifInfo()
        return read_exif(block, default_tz) if block else ExifInfo()
    return read_exif(data, default_tz)


# --- checks before decoding --------------------------------------------------------------------


def _check_file_size(name: str, size: int, config: GotchaConfig) -> None:
    if size == 0:
        raise BadInputError(f"{name}: empty file (0 bytes); the copy or download failed, "
                            "copy the photo again")
    limit = config.vision.max_file_bytes
    if size > limit:
        raise BadInputError(f"{name}: file is {size / 1e6:.1f} MB, above vision.max_file_bytes "
                            f"({limit / 1e6:.0f} MB); shrink the photo or raise the limit")


def _check_layout(name: str, layout: ImageLayout, config: GotchaConfig) -> None:
    limit = config.vision.max_image_pixels
    width, height = layout.width, layout.height
    if layout.pixels > limit:
        raise BadInputError(
            f"{name}: image is {width}×{height} ({layout.pixels / 1e6:.0f} MP), above "
            f"vision.max_image_pixels ({limit / 1e6:.0f} MP); refused as a possible "
            "decompression bomb, downscale it first")
    budget = config.vision.max_decoded_bytes
    if layout.decoded_bytes > budget:
        raise BadInputError(
            f"{name}: image is {width}×{height} with {layout.channels} channel(s) of "
            f"{8 * layout.bytes_per_channel} bits: {layout.decoded_bytes / 2**20:.0f} MiB once "
            f"decoded, above vision.max_decoded_bytes ({budget / 2**20:.0f} MiB); refused "
            "before decoding, downscale it or save it as 8-bit RGB first")


# --- decoding ----------------------------------------------------------------------------------


def _decode_cv(data: bytes, kind: Format, name: str) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8)
    with native_stderr() as messages:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    damage = [line for line in messages if DAMAGE_LINE.match(line)]
    for line in messages:
        if line not in damage:
            log.debug("%s: decoder says: %s", name, line)
    if damage:
        raise BadInputError(f"{name}: damaged {kind.upper()} (decoder: {damage[0].strip()}); "
                            "parts of the picture are missing, so it is not used as evidence; "
                            "copy the photo again")
    if image is None or image.size == 0:
        raise BadInputError(f"{name}: corrupt {kind.upper()} (the decoder rejected it); "
                            "re-export or copy the photo again")
    return to_bgr8(image)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, gray+alpha, BGR, BGRA; 8/16-bit or float) -> BGR uint8.
    Transparent pixels are composited on white, so hidden colour values never show."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.round(np.nan_to_num(image.astype(np.float32) * scale)), 0, 255)
        image = image.astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        image = cv2.merge([image[:, :, 0]] * 3 + [image[:, :, 1]])
        channels = 4
    if channels == 4:
        return _composite_on_white(image)
    return np.ascontiguousarray(image[:, :, :3])


def _composite_on_white(image: np.ndarray) -> np.ndarray:
    """BGRA -> BGR over white, a band of rows at a time: the float work never holds more
    than one band, so a large transparent PNG costs its output, not twelve times it."""
    out = np.empty((*image.shape[:2], 3), np.uint8)
    for top in range(0, image.shape[0], _COMPOSITE_ROWS):
        band = image[top:top + _COMPOSITE_ROWS]
        alpha = band[:, :, 3:4].astype(np.float32) / 255.0
        colour = band[:, :, :3].astype(np.float32)
        out[top:top + _COMPOSITE_ROWS] = np.round(colour * alpha + 255.0 * (1.0 - alpha))
    return out


def _decode_heic(data: bytes, name: str) -> tuple[np.ndarray, bytes | None]:
    heif_file = open_heic(data, name)
    try:
        rgb = np.asarray(heif_file.to_pillow().convert("RGB"))
    except Exception as exc:  # libheif reports damage with its own error types
        raise BadInputError(f"{name}: corrupt HEIC ({exc}); re-export or copy the photo "
                            "again") from exc
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), heif_file.info.get("exif")


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip a stored image so it is upright, per the EXIF orientation 1..8."""
    ops = {
        1: lambda im: im,
        2: lambda im: cv2.flip(im, 1),
        3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
        4: lambda im: cv2.flip(im, 0),
        5: lambda im: cv2.flip(cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE), 1),
        6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
        7: lambda im: cv2.flip(cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE), 1),
        8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    return ops.get(orientation, ops[1])(image)


# --- time and place ----------------------------------------------------------------------------


def _meta(exif: ExifInfo, name: str, file_time: datetime | None,
          config: GotchaConfig) -> PhotoMeta:
    warnings = list(exif.warnings)
    if exif.captured_at is not None:
        captured_at, time_source = exif.captured_at, "exif"
    elif file_time is not None:
        captured_at, time_source = file_time.astimezone(UTC), "file"
        warnings.append("no usable EXIF time; using the file's modification time")
    else:
        captured_at, time_source = datetime.now(UTC), "device"
        warnings.append("no usable EXIF time; using the device clock")
    device = config.device
    location: GeoPoint | None
    if exif.location is not None:
        location, location_source = exif.location, "exif"
    elif device.lat is not None and device.lon is not None:
        location = GeoPoint(device.lat, device.lon, accuracy_m=device.location_accuracy_m)
        location_source = "device"
        warnings.append("no usable EXIF GPS; using the device's configured place")
    else:
        location, location_source = None, "none"
        warnings.append("no usable EXIF GPS and no device.lat/lon configured; the photo has "
                        "no place")
    for warning in warnings:
        log.debug("%s: %s", name, warning)
    return PhotoMeta(captured_at=captured_at, location=location, time_source=time_source,
                     location_source=location_source, source_id=name,
                     warnings=tuple(warnings))
