"""One result type for every detection stage: boxes, scores, class ids and named per-box data.

Why one type: the detectors, the plate locator's passes, the privacy blur and the scene
signature all hold boxes, and each used to hold them its own way (arrays, ``Box`` lists,
tuples) with its own "grow a box" and its own mapping back from a rotated view. Here a set of
detections is checked once, when it is built (the error says which shape was expected and
which came), and growing, clipping, NMS, cropping and the rotation mapping are written once.
A single box that is stored or serialised stays a ``results.Box``; ``from_boxes`` and
iteration convert between the two.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import cv2
import numpy as np

from edge_agent.results import Box

Margin = float | tuple[float, float]
"""How much a box grows on each side, as a share of its own size: one value for both sides,
or a (before, after) pair: (left, right) across, (top, bottom) down."""

TURNS = (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE)
"""The two quarter turns a detector looks through for vehicles lying sideways."""


def _frozen(name: str, value: object, dtype: type | None, shape: tuple[int | None, ...]
            ) -> np.ndarray:
    """A read-only copy of ``value`` with the given dtype; ValueError naming the expected and
    actual shape (None in ``shape`` matches any length)."""
    array = np.array(value, dtype=dtype, copy=True)
    ok = array.ndim == len(shape) and all(
        want is None or want == got for want, got in zip(shape, array.shape, strict=True))
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"Detections.{name} must have shape {want}, got {list(array.shape)}")
    array.setflags(write=False)
    return array


def nms_indices(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float,
                class_ids: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression, per class when ``class_ids`` is given.

    Class-aware by shifting each class's boxes far apart, so one vectorised pass handles all
    classes. Returns kept indices, best score first (ties keep their order).
    """
    if xyxy.shape[0] == 0:
        return np.zeros(0, np.int64)
    work = xyxy.astype(np.float64, copy=True)
    if class_ids is not None:
        span = float(work.max() - work.min()) + 1.0
        work += (class_ids.astype(np.float64) * span)[:, None]
    x1, y1, x2, y2 = work.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        iy = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = ix * iy
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def _sides(margin: Margin, name: str) -> tuple[float, float]:
    before, after = margin if isinstance(margin, tuple) else (margin, margin)
    if not (math.isfinite(before) and math.isfinite(after)) or before < 0 or after < 0:
        raise ValueError(f"grow: {name} must be finite and >= 0, got {margin}")
    return float(before), float(after)


