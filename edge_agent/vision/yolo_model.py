"""A YOLO-family ONNX model described by models.toml: loaded, checked, warmed up, timed.

Why one wrapper: the vehicle detector and the plate detector are the same machine (letterbox ->
session -> decode -> NMS) with different labels; the load-time checks (file, sha256, input and
output shape) and the bare-inference clock the benchmark needs live here once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import ModelError
from edge_agent.vision import yolo
from edge_agent.vision.catalog import ModelSpec
from edge_agent.vision.loading import open_model
from edge_agent.vision.onnx_session import check_input_shape

log = logging.getLogger(__name__)


class InferenceClock:
    """Accumulates the time spent inside ``session.run`` only (no pre/post-processing)."""

    def __init__(self) -> None:
        self.total_ms = 0.0
        self.calls = 0

    def add(self, ms: float) -> None:
        self.total_ms += ms
        self.calls += 1


def load_checked_session(spec: ModelSpec, config: GotchaConfig):
    """Resolve, checksum (when configured), open and check the input shape the way every model
    is opened (edge_agent.vision.loading); the caller warms up with its own real-shaped input.
    Every failure is a ModelError."""
    loaded = open_model(config, spec, warm=False)
    path: Path = loaded.path
    return path, loaded.session


def expected_anchors(size: tuple[int, int], strides: tuple[int, ...] = yolo.YOLOX_STRIDES) -> int:
    """Number of predictions of an anchor-free head at strides 8/16/32 for input (w, h)."""
    width, height = size
    return sum((width // s) * (height // s) for s in strides)


class YoloModel:
    """One detector session plus the catalog's preprocessing, with reusable input buffers."""

    def __init__(self, spec: ModelSpec, config: GotchaConfig) -> None:
        if spec.layout not in ("yolov8", "yolox"):
            raise ModelError(f"model {spec.id}: layout {spec.layout!r} is not a YOLO detector "
                             "layout (yolov8 or yolox); fix models.toml")
        width, height = spec.input_size
        if width <= 0 or height <= 0 or width % 32 or height % 32:
            raise ModelError(f"model {spec.id}: input_size {list(spec.input_size)} must be "
                             "positive multiples of 32; fix models.toml")
        self.spec = spec
        self.path, self.session = load_checked_session(spec, config)
        check_input_shape(self.session, (1, 3, height, width), spec.id)
        self.input_name = self.session.get_inputs()[0].name
        self.size = (width, height)
        self.clock = InferenceClock()
        self._canvas = np.empty((height, width, 3), np.uint8)
        self._tensor = np.empty((1, 3, height, width), np.float32)
        self._grid = yolo.yolox_grid(self.size) if spec.layout == "yolox" else None
        self._warm_up()

    def _warm_up(self) -> None:
        """Run once at load: the first run allocates arenas and picks kernels (slow), and a
        wrong output layout shows here, at start, instead of on the first real photo."""
        self._tensor[...] = 0
        output = self._run(self._tensor)
        self.clock = InferenceClock()  # the warm-up is not part of any photo's time
        anchors = expected_anchors(self.size)
        shape = list(output.shape)
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

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        output = self.session.run(None, {self.input_name: tensor})[0]
        self.clock.add((time.perf_counter() - start) * 1000.0)
        return output

    def detect(
        self,
        image_bgr: np.ndarray,
        score_threshold: float,
        iou_threshold: float,
        class_ids: tuple[int, ...] | None = None,
    ) -> Detections:
        """Boxes in ``image_bgr`` pixels for the given classes (all when None)."""
        canvas, lb = yolo.letterbox(image_bgr, self.size, self.spec.letterbox, out=self._canvas)
        tensor = yolo.to_tensor(canvas, self.spec.color, self.spec.scale, self.spec.mean,
                                self.spec.std, out=self._tensor)
        output = self._run(tensor)
        return yolo.postprocess(output, self.spec.layout, lb, self.size,  # type: ignore[arg-type]
                                score_threshold, iou_threshold, class_ids, grid=self._grid)
