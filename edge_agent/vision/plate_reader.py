"""CTC plate recogniser: the project's Korean CRNN and PaddleOCR recognition models alike.

Why one reader: every CTC recogniser is "resize, normalise, run, greedy-decode with a character
list"; what differs (input size, colour, scaling, charset, blank index) is in models.toml.
A plate charset (ours) also gets grammar-constrained decoding when the greedy read is no plate
(see edge_agent.vision.ctc_decode); the greedy text is logged at debug level when it differs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from cloud_sync.plate_grammar import ParsedPlate, parse_plate
from edge_agent.errors import BadInputError, ModelError
from edge_agent.inference.catalog import ModelSpec
from edge_agent.inference.preprocess import normalise
from edge_agent.inference.runner import ModelRunner
from edge_agent.vision.ctc_decode import (
    CtcGrammar,
    constrained_decode,
    greedy_decode,
    plate_grammar,
)
from edge_agent.vision.plate_tilt import MIN_ANGLE, level, tilt_angle
from edge_agent.vision.plate_zoom import zoom_box
from edge_agent.vision.region_prior import RegionPrior

log = logging.getLogger(__name__)

Read = tuple[str, tuple[float, ...]]


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


def two_line_view(crop: np.ndarray, width: int, height: int, color: str,
                  top_end: float = 0.5, bottom_start: float = 0.4) -> np.ndarray:
    """A two-line plate laid out as one line twice the model width: top line left, bottom right.

    Each line is cut from the crop itself and resized to the model's (width, height), so the
    small region line gets as many pixels as a whole one-line plate would. The parts overlap a
    little because crops are never centred exactly. Shared with the training script.
    """
    h = crop.shape[0]
    top = crop[: max(1, round(h * top_end))]
    bottom = crop[min(h - 1, round(h * bottom_start)):]
    return np.hstack([resize_crop(top, width, height, color),
                      resize_crop(bottom, width, height, color)])


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ctc_greedy_decode(probs: np.ndarray, charset: Sequence[str], blank: int) -> Read:
    """Best path: argmax per step, collapse repeats, drop blanks; confidence = max prob per char.

    ``probs`` is [T, C] probabilities; ``charset[i]`` is the token of class i (blank included).
    A region token (서울) gets one confidence, like every token.
    """
    tokens, confs = greedy_decode(probs, charset, blank)
    return "".join(tokens), tuple(confs)


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


class CtcPlateReader:
    """Reads the text of a plate crop with a CTC recogniser described by a models.toml entry."""

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
        self.input_name = runner.input_name
        self.outputs_probs: bool | None = None  # probabilities or logits (softmax here)
        # two_line = "split": also read the crop as a split two-line plate (top | bottom) when it
        # is no wider than two_line_max_aspect, and keep the read the plate grammar prefers.
        self.split_two_line = spec.extra.get("two_line") == "split" and not self.keep_aspect
        self.two_line_max_aspect = float(spec.extra.get("two_line_max_aspect", 3.2))  # type: ignore[arg-type]
        # region_check = true: the plate's colour says whether it carries a region name. A sure
        # read without a region still gets the two-line look when the crop is mostly orange
        # (the lower line of a construction plate alone reads as a whole plate, its region name
        # is the line above); a read of a mostly sky-blue crop (an EV plate, which never
        # carries a region) loses the region its emblem was read as
        self.region_check = bool(spec.extra.get("region_check", False))
        # a grammatical read whose every character is this sure gets no second look (one
        # unsure letter in an otherwise sure read is how a misread looks)
        self.sure_confidence = float(spec.extra.get("sure_read", 0.9))  # type: ignore[arg-type]
        # zoom = true: a doubtful read is read again cut to its text (loose crops)
        self.zoom = bool(spec.extra.get("zoom", False)) and not self.keep_aspect
        # level = true: a read still doubtful after the other looks is read again with the crop
        # turned level when the plate in it is tilted (edge_agent.vision.plate_tilt)
        self.level_tilted = bool(spec.extra.get("level", False)) and not self.keep_aspect
        # decode = "plate" | "greedy" | "auto" (plate when the charset is a small plate charset):
        # plate reads the most probable grammatical label sequence when no look's greedy read is
        # a plate (constrain = "fallback") or always (constrain = "always")
        self.grammar = _grammar_for(spec, charset)
        # region_prior = "fleet": the model saw every region name equally often; real plates
        # carry them as often as the fleet is registered (edge_agent.vision.region_prior)
        prior = spec.extra.get("region_prior")
        if prior not in (None, "fleet"):
            raise ModelError(f"model {spec.id}: region_prior {prior!r} is unknown; use \"fleet\" "
                             f"or leave it out")
        self.region_prior = RegionPrior(charset) if prior == "fleet" else None
        self.constrain = str(spec.extra.get("constrain", "fallback"))
        classes = runner.output_shapes[0][-1]
        if isinstance(classes, int) and classes != len(charset):
            raise ModelError(f"model {spec.id}: output has {classes} classes but its character "
                             f"list gives {len(charset)} (blank included); wrong charset file")

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: Path, config: object | None = None,
                  ) -> CtcPlateReader:
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
        reader = cls(spec, runner, load_charset(spec, path, runner))
        reader.read(np.full((spec.input_size[1] or 32, (spec.input_size[0] or 96)), 127, np.uint8))
        return reader

    @classmethod
    def from_config(cls, config: object, model_id: str | None = None) -> CtcPlateReader:
        """The reader named by ``config.models.plate_reader`` (or ``model_id``)."""
        from edge_agent.inference.catalog import get_spec, load_catalog

        models = config.models  # type: ignore[attr-defined]
        spec = get_spec(load_catalog(models.catalog), model_id or models.plate_reader,
                        "plate_reader")
        return cls.from_spec(spec, spec.resolve(models.dir), config)

    def _prepare(self, crop: np.ndarray, width: int) -> np.ndarray:
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

    def _batch_width(self, crops: Sequence[np.ndarray]) -> int:
        if not self.keep_aspect:
            return self.width
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops if c is not None and c.size]
        return max(self.width, math.ceil(self.height * max(ratios, default=1.0)))

    def read(self, crop_bgr: np.ndarray) -> Read:
        """(raw text, per-character confidence) of one crop; BGR (or gray) uint8."""
        return self.read_batch([crop_bgr])[0]

    def read_batch(self, crops: Sequence[np.ndarray]) -> list[Read]:
        """Read several crops batched; doubtful reads get closer and two-line looks (see init).

        Every look is decoded greedily; the plate-constrained decoder (slow, pure numpy) runs
        only where no look gave a grammatical read, on the looks in order of confidence until
        one gives a sure plate.
        """
        if not crops:
            return []
        width = self._batch_width(crops)
        probs = self._infer(np.stack([self._prepare(c, width) for c in crops]), len(crops))
        looks = [[_Look.greedy(p, self.charset, self.blank)] for p in probs]
        if self.zoom:
            self._look_closer(crops, probs, looks)
        if self.split_two_line:
            self._look_as_two_lines(crops, looks)
        if self.level_tilted:
            self._look_level(crops, looks)
        settled = [self._settle(found) for found in looks]
        if self.region_check:
            settled = [look.without_region() if look.region and ev_blue(crop) else look
                       for crop, look in zip(crops, settled, strict=True)]
        return [look.read for look in settled]

    def _doubtful(self, found: list[_Look]) -> bool:
        return not any(look.sure(self.sure_confidence) for look in found)

    def _look_closer(self, crops: Sequence[np.ndarray], probs: np.ndarray,
                     looks: list[list[_Look]]) -> None:
        """Re-read doubtful crops cut to their text (plate_zoom)."""
        self._read_zoomed({i: (crops[i], probs[i]) for i in range(len(crops))
                           if self._doubtful(looks[i])}, looks)

    def _look_level(self, crops: Sequence[np.ndarray], looks: list[list[_Look]]) -> None:
        """Re-read doubtful crops of tilted plates turned level, whole and cut to their text
        (the levelled crop is larger than the crop, so the plate in it is smaller)."""
        angles = {i: tilt_angle(crops[i]) for i in range(len(crops)) if self._doubtful(looks[i])}
        levelled = {i: level(crops[i], a) for i, a in angles.items() if abs(a) >= MIN_ANGLE}
        if not levelled:
            return
        batch = np.stack([self._prepare(c, self.width) for c in levelled.values()])
        probs = self._infer(batch, len(levelled))
        for i, p in zip(levelled, probs, strict=True):
            looks[i].append(_Look.greedy(p, self.charset, self.blank))
        self._read_zoomed({i: (levelled[i], p) for i, p in zip(levelled, probs, strict=True)},
                          looks)

    def _read_zoomed(self, views: Mapping[int, tuple[np.ndarray, np.ndarray]],
                     looks: list[list[_Look]]) -> None:
        """Add to ``looks[i]`` a read of each crop cut to its text; ``views`` maps i to the crop
        and the [T, C] read of it whole, which says where the text runs (plate_zoom)."""
        boxes = {i: zoom_box(crop, probs, self.blank) for i, (crop, probs) in views.items()}
        boxes = {i: box for i, box in boxes.items() if box is not None}
        if not boxes:
            return
        zoomed = [views[i][0][y0:y1, x0:x1] for i, (x0, y0, x1, y1) in boxes.items()]
        batch = np.stack([self._prepare(c, self.width) for c in zoomed])
        for i, p in zip(boxes, self._infer(batch, len(zoomed)), strict=True):
            looks[i].append(_Look.greedy(p, self.charset, self.blank))

    def _look_as_two_lines(self, crops: Sequence[np.ndarray], looks: list[list[_Look]]) -> None:
        """Re-read crops no wider than a two-line plate as one: doubtful reads, and sure reads
        without a region of orange plates (see init)."""
        def wanted(i: int) -> bool:
            if crops[i].shape[1] / crops[i].shape[0] > self.two_line_max_aspect:
                return False
            if self._doubtful(looks[i]):
                return True
            best = max(looks[i], key=lambda look: look.score)
            return self.region_check and best.region is None and mostly_orange(crops[i])

        redo = [i for i in range(len(crops)) if wanted(i)]
        if not redo:
            return
        views = np.stack([self._two_line_input(crops[i]) for i in redo])
        for i, p in zip(redo, self._infer(views, len(redo)), strict=True):
            looks[i].append(_Look.greedy(p, self.charset, self.blank))

    def _settle(self, found: list[_Look]) -> _Look:
        """The best look: grammatical first, then the most confident (see read_batch); but a
        grammatical look that adds a region to the best one's text wins (the region line was
        missed, not misread)."""
        if self.grammar is not None and self.constrain == "always":
            found = [self._constrained(look) for look in found]
        elif self.grammar is not None and not any(look.score[0] for look in found):
            found = self._constrained_until_sure(found)
        best = max(found, key=lambda look: look.score)
        fuller = [look for look in found if look.adds_region_to(best)]
        return max(fuller, key=lambda look: look.score) if best.score[0] and fuller else best

    def _constrained_until_sure(self, found: list[_Look]) -> list[_Look]:
        """Constrained reads of the looks, most confident look first, until one is sure."""
        decoded: list[_Look] = []
        for look in sorted(found, key=lambda look: look.score, reverse=True):
            decoded.append(self._constrained(look))
            if decoded[-1].sure(self.sure_confidence):
                break
        return decoded

    def _two_line_input(self, crop: np.ndarray) -> np.ndarray:
        """The split two-line view, squeezed back to the model width if the width is fixed."""
        view = two_line_view(crop, self.width, self.height, self.spec.color)
        if not self.dynamic_width:
            view = cv2.resize(view, (self.width, self.height), interpolation=cv2.INTER_AREA)
            view = view[..., None] if view.ndim == 2 else view
        return normalise(view, self.spec)

    def _infer(self, batch: np.ndarray, count: int) -> np.ndarray:
        """[N, T, C] class probabilities of a prepared batch."""
        out = self.runner.run(batch)[0]
        if out.ndim != 3 or out.shape[0] != count:
            raise ModelError(f"model {self.spec.id}: output shape {out.shape} is not "
                             f"[N, T, classes]; layout ctc expects that")
        if self.outputs_probs is None:  # learnt on the first run (the warm-up at load)
            self.outputs_probs = bool(out.min() >= 0 and np.allclose(out.sum(axis=-1), 1.0,
                                                                      atol=1e-2))
        probs = out if self.outputs_probs else softmax(out)
        return self.region_prior.apply(probs) if self.region_prior is not None else probs

    def _constrained(self, look: _Look) -> _Look:
        """The most probable grammatical read of a look's frames, or the look unchanged."""
        best = constrained_decode(look.probs, self.charset, self.blank, self.grammar)
        if best is None:
            log.debug("plate read %r: no grammatical path in %d frames", look.read[0],
                      len(look.probs))
            return look
        if best[0] != look.read[0]:
            log.debug("plate read: greedy %r -> grammatical %r", look.read[0], best[0])
        return _Look(look.probs, (best[0], tuple(best[1])))


