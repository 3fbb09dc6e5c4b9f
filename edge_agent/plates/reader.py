"""The Korean plate reader: a CTC recogniser plus what is known about Korean plates.

Why on top of a plain recogniser: the model only maps pixels to tokens. Which views of a crop
to read (plates.looks), how often each region name really occurs (plates.region_prior), what a
plate's colour says (plates.colour) and which token sequences are plates at all (the
grammar-constrained decoder, plates.ctc_decode) are knowledge about plates, kept out of the
model run. The greedy text is logged at debug level when the constrained one differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec
from edge_agent.inference.runner import ModelRunner
from edge_agent.plates.colour import drop_ev_region
from edge_agent.plates.ctc_decode import CtcGrammar, constrained_decode, plate_grammar
from edge_agent.plates.looks import (
    Look,
    closer_views,
    doubtful,
    levelled_views,
    two_line_view,
    wants_two_line_look,
)
from edge_agent.plates.options import ReadingOptions
from edge_agent.plates.recogniser import CtcRecogniser, spec_and_path
from edge_agent.plates.region_prior import RegionPrior
from edge_agent.results import TokenRead

log = logging.getLogger(__name__)


class KoreanPlateReader:
    """Reads the text of a plate crop: up to four looks, the best one kept (see read_batch)."""

    def __init__(self, recogniser: CtcRecogniser, options: ReadingOptions) -> None:
        self.recogniser = recogniser
        self.options = options
        # the plate automaton for a plate charset; None for greedy-only models (PaddleOCR)
        self.grammar = _grammar_for(recogniser.spec, recogniser.charset, options)
        self.prior = RegionPrior(recogniser.charset) if options.region_prior else None

    @classmethod
    def from_spec(cls, spec: ModelSpec, path: Path, config: object | None = None,
                  ) -> KoreanPlateReader:
        """Open the recogniser at ``path`` for ``spec`` (see CtcRecogniser.from_spec) with the
        looks its models.toml entry asks for and the thresholds of ``config.plates``."""
        recogniser = CtcRecogniser.from_spec(spec, path, config)
        return cls(recogniser, ReadingOptions.from_spec(spec, _sure_read(config),
                                                        recogniser.keep_aspect))

    @classmethod
    def from_config(cls, config: object, model_id: str | None = None) -> KoreanPlateReader:
        """The reader named by ``config.models.plate_reader`` (or ``model_id``)."""
        return cls.from_spec(*spec_and_path(config, model_id), config)

    @property
    def spec(self) -> ModelSpec:
        return self.recogniser.spec

    @property
    def runner(self) -> ModelRunner:
        """The recogniser's model runner (its clock holds the reader's bare inference time)."""
        return self.recogniser.runner

    def read(self, crop_bgr: np.ndarray) -> TokenRead:
        """Tokens and their confidences of one crop; BGR (or gray) uint8."""
        return self.read_batch([crop_bgr])[0]

    def read_batch(self, crops: Sequence[np.ndarray]) -> list[TokenRead]:
        """Read several crops batched: the whole crop, then for doubtful reads the closer,
        two-line and levelled looks (see ReadingOptions), the best look of each, and last the
        colour check.

        Every look is decoded greedily; the plate-constrained decoder (slow, pure numpy) runs
        only where no look gave a grammatical read, on the looks in order of confidence until
        one gives a sure plate.
        """
        if not crops:
            return []
        probs, looks = self._look_whole(crops)
        if self.options.zoom:
            self._look_closer(crops, probs, looks)
        if self.options.two_line:
            self._look_as_two_lines(crops, looks)
        if self.options.level:
            self._look_level(crops, looks)
        settled = [self._settle(found) for found in looks]
        if self.options.region_check:
            settled = [drop_ev_region(crop, look) for crop, look in zip(crops, settled,
                                                                         strict=True)]
        return [self._model_confidences(look) for look in settled]

    # ------------------------------------------------------------------ the looks
    def _look_whole(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, list[list[Look]]]:
        """The first look: every crop whole; its frames and one look per crop."""
        width = self.recogniser.batch_width(crops)
        probs, raw = self._frames([self.recogniser.prepare(c, width) for c in crops])
        return probs, [[self._look(p, r)] for p, r in zip(probs, raw, strict=True)]

    def _look_closer(self, crops: Sequence[np.ndarray], probs: np.ndarray,
                     looks: list[list[Look]]) -> None:
        """Re-read doubtful crops cut to their text (zoom to text)."""
        views = {i: (crops[i], probs[i]) for i in range(len(crops)) if self._doubtful(looks[i])}
        self._add_looks(closer_views(views, self.recogniser.blank), looks)

    def _look_as_two_lines(self, crops: Sequence[np.ndarray], looks: list[list[Look]]) -> None:
        """Re-read crops no wider than a two-line plate as one (see wants_two_line_look)."""
        opts = self.options
        redo = [i for i in range(len(crops))
                if wants_two_line_look(crops[i], looks[i], opts.sure_read,
                                       opts.two_line_max_aspect, opts.region_check)]
        self._add_looks({i: self.two_line_input(crops[i]) for i in redo}, looks, prepared=True)

    def _look_level(self, crops: Sequence[np.ndarray], looks: list[list[Look]]) -> None:
        """Re-read doubtful crops of tilted plates turned level, whole and cut to their text
        (the levelled crop is larger than the crop, so the plate in it is smaller)."""
        levelled = levelled_views({i: crops[i] for i in range(len(crops))
                                   if self._doubtful(looks[i])})
        probs = self._add_looks(levelled, looks)
        views = {i: (levelled[i], p) for i, p in probs.items()}
        self._add_looks(closer_views(views, self.recogniser.blank), looks)

    def two_line_input(self, crop: np.ndarray) -> np.ndarray:
        """The split two-line view of a crop as model input."""
        rec = self.recogniser
        return rec.prepare_view(two_line_view(crop, rec.width, rec.height, rec.spec.color))

    def _add_looks(self, views: Mapping[int, np.ndarray], looks: list[list[Look]],
                   prepared: bool = False) -> dict[int, np.ndarray]:
        """Read ``views`` (crop i's view, or its model input when ``prepared``) in one batch
        and add each read to ``looks[i]``; the frames of each view."""
        if not views:
            return {}
        rec = self.recogniser
        inputs = list(views.values()) if prepared else [rec.prepare(v, rec.width)
                                                        for v in views.values()]
        probs, raw = self._frames(inputs)
        for i, p, r in zip(views, probs, raw, strict=True):
            looks[i].append(self._look(p, r))
        return dict(zip(views, probs, strict=True))

    def _frames(self, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """[N, T, C] probabilities of prepared inputs, region names weighed by the fleet prior
        when it is on (the model saw every region equally often; plates.region_prior), and
        the model's own probabilities."""
        raw = self.recogniser.infer(np.stack(inputs), len(inputs))
        return (self.prior.apply(raw) if self.prior is not None else raw), raw

    def _look(self, probs: np.ndarray, raw: np.ndarray) -> Look:
        return Look(probs, self.recogniser.decode(probs), raw)

    def _model_confidences(self, look: Look) -> TokenRead:
        """The read with no region name surer than the model itself was of it.

        Why: the fleet prior may choose the region (경기 over a 세종 the model preferred), but
        the mass it moves is knowledge about fleets, not about this plate; a region the model
        gave 0.3 must not become evidence, nor "sure" in the one-character-off rule, at 0.85.
        """
        if self.prior is None or look.raw is None:
            return look.read
        confs = list(look.read.confidences)
        charset = self.recogniser.charset
        for k, token in enumerate(look.read.tokens):
            if token in self.prior.names:
                confs[k] = min(confs[k], float(look.raw[:, charset.index(token)].max()))
        return TokenRead(look.read.tokens, tuple(confs))

    def _doubtful(self, found: list[Look]) -> bool:
        return doubtful(found, self.options.sure_read)

    # ------------------------------------------------------------------ the best look
    def _settle(self, found: list[Look]) -> Look:
        """The best look: grammatical first, then the most confident (see read_batch); but a
        grammatical look that adds a region to the best one's text wins (the region line was
        missed, not misread)."""
        if self.grammar is not None and self.options.constrain == "always":
            found = [self._constrained(look) for look in found]
        elif self.grammar is not None and not any(look.score[0] for look in found):
            found = self._constrained_until_sure(found)
        best = max(found, key=lambda look: look.score)
        fuller = [look for look in found if look.adds_region_to(best)]
        return max(fuller, key=lambda look: look.score) if best.score[0] and fuller else best

    def _constrained_until_sure(self, found: list[Look]) -> list[Look]:
        """Constrained reads of the looks, most confident look first, until one is sure."""
        decoded: list[Look] = []
        for look in sorted(found, key=lambda look: look.score, reverse=True):
            decoded.append(self._constrained(look))
            if decoded[-1].sure(self.options.sure_read):
                break
        return decoded

    def _constrained(self, look: Look) -> Look:
        """The most probable grammatical read of a look's frames, or the look unchanged."""
        assert self.grammar is not None
        rec = self.recogniser
        best = constrained_decode(look.probs, rec.charset, rec.blank, self.grammar)
        if best is None:
            log.debug("plate read %r: no grammatical path in %d frames", look.read.text,
                      len(look.probs))
            return look
        tokens, confs, _ = best
        read = TokenRead(tuple(tokens), tuple(confs))
        if read.text != look.read.text:
            log.debug("plate read: greedy %r -> grammatical %r", look.read.text, read.text)
        return Look(look.probs, read, look.raw)


def _sure_read(config: object | None) -> float:
    """plates.sure_read of a GotchaConfig (the default without one)."""
    from edge_agent.config import PlatesConfig

    return (getattr(config, "plates", None) or PlatesConfig()).sure_read


def _grammar_for(spec: ModelSpec, charset: list[str], options: ReadingOptions
                 ) -> CtcGrammar | None:
    """The plate automaton for a plate charset; None for greedy-only models (PaddleOCR)."""
    if options.decode == "greedy" or (options.decode == "auto" and len(charset) > 256):
        return None
    try:
        return plate_grammar(charset)
    except ModelError:
        if options.decode == "plate":
            raise
        return None
