"""`gotcha eval scenes DIR`: how well the scene matcher tells "same spot, same vehicle" apart.

Real pairs come from fixed-camera folders with occupancy XML, generated pairs from every other
photo (see scene_pairs). The pairs are split by group (a frame pair, a source photo) into a
calibration half and a test half with the seed: the threshold that best separates the
calibration half is reported next to the configured one, and every rate is given for both halves
and for all pairs, so nothing is tuned on what it is judged on without saying so.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from edge_agent.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ConfigOption,
    JsonOption,
    cli_errors,
    get_config,
)
from edge_agent.errors import BadInputError
from edge_agent.evaluation.scene_pairs import (
    PER_CASE,
    ScenePair,
    generated_pairs,
    list_photos,
    main_vehicle,
    real_pairs,
    resize_for_generation,
    shows_background,
)
from edge_agent.results import Box
from edge_agent.vision.scene import SceneMatch, SceneMatcher, SceneSignature

log = logging.getLogger(__name__)

MIN_POSITIVE_ACCEPT = 0.99
MAX_NEGATIVE_ACCEPT = 0.01
Detect = Callable[[np.ndarray], list[Box]]


@dataclass(frozen=True)
class PairResult:
    kind: str
    case: str
    positive: bool
    split: str  # calibration | test
    match: SceneMatch
    name: str


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


class SignatureCache:
    """One signature per (image, box) view, so a frame used in many pairs is analysed once."""

    def __init__(self, matcher: SceneMatcher) -> None:
        self.matcher = matcher
        self._cache: dict[str, SceneSignature] = {}
        self.signature_ms: list[float] = []

    def get(self, key: str, load: Callable[[], np.ndarray], box: Box) -> SceneSignature:
        if key not in self._cache:
            image = load()
            start = time.perf_counter()
            self._cache[key] = self.matcher.signature(image, box)
            self.signature_ms.append((time.perf_counter() - start) * 1000)
        return self._cache[key]

    def forget(self, prefix: str) -> None:
        for key in [k for k in self._cache if k.startswith(prefix)]:
            del self._cache[key]


def _split(group: str, seed: int) -> str:
    return "calibration" if zlib.crc32(f"{seed}:{group}".encode()) % 2 == 0 else "test"


def _fixed_camera(path: Path) -> bool:
    return "fixed" in path.parts


def check_folder(root: Path) -> None:
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder; pass the folder holding the photos")


def evaluate(root: Path, matcher: SceneMatcher, detect: Detect | None, *, seed: int = 7,
             limit: int | None = None, detail: bool = False) -> dict[str, Any]:
    """Run every pair under ``root`` through ``matcher``; the report as a JSON-ready dict.

    ``detect`` finds vehicle boxes for generated pairs (None: real pairs only). ``limit`` caps
    the pairs of each kind (real pairs sampled with the seed; generated: the first photos of a
    seeded shuffle). ``detail`` adds every pair's verdict.
    """
    check_folder(root)
    rng = np.random.default_rng(seed)
    real_folders, photos = list_photos(root)
    cache = SignatureCache(matcher)
    results: list[PairResult] = []
    compare_ms: list[float] = []
    skipped: list[str] = []

    def run(pair: ScenePair) -> None:
        sig_a = cache.get(pair.a.key, pair.a.load, pair.a.box)
        sig_b = cache.get(pair.b.key, pair.b.load, pair.b.box)
        start = time.perf_counter()
        match = matcher.compare(sig_a, sig_b)
        compare_ms.append((time.perf_counter() - start) * 1000)
        results.append(PairResult(pair.kind, pair.case, pair.positive, _split(pair.group, seed),
                                  match, f"{pair.a.key} | {pair.b.key}"))

    pairs = [p for folder in real_folders for p in real_pairs(folder, rng)]
    if limit is not None and len(pairs) > limit:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), limit, replace=False))]
    for pair in pairs:
        run(pair)
    if photos and detect is not None:
        _run_generated(photos, detect, rng, limit, run, cache, skipped)
    elif photos:
        skipped.append(f"{len(photos)} photos: no vehicle detector configured")
    threshold = matcher.threshold
    calib = [r for r in results if r.split == "calibration"]
    chosen = calibrate(calib, threshold) if calib else threshold
    report = _report(results, threshold, chosen, seed, cache.signature_ms, compare_ms, skipped,
                     matcher)
    if detail:
        report["pairs"] = [{"pair": r.name, "kind": r.kind, "case": r.case,
                            "positive": r.positive, "split": r.split, **r.match.to_dict()}
                           for r in results]
    return report


def _run_generated(photos: list[Path], detect: Detect, rng: np.random.Generator,
                   limit: int | None, run: Callable[[ScenePair], None], cache: SignatureCache,
                   skipped: list[str]) -> None:
    order = [photos[i] for i in rng.permutation(len(photos))]
    boxes: dict[Path, Box] = {}
    images: dict[Path, np.ndarray] = {}
    unusable: set[Path] = set()

    def load(path: Path) -> np.ndarray | None:
        if path in images:
            return images[path]
        if path in unusable:
            return None
        raw = cv2_imread(path)
        if raw is None:
            skipped.append(f"{path}: not a readable image")
            unusable.add(path)
            return None
        image, _ = resize_for_generation(raw)
        if path not in boxes:
            size = (image.shape[1], image.shape[0])
            box = main_vehicle(detect(image), size)
            why = ("no vehicle large enough" if box is None
                   else None if shows_background(box, size)
                   else "the vehicle fills the frame (no background to compare)")
            if why is not None or box is None:
                skipped.append(f"{path}: {why}")
                unusable.add(path)
                return None
            boxes[path] = box
        images[path] = image
        return image

    made = 0
    for index, photo in enumerate(order):
        if limit is not None and made >= limit:
            break
        image = load(photo)
        if image is None:
            continue
        others = []
        for candidate in order[index + 1:] + order[:index]:
            if len(others) == PER_CASE:
                break
            if _fixed_camera(photo) and candidate.parent == photo.parent:
                continue  # frames of one fixed camera show the same place
            other_image = load(candidate)
            if other_image is not None:
                others.append((candidate, other_image, boxes[candidate]))
        if not others:
            skipped.append(f"{photo}: no other photo with a vehicle")
            continue
        for pair in generated_pairs(photo, image, boxes[photo], others, rng):
            run(pair)
            made += 1
        cache.forget(str(photo))
        images.clear()  # keep memory flat: at most two photos decoded at a time


def cv2_imread(path: Path) -> np.ndarray | None:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    return {"median": round(float(np.median(values)), 2),
            "p95": round(float(np.percentile(values, 95)), 2)}


def _report(results: list[PairResult], threshold: float, chosen: float, seed: int,
            signature_ms: list[float], compare_ms: list[float], skipped: list[str],
            matcher: SceneMatcher) -> dict[str, Any]:
    by_kind: dict[str, list[PairResult]] = defaultdict(list)
    by_case: dict[str, list[PairResult]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
        by_case[f"{r.kind}/{r.case}"].append(r)

    def block(rs: list[PairResult]) -> dict[str, Any]:
        return {
            "configured": summarise(rs, threshold),
            "calibrated": summarise(rs, chosen),
            "test_split_calibrated": summarise([r for r in rs if r.split == "test"], chosen),
        }

    cases = {case: {"positive": rs[0].positive, "pairs": len(rs),
                    "accept_rate": sum(r.match.score >= threshold for r in rs) / len(rs)}
             for case, rs in sorted(by_case.items())}
    overall = summarise(results, threshold)
    meets = {}
    for kind, rs in by_kind.items():
        s = summarise(rs, threshold)
        meets[kind] = bool((s["positive_accept_rate"] or 0) >= MIN_POSITIVE_ACCEPT
                           and (s["negative_accept_rate"] or 0) <= MAX_NEGATIVE_ACCEPT)
    failures = sorted((r for r in results if (r.match.score >= threshold) != r.positive),
                      key=lambda r: r.name)
    return {
        "seed": seed, "model": matcher.model_id, "threshold": threshold,
        "calibrated_threshold": round(chosen, 4),
        "targets": {"min_positive_accept": MIN_POSITIVE_ACCEPT,
                    "max_negative_accept": MAX_NEGATIVE_ACCEPT},
        "meets_targets": meets,
        "all": {**overall, "calibrated": summarise(results, chosen)},
        "by_kind": {k: block(rs) for k, rs in sorted(by_kind.items())},
        "cases": cases,
        "timing_ms": {"signature": _quantiles(signature_ms), "compare": _quantiles(compare_ms)},
        "errors": [{"pair": r.name, "kind": r.kind, "case": r.case, "positive": r.positive,
                    **r.match.to_dict()} for r in failures],
        "skipped": skipped,
    }


# --- CLI ------------------------------------------------------------------------------------

def _table(report: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:6.2f}%"

    lines = [f"threshold {report['threshold']:.3f} (calibrated on half the pairs: "
             f"{report['calibrated_threshold']:.3f}), model {report['model'] or 'none'}, "
             f"seed {report['seed']}", ""]
    lines.append(f"{'kind':<10} {'pairs':>6} {'AUC':>7} {'TA':>5} {'FR':>4} {'FA':>4} "
                 f"{'TR':>5} {'pos acc':>8} {'neg acc':>8}  meets")
    rows = [(k, v["configured"]) for k, v in report["by_kind"].items()]
    rows.append(("all", report["all"]))
    for kind, s in rows:
        c = s["confusion"]
        auc = "-" if s["roc_auc"] is None else f"{s['roc_auc']:.4f}"
        meets = report["meets_targets"].get(kind, all(report["meets_targets"].values()))
        lines.append(f"{kind:<10} {s['pairs']:>6} {auc:>7} {c['true_accept']:>5} "
                     f"{c['false_reject']:>4} {c['false_accept']:>4} {c['true_reject']:>5} "
                     f"{pct(s['positive_accept_rate']):>8} {pct(s['negative_accept_rate']):>8}  "
                     f"{'yes' if meets else 'NO'}")
    lines += ["", f"{'case':<24} {'label':<4} {'pairs':>6} {'accepted':>9}"]
    for case, c in report["cases"].items():
        lines.append(f"{case:<24} {'pos' if c['positive'] else 'neg':<4} {c['pairs']:>6} "
                     f"{pct(c['accept_rate']):>9}")
    lines.append("")
    for kind, v in report["by_kind"].items():
        t = v["test_split_calibrated"]
        lines.append(f"{kind} test half at the calibrated threshold: {t['pairs']} pairs, "
                     f"positives {pct(t['positive_accept_rate'])} accepted, negatives "
                     f"{pct(t['negative_accept_rate'])} accepted")
    tm = report["timing_ms"]
    lines.append(f"ms: signature median {tm['signature']['median']} p95 "
                 f"{tm['signature']['p95']}; compare median {tm['compare']['median']} p95 "
                 f"{tm['compare']['p95']}")
    for e in report["errors"][:20]:
        lines.append(f"error: {e['kind']}/{e['case']} {'pos' if e['positive'] else 'neg'} "
                     f"score {e['score']:.3f} ({e['reason']}): {e['pair']}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])}: " + "; ".join(report["skipped"][:5]))
    lines.append("AUC: ROC AUC; TA/FR: positives accepted/rejected; FA/TR: negatives "
                 "accepted/rejected")
    return "\n".join(lines)


def register_scenes(eval_app: typer.Typer) -> None:
    """Add `scenes` to the `gotcha eval` group."""

    @eval_app.command("scenes")
    def scenes(
        folder: Annotated[Path, typer.Argument(help="Folder of photos: sub-folders with PKLot "
                                               "occupancy XML give real pairs, other photos "
                                               "generated pairs.")],
        config: ConfigOption = None,
        as_json: JsonOption = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 7,
        limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many "
                                                  "pairs of each kind.")] = None,
    ) -> None:
        """Scene matching on real and generated pairs: ROC AUC, confusion table, accept rates.

        Exit code 1 when a kind of pairs misses the targets (>= 99 % of positives and <= 1 %
        of negatives accepted).
        """
        cfg = get_config(config)
        with cli_errors():
            from edge_agent.vision.vehicle_detector import VehicleDetector

            check_folder(folder)  # before loading models: a typo fails at once
            matcher = SceneMatcher.from_config(cfg)
            detector = VehicleDetector.from_config(cfg) if cfg.models.vehicle_detector else None
            detect = (lambda image: [v.box for v in detector.detect(image)]) if detector else None
            report = evaluate(folder, matcher, detect, seed=seed, limit=limit)
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json
                   else _table(report))
        raise typer.Exit(EXIT_OK if all(report["meets_targets"].values()) else EXIT_SOME_FAILED)