@dataclass(frozen=True, eq=False)
class _Look:
    """One read of a crop (whole, cut to its text, or split in lines) and its frames."""

    probs: np.ndarray
    read: Read

    @classmethod
    def greedy(cls, probs: np.ndarray, charset: Sequence[str], blank: int) -> _Look:
        return cls(probs, ctc_greedy_decode(probs, charset, blank))

    @cached_property
    def plate(self) -> ParsedPlate | None:
        """The read parsed by the shared plate grammar; None when it is no plate."""
        return parse_plate(self.read[0])

    @property
    def region(self) -> str | None:
        """The region name the read starts with, if it is a plate with one."""
        return self.plate.region if self.plate is not None else None

    @cached_property
    def score(self) -> tuple[bool, float]:
        """(grammatical plate, mean character confidence): larger is better."""
        confs = self.read[1]
        return self.plate is not None, sum(confs) / len(confs) if confs else 0.0

    def sure(self, threshold: float) -> bool:
        """Whether the read is a plate and every character of it is at least this confident."""
        return self.plate is not None and min(self.read[1], default=0.0) >= threshold

    def adds_region_to(self, other: _Look) -> bool:
        """Whether this look is a plate reading ``other``'s text with a region in front."""
        return self.region is not None and self.read[0] == self.region + other.read[0]

    def without_region(self) -> _Look:
        """This read with its region name (one token, one confidence) left out."""
        if self.region is None:
            return self
        text, confs = self.read
        return _Look(self.probs, (text[len(self.region):], confs[1:]))


