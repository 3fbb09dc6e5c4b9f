"""Turn photo bytes into a ``Photo``: checked, decoded, upright, with time and place.

Every input is checked before the expensive part: size on disk, magic bytes, and the pixel
dimensions read from the JPEG/PNG header, so a 20000×20000 decompression bomb is refused
without allocating a byte of pixels. OpenCV decodes a truncated JPEG silently (the missing
rows come out grey), so a JPEG must also end with its EOI marker. Anything unusable raises
``BadInputError`` with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import BadInputError
from edge_agent.io.exif import ExifInfo, read_exif
from edge_agent.results import GeoPoint, PhotoMeta

log = logging.getLogger(__name__)

Format = Literal["jpeg", "png", "heic"]
SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif")
"""File name endings the folder sources pick up."""

HEIC_HINT = "HEIC needs pip install 'gotcha[heic]'"
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_OTHER_FORMATS = {  # recognised, but not taken: say what it is and how to convert
    b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%PDF": "PDF",
}


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
    """Read and decode one photo file; the file's mtime is the fallback capture time."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read it ({exc.strerror}); check permissions") from exc
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory, not a photo; pass the image files in it")
    _check_file_size(str(path), info.st_size, config)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read it ({exc.strerror}); check permissions") from exc
    file_time = datetime.fromtimestamp(info.st_mtime, UTC)
    photo = decode_photo(data, config, name=str(path), file_time=file_time)
    return replace(photo, path=path)


def decode_photo(data: bytes, config: GotchaConfig, name: str = "photo",
                 file_time: datetime | None = None) -> Photo:
    """Check and decode photo bytes. ``name`` labels messages and becomes the source id;
    ``file_time`` (aware) is used when EXIF has no usable time, else the device clock."""
    _check_file_size(name, len(data), config)
    kind = sniff_format(data, name)
    width, height = image_dimensions(data, kind, name)
    _check_pixels(name, width, height, config)
    if kind == "heic":
        image, exif_bytes = _decode_heic(data, name)
        exif = read_exif(exif_bytes, config.device.timezone) if exif_bytes else ExifInfo()
        exif = replace(exif, orientation=1)  # libheif already applied the HEIF transforms
    else:
        if kind == "jpeg":
            _check_jpeg_complete(data, name)
        else:
            _check_png_complete(data, name)
        image = _decode_cv(data, kind, name)
        exif = read_exif(data, config.device.timezone)
    image = apply_orientation(image, exif.orientation)
    meta = _meta(exif, name, file_time, config)
    return Photo(image=image, meta=meta, path=None, sha256=hashlib.sha256(data).hexdigest(),
                 data=data)


