"""Two photos of one parked vehicle, made from one real photo: the second shifted a little,
lighter, taken some seconds later, both with EXIF time and GPS (for the lifecycle tests)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.io.exif import write_exif
from edge_agent.io.photo import Photo, decode_photo
from edge_agent.results import Box, GeoPoint, PhotoResult, PlateDetection, PlateRead, Vehicle

HERE = GeoPoint(37.5665, 126.9780, 5.0)


def shifted(image: np.ndarray, dx: float, dy: float, gain: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]),
                           borderMode=cv2.BORDER_REFLECT)
    return cv2.convertScaleAbs(moved, alpha=gain, beta=0)


def jpeg(image: np.ndarray, at: datetime, where: GeoPoint | None) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return write_exif(data.tobytes(), at, where)


def photo_pair(source: Path, config: GotchaConfig, first_at: datetime, gap_s: float,
               where: GeoPoint = HERE) -> tuple[Photo, Photo]:
    image = cv2.imread(str(source))
    assert image is not None, source
    scale = 1280 / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    second = shifted(image, 4, 3, 1.08)
    a = decode_photo(jpeg(image, first_at, where), config, name="p1.jpg")
    b = decode_photo(jpeg(second, first_at + timedelta(seconds=gap_s), where), config,
                     name="p2.jpg")
    return a, b


def result_for(photo: Photo, plate: str, vehicle: Box, dx: float = 0.0,
               dy: float = 0.0, confidence: float = 0.95, dissent: int = 0,
               crop_size: tuple[int, int] = (256, 64)) -> PhotoResult:
    """A pipeline result naming one vehicle and its plate (boxes moved by dx, dy), read as the
    pipeline reads would-be evidence: from a crop of ``crop_size`` (width, height) pixels,
    checked in the five views, ``dissent`` of them reading its third character otherwise."""
    v = Box(vehicle.x1 + dx, vehicle.y1 + dy, vehicle.x2 + dx, vehicle.y2 + dy)
    pw, ph = v.width * 0.25, v.height * 0.08
    cx, py = (v.x1 + v.x2) / 2, v.y2 - v.height * 0.2
    plate_box = Box(cx - pw / 2, py - ph / 2, cx + pw / 2, py + ph / 2)
    read = PlateRead(raw_text=plate, char_confidences=(confidence,) * len(plate), text=plate,
                     valid=True, dissent=(0, 0, dissent) + (0,) * (len(plate) - 3),
                     views_checked=5, crop_size=crop_size)
    return PhotoResult(photo_meta=photo.meta, image_size=photo.size,
                       vehicles=[Vehicle(v, "car", 0.9)],
                       plates=[PlateDetection(plate_box, 0.8, read, 0)], timings_ms={})
