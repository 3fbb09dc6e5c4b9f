"""The report of `gotcha eval scenes`: JSON-ready dict and the table the command prints."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from edge_agent.evaluation.scene_calibration import (
    fit_calibration,
    involves,
    leave_one_day_out,
    training_pairs,
)
from edge_agent.evaluation.scene_metrics import (
    MAX_NEGATIVE_ACCEPT,
    MIN_POSITIVE_ACCEPT,
    PARTS,
    PairResult,
    case_rates,
    meets,
    rejected_by,
    summarise,
)
from edge_agent.vision.scene_scoring import SceneCalibration

REAL_CASES = ("same-spot", "vehicle-gone", "gone-other-day", "other-space")


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    return {"median": round(float(np.median(values)), 2),
            "p95": round(float(np.percentile(values, 95)), 2)}


def build_report(results: list[PairResult], days: list[str], threshold: float, chosen: float,
                 seed: int, timing: dict[str, list[float]], skipped: list[str],
                 model: str | None, calibration: SceneCalibration) -> dict[str, Any]:
    """Every figure of one run: configured, calibrated on half the pairs, per day, and with
    each day held out (boundaries fitted without it)."""
    by_kind: dict[str, list[PairResult]] = defaultdict(list)
    by_case: dict[str, list[PairResult]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
        by_case[f"{r.kind}/{r.case}"].append(r)

    def block(rs: list[PairResult]) -> dict[str, Any]:
        return {"configured": summarise(rs, threshold), "calibrated": summarise(rs, chosen),
                "test_split_calibrated": summarise([r for r in rs if r.split == "test"], chosen)}

    cases = {case: {"positive": rs[0].positive, "pairs": len(rs),
                    "accept_rate": sum(r.match.score >= threshold for r in rs) / len(rs),
                    "rejected_by": rejected_by(rs, threshold)}
             for case, rs in sorted(by_case.items())}
    held = leave_one_day_out(results, days, calibration, threshold)
    configured_days = {}
    for day in days:
        rs = [r for r in results if r.kind == "real" and involves(r.day, day)]
        summary = summarise(rs, threshold)
        configured_days[day] = {**summary, "cases": case_rates(rs, threshold)}
    meets_targets = {}
    for kind, rs in by_kind.items():
        s = summarise(rs, threshold)
        meets_targets[kind] = meets(s, case_rates(rs, threshold))
    if "real" in by_kind:  # real pairs are judged on days the boundaries did not see
        meets_targets["real"] = bool(held["overall"]["meets"] and all(
            d["meets"] is not False for d in held["days"].values()))
    failures = sorted((r for r in results if (r.match.score >= threshold) != r.positive),
                      key=lambda r: r.name)
    return {
        "seed": seed, "model": model, "threshold": threshold,
        "calibrated_threshold": round(chosen, 4),
        "targets": {"min_positive_accept": MIN_POSITIVE_ACCEPT,
                    "max_negative_accept": MAX_NEGATIVE_ACCEPT},
        "meets_targets": meets_targets,
        "all": {**summarise(results, threshold), "calibrated": summarise(results, chosen)},
        "by_kind": {k: block(rs) for k, rs in sorted(by_kind.items())},
        "cases": cases,
        "days": {day: {"configured": configured_days[day], "held_out": held["days"][day]}
                 for day in days},
        "leave_one_day_out": held,
        "calibration": calibration.to_dict(),
        "fitted_on_all_days": fit_calibration(training_pairs(results, None),
                                              calibration).to_dict(),
        "timing_ms": {name: _quantiles(values) for name, values in timing.items()},
        "errors": [{"pair": r.name, "kind": r.kind, "case": r.case, "positive": r.positive,
                    "day": r.day, **r.match.to_dict()} for r in failures],
        "skipped": skipped,
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:6.2f}%"


def _case_cell(cases: dict[str, Any], case: str) -> str:
    c = cases.get(case)
    if c is None:
        return f"{'-':>16}"
    return f"{c['accepted']:>4}/{c['pairs']:<4} {_pct(c['accept_rate'])}"


def _margin(m: dict[str, Any]) -> str:
    def v(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    return (f"boundary {v(m['boundary'])}, weakest positive {v(m['weakest_positive'])}, "
            f"strongest gone {v(m['strongest_gone'])}")


def day_table(report: dict[str, Any]) -> list[str]:
    """Accepted pairs of each case per day: with the day held out, and as configured; then how
    close the held-out days came to the look and presence boundaries."""
    lines = [f"{'day':<11} {'':<10} " + " ".join(f"{c:>16}" for c in REAL_CASES) + "  meets"]
    notes, margins = [], []
    for day, v in report["days"].items():
        held, configured = v["held_out"], v["configured"]
        if not held["pairs"]:
            notes.append(f"{day}: no pairs (no space is occupied in its labelled frames)")
            continue
        if not held["positives"]:
            notes.append(f"{day}: no space is occupied in its labelled frames; it enters only "
                         "through gone-other-day pairs (its empty spaces, other days' cars)")
        lines.append(f"{day:<11} {'held out':<10} "
                     + " ".join(_case_cell(held["cases"], c) for c in REAL_CASES)
                     + f"  {'yes' if held['meets'] else 'NO'}")
        lines.append(f"{'':<11} {'configured':<10} "
                     + " ".join(_case_cell(configured["cases"], c) for c in REAL_CASES))
        margins.append(f"{day} held out: look {_margin(held['margins']['look'])}; presence "
                       f"{_margin(held['margins']['presence'])}")
    overall = report["leave_one_day_out"]["overall"]
    lines.append(f"{'all days':<11} {'held out':<10} "
                 + " ".join(_case_cell(overall["cases"], c) for c in REAL_CASES)
                 + f"  {'yes' if overall['meets'] else 'NO'}")
    return lines + notes + margins


def table(report: dict[str, Any]) -> str:
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
        met = report["meets_targets"].get(kind, all(report["meets_targets"].values()))
        lines.append(f"{kind:<10} {s['pairs']:>6} {auc:>7} {c['true_accept']:>5} "
                     f"{c['false_reject']:>4} {c['false_accept']:>4} {c['true_reject']:>5} "
                     f"{_pct(s['positive_accept_rate']):>8} "
                     f"{_pct(s['negative_accept_rate']):>8}  {'yes' if met else 'NO'}")
    lines += ["", f"{'case':<24} {'label':<4} {'pairs':>6} {'accepted':>9}  "
              + " ".join(f"{p:>10}" for p in PARTS)]
    for case, c in report["cases"].items():
        lines.append(f"{case:<24} {'pos' if c['positive'] else 'neg':<4} {c['pairs']:>6} "
                     f"{_pct(c['accept_rate']):>9}  "
                     + " ".join(f"{c['rejected_by'][p]:>10}" for p in PARTS))
    lines.append(f"{'':<47}(pairs each part alone rejects)")
    if report["days"]:
        lines += ["", "real pairs per day, accepted (held out: boundaries fitted on the other "
                  "days and the generated calibration half; configured: the shipped ones)"]
        lines += day_table(report)
    lines.append("")
    for kind, v in report["by_kind"].items():
        t = v["test_split_calibrated"]
        lines.append(f"{kind} test half at the calibrated threshold: {t['pairs']} pairs, "
                     f"positives {_pct(t['positive_accept_rate'])} accepted, negatives "
                     f"{_pct(t['negative_accept_rate'])} accepted")
    tm = report["timing_ms"]
    lines.append("ms: " + "; ".join(f"{name} median {q['median']} p95 {q['p95']}"
                                    for name, q in tm.items()))
    for e in report["leave_one_day_out"]["errors"][:10]:
        lines.append(f"held-out error: {e['day']} {e['case']} score {e['score']:.3f} "
                     f"({e['reason']}): {e['pair']}")
    for e in report["errors"][:20]:
        lines.append(f"error: {e['kind']}/{e['case']} {'pos' if e['positive'] else 'neg'} "
                     f"score {e['score']:.3f} ({e['reason']}): {e['pair']}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])}: " + "; ".join(report["skipped"][:5]))
    lines.append("AUC: ROC AUC; TA/FR: positives accepted/rejected; FA/TR: negatives "
                 "accepted/rejected")
    return "\n".join(lines)
