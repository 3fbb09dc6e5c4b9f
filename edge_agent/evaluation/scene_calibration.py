"""Fitting the scene check's boundaries on some pairs and judging others: no day is judged by
boundaries that saw it.

Two parts of the check (edge_agent.vision.scene_scoring) are fitted, each on the negatives it
is there to reject and on the positives of the same kinds (real or generated): the place on
other spaces (real) and moved vehicles (generated) against all positives, the look on vehicles
gone (real, the same day and across days) against real same-spot pairs only (the generated
set has no emptied places, and its synthetic passers-by are not the population an emptied
place must be told apart from; the report shows what they score). A boundary is the
midpoint of the gap between the weakest positive and the strongest negative, its scale an
eighth of that gap; where they overlap, the cut with the fewest errors (as rates). The
background, the embedding veto and the presence boundaries are set, not fitted (see
DEFAULT_CALIBRATION): they stand on chance levels and on what the measure reads for an empty
place, not on any day.
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
    judges_presence,
    look_value,
    uses_follow,
)

MIN_FIT_PAIRS = 3  # fewer positives or negatives than this leave a boundary as it was
GAP_SCALES = 8.0  # scale = gap / GAP_SCALES: the nearest pairs score 1 / (1 + e^-4) = 0.98
RESPONSIBLE = {"other-space": "place", "moved": "place", "vehicle-gone": "look",
               "gone-other-day": "look"}  # the fitted part there to reject each negative case


def involves(pair_day: str | None, day: str) -> bool:
    """Whether a real pair has a frame of ``day`` (a cross-day pair has two dates)."""
    return pair_day is not None and day in pair_day.split("~")


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


def margins(results: list[PairResult], calibration: SceneCalibration) -> dict[str, Any]:
    """How close the look and presence values of these pairs come to their boundaries: the
    weakest positive and the strongest vehicle-gone negative (same day or across days)."""
    judged = [(r, r.match.features) for r in results if r.match.features is not None]
    gone = [f for r, f in judged if RESPONSIBLE.get(r.case) == "look"]
    kept = [f for r, f in judged if r.positive]
    looked = [v for _, f in judged if (v := look_value(f)) is not None]
    embedded = bool(looked) and looked[0][1]

    def values(fs: list[SceneFeatures], name: str) -> list[float]:
        if name == "presence":
            return [f.vehicle_presence for f in fs if judges_presence(f)]  # type: ignore[misc]
        return [v[0] for f in fs if (v := look_value(f)) is not None]

    out: dict[str, Any] = {}
    look_mid = calibration.look_mid if embedded else calibration.patch_mid
    for name, mid in (("look", look_mid), ("presence", calibration.presence_mid)):
        pos, neg = values(kept, name), values(gone, name)
        out[name] = {"boundary": round(mid, 4),
                     "weakest_positive": round(min(pos), 4) if pos else None,
                     "strongest_gone": round(max(neg), 4) if neg else None}
    return out


def rescore(results: list[PairResult], calibration: SceneCalibration,
            threshold: float) -> list[PairResult]:
    """The same pairs judged with other boundaries (their measurements are kept)."""
    return [replace(r, match=judge(r.match.features, calibration, threshold))
            if r.match.features is not None else r for r in results]


def training_pairs(results: list[PairResult], held_out_day: str | None) -> list[PairResult]:
    """Real pairs with no frame of the held-out day plus the calibration half of the generated
    pairs."""
    return [r for r in results
            if (r.kind == "real" and (held_out_day is None or not involves(r.day, held_out_day)))
            or (r.kind != "real" and r.split == "calibration")]


def leave_one_day_out(results: list[PairResult], days: list[str], base: SceneCalibration,
                      threshold: float) -> dict[str, Any]:
    """Each day's real pairs (those with a frame of it) judged by boundaries fitted without
    that day, at ``threshold``; per day and pooled over the held-out days (a cross-day pair
    counts once for each of its two days, judged each time without that day)."""
    per_day: dict[str, Any] = {}
    held: list[PairResult] = []
    for day in days:
        train = training_pairs(results, day)
        calibration = fit_calibration(train, base)
        test = rescore([r for r in results if r.kind == "real" and involves(r.day, day)],
                       calibration, threshold)
        held += test
        summary = summarise(test, threshold)
        cases = case_rates(test, threshold)
        per_day[day] = {**summary, "cases": cases, "meets": meets(summary, cases) if test
                        else None, "margins": margins(test, calibration),
                        "fitted_on": [*sorted({d for r in train if r.day
                                               for d in r.day.split("~")}), "generated"],
                        "calibration": calibration.to_dict()}
    overall = summarise(held, threshold)
    cases = case_rates(held, threshold)
    return {"threshold": threshold, "days": per_day,
            "overall": {**overall, "cases": cases, "meets": meets(overall, cases)},
            "errors": [{"pair": r.name, "day": r.day, "case": r.case, "positive": r.positive,
                        **r.match.to_dict()}
                       for r in held if (r.match.score >= threshold) != r.positive]}