def photo_exif(data: bytes, default_tz: str = "Asia/Seoul") -> ExifInfo:
    """EXIF of JPEG, PNG or HEIC bytes without decoding pixels (HEIC needs pillow-heif;
    without it, or for anything unreadable, an empty ExifInfo)."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        heif = _heif()
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


def sniff_format(data: bytes, name: str = "photo") -> Format:
    """The format from the magic bytes (never the file name): jpeg, png or heic."""
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heic"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        raise BadInputError(f"{name}: AVIF is not supported; convert it to JPEG")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise BadInputError(f"{name}: WebP is not supported; convert it to JPEG")
    for magic, label in _OTHER_FORMATS.items():
        if data.startswith(magic):
            raise BadInputError(f"{name}: {label} is not supported; convert it to JPEG")
    if _looks_like_text(data):
        raise BadInputError(f"{name}: not an image (the file holds text); pass a JPEG, PNG or "
                            "HEIC photo")
    raise BadInputError(f"{name}: not an image (unknown format, starts with "
                        f"{data[:8].hex(' ')}); pass a JPEG, PNG or HEIC photo")


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end is fine
            return False
        text = head[:exc.start].decode("utf-8")
    return bool(text) and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text)


def image_dimensions(data: bytes, kind: Format, name: str = "photo") -> tuple[int, int]:
    """(width, height) from the header alone: JPEG SOF, PNG IHDR, HEIF via pillow-heif."""
    if kind == "jpeg":
        return _jpeg_dimensions(data, name)
    if kind == "png":
        return _png_dimensions(data, name)
    return _heic_dimensions(data, name)


def _jpeg_segments(data: bytes, name: str):
    """Yield (marker, offset of its payload, payload length) up to and including SOS."""
    offset = 2
    size = len(data)
    while offset < size:
        if data[offset] != 0xFF:
            raise BadInputError(f"{name}: corrupt JPEG (bad marker at byte {offset}); "
                                "re-export or copy the photo again")
        while offset < size and data[offset] == 0xFF:  # fill bytes
            offset += 1
        if offset >= size:
            break
        marker = data[offset]
        offset += 1
        if marker == 0xD8 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # no payload
        if marker == 0xD9:
            yield marker, offset, 0
            return
        if offset + 2 > size:
            break
        length = struct.unpack(">H", data[offset:offset + 2])[0]
        if length < 2:
            raise BadInputError(f"{name}: corrupt JPEG (segment length {length}); "
                                "re-export or copy the photo again")
        yield marker, offset + 2, length - 2
        if marker == 0xDA:
            return
        offset += length
    raise BadInputError(f"{name}: truncated JPEG (ends inside its header); copy the photo "
                        "again")


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_dimensions(data: bytes, name: str) -> tuple[int, int]:
    for marker, start, length in _jpeg_segments(data, name):
        if marker in _SOF_MARKERS:
            if length < 5 or start + 5 > len(data):
                break
            height, width = struct.unpack(">HH", data[start + 1:start + 5])
            if width == 0 or height == 0:
                raise BadInputError(f"{name}: corrupt JPEG (declares {width}×{height} pixels); "
                                    "re-export the photo")
            return width, height
        if marker in (0xDA, 0xD9):
            break
    raise BadInputError(f"{name}: corrupt JPEG (no frame header); re-export or copy the photo "
                        "again")


def _png_dimensions(data: bytes, name: str) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise BadInputError(f"{name}: corrupt PNG (no IHDR header); re-export the image")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise BadInputError(f"{name}: corrupt PNG (declares {width}×{height} pixels); "
                            "re-export the image")
    return width, height


def _check_pixels(name: str, width: int, height: int, config: GotchaConfig) -> None:
    limit = config.vision.max_image_pixels
    if width * height > limit:
        raise BadInputError(
            f"{name}: image is {width}×{height} ({width * height / 1e6:.0f} MP), above "
            f"vision.max_image_pixels ({limit / 1e6:.0f} MP); refused as a possible "
            "decompression bomb, downscale it first")


def _check_jpeg_complete(data: bytes, name: str) -> None:
    """The entropy-coded data after SOS cannot contain FF D9 (FF is byte-stuffed), so the
    first FF D9 after the first scan is the image's end; without it the file was cut off."""
    scan_start = None
    for marker, start, _length in _jpeg_segments(data, name):
        if marker == 0xDA:
            scan_start = start
    if scan_start is None or data.find(b"\xff\xd9", scan_start) < 0:
        raise BadInputError(f"{name}: truncated JPEG (no end-of-image marker; the file was cut "
                            "off); copy the photo again")


def _check_png_complete(data: bytes, name: str) -> None:
    if data.rfind(b"IEND", max(0, len(data) - 4096)) < 0:
        raise BadInputError(f"{name}: truncated PNG (no IEND chunk; the file was cut off); "
                            "copy the image again")


# --- decoding ----------------------------------------------------------------------------------


def _decode_cv(data: bytes, kind: Format, name: str) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
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
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        colour = image[:, :, :3].astype(np.float32)
        return np.round(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


def _heif():
    try:
        import pillow_heif
    except ImportError:
        return None
    return pillow_heif


def _heic_dimensions(data: bytes, name: str) -> tuple[int, int]:
    heif = _heif()
    if heif is None:
        raise BadInputError(f"{name}: HEIC photo, but pillow-heif is not installed; "
                            f"{HEIC_HINT}")
    try:
        return tuple(heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True).size)
    except Exception as exc:  # libheif reports damage with its own error types
        raise BadInputError(f"{name}: corrupt HEIC ({exc}); re-export or copy the photo "
                            "again") from exc


def _decode_heic(data: bytes, name: str) -> tuple[np.ndarray, bytes | None]:
    heif = _heif()
    if heif is None:
        raise BadInputError(f"{name}: HEIC photo, but pillow-heif is not installed; "
                            f"{HEIC_HINT}")
    try:
        heif_file = heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        rgb = np.asarray(heif_file.to_pillow().convert("RGB"))
    except Exception as exc:
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
