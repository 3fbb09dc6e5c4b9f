"""The looks the Korean reading takes at a crop, and what one look read.

Why several looks: the recogniser stretches a crop to its small input, so what it sees depends
on how the crop is cut. After the whole crop, a doubtful read is read again cut to its text
(loose crops; plates.zoom), split in its two lines side by side (two-line plates, whose small
region line gets a whole input's pixels) and turned level (tilted plates; plates.tilt). The
functions here cut those views; the reader (plates.reader) runs the model on them and keeps
the best look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from edge_agent.plates.colour import mostly_orange
from edge_agent.plates.recogniser import resize_crop
from edge_agent.plates.tilt import MIN_ANGLE, level, tilt_angle
from edge_agent.plates.zoom import zoom_box
from edge_agent.results import TokenRead
from gotcha_contracts.plate_grammar import ParsedPlate, parse_plate


@dataclass(frozen=True, eq=False)
class Look:
    """One read of a crop (whole, cut to its text, split in lines, or levelled) and its frames."""

    probs: np.ndarray
    read: TokenRead
    raw: np.ndarray | None = None  # the frames before the region prior, when one was applied

    @cached_property
    def plate(self) -> ParsedPlate | None:
        """The read parsed by the shared plate grammar; None when it is no plate."""
        return parse_plate(self.read.text)

    @property
    def region(self) -> str | None:
        """The region name the read starts with, if it is a plate with one."""
        return self.plate.region if self.plate is not None else None

    @cached_property
    def score(self) -> tuple[bool, float]:
        """(grammatical plate, mean token confidence): larger is better."""
        confs = self.read.confidences
        return self.plate is not None, sum(confs) / len(confs) if confs else 0.0

    def sure(self, threshold: float) -> bool:
        """Whether the read is a plate and every token of it is at least this confident."""
        return self.plate is not None and min(self.read.confidences, default=0.0) >= threshold

    def adds_region_to(self, other: Look) -> bool:
        """Whether this look is a plate reading ``other``'s text with a region in front."""
        return self.region is not None and self.read.text == self.region + other.read.text

    def without_region(self) -> Look:
        """This read with the tokens of its region name (one token, one confidence) left out."""
        if self.region is None:
            return self
        tokens, confs = self.read.tokens, self.read.confidences
        spelled, count = "", 0
        while len(spelled) < len(self.region) and count < len(tokens):
            spelled += tokens[count]
            count += 1
        if spelled != self.region:  # the region does not end on a token boundary
            return self
        return Look(self.probs, TokenRead(tokens[count:], confs[count:]), self.raw)


def doubtful(found: list[Look], sure_read: float) -> bool:
    """Whether no look of a crop so far is a sure plate (see Look.sure): it gets more looks."""
    return not any(look.sure(sure_read) for look in found)


def closer_views(views: Mapping[int, tuple[np.ndarray, np.ndarray]], blank: int
                 ) -> dict[int, np.ndarray]:
    """Zoom to text: each crop cut to its text where that helps (plates.zoom). ``views`` maps i
    to a crop and the [T, C] read of it whole, which says where the text runs."""
    cut: dict[int, np.ndarray] = {}
    for i, (crop, probs) in views.items():
        box = zoom_box(crop, probs, blank)
        if box is not None:
            x0, y0, x1, y1 = box
            cut[i] = crop[y0:y1, x0:x1]
    return cut


def levelled_views(crops: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Tilt levelling: the crops of tilted plates turned level (plates.tilt); crops of plates
    tilted less than MIN_ANGLE are left out (they read as they are)."""
    angles = {i: tilt_angle(crop) for i, crop in crops.items()}
    return {i: level(crops[i], a) for i, a in angles.items() if abs(a) >= MIN_ANGLE}


def wants_two_line_look(crop: np.ndarray, found: list[Look], sure_read: float,
                        max_aspect: float, region_check: bool) -> bool:
    """Whether a crop gets the two-line look: it is no wider than a two-line plate, and its
    reads are doubtful, or sure but without a region on an orange construction plate (whose
    lower line alone reads as a plate) when the colour is checked."""
    if crop.shape[1] / crop.shape[0] > max_aspect:
        return False
    if doubtful(found, sure_read):
        return True
    best = max(found, key=lambda look: look.score)
    return region_check and best.region is None and mostly_orange(crop)


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
