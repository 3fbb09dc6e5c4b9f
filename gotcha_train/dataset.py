"""The synthetic training set of the plate reader: its charset, tokens, rendering and batching.

Why a module of its own: the training script, its tests and any later fine-tuning read the same
crops the same way, and a device never imports any of it (only the `train` extra installs it).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from edge_agent.plates.looks import two_line_view
from edge_agent.plates.recogniser import resize_crop
from gotcha_train.synth import REGIONS, USE_LETTERS, random_sample

log = logging.getLogger(__name__)

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
