"""Which reads of a photo are evidence: one rule for the device, the service and the eval.

Why a confidence floor: decoding constrained by the grammar always yields a well-formed plate,
even from a blurred one, so well-formed alone is no proof the plate was read. Why the views
must agree as well: a confident read can still be a misread (edge_agent.plates.agreement). Why a
size floor: on crops a couple of dozen pixels tall, a letter that differs from another by one
stroke was read wrong at 0.97 with every view agreeing; no confidence says the pixels were
never there.
"""

from __future__ import annotations

import logging

from edge_agent.config import PlatesConfig
from edge_agent.results import PhotoResult, PlateDetection, PlateRead

log = logging.getLogger(__name__)

#: a crop no wider than this many heights may hold a two-line plate (the shipped reader's
#: two_line_max_aspect in models.toml)
TWO_LINE_MAX_ASPECT = 3.2


def legible_px(read: PlateRead) -> float:
    """The height the size floor compares: the crop's, halved when the crop is shaped like a
    two-line plate, whose two lines share that height (the upper one, with the region or the
    front digits and the letter, is the smaller). Why: the floor is about the characters that
    name the owner, not about the crop."""
    width, height = read.crop_size
    return height / 2 if width <= TWO_LINE_MAX_ASPECT * height else float(height)


def unsure_reason(read: PlateRead | None, rule: PlatesConfig) -> str | None:
    """Why ``read`` is not evidence under ``rule`` ([plates]); None when it is (a sure read)."""
    if read is None:
        return "not read"
    if not read.valid or not read.text:
        return f"not a plate: {read.reject_reason}"
    if read.confidence < rule.evidence_floor:
        return f"confidence {read.confidence:.2f} < {rule.evidence_floor:.2f}"
    legible = legible_px(read)
    if rule.min_plate_px and not legible:
        return "plate crop size not known"
    if legible < rule.min_plate_px:
        lines = "" if legible == read.crop_size[1] else f" (two lines of {legible:g} px)"
        return (f"plate crop {read.crop_size[1]} px tall{lines}, under the "
                f"{rule.min_plate_px} px a sure read needs")
    if not rule.check_views:
        return None
    if read.views_checked == 0:
        return "not checked in other views"
    worst = max(read.dissent, default=0)
    if worst > rule.max_dissent:
        where = "".join(ch for ch, d in zip(read.text, read.dissent, strict=True) if d == worst)
        return (f"{worst} of {read.views_checked} views read {where} otherwise "
                f"(at most {rule.max_dissent})")
    return None


def is_sure(read: PlateRead | None, rule: PlatesConfig) -> bool:
    """Whether ``read`` may be evidence (see unsure_reason)."""
    return unsure_reason(read, rule) is None


def evidence_plates(result: PhotoResult, rule: PlatesConfig) -> list[PlateDetection]:
    """Sure reads (is_sure), surest first, one per plate text (the same plate twice in one
    photo keeps its surest)."""
    plates = []
    for plate in result.plates:
        reason = unsure_reason(plate.read, rule)
        if reason is None:
            plates.append(plate)
        elif plate.read is not None and plate.read.valid:
            log.info("%s: %s not recorded: %s", result.photo_meta.source_id, plate.read.text,
                     reason)
    plates.sort(key=lambda p: -p.read.confidence)  # type: ignore[union-attr]
    seen: set[str] = set()
    unique = []
    for plate in plates:
        assert plate.read is not None and plate.read.text is not None
        if plate.read.text not in seen:
            seen.add(plate.read.text)
            unique.append(plate)
    return unique
