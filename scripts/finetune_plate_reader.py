"""Fine-tune the plate recogniser on real labelled crops mixed with synthetic ones (CPU).

Reproduce the committed model (fixed seed; the numbers are in models/models.toml):

    .venv/bin/python scripts/finetune_plate_reader.py --real ../shared/data/plates/set-c \
        --init /tmp/synthetic/gotcha-kr-plate-crnn.onnx --out models/gotcha-kr-plate-crnn.onnx

Why fine-tune rather than train again: the synthetic-only model reads clean plates well but
real crops (old green plates whose 1 has no foot, far plates a few pixels high) differ from
anything the renderer draws. A short run from the exported weights, where every batch holds a
share of augmented real crops and the rest synthetic ones (so nothing already learnt is lost),
takes minutes on two cores instead of the 42 of a full run. Real crops may only come from
folders the data's README allows for training: ../shared/data/plates/set-c, never set-a or
set-b, which stay the held-out measure. --folds/--hold-out leave out one fold of plates (not of
files) for scripts/crossval_plate_reader.py.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from edge_agent.evaluation.plates import load_labelled_crops, read_image
from gotcha_train.crnn import (
    build_model,
    ctc_step,
    evaluate,
    export,
    freeze_batch_norm,
    load_onnx_weights,
)
from gotcha_train.dataset import CHARSET, INPUT_W, IndexPool, render_dataset, tokenize
from gotcha_train.real_crops import RealCrop, augment, model_input, plate_folds

log = logging.getLogger("finetune_plate_reader")

#: folders whose crops are the held-out measure (../shared/data/README.md): never trained on
NEVER_TRAIN = frozenset({"set-a", "set-b"})
#: real crops are shrunk once to at most this height: the model input is 48 rows (96 split)
MAX_REAL_HEIGHT = 160


def load_real(folders: list[Path], folds: int, hold_out: int, seed: int) -> list[RealCrop]:
    """The labelled crops of ``folders`` outside fold ``hold_out`` (-1: all of them)."""
    labelled = load_labelled_crops(folders)
    for item in labelled:  # also below a parent folder: labels.csv files are found recursively
        if NEVER_TRAIN.intersection(item.path.resolve().parts):
            raise SystemExit(f"{item.path} is in a held-out measuring set; train on set-c or "
                             f"your own crops, never on {' or '.join(sorted(NEVER_TRAIN))}")
    fold_of = plate_folds([c.text for c in labelled], folds, seed)
    crops = []
    for item in labelled:
        if hold_out >= 0 and fold_of[item.text] == hold_out:
            continue
        image = read_image(item.path)
        if image.shape[0] > MAX_REAL_HEIGHT:
            scale = MAX_REAL_HEIGHT / image.shape[0]
            size = (max(4, round(image.shape[1] * scale)), MAX_REAL_HEIGHT)
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        crops.append(RealCrop(image, item.text))
    return crops


def finetune(args: argparse.Namespace) -> Path:
    """Fine-tune ``args.init`` and export to ``args.out``; returns ``args.out``."""
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    real = load_real(args.real, args.folds, args.hold_out, args.seed)
    if not real:
        raise SystemExit("no real crops left to train on: give --real folders with labels.csv")
    model = build_model(len(CHARSET) + 1)
    try:  # before rendering: a wrong file is told at once
        load_onnx_weights(model, args.init)
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"--init {args.init}: {exc}; give a model exported by "
                         f"scripts/train_plate_reader.py") from exc
    images, texts, two_line = render_dataset(args.seed, args.synthetic, args.workers, args.cache)
    labels = [tokenize(t) for t in texts]
    n_val = min(2000, len(texts) // 10)
    x_all = torch.from_numpy(images).unsqueeze(1)
    before = evaluate(model, x_all[:n_val], labels[:n_val], two_line[:n_val])
    log.info("start: synthetic val exact %.4f one-line, %.4f two-line; %d real crops "
             "(%d two-line)", *before, len(real), sum(c.two_line for c in real))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps,
                                                pct_start=0.1)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    in_train = np.arange(len(texts)) >= n_val
    pools = [IndexPool(np.flatnonzero(in_train & (two_line == flag)),
                       2 * INPUT_W if flag else INPUT_W, rng) for flag in (False, True)]
    real_by_kind = [[c for c in real if c.two_line == flag] for flag in (False, True)]
    real_count = max(1, round(args.batch * args.real_share))
    start = time.time()
    for step in range(1, args.steps + 1):
        model.train()
        freeze_batch_norm(model)
        kind = int(rng.random() < 0.5) if all(real_by_kind) else int(bool(real_by_kind[1]))
        pool = pools[kind]
        idx = pool.next_batch(args.batch - real_count)
        picks = rng.integers(0, len(real_by_kind[kind]), real_count)
        chosen = [real_by_kind[kind][p] for p in picks]
        real_rows = np.stack([model_input(c, augment(c.image, rng,
                                                      args.invert_two_line * c.two_line))
                              for c in chosen])
        rows = torch.cat([x_all[idx, 0], torch.from_numpy(real_rows)])[:, None, :, :pool.width]
        x = (rows.float() / 255.0 - 0.5) / 0.5
        targets = [labels[i] for i in idx] + [tokenize(c.text) for c in chosen]
        loss = ctc_step(model, opt, sched, ctc, x, targets)
        if step % 50 == 0:
            log.info("step %d/%d loss %.4f lr %.5f (%.0f s)", step, args.steps, loss.item(),
                     sched.get_last_lr()[0], time.time() - start)
    after = evaluate(model, x_all[:n_val], labels[:n_val], two_line[:n_val])
    log.info("end: synthetic val exact %.4f one-line, %.4f two-line (%.0f s)", *after,
             time.time() - start)
    export(model, args.out)
    return args.out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", type=Path, nargs="+", required=True,
                   help="Folders of real crops with labels.csv (set-c; never set-a or set-b).")
    p.add_argument("--init", type=Path, required=True, help="Exported model to start from.")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write.")
    p.add_argument("--seed", type=int, default=1, help="Seed for folds, rendering, training.")
    p.add_argument("--folds", type=int, default=3, help="Folds of plates for --hold-out.")
    p.add_argument("--hold-out", type=int, default=-1,
                   help="Leave this fold of plates out (cross-validation); -1 = train on all.")
    p.add_argument("--synthetic", type=int, default=24_000, help="Synthetic crops to render.")
    p.add_argument("--real-share", type=float, default=0.25,
                   help="Share of each batch that is augmented real crops.")
    p.add_argument("--steps", type=int, default=700, help="Optimizer steps.")
    p.add_argument("--lr", type=float, default=4e-4, help="Peak learning rate.")
    p.add_argument("--batch", type=int, default=96, help="Batch size.")
    p.add_argument("--threads", type=int, default=2, help="Torch CPU threads.")
    p.add_argument("--workers", type=int, default=2, help="Rendering processes.")
    p.add_argument("--cache", type=Path, default=None, help="Rendered-crop cache (.npz).")
    p.add_argument("--invert-two-line", type=float, default=0.0,
                   help="Share of two-line real crops shown with light and dark swapped "
                        "(a measured lever, off in the shipped model).")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.cache is None:
        args.cache = Path(f"/tmp/gotcha-plate-synth-v9-seed{args.seed}-{args.synthetic}.npz")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    finetune(args)


if __name__ == "__main__":
    main()
