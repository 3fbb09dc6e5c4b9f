"""The synthetic plate generator: every style renders, texts follow the plate grammar, the
degradations keep images valid, and a seed gives the same plate everywhere."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from edge_agent.errors import BadInputError
from gotcha_contracts.plate_grammar import parse_plate
from gotcha_train.synth import (
    REGIONS,
    STYLES,
    add_frame,
    blur,
    color_jitter,
    dirt,
    glare,
    jpeg,
    low_resolution,
    noise,
    place_and_crop,
    random_crop,
    random_plate_text,
    random_sample,
    render_plate,
    shadow,
    split_text,
)
from gotcha_train.synth.fonts import glyph_mask, korean_fonts
from gotcha_train.synth.render import layout

TWO_LINE = {"white_old2", "yellow2", "green2", "green2_noregion", "orange"}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_renders_a_grammatical_plate(style: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        text = random_plate_text(rng, style)
        parsed = parse_plate(text)
        assert parsed is not None, f"{style} produced {text!r}, which the grammar rejects"
        image = render_plate(text, style, rng, height=64)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] == 64
        aspect = image.shape[1] / image.shape[0]
        if style in TWO_LINE:
            assert aspect < 2.5, f"{style} should be a two-line plate, aspect {aspect:.2f}"
        assert image.std() > 20, "plate has no visible characters"


@pytest.mark.parametrize(("style", "check"), [
    ("white7", lambda p: p.region is None and len(p.front) == 2),
    ("white8", lambda p: p.region is None and len(p.front) == 3),
    ("yellow1", lambda p: p.region in REGIONS and p.letter in "바사아자"),
    ("yellow2", lambda p: p.region in REGIONS and p.letter in "바사아자"),
    ("green2", lambda p: p.region in REGIONS),
    ("rental", lambda p: p.letter in "하허호"),
    ("delivery", lambda p: p.letter == "배"),
    ("orange", lambda p: p.region in REGIONS),
])
def test_style_texts_have_their_format(style: str, check) -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        assert check(split_text(random_plate_text(rng, style)))


def test_layout_puts_every_character_in_a_box_inside_the_plate() -> None:
    rng = np.random.default_rng(1)
    for style in STYLES:
        parts = split_text(random_plate_text(rng, style))
        _, boxes = layout(parts, style, rng)
        drawn = "".join(b.text for b in boxes)
        assert drawn == parts.text
        assert all(0 <= b.x0 < b.x1 <= 1.0 and 0 <= b.y0 < b.y1 <= 1.0 for b in boxes)


def test_same_seed_same_plate() -> None:
    a = render_plate("서울12가3456", "green2", np.random.default_rng(5))
    b = render_plate("서울12가3456", "green2", np.random.default_rng(5))
    assert np.array_equal(a, b)
    c1, t1 = random_crop(np.random.default_rng(9))
    c2, t2 = random_crop(np.random.default_rng(9))
    assert t1 == t2 and np.array_equal(c1, c2)


@pytest.mark.parametrize("fn", [add_frame, color_jitter, shadow, glare, dirt, blur, noise, jpeg])
def test_degradations_keep_a_valid_image(fn) -> None:
    rng = np.random.default_rng(2)
    plate = render_plate("123가4567", "white8", rng, height=80)
    out = fn(plate, rng)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    if fn is not add_frame:
        assert out.shape == plate.shape
    assert not np.array_equal(out, plate)


def test_low_resolution_reaches_20_px_and_crops_vary() -> None:
    rng = np.random.default_rng(4)
    plate = render_plate("12가3456", "white7", rng, height=110)
    heights = {low_resolution(plate, rng, min_height=20, max_height=24).shape[0]
               for _ in range(30)}
    assert min(heights) >= 20 and min(heights) <= 21
    tight = place_and_crop(plate, rng, loose=0.0, warp=0.0)
    loose = place_and_crop(plate, rng, loose=1.0, warp=0.1)
    assert tight.shape[0] < plate.shape[0] * 1.2
    assert loose.shape[0] > plate.shape[0] * 1.3


@pytest.mark.parametrize(("text", "style"), [
    ("12가3456", "purple"), ("ABC", "white7"), ("서울12가", "green2"),
])
def test_bad_style_or_text_is_a_named_error(text: str, style: str) -> None:
    with pytest.raises(BadInputError):
        render_plate(text, style, np.random.default_rng(0))


def test_samples_say_which_plates_have_two_lines() -> None:
    rng = np.random.default_rng(8)
    for style in STYLES:
        image, text, two_line = random_sample(rng, style)
        assert image.ndim == 3 and split_text(text)
        if style in TWO_LINE:
            assert two_line, style
        elif style != "delivery":
            assert not two_line, style


def _tail_centres(mask: np.ndarray) -> list[float]:
    """Mean ink column of each row in the top fifth of a glyph mask, top row first."""
    rows = mask[: max(2, mask.shape[0] // 5)] > 0.5
    return [float(np.flatnonzero(row).mean()) for row in rows if row.any()]


@pytest.mark.parametrize("face", korean_fonts(), ids=lambda f: f"{f.family}-{f.style}")
def test_plate_cut_six_and_nine_have_the_plate_typeface_straight_tail(face) -> None:
    # fonts curl the 6's tail back over its bowl; the plate typeface runs it straight up to
    # the top right (its 9 is the same glyph upside down). The bowl stays the font's own.
    font_six = glyph_mask(face, "6")
    six = glyph_mask(face, "6", plate_cut=True)
    nine = glyph_mask(face, "9", plate_cut=True)
    h = six.shape[0]
    assert np.array_equal(six[int(h * 0.8):], font_six[int(h * 0.8):])
    for tail in (six, nine[::-1, ::-1]):
        centres = _tail_centres(tail)
        assert len(centres) >= 2
        # one stroke leaning right: each row's ink at or right of the row below (anti-aliasing
        # moves a centre by up to a pixel), the top row well right of the fifth's bottom row
        assert all(a >= b - 1 for a, b in pairwise(centres)), centres
        assert centres[0] > 0.55 * tail.shape[1]
        assert centres[0] - centres[-1] > 0.08 * tail.shape[1], centres
    assert not np.array_equal(six, font_six)
