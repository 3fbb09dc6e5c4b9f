"""Render a clean Korean plate (no degradation) in any style.

Why boxes: a plate is painted from a fixed grid (digit cells, a letter cell, a region cell), so
each style is a list of boxes in plate-relative units, filled with stretched glyph masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.errors import BadInputError
from gotcha_train.synth.fonts import FontFace, glyph_mask, korean_fonts
from gotcha_train.synth.formats import STYLES, PlateParts, split_text

Color = tuple[int, int, int]  # BGR

# style -> (background, text) BGR, before random tinting.
PALETTE: dict[str, tuple[Color, Color]] = {
    "white": ((244, 244, 244), (25, 25, 25)),
    "yellow": ((25, 190, 242), (20, 20, 20)),
    "green": ((70, 125, 25), (245, 245, 245)),
    "pale_green": ((175, 215, 165), (25, 40, 25)),
    "blue": ((232, 178, 75), (40, 30, 20)),
    "orange": ((20, 105, 235), (245, 245, 245)),
}
STYLE_COLOR = {
    "white7": "white", "white8": "white", "white_old2": "white", "rental": "white",
    "yellow1": "yellow", "yellow2": "yellow", "yellow_new": "yellow", "delivery": "yellow",
    "green2": "green", "green2_noregion": "green", "green1": "green", "blue_ev": "blue",
    "orange": "orange",
}


@dataclass(frozen=True)
class Box:
    """A character cell in plate units (0..1 of width and height)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def _row(chars: list[tuple[str, float]], x0: float, x1: float, y0: float, y1: float,
         gaps: dict[int, float] | None = None, spacing: float = 0.08) -> list[Box]:
    """Lay characters with relative widths across [x0, x1]; ``gaps`` adds space before index."""
    gaps = gaps or {}
    units = sum(w for _, w in chars) + spacing * (len(chars) - 1) + sum(gaps.values())
    scale = (x1 - x0) / units
    boxes, x = [], x0
    for i, (char, width) in enumerate(chars):
        x += gaps.get(i, 0.0) * scale
        boxes.append(Box(char, x, y0, x + width * scale, y1))
        x += (width + spacing) * scale
    return boxes


def _shrink(box: Box, fy: float, fx: float = 1.0, anchor_y: float = 0.5) -> Box:
    h, w = box.y1 - box.y0, box.x1 - box.x0
    y0 = box.y0 + (h - h * fy) * anchor_y
    x0 = box.x0 + (w - w * fx) / 2
    return Box(box.text, x0, y0, x0 + w * fx, y0 + h * fy)


def _one_line(parts: PlateParts, left: float, rng: np.random.Generator) -> list[Box]:
    chars = [(d, 1.0) for d in parts.front] + [(parts.letter, 1.25)]
    chars += [(d, 1.0) for d in parts.number]
    gap_letter = float(rng.uniform(0.1, 0.6))
    boxes = _row(chars, left, 1.0 - float(rng.uniform(0.04, 0.08)), 0.14, 0.88,
                 gaps={len(parts.front): 0.1, len(parts.front) + 1: gap_letter})
    letter_i = len(parts.front)
    boxes[letter_i] = _shrink(boxes[letter_i], float(rng.uniform(0.6, 1.0)), anchor_y=0.7)
    return boxes


def _two_line(parts: PlateParts, style: str, rng: np.random.Generator) -> list[Box]:
    top_y0, top_y1 = 0.08, float(rng.uniform(0.36, 0.42))
    # the number line runs down close to the plate's lower edge (on green plates almost to it)
    bot_y0, bot_y1 = top_y1 + 0.06, float(rng.uniform(0.9, 0.96))
    boxes: list[Box] = []
    if parts.region and style == "orange":
        boxes += _row([(parts.region[0], 1.0), (parts.region[1], 1.0)], 0.3, 0.7, top_y0, top_y1,
                      gaps={1: 1.2})
        chars = [(d, 0.9) for d in parts.front] + [(parts.letter, 0.9)]
        chars += [(d, 1.0) for d in parts.number]
        low = _row(chars, 0.05, 0.95, bot_y0, bot_y1, gaps={len(parts.front) + 1: 0.3})
        low[len(parts.front)] = _shrink(low[len(parts.front)], 0.7, anchor_y=0.8)
        return boxes + low
    if parts.region:
        top = [(parts.region[0], 1.0), (parts.region[1], 1.0)] + [(d, 0.85) for d in parts.front]
        boxes += _row(top, 0.22, 0.78, top_y0, top_y1, gaps={2: 0.3})
        chars = [(parts.letter, 1.1)] + [(d, 1.0) for d in parts.number]
        low = _row(chars, 0.06, 0.95, bot_y0, bot_y1, gaps={1: 0.15})
        low[0] = _shrink(low[0], float(rng.uniform(0.55, 0.8)), anchor_y=0.45)
        return boxes + low
    top = [(d, 1.0) for d in parts.front] + [(parts.letter, 1.2)]
    boxes += _row(top, 0.3, 0.7, top_y0, top_y1, gaps={len(parts.front): 0.15})
    boxes += _row([(d, 1.0) for d in parts.number], 0.08, 0.92, bot_y0, bot_y1)
    return boxes


