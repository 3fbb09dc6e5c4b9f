"""Text regions from a DB (differentiable binarisation) text detector such as PP-OCRv4 det.

Why: without a plate detector, or when it misses a plate that fills a hand-held close-up, the
characters themselves show where the plate is. The network gives a per-pixel text probability;
the post-processing here (threshold, contours, minimum-area rectangles, unclip) is our own
OpenCV code, tested on synthetic maps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec, get_spec, load_catalog
from edge_agent.inference.preprocess import resize, to_tensor
from edge_agent.inference.runner import InferenceClock, ModelRunner


@dataclass(frozen=True, slots=True)
class TextRegion:
    """One text line: its quad (tl, tr, br, bl) in image pixels and the mean probability."""

    quad: np.ndarray  # [4, 2] float32
    score: float


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order four corners as top-left, top-right, bottom-right, bottom-left.

    Corners are sorted clockwise around their centre; the start is the corner whose outgoing
    edge points right and is longest (a plate's top edge), which holds at any tilt below 90
    degrees, unlike sorting by y (wrong past ~11 degrees for a one-line plate).
    """
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles, kind="stable")]
    best, best_key = 0, (-1.0, 0.0)
    for start in range(4):
        dx, dy = pts[(start + 1) % 4] - pts[start]
        key = (1.0 if dx > 0 else 0.0, float(math.hypot(dx, dy)))
        if key > best_key:
            best, best_key = start, key
    return np.roll(pts, -best, axis=0)


def unclip_rect(rect: tuple, ratio: float) -> tuple:
    """Grow a rotated rectangle by the DB offset d = area * ratio / perimeter on every side.

    DB's map is shrunk relative to the true text; offsetting a rectangle by d gives a rectangle
    d larger on each side (corners squared), which is all a plate crop needs.
    """
    (cx, cy), (w, h), angle = rect
    perimeter = 2.0 * (w + h)
    if perimeter <= 0:
        return rect
    d = w * h * ratio / perimeter
    return (cx, cy), (w + 2 * d, h + 2 * d), angle


def db_postprocess(
    prob: np.ndarray,
    scale_x: float,
    scale_y: float,
    threshold: float = 0.3,
    box_threshold: float = 0.5,
    unclip_ratio: float = 1.6,
    min_side: float = 3.0,
    max_candidates: int = 300,
) -> list[TextRegion]:
    """Probability map [H, W] -> text quads in original pixels (x * scale_x, y * scale_y)."""
    bitmap = (prob > threshold).astype(np.uint8)
    bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    regions: list[TextRegion] = []
    height, width = prob.shape
    for contour in contours[:max_candidates]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < min_side:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [contour.reshape(-1, 2) - (x, y)], 1)
        score = float(cv2.mean(prob[y:y + h, x:x + w], mask)[0])
        if score < box_threshold:
            continue
        grown = unclip_rect(rect, unclip_ratio)
        if min(grown[1]) < min_side + 2:
            continue
        quad = cv2.boxPoints(grown)
        quad[:, 0] = np.clip(quad[:, 0], 0, width) * scale_x
        quad[:, 1] = np.clip(quad[:, 1], 0, height) * scale_y
        regions.append(TextRegion(order_quad(quad), score))
    return regions


def db_input_size(width: int, height: int, limit: int, min_side: int = 480) -> tuple[int, int]:
    """Resize target: short side raised to ``min_side`` (small close-ups: DB needs strokes a
    few pixels wide), long side at most ``limit``; both multiples of 32."""
    ratio = max(1.0, min_side / min(width, height))
    ratio = min(ratio, limit / max(width, height))
    new_w = max(32, round(width * ratio / 32) * 32)
    new_h = max(32, round(height * ratio / 32) * 32)
    return new_w, new_h


def scaled_input_size(width: int, height: int, side: int, zoom: float) -> tuple[int, int]:
    """Resize target for a region whose size says how large its text is (a vehicle's): longest
    side scaled to ``side``, enlarged at most ``zoom`` times; both multiples of 32."""
    ratio = min(side / max(width, height), zoom)
    return max(32, round(width * ratio / 32) * 32), max(32, round(height * ratio / 32) * 32)


