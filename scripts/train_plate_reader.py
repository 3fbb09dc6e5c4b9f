"""Train the project's Korean plate recogniser on synthetic plates (CPU) and export it to ONNX.

Reproduce the synthetic model the committed one is fine-tuned from (fixed seed; then
scripts/finetune_plate_reader.py; the numbers are in models/models.toml):

    .venv/bin/python scripts/train_plate_reader.py --seed 0 --samples 120000 --steps 6000 \
        --easy-steps 400 --ema 0.998 --threads 2 --minutes 52 \
        --out /tmp/synthetic/gotcha-kr-plate-crnn.onnx

Why this design: a small CRNN (conv only, ~1.5 MB) reading one row of features with CTC, one
frame per 4 input columns, so the exported model takes any input width. One-line plates are
read at 144x48. Two-line plates (region and digits above letter and number) are split, and
each line is resized to 144x48 and laid side by side (plates.looks.two_line_view), in training
and at run time, where the reader keeps whichever of the one-line and two-line reads the plate
grammar prefers. (A first design that kept two feature rows for CTC did not leave the CTC
plateau within the CPU budget; a first pass on cleaner crops, --easy-steps, shortens it.) The
exported weights are a moving average (--ema), which smooths out the last steps' noise. Only
synthetic plates (gotcha_train.synth) are used; the real crops in ../shared/data/plates are the
evaluation set and are never read here.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from gotcha_train.crnn import build_model, ctc_step, evaluate, export
from gotcha_train.dataset import (
    CHARSET,
    CHUNK,
    EASY_EVERY,
    INPUT_W,
    IndexPool,
    render_dataset,
    tokenize,
)

log = logging.getLogger("train_plate_reader")


def train(args: argparse.Namespace) -> None:
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    images, texts, two_line = render_dataset(args.seed, args.samples, args.workers, args.cache)
    labels = [tokenize(t) for t in texts]
    n_val = min(2000, len(texts) // 20)
    x_all = torch.from_numpy(images).unsqueeze(1)  # uint8 [N,1,H,2W]
    model = build_model(len(CHARSET) + 1)
    params = sum(p.numel() for p in model.parameters())
    log.info("model: %d parameters, %d classes", params, len(CHARSET) + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    # an exponential moving average of the weights (and batch-norm statistics) is what gets
    # validated and exported: single checkpoints of one run differ by several real-crop reads
    averaged = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema),
        use_buffers=True) if args.ema else None)
    kept = averaged.module if averaged is not None else model
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(args.seed)
    # a batch is all one-line crops (W wide) or all two-line views (2W wide); the first
    # --easy-steps batches come from the cleaner chunks only, which shortens the CTC plateau
    in_train = np.arange(len(texts)) >= n_val
    easy = (np.arange(len(texts)) // CHUNK) % EASY_EVERY == 0
    warmup, pools = ([IndexPool(np.flatnonzero(chosen & (two_line == flag)), 2 * INPUT_W if flag
                           else INPUT_W, rng) for flag in (False, True)]
                     for chosen in (in_train & easy, in_train))
    share_two = len(pools[1].indices) / max(1, len(texts) - n_val)
    deadline = time.time() + args.minutes * 60
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps,
                                                pct_start=max(0.05, 3 / args.steps))
    start, step = time.time(), 0
    while step < args.steps and time.time() < deadline:
        model.train()
        pool = (warmup if step < args.easy_steps else pools)[int(rng.random() < share_two)]
        idx = pool.next_batch(args.batch)
        x = (x_all[idx, :, :, :pool.width].float() / 255.0 - 0.5) / 0.5
        # small online jitter of gain and offset: exposure the renderer did not cover
        x = x * torch.empty(len(idx), 1, 1, 1).uniform_(0.8, 1.2) \
            + torch.empty(len(idx), 1, 1, 1).uniform_(-0.2, 0.2)
        loss = ctc_step(model, opt, sched, ctc, x, [labels[i] for i in idx], args.bf16)
        if averaged is not None:
            averaged.update_parameters(model)
        step += 1
        if step % 50 == 0:
            log.info("epoch %d step %d/%d loss %.4f lr %.5f (%.0f s)", pools[0].epoch, step,
                     args.steps,
                     loss.item(), sched.get_last_lr()[0], time.time() - start)
        if step % args.eval_every == 0 or step == args.steps:
            one, two = evaluate(kept, x_all[:n_val], labels[:n_val], two_line[:n_val])
            log.info("step %d: synthetic val exact %.4f one-line, %.4f two-line (%.0f s)", step,
                     one, two, time.time() - start)
            export(kept, args.out)
    if step < args.steps:
        log.warning("time budget of %.0f min reached at step %d of %d", args.minutes, step,
                    args.steps)
        export(kept, args.out)
    if averaged is not None:  # what the average is worth against the last weights
        one, two = evaluate(model, x_all[:n_val], labels[:n_val], two_line[:n_val])
        log.info("last weights, not averaged: synthetic val exact %.4f one-line, %.4f two-line",
                 one, two)
    log.info("training wall-clock: %.0f s for %d steps (rendering excluded)",
             time.time() - start, step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="Seed for rendering and training.")
    parser.add_argument("--samples", type=int, default=60_000, help="Synthetic crops to render.")
    parser.add_argument("--workers", type=int, default=2, help="Rendering processes.")
    parser.add_argument("--threads", type=int, default=2, help="Torch CPU threads.")
    parser.add_argument("--batch", type=int, default=128, help="Batch size.")
    parser.add_argument("--lr", type=float, default=2e-3, help="Peak learning rate.")
    parser.add_argument("--steps", type=int, default=3000, help="Optimizer steps (schedule).")
    parser.add_argument("--easy-steps", type=int, default=0,
                        help="First steps trained on the cleaner crops only.")
    parser.add_argument("--ema", type=float, default=0.0,
                        help="Validate and export a moving average of the weights with this "
                        "decay per step (0.998: about the last 500 steps); 0 = the last weights.")
    parser.add_argument("--eval-every", type=int, default=500, help="Validate/export every N.")
    parser.add_argument("--minutes", type=float, default=55, help="Safety time budget; the "
                        "schedule is by steps, so a run cut short is not the reproducible one.")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false",
                        help="Train in float32 instead of bfloat16 autocast.")
    parser.add_argument("--cache", type=Path, default=None, help="Rendered-crop cache (.npz).")
    parser.add_argument("--render-only", action="store_true", help="Render the cache and stop.")
    parser.add_argument("--out", type=Path, default=Path("models/gotcha-kr-plate-crnn.onnx"),
                        help="ONNX file to write (the charset goes next to it).")
    args = parser.parse_args()
    if not 0.0 <= args.ema < 1.0:
        parser.error(f"--ema {args.ema} is no decay: give a number in [0, 1), e.g. 0.998, or 0 "
                     f"to export the last weights")
    if args.cache is None:
        args.cache = Path(f"/tmp/gotcha-plate-synth-v9-seed{args.seed}-{args.samples}.npz")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.render_only:
        render_dataset(args.seed, args.samples, args.workers, args.cache)
        return
    train(args)


if __name__ == "__main__":
    main()
