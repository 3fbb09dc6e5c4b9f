"""Korean fonts found through fontconfig, and glyph masks cut from them.

Why glyph masks: a plate's characters are stretched to fixed boxes (the plate typeface is tall and
narrow), so each glyph is rendered once, cropped to its ink and then scaled into its box. Caching
the masks keeps rendering at about a millisecond a plate.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)

# Sans families that look like the plate typeface; serif, brush and handwriting faces do not.
PLATE_LIKE_FAMILIES = (
    "NanumGothic", "NanumBarunGothic", "NanumSquare", "NanumSquareRound", "Noto Sans CJK KR",
    "UnDotum", "UnGraphic", "NanumGothicCoding",
)
GLYPH_SIZE = 96


@dataclass(frozen=True)
class FontFace:
    """One face: file plus the index inside a .ttc collection."""

    path: Path
    index: int
    family: str
    style: str


def _fc_list() -> list[FontFace]:
    try:
        out = subprocess.run(
            ["fc-list", "--format", "%{file}|%{index}|%{family[0]}|%{style[0]}\n", ":lang=ko"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot list fonts with fc-list ({exc}); install fontconfig and "
                          f"Korean fonts (scripts/setup.sh)") from exc
    faces = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 4 and parts[1].isdigit():
            faces.append(FontFace(Path(parts[0]), int(parts[1]), parts[2], parts[3]))
    return faces


@functools.cache
def korean_fonts() -> tuple[FontFace, ...]:
    """Plate-like Korean faces installed here, sorted so a seed picks the same face everywhere."""
    faces = [f for f in _fc_list() if f.family in PLATE_LIKE_FAMILIES]
    if not faces:
        raise ConfigError("no Korean sans font found by fc-list; install fonts-nanum, "
                          "fonts-noto-cjk or fonts-unfonts-core (scripts/setup.sh)")
    return tuple(sorted(set(faces), key=lambda f: (str(f.path), f.index)))


@functools.cache
def _pil_font(face: FontFace) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(face.path), GLYPH_SIZE, index=face.index)


@functools.lru_cache(maxsize=8192)
def glyph_mask(face: FontFace, char: str, bold: int = 0) -> np.ndarray:
    """Float32 ink mask (0..1) of one character cropped to its ink; ``bold`` adds stroke px.

    A negative ``bold`` thins the strokes (erosion), as the light weights of worn or
    differently cut plate typefaces look.
    """
    font = _pil_font(face)
    size = GLYPH_SIZE * 2
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).text((GLYPH_SIZE // 2, GLYPH_SIZE // 4), char, font=font, fill=255,
                               stroke_width=max(0, bold), stroke_fill=255)
    mask = np.asarray(image, dtype=np.float32) / 255.0
    if bold < 0:
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=-bold)
    ys, xs = np.nonzero(mask > 0.1)
    if len(xs) == 0:
        return np.zeros((GLYPH_SIZE, GLYPH_SIZE // 2), np.float32)
    return np.ascontiguousarray(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
