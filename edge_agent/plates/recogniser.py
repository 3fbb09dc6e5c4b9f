"""CTC text recogniser: the project's Korean CRNN and PaddleOCR recognition models alike.

Why one recogniser: every CTC recogniser is "resize, normalise, run, greedy-decode with a character
list"; what differs (input size, colour, scaling, charset, blank index) is in models.toml. It
knows nothing about plates: the Korean reading (edge_agent.plates.reader) builds its looks,
the region prior and the plate grammar on top of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import BadInputError, ModelError
from edge_agent.inference.catalog import ModelSpec, get_spec, load_catalog
from edge_agent.inference.preprocess import normalise
from edge_agent.inference.runner import ModelRunner
from edge_agent.plates.ctc_decode import greedy_decode
from edge_agent.results import TokenRead


def resize_crop(crop_bgr: np.ndarray, width: int, height: int, color: str) -> np.ndarray:
    """Stretch a crop to (width, height) in the model's colour order; uint8 HxWxC (C=1 for gray).

    Shared with the training script so the network sees crops exactly as at run time.
    """
    if crop_bgr.ndim == 2:
        crop_bgr = cv2.cvtColor(crop_bgr, cv2.COLOR_GRAY2BGR)
    if color == "gray":
        img = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    elif color == "rgb":
        img = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
    else:
        img = crop_bgr
    shrink = img.shape[0] > height or img.shape[1] > width
    img = cv2.resize(img, (width, height),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return img[..., None] if img.ndim == 2 else img


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ctc_greedy_decode(probs: np.ndarray, charset: Sequence[str], blank: int) -> TokenRead:
    """Best path: argmax per step, collapse repeats, drop blanks; confidence = max prob per token.

    ``probs`` is [T, C] probabilities; ``charset[i]`` is the token of class i (blank included).
    A region token (서울) gets one confidence, like every token.
    """
    tokens, confs = greedy_decode(probs, charset, blank)
    return TokenRead(tuple(tokens), tuple(confs))


def load_charset(spec: ModelSpec, model_path: Path, runner: ModelRunner) -> list[str]:
    """Class tokens of a CTC model, blank included at its index (see ModelSpec.charset).

    ``metadata:<key>`` follows PaddleOCR: the listed characters, then a space. A file next to
    the model holds one token per line (a token may be a region name such as 서울).
    """
    ref = spec.charset
    if not ref:
        raise ModelError(f"model {spec.id}: models.toml gives no charset; add charset = "
                         f"\"<file>\" or \"metadata:<key>\"")
    if ref.startswith("metadata:"):
        key = ref.split(":", 1)[1]
        meta = runner.metadata
        if key not in meta:
            raise ModelError(f"model {spec.id}: metadata key {key!r} is absent (keys: "
                             f"{', '.join(meta) or 'none'}); fix charset in models.toml")
        tokens = [*meta[key].splitlines(), " "]
    else:
        path = model_path.parent / ref
        if path.is_file():
            tokens = [line.rstrip("\r\n") for line in
                      path.read_text(encoding="utf-8").splitlines() if line.rstrip("\r\n")]
        elif "." in ref or "/" in ref:
            raise ModelError(f"model {spec.id}: charset file {path} not found; put it next to "
                             f"the model file")
        else:
            tokens = list(ref)
    return ["", *tokens] if spec.blank_first else [*tokens, ""]


class CtcRecogniser:
    """Reads the text of a crop with a CTC model described by a models.toml entry: the model run
    and greedy decoding with the model's character list, nothing more."""

    def __init__(self, spec: ModelSpec, runner: ModelRunner, charset: list[str]) -> None:
        self.spec = spec
        self.runner = runner
        self.charset = charset
        self.blank = 0 if spec.blank_first else len(charset) - 1
        self.channels = 1 if spec.color == "gray" else 3
        self.width, self.height = spec.input_size
        shape = runner.input_shape
        # a width-free input is read keeping the crop's aspect (PaddleOCR) unless the model is
        # trained on stretched crops (resize = "stretch"), which still reads two-line views wide
        self.dynamic_width = not isinstance(shape[3], int)
        self.keep_aspect = self.dynamic_width and spec.extra.get("resize") != "stretch"
        self.outputs_probs: bool | None = None  # probabilities or logits (softmax here)
        classes = runner.output_shapes[0][-1]
        if isinstance(classes, int) and classes != len(charset):
            raise ModelError(f"model {spec.id}: output has {classes} classes but its character "
                             f"list gives {len(charset)} (blank included); wrong charset file")

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: Path, config: object | None = None,
                  ) -> CtcRecogniser:
        """Open ``path`` for ``spec``: checksum, input shape, charset, then one warm-up run.

        ``config`` is a GotchaConfig (providers, threads, whether to verify the sha256).
        """
        if spec.layout != "ctc":
            raise ModelError(f"model {spec.id}: layout {spec.layout!r} is not a CTC recogniser; "
                             f"choose a plate_reader with layout = \"ctc\"")
        runner = ModelRunner.load(config, spec, path=path)  # type: ignore[arg-type]
        width = spec.input_size[0] or None
        shape = runner.input_shape
        if isinstance(shape[3], int) and width is not None and shape[3] != width:
            raise ModelError(f"model {spec.id}: input width {shape[3]} differs from models.toml "
                             f"input_size {list(spec.input_size)}; fix input_size")
        recogniser = cls(spec, runner, load_charset(spec, path, runner))
        recogniser.read(np.full((spec.input_size[1] or 32, (spec.input_size[0] or 96)), 127,
                                np.uint8))
        return recogniser

    @classmethod
    def from_config(cls, config: object, model_id: str | None = None) -> CtcRecogniser:
        """The recogniser named by ``config.models.plate_reader`` (or ``model_id``)."""
        return cls.from_spec(*spec_and_path(config, model_id), config)

    def infer(self, batch: np.ndarray, count: int) -> np.ndarray:
        """[N, T, C] class probabilities of a prepared batch."""
        out = self.runner.run(batch)[0]
        if out.ndim != 3 or out.shape[0] != count:
            raise ModelError(f"model {self.spec.id}: output shape {out.shape} is not "
                             f"[N, T, classes]; layout ctc expects that")
        if self.outputs_probs is None:  # learnt on the first run (the warm-up at load)
            self.outputs_probs = bool(out.min() >= 0 and np.allclose(out.sum(axis=-1), 1.0,
                                                                      atol=1e-2))
        return out if self.outputs_probs else softmax(out)

    def prepare(self, crop: np.ndarray, width: int) -> np.ndarray:
        """A crop (BGR or gray, uint8) as model input [C, H, width]; BadInputError otherwise."""
        if crop is None or crop.size == 0 or crop.ndim not in (2, 3):
            raise BadInputError("plate crop is empty or not an image; pass a non-empty BGR crop")
        if crop.dtype != np.uint8:  # scaling and the colour and tilt looks assume 0..255 bytes
            raise BadInputError(f"plate crop is {crop.dtype}, not 8-bit; pass a uint8 BGR crop "
                                f"(decoded photos are; convert with cv2.convertScaleAbs)")
        if self.keep_aspect:  # PaddleOCR: keep the aspect ratio, pad on the right
            h, w = crop.shape[:2]
            target = min(width, max(8, math.ceil(self.height * w / h)))
            img = resize_crop(crop, target, self.height, self.spec.color)
            x = normalise(img, self.spec)
            out = np.zeros((x.shape[0], self.height, width), np.float32)
            out[:, :, :target] = x
            return out
        img = resize_crop(crop, self.width, self.height, self.spec.color)
        return normalise(img, self.spec)

    def prepare_view(self, view: np.ndarray) -> np.ndarray:
        """An image already laid out for the model (uint8 HxWxC, the model's height) as input,
        squeezed to the model width when that width is fixed."""
        if not self.dynamic_width:
            view = cv2.resize(view, (self.width, self.height), interpolation=cv2.INTER_AREA)
            view = view[..., None] if view.ndim == 2 else view
        return normalise(view, self.spec)

    def batch_width(self, crops: Sequence[np.ndarray]) -> int:
        """The input width a batch of these crops is read at."""
        if not self.keep_aspect:
            return self.width
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops if c is not None and c.size]
        return max(self.width, math.ceil(self.height * max(ratios, default=1.0)))

    def decode(self, probs: np.ndarray) -> TokenRead:
        """The greedy read of one crop's [T, C] probabilities."""
        return ctc_greedy_decode(probs, self.charset, self.blank)

    def read(self, crop_bgr: np.ndarray) -> TokenRead:
        """Tokens and their confidences of one crop; BGR (or gray) uint8."""
        return self.read_batch([crop_bgr])[0]

    def read_batch(self, crops: Sequence[np.ndarray]) -> list[TokenRead]:
        """Greedy reads of several crops, batched."""
        if not crops:
            return []
        width = self.batch_width(crops)
        probs = self.infer(np.stack([self.prepare(c, width) for c in crops]), len(crops))
        return [self.decode(p) for p in probs]


def spec_and_path(config: object, model_id: str | None = None) -> tuple[ModelSpec, Path]:
    """The models.toml entry named by ``config.models.plate_reader`` (or ``model_id``) and
    its file."""
    models = config.models  # type: ignore[attr-defined]
    spec = get_spec(load_catalog(models.catalog), model_id or models.plate_reader,
                    "plate_reader")
    return spec, spec.resolve(models.dir)