def _clipped(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    if width < 0 or height < 0:
        raise ValueError(f"clip: image size must be >= 0, got {width}x{height}")
    out = np.array(xyxy, np.float64, copy=True)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """N boxes (x1, y1, x2, y2) in pixels, their scores, class ids and per-box ``data``.

    ``xyxy`` is [N, 4] float32 with x1 <= x2 and y1 <= y2, ``scores`` [N] float32,
    ``class_ids`` [N] int64, and each ``data`` array has N rows (e.g. a plate's ``quad``
    [N, 4, 2], its ``vehicle_index`` [N]). Arrays are copied and read-only: every method
    returns new detections.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    data: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = _frozen("xyxy", self.xyxy, np.float32, (None, 4))
        count = xyxy.shape[0]
        scores = _frozen("scores", self.scores, np.float32, (count,))
        class_ids = _frozen("class_ids", self.class_ids, np.int64, (count,))
        if not np.isfinite(xyxy).all():
            raise ValueError("Detections.xyxy must be finite, got NaN or infinity")
        if (xyxy[:, 2] < xyxy[:, 0]).any() or (xyxy[:, 3] < xyxy[:, 1]).any():
            bad = int(np.flatnonzero((xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1]))[0])
            raise ValueError(f"Detections.xyxy needs x1<=x2 and y1<=y2, got row {bad}: "
                             f"{xyxy[bad].tolist()}")
        data = {}
        for key, value in self.data.items():
            array = np.asarray(value)
            data[key] = _frozen(f"data[{key!r}]", array, None,
                                (count, *(None,) * max(array.ndim - 1, 0)))
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)
        object.__setattr__(self, "data", MappingProxyType(data))

    # -- building --------------------------------------------------------------------------

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                          np.zeros(0, np.int64))

    @staticmethod
    def from_boxes(boxes: Sequence[Box], scores: Sequence[float] | None = None,
                   class_ids: Sequence[int] | None = None) -> Detections:
        """Detections from ``Box`` values (scores 1 and class 0 when not given)."""
        count = len(boxes)
        xyxy = np.array([(b.x1, b.y1, b.x2, b.y2) for b in boxes], np.float64).reshape(count, 4)
        return Detections(xyxy,
                          np.ones(count, np.float32) if scores is None else np.asarray(scores),
                          np.zeros(count, np.int64) if class_ids is None
                          else np.asarray(class_ids))

    @staticmethod
    def merge(parts: Sequence[Detections]) -> Detections:
        """All parts' detections in order; empty parts are skipped, the others must carry the
        same data keys."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        keys = set(parts[0].data)
        for part in parts[1:]:
            if set(part.data) != keys:
                raise ValueError(f"Detections.merge: data keys differ: {sorted(keys)} and "
                                 f"{sorted(part.data)}")
        return Detections(np.concatenate([p.xyxy for p in parts]),
                          np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.class_ids for p in parts]),
                          {k: np.concatenate([p.data[k] for p in parts]) for k in keys})

    def with_data(self, **arrays: np.ndarray) -> Detections:
        """The same detections with these per-box arrays added (or replaced)."""
        return Detections(self.xyxy, self.scores, self.class_ids, {**self.data, **arrays})

    def _with_xyxy(self, xyxy: np.ndarray) -> Detections:
        return Detections(xyxy, self.scores, self.class_ids, self.data)

    # -- selection -------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Detections:
        """A subset, always as Detections: an int, a slice, int indices or a boolean mask."""
        if isinstance(index, int | np.integer):
            if not -len(self) <= int(index) < len(self):
                raise IndexError(f"Detections index {index} out of range for {len(self)}")
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise ValueError(f"Detections mask must have shape [{len(self)}], got "
                             f"{list(index.shape)}")
        return Detections(self.xyxy[index], self.scores[index], self.class_ids[index],
                          {k: v[index] for k, v in self.data.items()})

    def __iter__(self) -> Iterator[Box]:
        """Each detection's box, as the single-box value type."""
        for x1, y1, x2, y2 in self.xyxy.tolist():
            yield Box(x1, y1, x2, y2)

    def box(self, i: int) -> Box:
        return Box(*self.xyxy[i].tolist())

    def scoring_at_least(self, min_score: float) -> Detections:
        """The detections whose score is at least ``min_score`` (compared in double precision,
        so a threshold between two float32 values cuts where Python's ``<`` would)."""
        return self[self.scores.astype(np.float64) >= min_score]

    def best_first(self) -> Detections:
        """Sorted by score, highest first; equal scores keep their order."""
        return self[np.argsort(-self.scores, kind="stable")]

    def nms(self, iou: float, *, per_class: bool = True) -> Detections:
        """Greedy non-maximum suppression (per class unless ``per_class`` is False), best
        score first."""
        keep = nms_indices(self.xyxy, self.scores, iou, self.class_ids if per_class else None)
        return self[keep]

    # -- geometry --------------------------------------------------------------------------

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2].astype(np.float64) - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3].astype(np.float64) - self.xyxy[:, 1]

    def shift(self, dx: float, dy: float) -> Detections:
        """Moved by (dx, dy): boxes found in a crop, placed back in the photo."""
        if (dx, dy) == (0, 0):
            return self
        return self._with_xyxy(self.xyxy + np.array([dx, dy, dx, dy], np.float32))

    def clip(self, width: int, height: int) -> Detections:
        """Boxes cut to a ``width`` x ``height`` image."""
        return self._with_xyxy(_clipped(self.xyxy, width, height))

    def grow(self, fx: Margin, fy: Margin, width: int, height: int) -> Detections:
        """Each box grown by ``fx`` of its width left and right and ``fy`` of its height above
        and below (a (before, after) pair grows the two sides apart), clipped to the image.

        Why: a plate is searched with a margin around its vehicle, a blur reaches past a
        detector's tight box, and a scene mask covers a vehicle's surroundings.
        """
        left, right = _sides(fx, "fx")
        top, bottom = _sides(fy, "fy")
        xyxy = self.xyxy.astype(np.float64)
        w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
        grown = np.stack([xyxy[:, 0] - w * left, xyxy[:, 1] - h * top,
                          xyxy[:, 2] + w * right, xyxy[:, 3] + h * bottom], axis=1)
        return self._with_xyxy(_clipped(grown, width, height))

    def pixel_box(self, i: int) -> tuple[int, int, int, int]:
        """The smallest whole-pixel box (x1, y1, x2, y2) holding box ``i``, for slicing
        (clip first: a negative slice start would wrap around)."""
        x1, y1, x2, y2 = self.xyxy[i].tolist()
        return math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)

    def crop(self, image: np.ndarray, i: int) -> np.ndarray:
        """The pixels of box ``i`` (cut to the image), a view into ``image``."""
        height, width = image.shape[:2]
        x1, y1, x2, y2 = self[i].clip(width, height).pixel_box(0)
        return image[y1:y2, x1:x2]

    def from_rotated(self, turn: int, width: int, height: int) -> Detections:
        """Boxes found in the image turned by ``turn`` (cv2.ROTATE_90_CLOCKWISE or
        cv2.ROTATE_90_COUNTERCLOCKWISE), mapped back to the upright ``width`` x ``height``
        image and clipped to it."""
        x1, y1, x2, y2 = self.xyxy.T
        if turn == cv2.ROTATE_90_CLOCKWISE:  # rotated (x', y') = (h - y, x)
            xyxy = np.stack([y1, height - x2, y2, height - x1], axis=1)
        elif turn == cv2.ROTATE_90_COUNTERCLOCKWISE:  # rotated (x', y') = (y, w - x)
            xyxy = np.stack([width - y2, x1, width - y1, x2], axis=1)
        else:
            raise ValueError(f"from_rotated: turn must be cv2.ROTATE_90_CLOCKWISE "
                             f"({cv2.ROTATE_90_CLOCKWISE}) or cv2.ROTATE_90_COUNTERCLOCKWISE "
                             f"({cv2.ROTATE_90_COUNTERCLOCKWISE}), got {turn}")
        return self._with_xyxy(xyxy.astype(np.float32)).clip(width, height)