class TextDetector:
    """PP-OCR DB text detector: ``detect(image) -> list[TextRegion]``."""

    def __init__(self, spec: ModelSpec, config: GotchaConfig, limit_side: int = 960) -> None:
        if spec.layout != "db":
            raise ModelError(f"model {spec.id}: layout {spec.layout!r} is not a DB text "
                             "detector; fix models.toml")
        self.spec = spec
        self.limit_side = limit_side
        self.runner = ModelRunner.load(config, spec)  # checks NCHW input, warms up once

    @property
    def clock(self) -> InferenceClock:
        """Bare inference time of this detector (its runner's)."""
        return self.runner.clock

    @classmethod
    def from_config(cls, config: GotchaConfig, model_id: str = "ppocrv4-det") -> TextDetector:
        catalog = load_catalog(config.models.catalog)
        return cls(get_spec(catalog, model_id, "text_detector"), config)

    def detect(self, image_bgr: np.ndarray, box_threshold: float = 0.5,
               size: tuple[int, int] | None = None) -> list[TextRegion]:
        """Text lines in a whole image; ``size`` (multiples of 32) overrides the input size
        (default: ``db_input_size`` with this detector's limit)."""
        return self.detect_batch([image_bgr], [size] if size else None, box_threshold)[0]

    def detect_batch(self, images_bgr: Sequence[np.ndarray],
                     sizes: Sequence[tuple[int, int]] | None = None,
                     box_threshold: float = 0.5) -> list[list[TextRegion]]:
        """Text lines in each image, in one model run: every image is resized to its own
        size, padded at right and bottom to the largest (zeros after normalisation, the
        network's own border padding), and each probability map is cut back before the
        post-processing. Why: one run for a photo's vehicles costs less than one per vehicle.
        """
        if sizes is None:
            sizes = [db_input_size(im.shape[1], im.shape[0], self.limit_side)
                     for im in images_bgr]
        batch_w, batch_h = max(w for w, _ in sizes), max(h for _, h in sizes)
        batch = np.zeros((len(images_bgr), 3, batch_h, batch_w), np.float32)
        for index, (image, (new_w, new_h)) in enumerate(zip(images_bgr, sizes, strict=True)):
            interp = cv2.INTER_AREA if new_w < image.shape[1] else cv2.INTER_LINEAR
            batch[index, :, :new_h, :new_w] = to_tensor(resize(image, (new_w, new_h), interp),
                                                        self.spec)[0]
        output = self.runner.run(batch)[0]
        maps = output.reshape(len(images_bgr), output.shape[-2], output.shape[-1])
        return [db_postprocess(maps[i, :new_h, :new_w], image.shape[1] / new_w,
                               image.shape[0] / new_h, box_threshold=box_threshold)
                for i, (image, (new_w, new_h)) in enumerate(zip(images_bgr, sizes, strict=True))]


def text_line_height(region: TextRegion) -> float:
    quad = region.quad
    return float(min(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1])))


def group_plate_candidates(
    regions: list[TextRegion], min_aspect: float = 1.0, max_aspect: float = 8.0
) -> list[tuple[np.ndarray, float]]:
    """Merge text lines that sit together (a two-line plate's region and number) into plate
    candidates: (axis-aligned box x1,y1,x2,y2, score), largest first."""
    boxes = []
    for region in regions:
        xs, ys = region.quad[:, 0], region.quad[:, 1]
        boxes.append([xs.min(), ys.min(), xs.max(), ys.max(), region.score,
                      text_line_height(region)])
    groups: list[list[float]] = []
    for box in sorted(boxes, key=lambda b: b[1]):
        for group in groups:
            gap = 0.6 * max(box[5], group[5])
            overlap_x = min(box[2], group[2]) - max(box[0], group[0])
            narrower = min(box[2] - box[0], group[2] - group[0])
            near_y = box[1] <= group[3] + gap and group[1] <= box[3] + gap
            stacked = near_y and overlap_x > 0.3 * narrower  # two-line plate
            overlap_y = min(box[3], group[3]) - max(box[1], group[1])
            same_line = (overlap_y > 0.5 * min(box[3] - box[1], group[3] - group[1])
                         and overlap_x > -1.5 * max(box[5], group[5]))  # split by a blur
            if stacked or same_line:
                group[0], group[1] = min(group[0], box[0]), min(group[1], box[1])
                group[2], group[3] = max(group[2], box[2]), max(group[3], box[3])
                group[4] = max(group[4], box[4])
                group[5] = max(group[5], box[5])
                break
        else:
            groups.append(list(box))
    out = []
    for x1, y1, x2, y2, score, _ in groups:
        w, h = x2 - x1, y2 - y1
        if h <= 0 or not (min_aspect <= w / h <= max_aspect):
            continue
        out.append((np.array([x1, y1, x2, y2], np.float32), float(score)))
    out.sort(key=lambda c: (c[0][2] - c[0][0]) * (c[0][3] - c[0][1]), reverse=True)
    return out


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    tl, tr, br, bl = quad
    width = max(math.dist(tl, tr), math.dist(bl, br))
    height = max(math.dist(tl, bl), math.dist(tr, br))
    return width, height
