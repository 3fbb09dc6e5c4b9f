"""Would-be evidence is read again in jittered views of its crop; a character the views do not
agree on makes the read unsure.

Why: the recogniser's confidence alone cannot tell a sure misread from a sure read. On real
crops it was never trained on, wrong characters came out at up to 0.97 (사 for 서, 세종 for
서울), while the same plate cut a few pixels tighter, looser, further left or right, or a
little softer, was read otherwise. A real plate locator's box jitters that much from photo to
photo, so a read that depends on the exact box is not one to fine an owner on. How many views
may dissent, and the confidence floor beside it, were chosen on held-out crops
(scripts/calibrate_sure_rule.py; the numbers are in models/models.toml and the README).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from edge_agent.config import PlatesConfig
from edge_agent.plates.alignment import align
from edge_agent.plates.evidence import legible_px
from edge_agent.plates.text import interpret_read
from edge_agent.results import PlateRead, TokenRead

#: how far each view moves the box: a share of the crop's width and height
SHIFT_X = 0.04
SHIFT_Y = 0.06
VIEW_COUNT = 5  # the views of jittered_views


def jittered_views(crop: np.ndarray) -> list[np.ndarray]:
    """Five views of a plate crop as a plate locator might have cut it: tighter, looser, cut
    further right, cut further left, and slightly out of focus."""
    height, width = crop.shape[:2]
    dx = max(1, round(width * SHIFT_X))
    dy = max(1, round(height * SHIFT_Y))
    fits = height > 2 * dy + 2 and width > 2 * dx + 2
    return [
        crop[dy:height - dy, dx:width - dx] if fits else crop,
        cv2.copyMakeBorder(crop, dy, dy, dx, dx, cv2.BORDER_REPLICATE),
        crop[:, dx:] if fits else crop,
        crop[:, :width - dx] if fits else crop,
        cv2.GaussianBlur(crop, (3, 3), 0.8),
    ]


def contradicted(text: str, other: str | None) -> set[int]:
    """Positions of ``text`` that ``other`` reads otherwise when the two are lined up: a
    character substituted or missing, and both neighbours of a character ``other`` has and
    ``text`` lacks (12가3456 against 112가3456: the read may have dropped a digit, so the 1
    beside the gap is in doubt). ``None`` (the view read no plate) contradicts every position."""
    if other is None:
        return set(range(len(text)))
    bad: set[int] = set()
    seen = 0  # characters of text lined up so far
    for i, j in align(text, other):
        if i is None:  # other has a character here that text lacks
            bad.update(k for k in (seen - 1, seen) if 0 <= k < len(text))
            continue
        seen = i + 1
        if j is None or text[i] != other[j]:
            bad.add(i)
    return bad


def dissent_counts(text: str, view_texts: Sequence[str | None]) -> tuple[int, ...]:
    """Per character of ``text``: how many of the views read it otherwise."""
    counts = [0] * len(text)
    for other in view_texts:
        for position in contradicted(text, other):
            counts[position] += 1
    return tuple(counts)


class BatchReader(Protocol):
    def read_batch(self, crops: Sequence[np.ndarray]) -> list[TokenRead]: ...


def read_plates(reader: BatchReader, crops: Sequence[np.ndarray], rule: PlatesConfig,
                every_view: bool = False) -> list[PlateRead]:
    """The plate reads of ``crops`` as the device uses them: read, interpreted by the grammar,
    each carrying its crop's size (the evidence rule's size floor), and, with
    ``rule.check_views``, every read that could be evidence (a plate at or above
    ``rule.evidence_floor``, printed at least ``rule.min_plate_px`` tall) read again in its
    jittered views by the same reader and the same looks, and its ``dissent`` counted. One
    place, so the pipeline and `gotcha eval plates` measure the same thing.

    The views are read in two batches, the second only where the first leaves the rule's
    answer open (see views_deciding): the answer is the one all five views would give, at
    about three fifths of the cost for a clean read. ``every_view`` reads all five regardless
    (calibration needs the full counts).
    """
    reads = [dataclasses.replace(interpret_read(t.tokens, t.confidences),
                                 crop_size=(int(crop.shape[1]), int(crop.shape[0])))
             for t, crop in zip(reader.read_batch(crops), crops, strict=True)]
    if not rule.check_views:
        return reads
    wanted = [i for i, read in enumerate(reads)  # only reads that could be evidence
              if read.valid and read.text and read.confidence >= rule.evidence_floor
              and legible_px(read) >= rule.min_plate_px]
    views = {i: jittered_views(crops[i]) for i in wanted}
    first = VIEW_COUNT if every_view else views_deciding(rule.max_dissent)
    seen: dict[int, list[str | None]] = {i: [] for i in wanted}
    for stage in (slice(0, first), slice(first, VIEW_COUNT)):
        due = [i for i in wanted if _open(reads[i].text, seen[i], rule.max_dissent)]
        batch = [view for i in due for view in views[i][stage]]
        if not batch:
            continue
        texts = [_plate_text(t) for t in reader.read_batch(batch)]
        per_crop = len(batch) // len(due)
        for k, i in enumerate(due):
            seen[i] += texts[k * per_crop:(k + 1) * per_crop]
    for i in wanted:
        text = reads[i].text
        assert text is not None
        reads[i] = dataclasses.replace(reads[i], dissent=dissent_counts(text, seen[i]),
                                       views_checked=len(seen[i]))
    return reads


def views_deciding(max_dissent: int) -> int:
    """How many views to read first: after VIEW_COUNT - max_dissent views that all agree, the
    rest cannot push any character past ``max_dissent``, so a clean read needs no more."""
    return max(1, VIEW_COUNT - max_dissent)


def _open(text: str | None, seen: Sequence[str | None], max_dissent: int) -> bool:
    """Whether the views still to read could change the rule's answer for ``text``."""
    if len(seen) >= VIEW_COUNT or text is None:
        return False
    if not seen:
        return True
    worst = max(dissent_counts(text, seen), default=0)
    if worst > max_dissent:  # already unsure
        return False
    return worst + VIEW_COUNT - len(seen) > max_dissent


def _plate_text(tokens: TokenRead) -> str | None:
    read = interpret_read(tokens.tokens, tokens.confidences)
    return read.text if read.valid else None
