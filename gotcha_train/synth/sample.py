"""One random training sample: a degraded, cropped plate and its text.

Why here and not in the training script: the demo and tests draw the same kind of crops, and a
fixed seed must give the same sample everywhere.
"""

from __future__ import annotations

import numpy as np

from gotcha_train.synth import degrade
from gotcha_train.synth.formats import STYLES, USE_LETTERS, random_plate_text, split_text
from gotcha_train.synth.render import render_plate_lines

# How often each style is drawn; the common real ones more often, every style present.
STYLE_WEIGHTS: dict[str, float] = {
    "white7": 0.22, "white8": 0.14, "white_old2": 0.04, "yellow1": 0.1, "yellow2": 0.08,
    "yellow_new": 0.05, "green2": 0.08, "green2_noregion": 0.05, "green1": 0.04,
    "blue_ev": 0.07, "orange": 0.05, "rental": 0.04, "delivery": 0.04,
}
assert set(STYLE_WEIGHTS) == set(STYLES)
LETTER_SWAP = 0.5  # share of samples whose letter is drawn uniformly from all use-letters


def random_style(rng: np.random.Generator) -> str:
    names = list(STYLE_WEIGHTS)
    p = np.array([STYLE_WEIGHTS[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def random_crop(rng: np.random.Generator, style: str | None = None) -> tuple[np.ndarray, str]:
    """A degraded BGR crop of a random plate and its text (what a plate locator hands over)."""
    image, text, _ = random_sample(rng, style)
    return image, text


def random_sample(rng: np.random.Generator, style: str | None = None,
                  easy: bool = False) -> tuple[np.ndarray, str, bool]:
    """``random_crop`` plus whether the plate has two lines (training reads those split).

    ``easy`` draws a cleaner crop (near-tight, sharp, no shadow/glare/dirt): a recogniser
    trained from scratch needs some of those to get off the CTC plateau.
    """
    style = style or random_style(rng)
    text = random_plate_text(rng, style)
    if rng.random() < LETTER_SWAP:  # every use-letter equally often: similar shapes get seen
        parts = split_text(text)
        letter = USE_LETTERS[int(rng.integers(len(USE_LETTERS)))]
        text = f"{parts.region or ''}{parts.front}{letter}{parts.number}"
    img, two_line = render_plate_lines(text, style, rng, height=int(rng.integers(48, 120)))
    if easy:
        loose = float(rng.uniform(0.0, 0.3))
        img = degrade.place_and_crop(img, rng, loose=loose, warp=float(rng.uniform(0.0, 0.05)))
        if rng.random() < 0.5:
            img = degrade.low_resolution(img, rng, min_height=28, max_height=80)
        return img, text, two_line
    if rng.random() < 0.5:
        img = degrade.add_frame(img, rng)
    # detector boxes range from tight to a lot of bumper around a small plate
    loose = 0.0 if rng.random() < 0.25 else float(rng.uniform(0.05, 1.3))
    if rng.random() < 0.15:
        loose = float(rng.uniform(1.0, 1.7))
    if two_line:  # read split in halves: a plate detector's tight box, or the halves miss lines
        loose = min(loose, 0.4)
    img = degrade.place_and_crop(img, rng, loose=loose, warp=float(rng.uniform(0.0, 0.12)))
    img = degrade.color_jitter(img, rng)
    for fn, p in ((degrade.shadow, 0.25), (degrade.glare, 0.15), (degrade.dirt, 0.2),
                  (degrade.blur, 0.5)):
        if rng.random() < p:
            img = fn(img, rng)
    if rng.random() < 0.6:
        img = degrade.low_resolution(img, rng, min_height=18, max_height=110)
    if rng.random() < 0.5:
        img = degrade.noise(img, rng)
    if rng.random() < 0.6:
        img = degrade.jpeg(img, rng)
    return img, text, two_line
