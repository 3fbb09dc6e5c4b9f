"""Cross-validate fine-tuning on real crops: each fold of plates read by a model not trained on it.

    .venv/bin/python scripts/crossval_plate_reader.py --real ../shared/data/plates/set-c \
        --init /tmp/synthetic/gotcha-kr-plate-crnn.onnx --json /tmp/crossval.json

Why: once set-c is training data, its own figure must come from reads of plates the model did
not see. The plates (not the files: five crops of one plate stay together) are split into
--folds folds; for each, scripts/finetune_plate_reader.py trains on the others with the same
settings as the shipped model, and the left-out crops are read with the device's evidence rule
([plates] of gotcha.toml). The table sums the out-of-fold reads; the starting model's reads of
the same crops stand beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from edge_agent.config import GotchaConfig, load_config
from edge_agent.evaluation.plates import (
    LabelledCrop,
    ReaderScore,
    evidence_reads,
    load_labelled_crops,
    plate_format,
    read_image,
)
from edge_agent.plates.reader import KoreanPlateReader
from edge_agent.plates.recogniser import spec_and_path
from gotcha_train.real_crops import plate_folds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_sure_rule import Scored, choose, grid, score_crops
from calibrate_sure_rule import score as score_rule
from finetune_plate_reader import finetune, parser

log = logging.getLogger("crossval_plate_reader")


def reader_from(path: Path, threads: int) -> tuple[KoreanPlateReader, GotchaConfig]:
    """The configured reader's settings on another file of the same network (a candidate, so
    no pinned checksum)."""
    config = load_config(None)
    config.models.intra_op_threads = threads
    spec, _ = spec_and_path(config)
    return KoreanPlateReader.from_spec(replace(spec, sha256=None), path, config), config


def score_fold(name: str, path: Path, crops: list[LabelledCrop], figures: ReaderScore, threads: int,
               ) -> list[Scored]:
    """Read ``crops`` with the model at ``path``: the device's evidence reads into ``figures``,
    and every read checked in all views (for choosing the sure rule) returned."""
    reader, config = reader_from(path, threads)
    read = evidence_reads(reader, config.plates)
    for crop in crops:
        figures.add(crop, plate_format(crop.text), read(read_image(crop.path)), 0.0)
    log.info("%s: %d crops read", name, len(crops))
    return score_crops(reader, crops, config.plates)


def main() -> None:
    p = parser()
    p.description = __doc__.splitlines()[0]
    p.set_defaults(out=Path("/tmp/gotcha-crossval"))
    p.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    p.add_argument("--scored", type=Path, default=None, help="Write the out-of-fold reads "
                   "here, for scripts/calibrate_sure_rule.py --fit-reads.")
    p.add_argument("--reuse", action="store_true", help="Score the fold models already in "
                   "--out instead of training them again.")
    p.add_argument("--eval-threads", type=int, default=1, help="Reader threads when scoring.")
    args = p.parse_args()
    if args.cache is None:
        args.cache = Path(f"/tmp/gotcha-plate-synth-v9-seed{args.seed}-{args.synthetic}.npz")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    crops = load_labelled_crops(args.real)
    fold_of = plate_folds([c.text for c in crops], args.folds, args.seed)
    folder = args.out
    ours, start = ReaderScore("fine-tuned, out of fold"), ReaderScore("starting model")
    scored: list[Scored] = []
    config = load_config(None)
    model_name = spec_and_path(config)[0].file
    for fold in range(args.folds):
        held = [c for c in crops if fold_of[c.text] == fold]
        fold_args = argparse.Namespace(**vars(args))
        fold_args.hold_out = fold
        fold_args.out = folder / f"fold-{fold}" / model_name
        if not (args.reuse and fold_args.out.is_file()):
            finetune(fold_args)
        scored += score_fold(f"fold {fold}", fold_args.out, held, ours, args.eval_threads)
    score_fold("starting model", args.init, crops, start, args.eval_threads)
    rows = []
    for figures in (start, ours):
        rows.append(figures.to_dict())
        print(f"{figures.name:26s} exact {figures.exact}/{figures.total}  chars "
              f"{100 * figures.char_accuracy:.1f} %  sure {figures.sure}  sure_wrong "
              f"{figures.sure_wrong}")
    for misread in ours.misreads:
        print(f"  {misread['file']}: expected {misread['expected']}, read {misread['read']}"
              f"  conf {misread['confidence']}  {'SURE' if misread['sure'] else 'unsure'}")
    if args.scored:  # no file names: rightness, confidence, worst dissent, legible height
        lines = [json.dumps({"correct": r.correct, "confidence": round(r.confidence, 4),
                             "dissent": r.dissent, "legible_px": r.legible_px}) for r in scored]
        args.scored.write_text(f'{{"folds": {args.folds}, "seed": {args.seed}, "reads": [\n'
                               + ",\n".join(lines) + "\n]}\n", encoding="utf-8")
    doc: dict[str, object] = {"folds": args.folds, "seed": args.seed, "readers": rows,
                              "grid": grid(scored)}
    try:
        floor, max_dissent, min_px = choose(scored)
    except SystemExit as no_rule:  # the figures above still stand
        print(f"no sure rule out of fold: {no_rule}")
    else:
        doc["chosen"] = {"evidence_floor": floor, "max_dissent": max_dissent,
                         "min_plate_px": min_px}
        print(f"sure rule chosen on the out-of-fold reads: evidence_floor {floor}, max_dissent "
              f"{max_dissent}, min_plate_px {min_px}: "
              f"{score_rule(scored, floor, max_dissent, min_px)}")
    if args.json:
        args.json.write_text(json.dumps(doc, ensure_ascii=False, indent=2))

if __name__ == "__main__":
    main()
