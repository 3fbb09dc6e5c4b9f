"""Accept rates, confusion tables and ROC AUC of judged scene pairs."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from edge_agent.vision.scene_scoring import SceneMatch

MIN_POSITIVE_ACCEPT = 0.99
MAX_NEGATIVE_ACCEPT = 0.01


@dataclass(frozen=True)
class PairResult:
    kind: str  # real | generated
    case: str
    positive: bool
    split: str  # calibration | test (seeded halves, by group)
    match: SceneMatch
    name: str
    day: str | None = None  # capture date of a real pair; None for generated pairs


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability a random positive outscores a random negative (ties count half)."""
    pos = np.array([s for s, y in zip(scores, labels, strict=True) if y])
    neg = np.array([s for s, y in zip(scores, labels, strict=True) if not y])
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def confusion(results: list[PairResult], threshold: float) -> dict[str, int]:
    table = {"true_accept": 0, "false_reject": 0, "false_accept": 0, "true_reject": 0}
    for r in results:
        accepted = r.match.score >= threshold
        key = (("true_accept" if accepted else "false_reject") if r.positive
               else ("false_accept" if accepted else "true_reject"))
        table[key] += 1
    return table


def summarise(results: list[PairResult], threshold: float) -> dict[str, Any]:
    """AUC, confusion table and accept rates of one set of pairs at one threshold."""
    table = confusion(results, threshold)
    n_pos = table["true_accept"] + table["false_reject"]
    n_neg = table["false_accept"] + table["true_reject"]
    return {
        "pairs": len(results), "positives": n_pos, "negatives": n_neg,
        "roc_auc": roc_auc([r.match.score for r in results], [r.positive for r in results]),
        "confusion": table,
        "positive_accept_rate": table["true_accept"] / n_pos if n_pos else None,
        "negative_accept_rate": table["false_accept"] / n_neg if n_neg else None,
    }


PARTS = ("background", "presence", "place", "look")


def rejected_by(results: list[PairResult], threshold: float) -> dict[str, int]:
    """How many pairs each part of the check alone would reject (a pair can count in several)."""
    counts = dict.fromkeys(PARTS, 0)
    for r in results:
        m = r.match
        scores = (m.background_score, m.presence_score, m.place_score, m.look_score)
        for part, score in zip(PARTS, scores, strict=True):
            counts[part] += score is not None and score < threshold
    return counts


def case_rates(results: list[PairResult], threshold: float) -> dict[str, dict[str, Any]]:
    """Per case: label, pairs, accepted, accept rate, and what each part rejects alone."""
    by_case: dict[str, list[PairResult]] = {}
    for r in results:
        by_case.setdefault(r.case, []).append(r)
    return {case: {"positive": rs[0].positive, "pairs": len(rs),
                   "accepted": sum(r.match.score >= threshold for r in rs),
                   "accept_rate": sum(r.match.score >= threshold for r in rs) / len(rs),
                   "rejected_by": rejected_by(rs, threshold)}
            for case, rs in sorted(by_case.items())}


def meets(summary: dict[str, Any], cases: dict[str, dict[str, Any]] | None = None) -> bool:
    """>= 99 % of positives and <= 1 % of negatives accepted, and of each negative case."""
    ok = ((summary["positive_accept_rate"] is None
           or summary["positive_accept_rate"] >= MIN_POSITIVE_ACCEPT)
          and (summary["negative_accept_rate"] is None
               or summary["negative_accept_rate"] <= MAX_NEGATIVE_ACCEPT))
    for case in (cases or {}).values():
        if not case["positive"] and case["accept_rate"] > MAX_NEGATIVE_ACCEPT:
            ok = False
    return bool(ok)


def calibrate(results: list[PairResult], current: float) -> float:
    """The threshold with the fewest errors (missed positives + accepted negatives, each as a
    rate) on these pairs; among equals the one nearest ``current``, then the midpoint of the
    gap, so it does not sit on a pair's score."""
    scores = sorted({r.match.score for r in results} | {0.0, 1.0})
    candidates = [(a + b) / 2 for a, b in pairwise(scores)] or [current]
    n_pos = max(1, sum(r.positive for r in results))
    n_neg = max(1, sum(not r.positive for r in results))

    def cost(t: float) -> tuple[float, float]:
        table = confusion(results, t)
        return (table["false_reject"] / n_pos + table["false_accept"] / n_neg, abs(t - current))

    return float(min(candidates, key=cost))
