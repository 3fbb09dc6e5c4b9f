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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the models are loaded only when crops are read
    from edge_agent.config import PlatesConfig
    from edge_agent.evaluation.plates import LabelledCrop
    from edge_agent.plates.agreement import BatchReader

FLOORS = tuple(round(0.05 * k, 2) for k in range(10, 20))  # 0.5 .. 0.95
MAX_DISSENTS = (0, 1, 2, 3, 4)
MIN_PLATE_PXS = (0, 16, 24, 32, 48)  # legible heights in pixels (plates.evidence.legible_px)


@dataclass(frozen=True)
class Scored:
    """One crop's read: right or wrong, its confidence, its worst dissent (None: no plate) and
    the height of its lines in the crop (plates.evidence.legible_px)."""

    correct: bool
    confidence: float
    dissent: int | None
    legible_px: float


def read_all(dirs: list[Path], config_path: Path | None) -> list[Scored]:
    """Read every labelled crop in ``dirs`` once with the configured reader (see score_crops)."""
    from edge_agent.config import load_config
    from edge_agent.evaluation.plates import load_labelled_crops
    from edge_agent.plates.reader import KoreanPlateReader

    config = load_config(config_path)
    config.models.intra_op_threads = 1
    reader = KoreanPlateReader.from_config(config)
    return score_crops(reader, load_labelled_crops(dirs), config.plates)


def score_crops(reader: BatchReader, crops: Sequence[LabelledCrop], rule: PlatesConfig,
                ) -> list[Scored]:
    """Each crop read once the way the device reads it, every plate read (whatever its
    confidence or size) checked in all the views, so that any rule of the grid can be scored."""
    from edge_agent.evaluation.plates import read_image
    from edge_agent.plates.agreement import read_plates
    from edge_agent.plates.evidence import legible_px

    every = rule.model_copy(update={"evidence_floor": 0.0, "check_views": True,
                                    "min_plate_px": 0})
    out = []
    for crop in crops:
        read = read_plates(reader, [read_image(crop.path)], every, every_view=True)[0]
        dissent = max(read.dissent, default=0) if read.valid and read.views_checked else None
        out.append(Scored(read.text == crop.text, read.confidence, dissent, legible_px(read)))
    return out


def load_scored(path: Path) -> list[Scored]:
    """Reads saved by scripts/crossval_plate_reader.py (--scored): out-of-fold reads."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["reads"]
        return [Scored(bool(r["correct"]), float(r["confidence"]),
                       None if r["dissent"] is None else int(r["dissent"]),
                       float(r["legible_px"])) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a file of scored reads ({exc}); write one with "
                         f"scripts/crossval_plate_reader.py --scored") from exc


def score(reads: list[Scored], floor: float, max_dissent: int, min_px: int,
          ) -> dict[str, int]:
    """Sure reads and wrong sure reads under one rule."""
    sure = [r for r in reads if r.dissent is not None and r.confidence >= floor
            and r.dissent <= max_dissent and r.legible_px >= min_px]
    return {"plates": len(reads), "exact": sum(r.correct for r in reads), "sure": len(sure),
            "sure_wrong": sum(not r.correct for r in sure)}


def grid(reads: list[Scored]) -> list[dict[str, float | int]]:
    """Every rule of the grid and its figures on ``reads``."""
    return [{"evidence_floor": f, "max_dissent": m, "min_plate_px": px, **score(reads, f, m, px)}
            for px in MIN_PLATE_PXS for m in MAX_DISSENTS for f in FLOORS]


def choose(reads: list[Scored]) -> tuple[float, int, int]:
    """The rule with the most sure reads and none wrong (ties: fewer dissents, a higher floor,
    a higher size floor: the stricter rule that is sure as often)."""
    best: tuple[int, int, float, int] | None = None
    for row in grid(reads):
        if row["sure_wrong"]:
            continue
        key = (int(row["sure"]), -int(row["max_dissent"]), float(row["evidence_floor"]),
               int(row["min_plate_px"]))
        if best is None or key > best:
            best = key
    if best is None:
        raise SystemExit("no rule of the grid has zero wrong sure reads on the --fit crops")
    return best[2], -best[1], best[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    fit = parser.add_mutually_exclusive_group(required=True)
    fit.add_argument("--fit", type=Path, nargs="+",
                     help="folders of labelled crops to choose the rule on")
    fit.add_argument("--fit-reads", type=Path,
                     help="out-of-fold reads to choose the rule on, for a reader trained on "
                     "the crops (scripts/crossval_plate_reader.py --scored)")
    parser.add_argument("--report", type=Path, nargs="*", default=[],
                        help="folders of labelled crops to report the chosen rule on")
    parser.add_argument("--config", type=Path, default=None, help="gotcha.toml (the reader)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    fit = load_scored(args.fit_reads) if args.fit_reads else read_all(args.fit, args.config)
    floor, max_dissent, min_px = choose(fit)
    doc: dict[str, object] = {
        "fit_on": [str(args.fit_reads)] if args.fit_reads else [str(d) for d in args.fit],
        "chosen": {"evidence_floor": floor, "max_dissent": max_dissent, "min_plate_px": min_px},
        "fit": score(fit, floor, max_dissent, min_px),
        "grid_on_fit": grid(fit),
    }
    if args.report:
        held_out = read_all(args.report, args.config)
        doc["reported_on"] = [str(d) for d in args.report]
        doc["report"] = score(held_out, floor, max_dissent, min_px)
        doc["report_confidence_only"] = score(held_out, floor, 99, 0)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"chosen on {', '.join(doc['fit_on'])}: evidence_floor = {floor}, "  # type: ignore[arg-type]
          f"max_dissent = {max_dissent}, min_plate_px = {min_px}")
    print(f"  on those crops: {doc['fit']}")
    if args.report:
        print(f"  held out ({', '.join(doc['reported_on'])}): {doc['report']}")  # type: ignore[arg-type]
        print(f"  held out, confidence floor alone: {doc['report_confidence_only']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
