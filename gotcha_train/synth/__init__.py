"""Synthetic Korean licence plates: formats, clean rendering and degradations.

Used to train the project's plate recogniser and by ``gotcha demo``; pure numpy/PIL/OpenCV.
"""

from gotcha_train.synth.degrade import (
    add_frame,
    blur,
    color_jitter,
    dirt,
    glare,
    jpeg,
    low_resolution,
    noise,
    place_and_crop,
    shadow,
)
from gotcha_train.synth.formats import REGIONS, STYLES, USE_LETTERS, random_plate_text, split_text
from gotcha_train.synth.render import render_plate, render_plate_lines
from gotcha_train.synth.sample import random_crop, random_sample, random_style

__all__ = [
    "REGIONS", "STYLES", "USE_LETTERS", "add_frame", "blur", "color_jitter", "dirt", "glare",
    "jpeg", "low_resolution", "noise", "place_and_crop", "random_crop", "random_plate_text",
    "random_sample", "random_style", "render_plate", "render_plate_lines", "shadow",
    "split_text",
]
