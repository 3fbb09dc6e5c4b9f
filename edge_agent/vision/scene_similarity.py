"""Pure comparisons of two scene signatures' pieces: grey vehicle patches, the vehicle's contrast
against the ground beside it, and the geometry of mapped boxes. No state, no models."""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge_agent.results import Box
from edge_agent.vision.scene_signature import PATCH_SIDE

PATCH_CELLS = 3  # the patch is compared cell by cell on a PATCH_CELLS x PATCH_CELLS grid
PRESENCE_BLUR = 1.5  # px of the patch: a few pixels of misalignment must not read as a change
PRESENCE_CENTRE = 0.35  # centre weight's sigma, in patch sizes: a box's middle is the vehicle
MAX_KEPT = 1.5  # a pixel counts as keeping at most this share of its contrast


def box_to_patch(box: tuple[float, float, float, float]) -> np.ndarray:
    """The 3x3 map from working-image pixels to patch pixels of ``box``."""
    x1, y1, x2, y2 = box
    sx, sy = PATCH_SIDE / max(x2 - x1, 1e-3), PATCH_SIDE / max(y2 - y1, 1e-3)
    return np.array([[sx, 0, -x1 * sx], [0, sy, -y1 * sy], [0, 0, 1]], np.float64)


def aligned_patches(patch_a: np.ndarray, box_a: tuple[float, float, float, float],
                    patch_b: np.ndarray, box_b: tuple[float, float, float, float],
                    h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch a resampled into patch b's frame through the background homography ``h`` (a -> b),
    patch b, and the mask of pixels patch a covers; so a small camera move does not read as a
    change."""
    # patch-b pixel -> image b -> image a -> patch-a pixel
    back = box_to_patch(box_a) @ np.linalg.inv(h) @ np.linalg.inv(box_to_patch(box_b))
    size = (PATCH_SIDE, PATCH_SIDE)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(patch_a, back, size, flags=flags,
                                 borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(np.full(size, 255, np.uint8), back, size, flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, patch_b, valid > 127


def gradient_similarity(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Correlation of two grey patches' complex gradients, in [0, 1].

    Why gradients: brightness and contrast change with the hour; edges of a car do not. An empty
    space or another car gives a low value.
    """
    def grad(p: np.ndarray) -> np.ndarray:
        p = cv2.GaussianBlur(p.astype(np.float32), (0, 0), 1.0)
        gx = cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3)
        return (gx + 1j * gy).ravel()

    ga, gb = grad(a), grad(b)
    if valid is not None:
        keep = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)).ravel() > 0
        if keep.sum() < valid.size // 4:
            return 0.0
        ga, gb = ga[keep], gb[keep]
    denom = math.sqrt(float(np.vdot(ga, ga).real) * float(np.vdot(gb, gb).real))
    if denom < 1e-6:
        return 0.0
    return float(abs(np.vdot(ga, gb)) / denom)


def cell_similarity(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None,
                    cells: int = PATCH_CELLS) -> float:
    """Mean gradient correlation over a grid of cells of two patches.

    Why cells: each cell is normalised on its own, so a shadow over half the car or a passer-by
    in front of a third of it lowers a few cells, while a space that emptied lowers them all.
    """
    step = a.shape[0] // cells
    values = []
    for row in range(cells):
        for col in range(cells):
            part = (slice(row * step, (row + 1) * step), slice(col * step, (col + 1) * step))
            mask = None if valid is None else valid[part]
            if mask is not None and mask.sum() < mask.size // 4:
                continue  # this cell of patch a fell outside the photo after alignment
            values.append(gradient_similarity(a[part], b[part], mask))
    return float(np.mean(values)) if values else 0.0


def _centre_weights(side: int) -> np.ndarray:
    axis = (np.arange(side, dtype=np.float32) - (side - 1) / 2) / (PRESENCE_CENTRE * side)
    return np.exp(-0.5 * (axis[:, None] ** 2 + axis[None, :] ** 2))


CENTRE_WEIGHTS = _centre_weights(PATCH_SIDE)


