"""Fitting the scene check's boundaries on some pairs and judging others: no day is judged by
boundaries that saw it.

Two parts of the check (edge_agent.vision.scene_scoring) are fitted, each on the negatives it
is there to reject and on the positives of the same kinds (real or generated): the place on
other spaces (real) and moved vehicles (generated), the look on vehicles gone (real only: the
generated set has no such pairs, and its synthetic passers-by are not the population a real
emptied space is told apart from). A boundary is the midpoint of the gap between the weakest
positive and the strongest negative, its scale an eighth of that gap; where they overlap, the
cut with the fewest errors (as rates). The background, the embedding veto and the presence
boundaries are set, not fitted (see DEFAULT_CALIBRATION): they stand on chance levels and on
what the measure reads for an empty place, not on any day.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

from edge_agent.evaluation.scene_metrics import PairResult, case_rates, meets, summarise
from edge_agent.vision.scene_scoring import (
    SceneCalibration,
    SceneFeatures,
    judge,
    look_value,
    uses_follow,
)

MIN_FIT_PAIRS = 3  # fewer positives or negatives than this leave a boundary as it was
GAP_SCALES = 8.0  # scale = gap / GAP_SCALES: the nearest pairs score 1 / (1 + e^-4) = 0.98
RESPONSIBLE = {"other-space": "place", "moved": "place",
               "vehicle-gone": "look"}  # the fitted part there to reject each negative case


def boundary(positives: list[float], negatives: list[float]) -> tuple[float, float] | None:
    """(mid, scale) separating high positives from low negatives; None with too few pairs."""
    if len(positives) < MIN_FIT_PAIRS or len(negatives) < MIN_FIT_PAIRS:
        return None
    low, high = min(positives), max(negatives)
    if high < low:
        return (low + high) / 2, (low - high) / GAP_SCALES
    values = sorted(set(positives) | set(negatives))
    cuts = [(a + b) / 2 for a, b in pairwise(values)]

    def errors(t: float) -> float:
        return (sum(p < t for p in positives) / len(positives)
                + sum(n >= t for n in negatives) / len(negatives))

    best = min(errors(t) for t in cuts)
    chosen = [t for t in cuts if errors(t) == best]
    mid = chosen[len(chosen) // 2]
    return mid, max((values[-1] - values[0]) / 100.0, 1e-3)


def fit_calibration(results: list[PairResult], base: SceneCalibration) -> SceneCalibration:
    """``base`` with every boundary these pairs can fit replaced by the fitted one."""
    judged = [(r, r.match.features) for r in results if r.match.features is not None]

    def negatives(part: str) -> list[SceneFeatures]:
        return [f for r, f in judged if not r.positive and RESPONSIBLE.get(r.case) == part]

    def positives(part: str) -> list[SceneFeatures]:
        kinds = {r.kind for r, _ in judged if not r.positive and RESPONSIBLE.get(r.case) == part}
        return [f for r, f in judged if r.positive and r.kind in kinds]

    fits: dict[str, tuple[float, float] | None] = {}
    placed = [f for f in positives("place") if f.box_iou is not None]
    wrong_place = [f for f in negatives("place") if f.box_iou is not None]
    fits["place"] = boundary([f.box_iou for f in placed if not uses_follow(f)],  # type: ignore[misc]
                             [f.box_iou for f in wrong_place if not uses_follow(f)])
    fits["follow"] = boundary(
        [f.vehicle_keypoints_following for f in placed if uses_follow(f)],  # type: ignore[misc]
        [f.vehicle_keypoints_following for f in wrong_place if uses_follow(f)])
    looks = [(look_value(f), f) for f in positives("look")]
    gone = [(look_value(f), f) for f in negatives("look")]
    for name, embedded in (("look", True), ("patch", False)):
        fits[name] = boundary([v[0] for v, _ in looks if v is not None and v[1] == embedded],
                              [v[0] for v, _ in gone if v is not None and v[1] == embedded])
    updates = {}
    for name, fit in fits.items():
        if fit is not None:
            updates[f"{name}_mid"], updates[f"{name}_scale"] = fit
    return replace(base, **updates)


def rescore(results: list[PairResult], calibration: SceneCalibration,
            threshold: float) -> list[PairResult]:
    """The same pairs judged with other boundaries (their measurements are kept)."""
    return [replace(r, match=judge(r.match.features, calibration, threshold))
            if r.match.features is not None else r for r in results]


def training_pairs(results: list[PairResult], held_out_day: str | None) -> list[PairResult]:
    """Real pairs of every other day plus the calibration half of the generated pairs."""
    return [r for r in results if (r.kind == "real" and r.day != held_out_day)
            or (r.kind != "real" and r.split == "calibration")]


def leave_one_day_out(results: list[PairResult], days: list[str], base: SceneCalibration,
                      threshold: float) -> dict[str, Any]:
    """Each day's real pairs judged by boundaries fitted without that day, at ``threshold``;
    per day and pooled over the held-out days."""
    per_day: dict[str, Any] = {}
    held: list[PairResult] = []
    for day in days:
        train = training_pairs(results, day)
        calibration = fit_calibration(train, base)
        test = rescore([r for r in results if r.kind == "real" and r.day == day], calibration,
                       threshold)
        held += test
        summary = summarise(test, threshold)
        cases = case_rates(test, threshold)
        per_day[day] = {**summary, "cases": cases, "meets": meets(summary, cases) if test
                        else None,
                        "fitted_on": [*sorted({r.day for r in train if r.day}), "generated"],
                        "calibration": calibration.to_dict()}
    overall = summarise(held, threshold)
    cases = case_rates(held, threshold)
    return {"threshold": threshold, "days": per_day,
            "overall": {**overall, "cases": cases, "meets": meets(overall, cases)},
            "errors": [{"pair": r.name, "day": r.day, "case": r.case, "positive": r.positive,
                        **r.match.to_dict()}
                       for r in held if (r.match.score >= threshold) != r.positive]}
