"""Where the licence plates are: on each vehicle, else anywhere in the frame.

Why this order: a plate detector at 320 px sees a plate far better inside a vehicle crop (the
plate is several times larger there) than in a whole street photo. A hand-held close-up shows
no whole vehicle, so then the whole frame is searched: as is, in tiles when it is large, zoomed
out when the plate fills the frame (the detector was trained on plates in context), and last
by the text detector, which finds the characters of even a dirty or noisy close-up.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.detections import TURNS, Detections
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import PACKAGED_MODELS_HINT, get_spec, load_catalog
from edge_agent.inference.preprocess import PAD_VALUE
from edge_agent.inference.runner import InferenceClock
from edge_agent.plates.deskew import deskew_plate, warp_quad
from edge_agent.results import Box, Vehicle
from edge_agent.vision.text_detector import (
    TextDetector,
    TextRegion,
    db_input_size,
    group_plate_candidates,
    order_quad,
    scaled_input_size,
)
from edge_agent.vision.yolo_model import YoloModel

log = logging.getLogger(__name__)

PLATE_NMS_IOU = 0.45
MAX_VEHICLES = 12  # plates are searched on the largest vehicles first, at most this many
TILE_MIN_SIDE = 960  # frames with a longer side get an extra tiled pass
ZOOM_OUT = 2.0  # canvas size relative to a close-up for the zoomed-out pass
TEXT_PLATE_MARGIN = (0.06, 0.18)  # text box -> plate box: share of width, height per side
MAX_FRAME_PLATES = 6
NO_VEHICLE = -1  # data["vehicle_index"] of a plate outside every vehicle


@dataclass(frozen=True, slots=True, eq=False)
class LocatedPlate:
    """A plate: box in photo pixels, locator score, straight crop, corners, vehicle index."""

    box: Box
    score: float
    crop: np.ndarray  # deskewed BGR
    quad: np.ndarray  # [4, 2] float32: tl, tr, br, bl in photo pixels
    vehicle_index: int | None
    source: str = "detector"  # detector | text


def tiles(width: int, height: int, grid: int = 2, overlap: float = 0.25
          ) -> list[tuple[int, int, int, int]]:
    """``grid`` x ``grid`` overlapping windows (x1, y1, x2, y2) covering the frame."""
    tw = math.ceil(width / (grid - (grid - 1) * overlap))
    th = math.ceil(height / (grid - (grid - 1) * overlap))
    out = []
    for row in range(grid):
        for col in range(grid):
            x1 = min(width - tw, round(col * tw * (1 - overlap)))
            y1 = min(height - th, round(row * th * (1 - overlap)))
            out.append((max(0, x1), max(0, y1), min(width, x1 + tw), min(height, y1 + th)))
    return out


def text_plate_quad(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The plate around its text lines: their minimum-area rectangle grown by the plate's
    border (TEXT_PLATE_MARGIN of its own width and height), clipped to the image."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(points.astype(np.float32))
    if w < h:  # make ``w`` the long side (OpenCV may report the rectangle turned by 90)
        w, h, angle = h, w, angle - 90.0
    mx, my = TEXT_PLATE_MARGIN
    quad = cv2.boxPoints(((cx, cy), (w * (1 + 2 * mx), h * (1 + 2 * my)), angle))
    quad[:, 0] = np.clip(quad[:, 0], 0, width)
    quad[:, 1] = np.clip(quad[:, 1], 0, height)
    return order_quad(quad)


def search_regions(vehicles: Sequence[Vehicle], margin: float, top: float, width: int,
                   height: int) -> Detections:
    """Where each vehicle's plate is searched: its box grown by ``margin`` of its size on each
    side; with ``top`` > 0 it starts that share of its height below its top instead (a plate
    sits on a vehicle's lower part). Clipped to the ``width`` x ``height`` photo."""
    grown = Detections.from_boxes([v.box for v in vehicles]).grow(
        margin, (0.0 if top > 0 else margin, margin), width, height)
    xyxy = grown.xyxy.copy()
    xyxy[:, 1] += top * np.array([v.box.y2 - v.box.y1 for v in vehicles])
    return Detections(xyxy, grown.scores, grown.class_ids)


def owner_of(plate: Box, vehicles: Sequence[Vehicle]) -> int | None:
    """The vehicle whose box holds the plate's centre (the smallest, when boxes nest); None
    when the plate lies in a search margin only, e.g. on a neighbouring, undetected car."""
    cx, cy = plate.center
    holders = [i for i, v in enumerate(vehicles)
               if v.box.x1 <= cx <= v.box.x2 and v.box.y1 <= cy <= v.box.y2]
    return min(holders, key=lambda i: vehicles[i].box.area) if holders else None


class PlateLocator:
    """``locate(image_bgr, vehicles) -> list[LocatedPlate]``."""

    def __init__(self, config: GotchaConfig, detector: YoloModel | None,
                 text_detector: TextDetector | None) -> None:
        if detector is None and text_detector is None:
            raise ModelError("no plate locator: configure models.plate_detector or enable "
                             f"vision.plate_text_fallback ({PACKAGED_MODELS_HINT})")
        self.vision = config.vision
        self.detector = detector
        self.text_detector = text_detector

    @classmethod
    def from_config(cls, config: GotchaConfig) -> PlateLocator:
        catalog = load_catalog(config.models.catalog)
        detector = None
        if config.models.plate_detector:
            spec = get_spec(catalog, config.models.plate_detector, "plate_detector")
            detector = YoloModel(spec, config)
        text = None
        if detector is None or config.vision.plate_text_fallback:
            spec = get_spec(catalog, config.vision.text_detector, "text_detector")
            text = TextDetector(spec, config)
        return cls(config, detector, text)

    @property
    def clocks(self) -> list[InferenceClock]:
        return [m.clock for m in (self.detector, self.text_detector) if m is not None]

    def inference_ms(self) -> float:
        return sum(c.total_ms for c in self.clocks)

    # -- public verb -----------------------------------------------------------------------

    def locate(self, image_bgr: np.ndarray, vehicles: Sequence[Vehicle], turned: bool = False
               ) -> list[LocatedPlate]:
        """Plates on the vehicles; the whole frame is searched when none is found on them.

        ``turned``: the vehicles were found with the photo rotated (fisheye, overhead), so
        their plates lie sideways too and each crop is also searched rotated back upright.
        """
        found = self._on_vehicles(image_bgr, vehicles, turned) if vehicles else Detections.empty()
        if not len(found):
            found = self._in_frame(image_bgr)
        quads = found.data.get("quad")
        plates = []
        for i, box in enumerate(found):
            if quads is None:  # detector box: find the plate's own outline inside it
                crop, quad = deskew_plate(image_bgr, box)
            else:  # text lines already give the tilt
                quad = np.array(quads[i])
                crop = warp_quad(image_bgr, quad)
            index = int(found.data["vehicle_index"][i])
            plates.append(LocatedPlate(box, float(found.scores[i]), crop, quad,
                                       None if index == NO_VEHICLE else index,
                                       str(found.data["source"][i])))
        return plates

    # -- passes ----------------------------------------------------------------------------

    def _detect(self, image: np.ndarray, offset: tuple[float, float] = (0.0, 0.0),
                score: float | None = None) -> Detections:
        assert self.detector is not None
        found = self.detector.detect(image, score or self.vision.plate_score, PLATE_NMS_IOU)
        return found.shift(*offset)

    def _text_candidates(self, image: np.ndarray, offset: tuple[float, float] = (0.0, 0.0)
                         ) -> Detections:
        """Plate candidates from text lines, with their tilted ``quad`` in photo pixels."""
        assert self.text_detector is not None
        height, width = image.shape[:2]
        size = db_input_size(width, height, self.text_detector.limit_side,
                             self.vision.text_min_side)
        return _text_plates(self.text_detector.detect(image, size=size), width, height, offset)

    def _text_on_vehicles(self, crops: list[tuple[np.ndarray, tuple[int, int]]]
                          ) -> list[Detections]:
        """The largest text block of each vehicle crop (its plate), the crops run through the
        text detector ``vision.text_batch`` at a time, similar sizes together."""
        assert self.text_detector is not None
        vision = self.vision
        sizes = [scaled_input_size(c.shape[1], c.shape[0], vision.text_vehicle_side,
                                   vision.text_vehicle_zoom) for c, _ in crops]
        order = sorted(range(len(crops)), key=lambda i: sizes[i][0] * sizes[i][1], reverse=True)
        found: list[Detections] = []
        for start in range(0, len(order), vision.text_batch):
            chunk = order[start:start + vision.text_batch]
            regions = self.text_detector.detect_batch([crops[i][0] for i in chunk],
                                                      [sizes[i] for i in chunk])
            for i, lines in zip(chunk, regions, strict=True):
                crop, offset = crops[i]
                found.append(_text_plates(lines, crop.shape[1], crop.shape[0], offset)[:1])
        return found

    def _on_vehicles(self, image: np.ndarray, vehicles: Sequence[Vehicle], turned: bool = False
                     ) -> Detections:
        height, width = image.shape[:2]
        top = 0.0 if turned else self.vision.plate_search_top  # turned: the plate is sideways
        regions = search_regions(vehicles, self.vision.plate_vehicle_margin, top, width, height)
        order = sorted(range(len(vehicles)), key=lambda i: vehicles[i].box.area, reverse=True)
        parts, crops = [], []
        for index in order[:MAX_VEHICLES]:
            x1, y1, _, _ = regions.pixel_box(index)
            crop = regions.crop(image, index)
            if crop.shape[0] < 8 or crop.shape[1] < 8:
                continue
            if self.detector is not None:
                found = self._detect(crop, (x1, y1))
                if turned and not len(found):
                    found = self._detect_turned(crop, (x1, y1))
                parts.append(found.with_data(source=_sources("detector", len(found))))
            else:  # the largest text block on a vehicle is its plate
                crops.append((crop, (x1, y1)))
        if crops:
            parts.extend(self._text_on_vehicles(crops))
        found = Detections.merge(parts).nms(PLATE_NMS_IOU, per_class=False)
        owners = [owner_of(box, vehicles) for box in found]
        return found.with_data(vehicle_index=np.array(
            [NO_VEHICLE if owner is None else owner for owner in owners], np.int64))

    def _in_frame(self, image: np.ndarray) -> Detections:
        """Whole-frame search, cheapest pass first; stops at the first pass that finds one."""
        height, width = image.shape[:2]
        found = Detections.empty()
        if self.detector is not None:
            passes = [lambda: self._detect(image)]
            if max(width, height) >= TILE_MIN_SIDE:
                passes.append(lambda: self._tiled(image))
            passes.append(lambda: self._zoomed_out(image))
            for run in passes:
                found = run()
                if len(found):
                    found = found.with_data(source=_sources("detector", len(found)))
                    break
        if not len(found) and self.text_detector is not None:
            found = self._text_candidates(image)
        found = found[:MAX_FRAME_PLATES]
        return found.with_data(vehicle_index=np.full(len(found), NO_VEHICLE, np.int64))

    def _detect_turned(self, crop: np.ndarray, offset: tuple[float, float]) -> Detections:
        """Plates in a crop turned 90 degrees each way, boxes mapped back to the photo."""
        height, width = crop.shape[:2]
        for turn in TURNS:
            found = self._detect(cv2.rotate(crop, turn))
            if len(found):
                return found.from_rotated(turn, width, height).shift(*offset)
        return Detections.empty()

    def _tiled(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        parts = [self._detect(image[y1:y2, x1:x2], (x1, y1))
                 for x1, y1, x2, y2 in tiles(width, height)]
        return Detections.merge(parts).nms(PLATE_NMS_IOU, per_class=False)

    def _zoomed_out(self, image: np.ndarray) -> Detections:
        """The photo centred on a larger grey canvas: a plate that fills a close-up becomes
        the size the detector knows."""
        height, width = image.shape[:2]
        big_w, big_h = round(width * ZOOM_OUT), round(height * ZOOM_OUT)
        canvas = np.full((big_h, big_w, 3), PAD_VALUE, np.uint8)
        x0, y0 = (big_w - width) // 2, (big_h - height) // 2
        canvas[y0:y0 + height, x0:x0 + width] = image
        found = self._detect(canvas, (-x0, -y0)).clip(width, height)
        return found[(found.widths > 4) & (found.heights > 2)]


def _sources(source: str, count: int) -> np.ndarray:
    """The ``source`` data of ``count`` plates found the same way (detector or text)."""
    return np.full(count, source)


def _text_plates(regions: list[TextRegion], width: int, height: int,
                 offset: tuple[float, float]) -> Detections:
    """Plate candidates from the text lines found in a ``width`` x ``height`` image, largest
    first, with their tilted ``quad``, shifted by ``offset`` into photo pixels."""
    quads, scores = [], []
    for (x1, y1, x2, y2), score in group_plate_candidates(regions):
        members = [r.quad for r in regions
                   if x1 - 1 <= r.quad[:, 0].mean() <= x2 + 1
                   and y1 - 1 <= r.quad[:, 1].mean() <= y2 + 1]
        quads.append(text_plate_quad(np.concatenate(members), width, height))
        scores.append(score)
    if not quads:
        return Detections.empty()
    corners = np.stack(quads)
    xyxy = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    found = Detections(xyxy, np.asarray(scores, np.float32), np.zeros(len(quads), np.int64))
    return found.shift(*offset).with_data(quad=corners + np.array(offset, np.float32),
                                          source=_sources("text", len(found)))
