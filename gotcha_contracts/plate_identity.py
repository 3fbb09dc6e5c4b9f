"""When two reads name the same plate: written once, for the device and the cloud.

Why here: the device merges two photos of one vehicle into one report and the cloud merges two
reports of one violation; both must mean the same thing by "the same plate" (docs/design.md,
sections "Lifecycle" and "Cloud"). Identity is the normalised plate text (:func:`plate_key`)
with one misread character tolerated (:func:`same_plate`): the device merges two photos with
it and the cloud's duplicate check merges two reports with it, with the same thresholds.
:func:`match_keys` lets the cloud find, through an index, every plate that could match.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

from gotcha_contracts.plate_grammar import normalize_plate

LOW_CHAR_CONFIDENCE = 0.6  # below this a character of a read is unsure
HIGH_CHAR_CONFIDENCE = 0.8  # at or above this a character of a read is sure


@functools.lru_cache(maxsize=65_536)  # pure, and called for every comparison the cloud makes
def plate_key(text: str) -> str | None:
    """The plate's identity: its normalised text (``"서울12가3456"``); None if not a plate."""
    return normalize_plate(text)


def same_plate(a: str, a_confs: Sequence[float], b: str, b_confs: Sequence[float],
               low: float = LOW_CHAR_CONFIDENCE, high: float = HIGH_CHAR_CONFIDENCE
               ) -> tuple[str, str] | None:
    """(plate to keep, the other read) when ``a`` and ``b`` are the same plate, else None.

    ``a`` and ``b`` are normalised, grammar-valid plates; ``a_confs`` and ``b_confs`` hold one
    confidence per character of them. Equal plates match. Otherwise they match only when they
    have the same length and differ in exactly one position where one read is unsure
    (< ``low``) and the other sure (>= ``high``): the sure read is kept. Two confident
    different reads are two plates. A text that is not a normalised plate matches nothing.
    """
    if plate_key(a) != a or plate_key(b) != b:
        return None
    if a == b:
        return a, a
    if len(a) != len(b):
        return None
    if len(a_confs) != len(a) or len(b_confs) != len(b):
        raise ValueError(f"need one confidence per plate character: {a!r} has {len(a_confs)}, "
                         f"{b!r} has {len(b_confs)}")
    diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diffs) != 1:
        return None
    ca, cb = a_confs[diffs[0]], b_confs[diffs[0]]
    if ca >= high and cb < low:
        return a, b
    if cb >= high and ca < low:
        return b, a
    return None


MATCH_KEY_PARTS = 3


def match_keys(plate: str) -> tuple[str, ...]:
    """Index keys: the plate with its first, its second and its third part masked by ``*``.

    Two plates :func:`same_plate` can match have the same length and differ in at most one
    position, so they share the key that masks the part holding that position: looking up
    the keys finds every candidate (and only plates that agree on two thirds of their
    characters, which :func:`same_plate` then sorts out). ``"12가3456"`` gives
    ``("**가3456", "12**456", "12가3***")``.
    """
    n = len(plate)
    cuts = [n * i // MATCH_KEY_PARTS for i in range(MATCH_KEY_PARTS + 1)]
    return tuple(plate[:a] + "*" * (b - a) + plate[b:] for a, b in itertools.pairwise(cuts))