def layout(parts: PlateParts, style: str, rng: np.random.Generator) -> tuple[float, list[Box]]:
    """Plate aspect ratio (w/h) and character boxes for ``style``."""
    two_line = style in ("white_old2", "yellow2", "green2", "green2_noregion", "orange") or (
        style == "delivery" and parts.region is not None and rng.random() < 0.6)
    if two_line:
        return float(rng.uniform(1.75, 2.1)), _two_line(parts, style, rng)
    long_plate = style in ("white8", "blue_ev", "yellow_new", "rental") or rng.random() < 0.6
    aspect = float(rng.uniform(4.2, 4.9)) if long_plate else float(rng.uniform(2.0, 3.2))
    left = float(rng.uniform(0.04, 0.08))
    boxes: list[Box] = []
    if style == "blue_ev" or (style == "white8" and rng.random() < 0.5):
        left = float(rng.uniform(0.1, 0.13))  # emblem or band at the left
    if parts.region:  # region stacked in a narrow column at the left (yellow/orange one-line)
        col = 0.07 if aspect > 3.5 else 0.1
        boxes += [Box(parts.region[0], left, 0.14, left + col, 0.5),
                  Box(parts.region[1], left, 0.52, left + col, 0.88)]
        left += col + 0.02
    return aspect, boxes + _one_line(parts, left, rng)


def _paint(canvas: np.ndarray, box: Box, face: FontFace, color: Color, bold: int,
           ref_w: dict[str, float], squeeze: float = 1.0, plate_cut: bool = False) -> None:
    h, w = canvas.shape[:2]
    x0, y0 = round(box.x0 * w), round(box.y0 * h)
    bw, bh = max(1, round((box.x1 - box.x0) * w)), max(1, round((box.y1 - box.y0) * h))
    mask = glyph_mask(face, box.text, bold, plate_cut)
    mw = mask.shape[1]
    kind = "digit" if box.text.isdigit() else "hangul"
    # uniform stretch per class: a narrow "1" stays narrow, a "0" fills its cell
    gw = round(min(bw, bw * mw / ref_w[kind]) if kind == "digit" else bw)
    gw = max(1, round(gw * squeeze))
    glyph = cv2.resize(mask, (gw, bh), interpolation=cv2.INTER_AREA)
    gx = x0 + (bw - gw) // 2
    ys, xs = slice(max(0, y0), min(h, y0 + bh)), slice(max(0, gx), min(w, gx + gw))
    sub = glyph[ys.start - y0: ys.stop - y0, xs.start - gx: xs.stop - gx][..., None]
    region = canvas[ys, xs].astype(np.float32)
    canvas[ys, xs] = (region * (1 - sub) + np.array(color, np.float32) * sub).astype(np.uint8)


