"""Choose the sure-read rule ([plates] evidence_floor and max_dissent) on labelled crops, and
report it on crops it was not chosen on.

Why a script: the rule decides which reads may fine an owner, so how it was chosen must be
repeatable. Every crop is read once the way the device reads it, every grammar-valid read
checked in the jittered views (plates.agreement); then each rule of the grid is scored without
reading again. The chosen rule is the one with the most sure reads and no wrong one on the
calibration crops; ties go to fewer dissenting views allowed, then to the higher floor. The
floor is never chosen below 0.5, the confidence floor the device had before the views were
checked: the views add to the confidence rule, they do not replace it.

    .venv/bin/python scripts/calibrate_sure_rule.py --fit ../shared/data/plates/set-c \\
        --report ../shared/data/plates/set-a ../shared/data/plates/set-b [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

FLOORS = tuple(round(0.05 * k, 2) for k in range(10, 20))  # 0.5 .. 0.95
MAX_DISSENTS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Scored:
    """One crop's read: right or wrong, its confidence and its worst dissent (None: no plate)."""

    correct: bool
    confidence: float
    dissent: int | None


def read_all(dirs: list[Path], config_path: Path | None) -> list[Scored]:
    """Read every labelled crop in ``dirs`` once, checking every plate read in the views."""
    from edge_agent.config import load_config
    from edge_agent.evaluation.plates import load_labelled_crops, read_image
    from edge_agent.plates.agreement import read_plates
    from edge_agent.plates.reader import KoreanPlateReader

    config = load_config(config_path)
    config.models.intra_op_threads = 1
    config.plates.evidence_floor = 0.0  # check every plate read: the grid sets the floor
    config.plates.check_views = True
    reader = KoreanPlateReader.from_config(config)
    out = []
    for crop in load_labelled_crops(dirs):
        read = read_plates(reader, [read_image(crop.path)], config.plates)[0]
        dissent = max(read.dissent, default=0) if read.valid and read.views_checked else None
        out.append(Scored(read.text == crop.text, read.confidence, dissent))
    return out


def score(reads: list[Scored], floor: float, max_dissent: int) -> dict[str, int]:
    """Sure reads and wrong sure reads under one rule."""
    sure = [r for r in reads if r.dissent is not None and r.confidence >= floor
            and r.dissent <= max_dissent]
    return {"plates": len(reads), "exact": sum(r.correct for r in reads), "sure": len(sure),
            "sure_wrong": sum(not r.correct for r in sure)}


def choose(reads: list[Scored]) -> tuple[float, int]:
    """The rule with the most sure reads and none wrong (ties: fewer dissents, higher floor)."""
    best: tuple[int, int, float] | None = None
    for max_dissent in MAX_DISSENTS:
        for floor in FLOORS:
            figures = score(reads, floor, max_dissent)
            if figures["sure_wrong"]:
                continue
            key = (figures["sure"], -max_dissent, floor)
            if best is None or key > best:
                best = key
    if best is None:
        raise SystemExit("no rule of the grid has zero wrong sure reads on the --fit crops")
    return best[2], -best[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", type=Path, nargs="+", required=True,
                        help="folders of labelled crops to choose the rule on")
    parser.add_argument("--report", type=Path, nargs="*", default=[],
                        help="folders of labelled crops to report the chosen rule on")
    parser.add_argument("--config", type=Path, default=None, help="gotcha.toml (the reader)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    fit = read_all(args.fit, args.config)
    floor, max_dissent = choose(fit)
    doc: dict[str, object] = {
        "fit_on": [str(d) for d in args.fit],
        "chosen": {"evidence_floor": floor, "max_dissent": max_dissent},
        "fit": score(fit, floor, max_dissent),
        "grid_on_fit": [{"evidence_floor": f, "max_dissent": m, **score(fit, f, m)}
                        for m in MAX_DISSENTS for f in FLOORS],
    }
    if args.report:
        held_out = read_all(args.report, args.config)
        doc["reported_on"] = [str(d) for d in args.report]
        doc["report"] = score(held_out, floor, max_dissent)
        doc["report_confidence_only"] = score(held_out, floor, 99)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"chosen on {', '.join(doc['fit_on'])}: evidence_floor = {floor}, "  # type: ignore[arg-type]
          f"max_dissent = {max_dissent}")
    print(f"  on those crops: {doc['fit']}")
    if args.report:
        print(f"  held out ({', '.join(doc['reported_on'])}): {doc['report']}")  # type: ignore[arg-type]
        print(f"  held out, confidence floor alone: {doc['report_confidence_only']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
