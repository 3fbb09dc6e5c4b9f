"""The original design's naive plate reading, timed like the pipeline: PaddleOCR (RapidOCR's
PP-OCRv4 det + cls + rec) over each whole photo.

Why keep it: the issue's speed target is relative to this approach ("at least 4x faster than
naive"), so the benchmark measures it on the same photos, machine and load as the pipeline.
Used by scripts/bench_vision.py --naive; needs ``pip install rapidocr-onnxruntime==1.4.4``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAIVE_STAGES = ("decode", "det", "cls", "rec", "total")


class _Timed:
    """Wraps a callable part (a stage object or an onnxruntime session's ``run``) and adds
    the milliseconds of every call to ``clock[name]``; anything else is the part's own."""

    def __init__(self, part: Any, name: str, clock: dict[str, float],
                 method: str | None = None) -> None:
        self._part, self._name, self._clock, self._method = part, name, clock, method

    def _timed(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self._clock[self._name] += (time.perf_counter() - start) * 1000.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._part, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._part, attr)
        if attr == self._method:
            return lambda *a, **k: self._timed(value, *a, **k)
        return value


def _config_with_threads(threads: int) -> Path:
    """RapidOCR's own default config with every session's intra-op threads set (its keyword
    arguments reach only the detector's); written to a temporary file it can be given."""
    import yaml
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH

    config = yaml.safe_load(Path(DEFAULT_CFG_PATH).read_text(encoding="utf-8"))
    for part in ("Det", "Cls", "Rec"):
        config[part]["intra_op_num_threads"] = threads or -1
        config[part]["inter_op_num_threads"] = 1
    handle, name = tempfile.mkstemp(prefix="rapidocr-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        yaml.safe_dump(config, out)
    return Path(name)


class NaiveOcr:
    """``engine.process(image_bgr) -> (texts, stage_ms, bare_ms)`` for one whole photo."""

    def __init__(self, threads: int) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise SystemExit("--naive needs PaddleOCR's ONNX models: pip install "
                             "rapidocr-onnxruntime==1.4.4") from exc
        self.engine = RapidOCR(config_path=str(_config_with_threads(threads)))
        self.stage_ms = dict.fromkeys(("det", "cls", "rec"), 0.0)
        self.bare_ms = dict.fromkeys(("det", "cls", "rec"), 0.0)
        engine = self.engine
        sessions = {"det": engine.text_det.infer, "cls": engine.text_cls.infer,
                    "rec": engine.text_rec.session}
        for name, holder in sessions.items():  # bare: time inside onnxruntime's run only
            holder.session = _Timed(holder.session, name, self.bare_ms, method="run")
        engine.text_det = _Timed(engine.text_det, "det", self.stage_ms)
        engine.text_cls = _Timed(engine.text_cls, "cls", self.stage_ms)
        engine.text_rec = _Timed(engine.text_rec, "rec", self.stage_ms)

    @property
    def threads(self) -> int:
        """The intra-op threads its sessions really use (0: onnxruntime's default)."""
        session = self.engine.text_det.infer.session._part
        return int(session.get_session_options().intra_op_num_threads)

    def process(self, image_bgr: Any) -> tuple[list[str], dict[str, float], dict[str, float]]:
        """Texts read in the photo, wall ms per stage, bare onnxruntime ms per stage."""
        for clock in (self.stage_ms, self.bare_ms):
            for key in clock:
                clock[key] = 0.0
        result, _ = self.engine(image_bgr)
        texts = [str(item[1]) for item in result or []]
        return texts, dict(self.stage_ms), dict(self.bare_ms)
