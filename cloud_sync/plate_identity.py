"""Whether two plate reads are the same plate: the device's rule, for the cloud's pairing.

Two reads are the same plate when they are equal, or when both are the same length and differ
in exactly one position where one read is unsure (below ``low``) and the other sure (at or
above ``high``); the sure read is the plate kept (docs/design.md, "Korean plates"). Two sure,
different reads are different plates. The thresholds are the device lifecycle's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

LOW_CHAR_CONFIDENCE = 0.6
HIGH_CHAR_CONFIDENCE = 0.8


def same_plate(a: str, a_confidences: Sequence[float], b: str, b_confidences: Sequence[float],
               low: float = LOW_CHAR_CONFIDENCE, high: float = HIGH_CHAR_CONFIDENCE
               ) -> tuple[str, str] | None:
    """(plate to keep, the other read) when ``a`` and ``b`` are one plate; None otherwise.

    ``*_confidences`` hold one confidence per character of the normalised plate; a list of
    another length counts as unsure everywhere.
    """
    if a == b:
        return a, b
    if len(a) != len(b):
        return None
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diffs) != 1:
        return None
    i = diffs[0]
    ca = a_confidences[i] if len(a_confidences) == len(a) else 0.0
    cb = b_confidences[i] if len(b_confidences) == len(b) else 0.0
    if ca >= high and cb < low:
        return a, b
    if cb >= high and ca < low:
        return b, a
    return None
