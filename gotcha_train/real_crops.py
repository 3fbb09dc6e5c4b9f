"""Real labelled plate crops as fine-tuning data: loading, folds by plate, and augmentation.

Why its own module: the fine-tuning script and its cross-validation must split and augment the
same way. Folds are drawn by plate text, not by file, so the five photos of one plate never sit
on both sides of a fold (42무1608 in set-c is five crops of one plate). Only folders a caller
names are read; the training rules of ../shared/data (set-c may be trained on, set-a and set-b
never) are enforced by the script that calls this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.plates.evidence import TWO_LINE_MAX_ASPECT
from edge_agent.plates.looks import two_line_view
from edge_agent.plates.recogniser import resize_crop
from gotcha_train.dataset import INPUT_H, INPUT_W
from gotcha_train.synth import degrade

#: how far each edge of a real crop moves in augmentation: a share of its width / height
EDGE_JITTER = 0.08


@dataclass(frozen=True)
class RealCrop:
    """One labelled real crop (BGR) and how it is read."""

    image: np.ndarray
    text: str

    @property
    def two_line(self) -> bool:
        """Read split in two lines: no wider than a two-line plate (true of every two-line crop
        in set-c and of no one-line one)."""
        height, width = self.image.shape[:2]
        return width / height <= TWO_LINE_MAX_ASPECT


def plate_folds(texts: Sequence[str], folds: int, seed: int) -> dict[str, int]:
    """Plate text -> fold number, every plate in exactly one fold, drawn with ``seed``."""
    plates = sorted(set(texts))
    order = np.random.default_rng(seed).permutation(len(plates))
    return {plates[k]: rank % folds for rank, k in enumerate(order)}


def jitter_box(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The crop cut again with each edge moved in or out, as another locator box would be;
    edges moved past the image repeat its border."""
    height, width = image.shape[:2]
    dx, dy = EDGE_JITTER * width, EDGE_JITTER * height
    left, right = rng.uniform(-dx, dx, 2).round().astype(int)
    top, bottom = rng.uniform(-dy, dy, 2).round().astype(int)
    pad = int(max(0, -left, -right, -top, -bottom))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    y0, y1 = pad + top, pad + height - bottom
    x0, x1 = pad + left, pad + width - right
    if y1 - y0 < 4 or x1 - x0 < 4:
        return image
    return padded[y0:y1, x0:x1]


def rotate_small(image: np.ndarray, rng: np.random.Generator, degrees: float = 4.0,
                 ) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-degrees, degrees), 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def augment(image: np.ndarray, rng: np.random.Generator, invert: float = 0.0) -> np.ndarray:
    """A new look at a real crop: another box, a little rotation, exposure, blur, resolution,
    noise and compression, each with the synthetic renderer's own degradations; with
    probability ``invert``, light and dark swapped first.

    Why a swap may help: Korean two-line plates share one layout in both polarities (the old
    green ones print light text on a dark field; yellow commercial, orange construction and
    old white ones dark on light), the reader sees gray levels only, and set-c's two-line crops
    are all green. Measured (README, "The Korean plate reader"): no better out of fold, so the
    shipped model is trained without it (0 draws no random number: the same bytes as before).
    """
    out = jitter_box(image, rng)
    if invert > 0 and rng.random() < invert:
        out = cv2.bitwise_not(out)
    if rng.random() < 0.5:
        out = rotate_small(out, rng)
    out = degrade.color_jitter(out, rng)
    if rng.random() < 0.3:
        out = degrade.blur(out, rng)
    if rng.random() < 0.4 and out.shape[0] > 20:
        out = degrade.low_resolution(out, rng, min_height=18, max_height=out.shape[0])
    if rng.random() < 0.4:
        out = degrade.noise(out, rng)
    if rng.random() < 0.5:
        out = degrade.jpeg(out, rng)
    return out


def model_input(crop: RealCrop, image: np.ndarray) -> np.ndarray:
    """A crop as the network sees it: uint8 [H, 2W], one-line plates in the left half, two-line
    plates split (the layout of gotcha_train.dataset)."""
    row = np.zeros((INPUT_H, 2 * INPUT_W), np.uint8)
    if crop.two_line:
        row[:] = two_line_view(image, INPUT_W, INPUT_H, "gray")[..., 0]
    else:
        row[:, :INPUT_W] = resize_crop(image, INPUT_W, INPUT_H, "gray")[..., 0]
    return row
