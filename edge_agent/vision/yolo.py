"""Pure post-processing for YOLO-family detectors (no model, no session); the letterbox that
feeds them is edge_agent.inference.preprocess's.

Why pure functions: decoding, NMS and undoing the letterbox are where detectors silently go
wrong (a box shifted by the padding, a class column off by one). As plain numpy they are tested
on synthetic arrays, and one code path serves ultralytics exports (``[1, 4+C, N]``) and YOLOX
raw grids (``[1, N, 5+C]``) at any input size.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from edge_agent.detections import Detections
from edge_agent.inference.preprocess import Letterbox

YOLOX_STRIDES = (8, 16, 32)


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
