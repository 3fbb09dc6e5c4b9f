"""Pure pre- and post-processing for YOLO-family detectors (no model, no session).

Why pure functions: letterboxing, decoding and NMS are where detectors silently go wrong (a box
shifted by the padding, a class column off by one). As plain numpy they are tested on synthetic
arrays, and one code path serves ultralytics exports (``[1, 4+C, N]``) and YOLOX raw grids
(``[1, N, 5+C]``) at any input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge_agent.detections import Detections

PAD_VALUE = 114
YOLOX_STRIDES = (8, 16, 32)


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the network input: ``input = original * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    width: int  # original image size
    height: int


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    mode: Literal["center", "topleft"] = "center",
    pad_value: int = PAD_VALUE,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` (H, W, 3) into ``size`` = (width, height) keeping its aspect ratio.

    ``out`` (shape (height, width, 3), uint8) is reused when given, so a detector running on
    every frame does not allocate a canvas each time.
    """
    in_w, in_h = size
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"letterbox: empty image of shape {image.shape}")
    scale = min(in_w / width, in_h / height)
    new_w = max(1, min(in_w, round(width * scale)))
    new_h = max(1, min(in_h, round(height * scale)))
    if mode == "center":
        pad_x, pad_y = (in_w - new_w) // 2, (in_h - new_h) // 2
    else:
        pad_x = pad_y = 0
    canvas = out if out is not None and out.shape == (in_h, in_w, 3) else np.empty(
        (in_h, in_w, 3), np.uint8)
    canvas[...] = pad_value
    region = canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w]
    if (new_w, new_h) == (width, height):
        region[...] = image
    else:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        cv2.resize(image, (new_w, new_h), dst=region, interpolation=interp)
    return canvas, Letterbox(scale, float(pad_x), float(pad_y), width, height)


def to_tensor(
    canvas: np.ndarray,
    color: Literal["rgb", "bgr", "gray"] = "rgb",
    scale: float = 255.0,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> float32 NCHW (1, 3, H, W) with the catalog's colour and scaling.

    Writes straight into ``out`` (reused between calls) channel by channel: one pass, no
    intermediate float image.
    """
    height, width = canvas.shape[:2]
    channels = 1 if color == "gray" else 3
    shape = (1, channels, height, width)
    tensor = out if out is not None and out.shape == shape else np.empty(shape, np.float32)
    if color == "gray":
        tensor[0, 0] = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)
        order: tuple[int, ...] = (0,)
    else:
        order = (2, 1, 0) if color == "rgb" else (0, 1, 2)
        for dst, src in enumerate(order):
            tensor[0, dst] = canvas[:, :, src]
    if scale != 1.0:
        tensor *= np.float32(1.0 / scale)
    if mean is not None or std is not None:
        m = np.asarray(mean or (0.0,) * channels, np.float32).reshape(1, channels, 1, 1)
        s = np.asarray(std or (1.0,) * channels, np.float32).reshape(1, channels, 1, 1)
        tensor -= m
        tensor /= s
    return tensor


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(xywh)
    half_w = xywh[:, 2] / 2
    half_h = xywh[:, 3] / 2
    out[:, 0] = xywh[:, 0] - half_w
    out[:, 1] = xywh[:, 1] - half_h
    out[:, 2] = xywh[:, 0] + half_w
    out[:, 3] = xywh[:, 1] + half_h
    return out


def _select(
    xywh: np.ndarray, class_scores: np.ndarray, score_threshold: float,
    class_ids: tuple[int, ...] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class per candidate among ``class_ids`` (all when None), above the threshold."""
    if class_ids is not None:
        ids = np.asarray(class_ids, np.int64)
        class_scores = class_scores[:, ids]
    else:
        ids = np.arange(class_scores.shape[1], dtype=np.int64)
    best = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(class_scores.shape[0]), best]
    keep = scores >= score_threshold
    return (xywh_to_xyxy(xywh[keep]).astype(np.float32), scores[keep].astype(np.float32),
            ids[best[keep]])


def decode_ultralytics(
    output: np.ndarray, score_threshold: float, class_ids: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``[1, 4+C, N]`` (cx, cy, w, h, C class scores) into input-pixel xyxy boxes."""
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
        raise ValueError(f"ultralytics output must be [1, 4+C, N], got {list(output.shape)}")
    pred = output[0]
    xywh = pred[:4].T
    class_scores = pred[4:].T
    return _select(xywh, class_scores, score_threshold, class_ids)


def yolox_grid(size: tuple[int, int], strides: tuple[int, ...] = YOLOX_STRIDES
               ) -> tuple[np.ndarray, np.ndarray]:
    """Grid offsets [N, 2] and strides [N, 1] of a YOLOX head for input (width, height)."""
    grids, expanded = [], []
    width, height = size
    for stride in strides:
        gw, gh = width // stride, height // stride
        xs, ys = np.meshgrid(np.arange(gw), np.arange(gh))
        grids.append(np.stack((xs, ys), axis=2).reshape(-1, 2))
        expanded.append(np.full((gw * gh, 1), stride))
    return (np.concatenate(grids).astype(np.float32),
            np.concatenate(expanded).astype(np.float32))


def decode_yolox(
    output: np.ndarray,
    size: tuple[int, int],
    score_threshold: float,
    class_ids: tuple[int, ...] | None = None,
    strides: tuple[int, ...] = YOLOX_STRIDES,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a YOLOX raw grid ``[1, N, 5+C]``: xy=(p+grid)*s, wh=exp(p)*s, score=obj*cls."""
    if output.ndim != 3 or output.shape[0] != 1 or output.shape[2] < 6:
        raise ValueError(f"YOLOX output must be [1, N, 5+C], got {list(output.shape)}")
    pred = output[0]
    offsets, stride = grid if grid is not None else yolox_grid(size, strides)
    if offsets.shape[0] != pred.shape[0]:
        raise ValueError(f"YOLOX output has {pred.shape[0]} rows, input {size} with strides "
                         f"{strides} gives {offsets.shape[0]}")
    objectness = pred[:, 4]
    # Cheap pre-filter: a candidate whose objectness is below the threshold cannot pass.
    live = objectness >= score_threshold
    pred, offsets, stride = pred[live], offsets[live], stride[live]
    xywh = np.empty((pred.shape[0], 4), np.float32)
    xywh[:, :2] = (pred[:, :2] + offsets) * stride
    xywh[:, 2:] = np.exp(np.minimum(pred[:, 2:4], 20.0)) * stride
    class_scores = pred[:, 5:] * pred[:, 4:5]
    return _select(xywh, class_scores, score_threshold, class_ids)


def unletterbox(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Map input-pixel boxes back to the original image, clipped to its bounds."""
    out = boxes.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - lb.pad_x) / lb.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - lb.pad_y) / lb.scale
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, lb.width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, lb.height)
    return out


def postprocess(
    output: np.ndarray,
    layout: Literal["yolov8", "yolox"],
    lb: Letterbox,
    input_size: tuple[int, int],
    score_threshold: float,
    iou_threshold: float,
    class_ids: tuple[int, ...] | None = None,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> Detections:
    """Decode, NMS per class, and map back to the original image in one call."""
    if layout == "yolox":
        boxes, scores, classes = decode_yolox(output, input_size, score_threshold, class_ids,
                                              grid=grid)
    else:
        boxes, scores, classes = decode_ultralytics(output, score_threshold, class_ids)
    kept = Detections(boxes, scores, classes).nms(iou_threshold)
    return Detections(unletterbox(kept.xyxy, lb), kept.scores, kept.class_ids)
