"""Train the project's Korean plate recogniser on synthetic plates (CPU) and export it to ONNX.

Reproduce the committed model (fixed seed, the numbers are in models/models.toml):

    .venv/bin/python scripts/train_plate_reader.py --seed 0 --samples 120000 --steps 6000 \
        --easy-steps 400 --ema 0.998 --threads 2 --minutes 52 --out models/gotcha-kr-plate-crnn.onnx

Why this design: a small CRNN (conv only, ~1.5 MB) reading one row of features with CTC, one
frame per 4 input columns, so the exported model takes any input width. One-line plates are
read at 144x48. Two-line plates (region and digits above letter and number) are split, and
each line is resized to 144x48 and laid side by side (plates.looks.two_line_view), in training
and at run time, where the reader keeps whichever of the one-line and two-line reads the plate
grammar prefers. (A first design that kept two feature rows for CTC did not leave the CTC
plateau within the CPU budget; a first pass on cleaner crops, --easy-steps, shortens it.) The
exported weights are a moving average (--ema), which smooths out the last steps' noise. Only
synthetic plates (edge_agent.synth) are used; the real crops in ../shared/data/plates are the
evaluation set and are never read here.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from edge_agent.plates.looks import two_line_view
from edge_agent.plates.recogniser import resize_crop
from edge_agent.synth import REGIONS, USE_LETTERS, random_sample

log = logging.getLogger("train_plate_reader")

INPUT_W, INPUT_H = 144, 48
CHARSET = list("0123456789") + list(dict.fromkeys(USE_LETTERS)) + list(REGIONS)  # blank = 0
TOKEN = {t: i + 1 for i, t in enumerate(CHARSET)}
CHUNK = 2000
EASY_EVERY = 3  # every third chunk holds cleaner crops (a way off the CTC plateau)


def tokenize(text: str) -> list[int]:
    """Plate text -> class ids, a region name being one token."""
    ids, i = [], 0
    while i < len(text):
        if text[i: i + 2] in TOKEN and len(text[i: i + 2]) == 2:
            ids.append(TOKEN[text[i: i + 2]])
            i += 2
        else:
            ids.append(TOKEN[text[i]])
            i += 1
    return ids


def _render_chunk(args: tuple[int, int, int]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Crops of one chunk as model inputs: one-line plates HxW, two-line views Hx2W."""
    seed, chunk, count = args
    rng = np.random.default_rng([seed, chunk])
    images = np.zeros((count, INPUT_H, 2 * INPUT_W), np.uint8)
    texts, two_lines = [], np.zeros(count, bool)
    for k in range(count):
        crop, text, two_line = random_sample(rng, easy=chunk % EASY_EVERY == 0)
        if two_line:
            images[k] = two_line_view(crop, INPUT_W, INPUT_H, "gray")[..., 0]
        else:
            images[k, :, :INPUT_W] = resize_crop(crop, INPUT_W, INPUT_H, "gray")[..., 0]
        texts.append(text)
        two_lines[k] = two_line
    return images, texts, two_lines