def _emblem(canvas: np.ndarray, style: str, rng: np.random.Generator, text_color: Color) -> None:
    """The left band of 2019+ plates or the EV emblem: a coloured strip with a small mark."""
    h, w = canvas.shape[:2]
    x1 = int(w * 0.085)
    if style == "blue_ev":
        cv2.circle(canvas, (x1 // 2 + 2, int(h * 0.35)), max(2, h // 8), (200, 120, 30), -1)
        cv2.putText(canvas, "EV", (3, int(h * 0.8)), cv2.FONT_HERSHEY_SIMPLEX, h / 90,
                    (120, 60, 20), max(1, h // 50))
    else:
        cv2.rectangle(canvas, (0, 0), (x1, h), (140, 70, 20), -1)
        cv2.circle(canvas, (x1 // 2, int(h * 0.35)), max(2, h // 9), (60, 60, 200), -1)
        cv2.putText(canvas, "KOR", (1, int(h * 0.82)), cv2.FONT_HERSHEY_SIMPLEX, h / 200,
                    (240, 240, 240), 1)


def _tint(color: Color, rng: np.random.Generator, amount: float) -> Color:
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in color)  # type: ignore[return-value]


def render_plate(text: str, style: str, rng: np.random.Generator, height: int = 110) -> np.ndarray:
    """A clean plate image (BGR uint8, ``height`` px high) showing ``text`` in ``style``.

    Includes border, bolts and (for white8/blue_ev) the left band/emblem; no degradation.
    """
    return render_plate_lines(text, style, rng, height)[0]


def render_plate_lines(text: str, style: str, rng: np.random.Generator,
                       height: int = 110) -> tuple[np.ndarray, bool]:
    """``render_plate`` plus whether the plate was painted on two lines."""
    if style not in STYLES:
        raise BadInputError(f"unknown plate style {style!r}; one of {', '.join(STYLES)}")
    if height < 8:
        raise BadInputError(f"plate height {height} px is too small; use at least 8")
    parts = split_text(text)
    aspect, boxes = layout(parts, style, rng)
    palette = STYLE_COLOR[style]
    if style == "green1" and rng.random() < 0.5:
        palette = "pale_green"
    bg, fg = PALETTE[palette]
    bg, fg = _tint(bg, rng, 8), _tint(fg, rng, 8)
    width = max(8, round(height * aspect))
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = bg
    if aspect > 2.5 and boxes and boxes[0].x0 > 0.095 and not parts.region:
        _emblem(canvas, style, rng, fg)
    faces = korean_fonts()
    face = faces[int(rng.integers(len(faces)))]
    bold = int(rng.integers(-2, 4))  # stroke weight: thin (eroded) to heavy
    squeeze = float(rng.uniform(0.72, 1.0)) if rng.random() < 0.5 else 1.0  # condensed faces
    ref_w = {"digit": float(glyph_mask(face, "0", bold).shape[1]),
             "hangul": float(glyph_mask(face, "가", bold).shape[1])}
    plate_cut = rng.random() < 0.5  # the plate typeface's own 3, 6 and 9, not the font's
    for box in boxes:
        _paint(canvas, box, face, fg, bold, ref_w, squeeze, plate_cut)
    two_line = boxes[0].y1 < 0.5
    if two_line and parts.region and rng.random() < 0.5:
        _seal(canvas, boxes[0], fg, rng)
    if rng.random() < 0.7:  # painted/embossed border
        t = max(1, height // 40)
        m = max(1, height // 30)
        cv2.rectangle(canvas, (m, m), (width - 1 - m, height - 1 - m), fg, t, cv2.LINE_AA)
    if rng.random() < 0.8:
        _bolts(canvas, aspect < 2.5, rng)
    return canvas, two_line


def _seal(canvas: np.ndarray, first: Box, color: Color, rng: np.random.Generator) -> None:
    """The small round seal left of the region name on old two-line plates."""
    h, w = canvas.shape[:2]
    r = max(1, round((first.y1 - first.y0) * h * float(rng.uniform(0.25, 0.4))))
    cx = round(first.x0 * w) - r - max(1, round(0.02 * w))
    cy = round((first.y0 + first.y1) / 2 * h)
    cv2.circle(canvas, (cx, cy), r, color, max(1, r // 4), cv2.LINE_AA)
    cv2.circle(canvas, (cx, cy), max(1, r // 3), color, -1, cv2.LINE_AA)


def _bolts(canvas: np.ndarray, two_line: bool, rng: np.random.Generator) -> None:
    h, w = canvas.shape[:2]
    r = max(1, int(h * (float(rng.uniform(0.04, 0.07)) if two_line else 0.06)))
    if two_line:  # beside the top line, where a reader can take one for a digit
        y = int(h * float(rng.uniform(0.1, 0.26)))
        spots = [(int(w * float(rng.uniform(0.12, 0.2))), y),
                 (int(w * float(rng.uniform(0.8, 0.88))), y)]
    else:
        spots = [(int(w * 0.035), int(h * 0.5)), (int(w * 0.965), int(h * 0.5))]
    metal = int(rng.integers(120, 230))
    for x, y in spots:
        cv2.circle(canvas, (x, y), r, (metal, metal, metal), -1, cv2.LINE_AA)
        cv2.circle(canvas, (x, y), r, (60, 60, 60), max(1, r // 3), cv2.LINE_AA)
