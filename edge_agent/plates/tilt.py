"""How far a plate is tilted inside its crop, and the crop turned level, for another read.

Why: the reader was trained on plates sheared by a few degrees at most. A camera that rolls, a
plate on a slope or a car parked across the kerb gives plates tilted by 10-25 degrees, whose
characters the recogniser then misreads (83라2392 as 83호2312). The plate locator already
warps a plate straight when it finds the plate's outline (edge_agent.plates.deskew); this is
for crops where it did not, and for crops handed to the reader directly. A plate's long edges
(border, frame, the tops and bottoms of its characters) are straight lines, so the length-
weighted median angle of the long, nearly horizontal lines in the crop says how far it is
tilted. Canny and a probabilistic Hough transform on the crop shrunk to 96 px take about
half a millisecond, paid only by reads that are still doubtful after the other looks.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 96  # px: the longer side the crop is shrunk to; long lines survive, noise does not
MAX_ANGLE = 30.0  # degrees: steeper lines are character strokes or car parts, not the plate
MIN_LINE = 0.3  # a line must run across this share of the crop width
AGREE = 3.0  # degrees: lines this close to the median angle are averaged for the estimate
MIN_ANGLE = 4.0  # degrees: a plate tilted less than this reads as it is (training has shear)


def tilt_angle(crop_bgr: np.ndarray) -> float:
    """Degrees the plate's long lines rise (negative) or fall (positive) from left to right in
    image coordinates; 0.0 when the crop has no long, nearly horizontal line."""
    gray = crop_bgr if crop_bgr.ndim == 2 else cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(8, round(w * scale)), max(8, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    h, w = gray.shape[:2]
    brightness = float(np.median(gray))  # edge thresholds follow the crop's exposure
    edges = cv2.Canny(gray, int(0.66 * brightness), min(255, int(1.33 * brightness) + 20))
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(10, w // 6),
                            minLineLength=w * MIN_LINE, maxLineGap=max(2, w // 40))
    if lines is None:
        return 0.0
    x0, y0, x1, y1 = lines.reshape(-1, 4).astype(np.float32).T
    angles = np.degrees(np.arctan2(y1 - y0, x1 - x0))
    angles = (angles + 90.0) % 180.0 - 90.0  # a line drawn right to left is the same line
    lengths = np.hypot(x1 - x0, y1 - y0)
    near = np.abs(angles) <= MAX_ANGLE
    if not near.any():
        return 0.0
    angles, lengths = angles[near], lengths[near]
    order = np.argsort(angles)
    cumulative = np.cumsum(lengths[order])
    median_angle = angles[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    # the lines that agree with the median, averaged: finer than one line's pixel steps
    agree = np.abs(angles - median_angle) <= AGREE
    return float(np.average(angles[agree], weights=lengths[agree]))


def level(crop_bgr: np.ndarray, angle: float) -> np.ndarray:
    """The crop turned by ``angle`` degrees (as tilt_angle measures it), so that a plate tilted
    that much is level; the canvas grows to keep the corners, filled by repeating the edge."""
    h, w = crop_bgr.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(float(turn[0, 0])), abs(float(turn[0, 1]))
    new_w, new_h = round(h * sin + w * cos), round(h * cos + w * sin)
    turn[0, 2] += new_w / 2 - w / 2
    turn[1, 2] += new_h / 2 - h / 2
    return cv2.warpAffine(crop_bgr, turn, (new_w, new_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
