"""Degradations real plate crops have, each a pure function of (image, rng).

Why separate functions: training composes all of them at random strengths, while the demo and
tests use one at a time. None of them changes the text a plate shows.
"""

from __future__ import annotations

import cv2
import numpy as np


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def add_frame(plate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plastic or chrome plate holder around the plate, sometimes with a dealer's name."""
    h, w = plate.shape[:2]
    t = max(1, int(h * _u(rng, 0.04, 0.14)))
    bottom = t + (int(h * _u(rng, 0.05, 0.2)) if rng.random() < 0.5 else 0)
    tone = int(rng.integers(10, 200))
    out = cv2.copyMakeBorder(plate, t, bottom, t, t, cv2.BORDER_CONSTANT, value=(tone,) * 3)
    if bottom > t and rng.random() < 0.7:
        scale = max(0.2, (bottom - t) / 30)
        label = str(rng.choice(["HYUNDAI", "KIA MOTORS", "GENESIS", "SsangYong", "RENAULT"]))
        ink = 255 - tone
        cv2.putText(out, label, (int(w * _u(rng, 0.2, 0.5)), h + t + bottom - max(1, t // 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (ink,) * 3, 1, cv2.LINE_AA)
    return out


def scene_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A car-body-like background: a base colour, a vertical gradient, some grille lines."""
    base = rng.integers(0, 256, 3).astype(np.float32)
    if rng.random() < 0.6:
        base[:] = rng.integers(0, 256)  # grey/black/white cars are the most common
    grad = np.linspace(_u(rng, 0.5, 1.1), _u(rng, 0.5, 1.1), height, dtype=np.float32)
    column = np.clip(grad[:, None] * base[None, :], 0, 255).astype(np.uint8)  # [H, 3]
    img = np.ascontiguousarray(np.broadcast_to(column[:, None, :], (height, width, 3)))
    for _ in range(int(rng.integers(0, 5))):
        y = int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.line(img, (0, y), (width, y + int(rng.integers(-10, 10))), color,
                 int(rng.integers(1, max(2, height // 15))), cv2.LINE_AA)
    if rng.random() < 0.3:  # a badge or a curve of the bumper
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, width // 2 + 6)), int(rng.integers(3, height // 3 + 4)))
        cv2.ellipse(img, center, axes, 0, 0, 360, tuple(int(c) for c in rng.integers(0, 256, 3)),
                    int(rng.integers(1, 4)))
    if rng.random() < 0.6:
        edge_clutter(img, rng)
    return img


def edge_clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    """Things around a plate that a loose crop shows and a reader must not read (in place).

    Bolts and screw heads, the edge of a dark plate holder, lamp/badge blobs and partial
    characters (a dealer's name, a neighbouring sign) cut by the crop's edge.
    """
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.random()
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind < 0.3:  # bolt or lamp
            r = max(1, int(h * _u(rng, 0.02, 0.1)))
            cv2.circle(img, (x, y), r, color, -1, cv2.LINE_AA)
        elif kind < 0.55:  # vertical edge of a holder, grille or lamp housing
            cv2.line(img, (x, 0), (x + int(rng.integers(-h // 4 - 1, h // 4 + 1)), h), color,
                     int(rng.integers(1, max(2, w // 30))), cv2.LINE_AA)
        else:  # characters cut by the crop edge or small print on the bumper
            text = "".join(str(rng.choice(list(_CLUTTER_CHARS)))
                           for _ in range(int(rng.integers(1, 6))))
            scale = _u(rng, 0.2, 0.9) * h / 60
            cv2.putText(img, text, (int(rng.choice([-w // 10, x, w - w // 10])), y),
                        cv2.FONT_HERSHEY_SIMPLEX if rng.random() < 0.5 else cv2.FONT_HERSHEY_DUPLEX,
                        max(0.2, scale), color, max(1, int(scale * 2)), cv2.LINE_AA)


_CLUTTER_CHARS = "0123456789ABCDEFGHKMNRSTUVXYZ-|I"


def place_and_crop(plate: np.ndarray, rng: np.random.Generator, loose: float,
                   warp: float) -> np.ndarray:
    """Put the plate on a background with perspective ``warp`` (0..~0.15) and crop around it.

    ``loose`` is the margin as a fraction of plate height (0 = tight, 1 = a lot of bumper);
    a tight crop may cut a little of the plate's edge, as detector boxes do. Only the cropped
    area is ever drawn, which keeps this cheap.
    """
    h, w = plate.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-warp, warp, (4, 2)).astype(np.float32) * np.float32([w, h]) * 0.5
    # a rotation-like shear on top of independent corner jitter
    tilt = _u(rng, -warp, warp) * h
    jitter[:, 1] += np.float32([-tilt, tilt, tilt, -tilt]) * 0.5
    dst = src + jitter
    x0, y0 = dst.min(axis=0)
    x1, y1 = dst.max(axis=0)
    ph = y1 - y0
    margins = [loose * ph * _u(rng, 0.3, 1.0) for _ in range(4)]
    if loose < 0.05:
        margins = [ph * _u(rng, -0.04, 0.05) for _ in range(4)]
    cx0 = int(np.floor(x0 - margins[0] * _u(rng, 0.5, 1.5)))
    cx1 = max(cx0 + 2, int(np.ceil(x1 + margins[1] * _u(rng, 0.5, 1.5))))
    cy0 = int(np.floor(y0 - margins[2]))
    cy1 = max(cy0 + 2, int(np.ceil(y1 + margins[3])))
    size = (cx1 - cx0, cy1 - cy0)
    canvas = scene_background(size[1], size[0], rng)
    matrix = cv2.getPerspectiveTransform(src, dst - np.float32([cx0, cy0]))
    warped = cv2.warpPerspective(plate, matrix, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size)
    cv2.copyTo(warped, (mask > 127).view(np.uint8), canvas)
    return canvas


def color_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, contrast, white balance and gamma of a phone or dash camera."""
    gains = rng.uniform(0.88, 1.12, 3)  # white balance
    contrast, offset, gamma = _u(rng, 0.5, 1.3), _u(rng, -0.25, 0.2), _u(rng, 0.6, 1.6)
    levels = np.arange(256, dtype=np.float32) / 255.0
    channels = []
    for c in range(3):
        curve = np.clip((levels * gains[c] - 0.5) * contrast + 0.5 + offset, 0, 1) ** gamma
        channels.append(cv2.LUT(img[..., c], (curve * 255).astype(np.uint8)))
    return cv2.merge(channels)


def shadow(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hard shadow edge across part of the plate."""
    h, w = img.shape[:2]
    pts = np.int32([[_u(rng, -0.2, 1.2) * w, _u(rng, -0.2, 1.2) * h] for _ in range(4)])
    mask = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, h * 0.03))
    factor = 1.0 - mask * _u(rng, 0.3, 0.7)
    return (img.astype(np.float32) * factor[..., None]).astype(np.uint8)


def glare(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bright specular blob (sun or flash on the plate's film)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = _u(rng, 0, w), _u(rng, 0, h)
    sx, sy = _u(rng, 0.05, 0.4) * w, _u(rng, 0.1, 0.6) * h
    blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    out = img.astype(np.float32) + blob[..., None] * _u(rng, 60, 200)
    return np.clip(out, 0, 255).astype(np.uint8)


def dirt(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mud specks and streaks, brownish and semi-transparent."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 30))):
        r = max(1, int(_u(rng, 0.005, 0.04) * w))
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), r, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0) * _u(rng, 0.2, 0.6)
    mud = np.array([40, 70, 90], np.float32)
    out = img.astype(np.float32) * (1 - mask[..., None]) + mud * mask[..., None]
    return out.astype(np.uint8)


def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus (Gaussian) or motion blur proportional to the crop height."""
    h = img.shape[0]
    if rng.random() < 0.5:
        return cv2.GaussianBlur(img, (0, 0), max(0.3, h * _u(rng, 0.005, 0.03)))
    k = max(3, int(h * _u(rng, 0.02, 0.08)) | 1)
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), _u(rng, -30, 30), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    return cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))


def low_resolution(img: np.ndarray, rng: np.random.Generator, min_height: int = 20,
                   max_height: int = 160) -> np.ndarray:
    """Down-sample to a random height (as far as ``min_height``), as a far plate is."""
    h, w = img.shape[:2]
    target = int(rng.integers(min_height, max(min_height + 1, min(max_height, h) + 1)))
    scale = target / h
    interp = cv2.INTER_AREA if rng.random() < 0.7 else cv2.INTER_LINEAR
    return cv2.resize(img, (max(4, round(w * scale)), target), interpolation=interp)


def noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise."""
    sigma = _u(rng, 2, 14)
    out = img.astype(np.float32) + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression loss at a random quality."""
    quality = int(rng.integers(15, 90))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img