def render_dataset(seed: int, samples: int, workers: int,
                   cache: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Render (or load from ``cache``) ``samples`` crops; chunk seeds make it order-independent.

    Returns images [N, H, 2W] (one-line plates fill the left half), texts and two-line flags.
    """
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if len(data["texts"]) >= samples:
            log.info("loaded %d rendered crops from %s", samples, cache)
            return (data["images"][:samples], [str(t) for t in data["texts"][:samples]],
                    data["two_line"][:samples])
    start = time.time()
    chunks = (samples + CHUNK - 1) // CHUNK
    jobs = [(seed, c, min(CHUNK, samples - c * CHUNK)) for c in range(chunks)]
    images, texts, flags = [], [], []
    with mp.Pool(workers) as pool:
        for i, (imgs, txts, two) in enumerate(pool.imap(_render_chunk, jobs)):
            images.append(imgs)
            texts += txts
            flags.append(two)
            log.info("rendered %d/%d crops (%.0f s)", (i + 1) * CHUNK, samples, time.time() - start)
    all_images, all_flags = np.concatenate(images), np.concatenate(flags)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=all_images, texts=np.array(texts), two_line=all_flags)
    log.info("rendered %d crops in %.0f s -> %s", samples, time.time() - start, cache)
    return all_images, texts, all_flags


def build_model(num_classes: int):
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    class PlateCRNN(nn.Module):
        """Conv features pooled to 1 row x W/4 columns, read by CTC."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *block(1, 16), nn.MaxPool2d(2),
                *block(16, 32), nn.MaxPool2d(2),
                *block(32, 64), nn.MaxPool2d((2, 1)),
                *block(64, 96), *block(96, 96), nn.MaxPool2d((6, 1)),
                *block(96, 128), nn.Dropout2d(0.1),
                # context along the row: neighbouring characters disambiguate (a region is
                # followed by digits, a letter sits between digit runs)
                nn.Conv2d(128, 128, (1, 5), padding=(0, 2), bias=False), nn.BatchNorm2d(128),
                nn.ReLU(inplace=True),
            )
            self.head = nn.Conv2d(128, num_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.head(self.features(x))  # [B, K, 1, T]
            b, k, _, _ = logits.shape
            return logits.reshape(b, k, -1).permute(0, 2, 1)  # [B, T, K], T = W / 4

    return PlateCRNN()


def greedy(logits: np.ndarray) -> list[list[int]]:
    out = []
    for seq in logits.argmax(-1):
        ids, prev = [], 0
        for k in seq:
            if k != prev and k != 0:
                ids.append(int(k))
            prev = int(k)
        out.append(ids)
    return out


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
        targets = [labels[i] for i in idx]
        flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
        lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
        log_probs = logits.float().log_softmax(-1).permute(1, 0, 2)
        in_len = torch.full((len(idx),), log_probs.shape[0], dtype=torch.long)
        loss = ctc(log_probs, flat, in_len, lengths)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
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


class IndexPool:
    """Training indices of one input width, walked in epochs of fresh random order."""

    def __init__(self, indices: np.ndarray, width: int, rng: np.random.Generator) -> None:
        self.indices, self.width, self.rng = indices, width, rng
        self.order, self.cursor, self.epoch = rng.permutation(indices), 0, 0

    def next_batch(self, size: int) -> np.ndarray:
        if self.cursor + size > len(self.order):
            self.order, self.cursor = self.rng.permutation(self.indices), 0
            self.epoch += 1
        batch = self.order[self.cursor:self.cursor + size]
        self.cursor += size
        return batch


def evaluate(model, x_val, labels, two_line: np.ndarray) -> tuple[float, float]:
    """Greedy exact-match rate on the held-out synthetic crops: one-line, two-line."""
    import torch

    model.eval()
    rates = []
    with torch.no_grad():
        for flag, width in ((False, INPUT_W), (True, 2 * INPUT_W)):
            rows = np.flatnonzero(two_line == flag)
            hits = 0
            for i in range(0, len(rows), 256):
                part = rows[i:i + 256]
                x = (x_val[part, :, :, :width].float() / 255.0 - 0.5) / 0.5
                preds = greedy(model(x).numpy())
                hits += sum(pred == labels[j] for pred, j in zip(preds, part, strict=True))
            rates.append(hits / max(1, len(rows)))
    return rates[0], rates[1]


def export(model, out: Path) -> None:
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).softmax(-1)

    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 1, INPUT_H, INPUT_W)
    torch.onnx.export(WithSoftmax(model), dummy, str(out), input_names=["x"],
                      output_names=["probs"],
                      dynamic_axes={"x": {0: "n", 3: "w"}, "probs": {0: "n", 1: "t"}},
                      opset_version=17, dynamo=False)
    charset_path = out.with_suffix(".charset.txt")
    charset_path.write_text("\n".join(CHARSET) + "\n", encoding="utf-8")
    log.info("exported %s (%d bytes) and %s", out, out.stat().st_size, charset_path)


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
