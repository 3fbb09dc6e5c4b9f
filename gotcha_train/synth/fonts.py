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
def glyph_mask(face: FontFace, char: str, bold: int = 0, plate_cut: bool = False) -> np.ndarray:
    """Float32 ink mask (0..1) of one character cropped to its ink; ``bold`` adds stroke px.

    A negative ``bold`` thins the strokes (erosion), as the light weights of worn or
    differently cut plate typefaces look. ``plate_cut`` redraws the digits whose plate shapes
    no font here has: the flat-topped 3 and the straight-tailed 6 and 9.
    """
    mask = _font_mask(face, char, bold)
    if not plate_cut:
        return mask
    if char == "3":
        return flat_top_three(mask)
    if char == "6":
        return straight_tail_six(mask)
    if char == "9":  # the plate typeface's 9 is its 6 turned upside down
        return np.ascontiguousarray(straight_tail_six(mask[::-1, ::-1])[::-1, ::-1])
    return mask


def flat_top_three(mask: np.ndarray) -> np.ndarray:
    """The plate typeface's 3: a flat top bar and a diagonal down into the lower bowl.

    Fonts draw a round-topped 3; a reader that only saw those takes the plates' 3 for a 5 (its
    flat top is the 5's top bar). The lower bowl is kept; the top half is redrawn with the
    bowl's stroke width.
    """
    h, w = mask.shape
    stroke = _bowl_stroke(mask)
    waist = int(h * 0.47)
    out = mask.copy()
    out[: waist - stroke // 2] = 0.0
    cv2.rectangle(out, (int(w * 0.08), 0), (w - 1, stroke - 1), 1.0, -1)
    cv2.line(out, (w - 1 - stroke // 2, stroke // 2), (int(w * 0.42), waist), 1.0, stroke,
             cv2.LINE_AA)
    return out


def straight_tail_six(mask: np.ndarray) -> np.ndarray:
    """The plate typeface's 6: a round lower bowl and a straight stroke up to the top right.

    Fonts curl the 6's tail back over the bowl; a reader that only saw those takes the
    plates' large 6 for a 0, or for "06". The bowl is kept; above it the tail is redrawn as a
    straight diagonal with the bowl's stroke width. (Turned upside down, the same cut is the
    plate's 9.)
    """
    h, w = mask.shape
    stroke = _bowl_stroke(mask)
    middle = np.flatnonzero(mask[int(h * 0.3):, w // 2] > 0.5)  # the bowl's top, at mid-width
    bowl_top = int(h * 0.3) + (int(middle[0]) if len(middle) else int(h * 0.15))
    out = mask.copy()
    out[:bowl_top] = 0.0
    start_y = bowl_top + (h - bowl_top) // 3
    cv2.line(out, (stroke // 2, start_y), (int(w * 0.74), stroke // 2), 1.0, stroke,
             cv2.LINE_AA)
    return out


def _bowl_stroke(mask: np.ndarray) -> int:
    """Stroke width of a glyph's lower bowl (3, 6), measured down its middle column: the width
    the redrawn strokes get, so they match the font's weight."""
    h, w = mask.shape
    return max(1, int((mask[int(h * 0.7):, w // 2] > 0.5).sum()))


def _font_mask(face: FontFace, char: str, bold: int) -> np.ndarray:
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
