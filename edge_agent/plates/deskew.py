"""Turn a plate box into a straight, front-on plate crop.

Why: the recogniser reads rows of characters; a plate photographed from the kerb at an angle is
a trapezoid. Inside the detector's box the plate's own border (or, failing that, its outline
against the bumper) gives the four corners, and a perspective warp makes it a rectangle.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge_agent.results import Box
from edge_agent.vision.text_detector import order_quad, quad_size

SEARCH_MARGIN = 0.12  # look this much around the box: detector boxes often clip a corner
MIN_COVER = 0.45  # a found outline's extent must cover this share of the detector box
MIN_BOX_IOU = 0.55  # the outline's bounding box must agree this well with the detector box
ASPECT_RANGE = (1.1, 7.5)  # long/short side of any plate format (two-line ~2, one-line ~4.7)


def box_quad(box: Box) -> np.ndarray:
    return np.array([[box.x1, box.y1], [box.x2, box.y1], [box.x2, box.y2], [box.x1, box.y2]],
                    np.float32)


def find_plate_quad(region: np.ndarray, box_area: float) -> np.ndarray | None:
    """The plate's outline in ``region`` (BGR) as 4 corners, or None when nothing fits.

    First the strongest closed edge outline (the plate's frame); failing that, the largest
    Otsu blob of either polarity (a plate is a flat bright or dark panel on the bumper).
    """
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    gray = cv2.GaussianBlur(gray, (3, 3), 0)
    edges = cv2.Canny(gray, 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    quad = _best_outline(contours, region.shape[:2], box_area)
    if quad is not None:
        return quad
    _, bright = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = np.ones((5, 5), np.uint8)
    blobs = []
    for mask in (bright, 255 - bright):
        closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)  # join characters to panel
        found, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        blobs.extend(found)
    return _best_outline(blobs, region.shape[:2], box_area)


def _best_outline(contours, shape: tuple[int, ...], box_area: float) -> np.ndarray | None:
    region_area = float(shape[0] * shape[1])
    hulls = sorted((cv2.convexHull(c) for c in contours), key=cv2.contourArea, reverse=True)
    for hull in hulls[:5]:
        area = cv2.contourArea(hull)
        _, _, bw, bh = cv2.boundingRect(hull)  # a tilted plate fills little of its box
        if bw * bh < MIN_COVER * box_area or area > 0.9 * region_area:
            continue
        rect = cv2.minAreaRect(hull)
        w, h = rect[1]
        if min(w, h) <= 0:
            continue
        aspect = max(w, h) / min(w, h)
        if not (ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]) or area < 0.75 * w * h:
            continue
        approx = cv2.approxPolyDP(hull, 0.04 * cv2.arcLength(hull, True), True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            return order_quad(approx.reshape(4, 2))
        return order_quad(cv2.boxPoints(rect))
    return None


def refine_quad(image: np.ndarray, box: Box) -> np.ndarray:
    """Corners of the plate in image pixels; the box's own corners when no outline is found."""
    height, width = image.shape[:2]
    mx, my = box.width * SEARCH_MARGIN, box.height * SEARCH_MARGIN
    x1, y1 = max(0, int(box.x1 - mx)), max(0, int(box.y1 - my))
    x2, y2 = min(width, math.ceil(box.x2 + mx)), min(height, math.ceil(box.y2 + my))
    if x2 - x1 < 8 or y2 - y1 < 4:
        return box_quad(box)
    quad = find_plate_quad(image[y1:y2, x1:x2], box.area)
    if quad is None:
        return box_quad(box)
    quad = quad + np.array([x1, y1], np.float32)
    xs, ys = quad[:, 0], quad[:, 1]
    outline = Box(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    if outline.iou(box) < MIN_BOX_IOU:  # an edge of the bumper or a lamp, not the plate
        return box_quad(box)
    return quad


def warp_quad(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad's content as an upright rectangle of its own size (at least 8x4 pixels)."""
    qw, qh = quad_size(quad)
    out_w, out_h = max(8, round(qw)), max(4, round(qh))
    if out_h > out_w:  # a plate is wider than tall; corners came out rotated by 90 degrees
        quad = np.roll(quad, -1, axis=0)
        out_w, out_h = out_h, out_w
    target = np.array([[0, 0], [out_w - 1, 0], [out_w - 1, out_h - 1], [0, out_h - 1]],
                      np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return cv2.warpPerspective(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def deskew_plate(image: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(straight crop, quad) for the plate in ``box``."""
    quad = refine_quad(image, box)
    return warp_quad(image, quad), quad