ORANGE_HUE = (3, 17)  # OpenCV hue (0-180) of construction-plate orange, not plate yellow (20+)
ORANGE_SHARE = 0.35  # share of the crop's middle that must be saturated orange
EV_BLUE_HUE = (90, 115)  # the sky blue of EV plates; plate green is below 85
EV_BLUE_SHARE = 0.4


def mostly_orange(crop_bgr: np.ndarray) -> bool:
    """Whether the middle of a crop is mostly saturated orange (a construction plate)."""
    return _middle_share(crop_bgr, ORANGE_HUE, min_saturation=90, min_value=70) > ORANGE_SHARE


def ev_blue(crop_bgr: np.ndarray) -> bool:
    """Whether the middle of a crop is mostly the sky blue of an EV plate."""
    return _middle_share(crop_bgr, EV_BLUE_HUE, min_saturation=60, min_value=90) > EV_BLUE_SHARE


def _middle_share(crop_bgr: np.ndarray, hue: tuple[int, int], min_saturation: int,
                  min_value: int) -> float:
    """Share of the middle of a crop (where the plate is, even in a loose crop) in a hue band."""
    if crop_bgr.ndim != 3:
        return 0.0
    h, w = crop_bgr.shape[:2]
    middle = crop_bgr[h // 4: h - h // 4, w // 6: w - w // 6]
    if middle.shape[0] > 16:  # a colour share needs no detail: 16 rows keep it on the hot path
        scale = 16 / middle.shape[0]
        middle = cv2.resize(middle, (max(1, round(middle.shape[1] * scale)), 16),
                            interpolation=cv2.INTER_NEAREST)
    hsv = cv2.cvtColor(middle, cv2.COLOR_BGR2HSV)
    inside = ((hsv[..., 0] >= hue[0]) & (hsv[..., 0] <= hue[1]) & (hsv[..., 1] > min_saturation)
              & (hsv[..., 2] > min_value))
    return float(inside.mean()) if inside.size else 0.0


def _grammar_for(spec: ModelSpec, charset: list[str]) -> CtcGrammar | None:
    """The plate automaton for a plate charset; None for greedy-only models (PaddleOCR)."""
    decode = str(spec.extra.get("decode", "auto"))
    if decode == "greedy" or (decode == "auto" and len(charset) > 256):
        return None
    try:
        return plate_grammar(charset)
    except ModelError:
        if decode == "plate":
            raise
        return None
