"""A YOLO-family ONNX model described by models.toml: letterbox -> runner -> decode -> NMS.

Why one wrapper: the vehicle detector and the plate detector are the same machine with different
labels; the YOLO-specific load-time checks (input a multiple of 32, output shape matching the
layout) live here once, and the model itself is loaded, warmed up and timed by its ModelRunner.
"""

from __future__ import annotations

import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec
from edge_agent.inference.preprocess import letterbox, to_tensor
from edge_agent.inference.runner import InferenceClock, ModelRunner
from edge_agent.vision import yolo


def expected_anchors(size: tuple[int, int], strides: tuple[int, ...] = yolo.YOLOX_STRIDES) -> int:
    """Number of predictions of an anchor-free head at strides 8/16/32 for input (w, h)."""
    width, height = size
    return sum((width // s) * (height // s) for s in strides)


class YoloModel:
    """One detector runner plus the catalog's preprocessing, with reusable input buffers."""

    def __init__(self, spec: ModelSpec, config: GotchaConfig) -> None:
        if spec.layout not in ("yolov8", "yolox"):
            raise ModelError(f"model {spec.id}: layout {spec.layout!r} is not a YOLO detector "
                             "layout (yolov8 or yolox); fix models.toml")
        width, height = spec.input_size
        if width <= 0 or height <= 0 or width % 32 or height % 32:
            raise ModelError(f"model {spec.id}: input_size {list(spec.input_size)} must be "
                             "positive multiples of 32; fix models.toml")
        self.spec = spec
        self.runner = ModelRunner.load(config, spec)  # checks, then warms up once
        self.runner.check_input((1, 3, height, width))
        self.size = (width, height)
        self._canvas = np.empty((height, width, 3), np.uint8)
        self._tensor = np.empty((1, 3, height, width), np.float32)
        self._grid = yolo.yolox_grid(self.size) if spec.layout == "yolox" else None
        self._check_output()

    @property
    def clock(self) -> InferenceClock:
        """Bare inference time of this detector (its runner's)."""
        return self.runner.clock

    def _check_output(self) -> None:
        """A wrong output layout shows in the warm-up run's output, at start, instead of on the
        first real photo."""
        anchors = expected_anchors(self.size)
        shape = list(self.runner.warm_shapes[0])
        classes_needed = max(self.spec.labels, default=0) + 1
        if self.spec.layout == "yolov8":
            ok = (len(shape) == 3 and shape[0] == 1 and shape[2] == anchors
                  and shape[1] >= 4 + classes_needed)
            want = f"[1, 4+C, {anchors}] with C >= {classes_needed}"
        else:
            ok = (len(shape) == 3 and shape[0] == 1 and shape[1] == anchors
                  and shape[2] >= 5 + classes_needed)
            want = f"[1, {anchors}, 5+C] with C >= {classes_needed}"
        if not ok:
            raise ModelError(f"model {self.spec.id}: output shape {shape} does not match layout "
                             f"{self.spec.layout} at input {list(self.size)} (want {want}); "
                             "fix layout/input_size/labels in models.toml")

    def detect(
        self,
        image_bgr: np.ndarray,
        score_threshold: float,
        iou_threshold: float,
        class_ids: tuple[int, ...] | None = None,
    ) -> Detections:
        """Boxes in ``image_bgr`` pixels for the given classes (all when None)."""
        canvas, lb = letterbox(image_bgr, self.size, self.spec.letterbox, out=self._canvas)
        output = self.runner.run(to_tensor(canvas, self.spec, out=self._tensor))[0]
        return yolo.postprocess(output, self.spec.layout, lb, self.size,  # type: ignore[arg-type]
                                score_threshold, iou_threshold, class_ids, grid=self._grid)
