"""Region names weighed by how often real plates carry them, not how often training showed them.

Why: the synthetic training plates draw the 17 region names uniformly, so the reader's
per-frame probabilities carry a uniform prior over regions. Real plates do not: 경기 is about
thirty times as common as 세종, and a small stacked region (19 px high, two syllables in a
column) leaves the model torn between similar names such as 서울 and 세종. Bayes' rule swaps the
prior: p_real(c | x) is proportional to p_train(c | x) * p_real(c) / p_train(c). The swap is
made within each frame's total region probability, so it changes which region a frame reads,
never whether the frame reads a region, a digit, a letter or a blank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gotcha_contracts.plate_grammar import REGIONS

# Registered motor vehicles by province, millions, rounded; about the end of 2023 (MOLIT
# registration statistics: 25.9 million in all; Seoul 3.19, Sejong 0.20, Daejeon 0.72; the
# others are estimates from population per vehicle, good to about 0.2 million). Plates with a
# region are the older and commercial ones, which follow the fleet closely enough for a prior.
REGISTERED_MILLIONS: dict[str, float] = {
    "서울": 3.2, "부산": 1.5, "대구": 1.2, "인천": 1.7, "광주": 0.7, "대전": 0.7, "울산": 0.6,
    "세종": 0.2, "경기": 6.5, "강원": 0.8, "충북": 0.9, "충남": 1.3, "전북": 1.0, "전남": 1.2,
    "경북": 1.5, "경남": 1.8, "제주": 0.7,
}


class RegionPrior:
    """Re-weighs the region classes of a CTC model's output (see the module docstring)."""

    def __init__(self, charset: Sequence[str]) -> None:
        present = [name for name in REGIONS if name in charset]
        self.names = frozenset(present)
        self.index = np.array([charset.index(name) for name in present], dtype=np.intp)
        fleet = np.array([REGISTERED_MILLIONS[name] for name in present])
        # trained uniformly over the regions present, so the ratio is the fleet share x count
        self.weight = (fleet / fleet.sum() * max(1, len(present))).astype(np.float32)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """[..., T, C] probabilities with each frame's region mass split by the fleet prior
        (a new array; ``probs`` is left as it is)."""
        if not len(self.index):
            return probs
        regions = probs[..., self.index]
        weighed = regions * self.weight
        # mass / weighed mass per frame; frames without region mass keep their zeros
        ratio = regions.sum(axis=-1, keepdims=True) / np.maximum(
            weighed.sum(axis=-1, keepdims=True), np.finfo(np.float32).tiny)
        out = probs.copy()
        out[..., self.index] = weighed * ratio
        return out