def vehicle_contrast_left(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None,
                          ground_a: tuple[float, ...], ground_b: tuple[float, ...]
                          ) -> tuple[float, float]:
    """(share of the first photo's vehicle contrast the second still shows there, that contrast).

    A pixel's contrast is where its grey level falls among the ground's beside the vehicle
    (``ground_*``: quantiles of a ring around the box), less one half: -0.5 darker than all of
    it, +0.5 brighter. Ranks, not levels, so another exposure, gamma or a washed-out white car
    changes nothing. A vehicle still in place keeps its dark windows and bright body against
    the ground: each pixel keeps about its contrast (share about 1). A place that emptied shows
    ground: about 0, however well the lines, kerbs and neighbours inside the box still match;
    that static structure is what can fool a similarity of the two patches. Per pixel the kept
    share is clipped to [0, 1.5] (a passer-by in front of a third of the car costs at most a
    third), weighted by the first photo's squared contrast and by the distance from the box's
    centre (its edges hold neighbours); both patches are blurred, so a few pixels of
    misalignment are no change. The second value is the first photo's weighted RMS contrast: a
    car the shade of the ground has little, and then the share says little.
    """
    weights = CENTRE_WEIGHTS
    if valid is not None:
        weights = weights * cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8))
    total = float(weights.sum())
    if total < 1e-6:
        return 0.0, 0.0
    da = ground_rank(cv2.GaussianBlur(a.astype(np.float32), (0, 0), PRESENCE_BLUR), ground_a)
    db = ground_rank(cv2.GaussianBlur(b.astype(np.float32), (0, 0), PRESENCE_BLUR), ground_b)
    energy = weights * da * da
    contrast = math.sqrt(float(energy.sum()) / total)
    if float(energy.sum()) < 1e-9:
        return 0.0, contrast
    kept = np.clip(db / np.where(np.abs(da) < 1e-6, 1e-6, da), 0.0, MAX_KEPT)
    return float((energy * kept).sum() / energy.sum()), contrast


def ground_rank(grey: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Each grey level's rank among the ground's (from its evenly spaced quantiles), less 0.5.

    Equal quantiles (a flat or clipped ground) share their middle rank, so a level equal to
    all of them reads as 0, not as darker or brighter than the ground.
    """
    levels = np.asarray(quantiles, np.float64)
    count = len(levels)
    ranks = np.linspace(0.0, 1.0, count)
    ramp = np.arange(count) * 1e-3  # strictly increasing, from below and from above
    low = np.interp(grey, levels + ramp, ranks, left=0.0, right=1.0)
    high = np.interp(grey, levels - ramp[::-1], ranks, left=0.0, right=1.0)
    return ((low + high) / 2 - 0.5).astype(np.float32)


def map_box(h: np.ndarray, box: tuple[float, float, float, float]) -> Box | None:
    """The axis-aligned box around ``box`` mapped through ``h``; None when it leaves the plane."""
    x1, y1, x2, y2 = box
    corners = np.array([[[x1, y1]], [[x2, y1]], [[x2, y2]], [[x1, y2]]], np.float32)
    mapped = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    if not np.all(np.isfinite(mapped)):
        return None
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    return Box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def centre_shift(mapped: Box, target: Box) -> float:
    """How far the mapped box's centre is from the target's, in units of the target's size
    (square root of its area): a car moved 1.5 m is off by about half its size."""
    (ax, ay), (bx, by) = mapped.center, target.center
    return math.hypot(ax - bx, ay - by) / max(math.sqrt(target.area), 1e-6)


def sane_transform(h: np.ndarray, size: tuple[int, int]) -> bool:
    """Reject transforms no small camera move makes (mirror, collapse, huge zoom)."""
    w, ht = size
    corners = np.array([[[0, 0]], [[w, 0]], [[w, ht]], [[0, ht]]], np.float32)
    mapped = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    if not np.all(np.isfinite(mapped)):
        return False
    area = cv2.contourArea(mapped.astype(np.float32))
    ratio = area / float(w * ht)
    return 0.4 < ratio < 2.5 and cv2.isContourConvex(mapped.astype(np.float32))
