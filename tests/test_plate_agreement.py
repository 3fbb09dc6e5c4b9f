"""The view check: a read that could be evidence is read again in jittered views of its crop,
and a character the views do not agree on makes it unsure (edge_agent.plates.agreement).

The real-crop test runs the default rule on set-a + set-b, crops the reader was not trained on
and the rule was not chosen on (scripts/calibrate_sure_rule.py chose it on out-of-fold reads of
set-c): no sure read may be wrong there.
"""

from __future__ import annotations

import dataclasses
import json
import re

import cv2
import numpy as np
import pytest
from conftest import shared_path

from edge_agent.config import PlatesConfig, load_config
from edge_agent.evaluation.plates import load_labelled_crops, read_image
from edge_agent.plates.agreement import (
    VIEW_COUNT,
    contradicted,
    dissent_counts,
    jittered_views,
    read_plates,
)
from edge_agent.plates.evidence import is_sure, unsure_reason
from edge_agent.plates.reader import KoreanPlateReader
from edge_agent.plates.text import interpret_read


@pytest.mark.parametrize(("text", "other", "positions"), [
    ("12가3456", "12가3456", set()),
    ("12가3456", "12나3456", {2}),
    ("12가3456", "112가3456", {0}),  # a digit the read may have dropped: its neighbour
    ("12가3456", "12가34567", {6}),
    ("12가3456", "12가3x456", {3, 4}),
    ("12가3456", "2가3456", {0}),  # a missed one does
    ("서울12가3456", "세종12가3456", {0, 1}),
    ("12가3456", None, set(range(7))),  # a view that read no plate contradicts everything
])
def test_contradicted_positions(text: str, other: str | None, positions: set[int]) -> None:
    assert contradicted(text, other) == positions


def test_dissent_counts_every_view_per_character() -> None:
    views = ["세종33아9334", "제주33아9334", None, "서울33아9334", "세종33아9334"]
    assert dissent_counts("세종33아9334", views) == (3, 3, 1, 1, 1, 1, 1, 1, 1)


@pytest.mark.parametrize("shape", [(60, 200, 3), (24, 94, 3), (3, 3, 3), (48, 144)])
def test_jittered_views_of_any_crop(shape: tuple[int, ...]) -> None:
    crop = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    views = jittered_views(crop)
    assert len(views) == VIEW_COUNT
    assert all(v.dtype == np.uint8 and v.size and v.ndim == crop.ndim for v in views)


def test_a_read_without_the_check_or_with_dissent_is_not_evidence() -> None:
    read = dataclasses.replace(interpret_read(tuple("12가3456"), (0.99,) * 7),
                               crop_size=(192, 48))
    rule = PlatesConfig()
    assert unsure_reason(read, rule) == "not checked in other views"
    checked = dataclasses.replace(read, dissent=(0, 0, 3, 0, 0, 0, 0), views_checked=5)
    assert unsure_reason(checked, rule) == "3 of 5 views read 가 otherwise (at most 2)"
    agreed = dataclasses.replace(read, dissent=(0, 0, 2, 0, 0, 0, 1), views_checked=5)
    assert is_sure(agreed, rule)
    assert is_sure(read, PlatesConfig(check_views=False))
    with pytest.raises(ValueError, match="one dissent count per character"):
        dataclasses.replace(read, dissent=(0, 0), views_checked=5)
    with pytest.raises(ValueError, match=r"within 0\.\.5"):
        dataclasses.replace(read, dissent=(6, 0, 0, 0, 0, 0, 0), views_checked=5)


@pytest.mark.parametrize(("text", "size", "reason"), [
    ("12가3456", (0, 0), "plate crop size not known"),
    ("12가3456", (124, 31), "plate crop 31 px tall, under the 32 px a sure read needs"),
    ("12가3456", (128, 32), None),
    # two lines share the height of a crop no wider than 3.2 heights (a two-line plate)
    ("서울12가3456", (96, 48), "plate crop 48 px tall (two lines of 24 px), under the 32 px a "
                             "sure read needs"),
    ("서울12가3456", (128, 64), None),
    ("12가3456", (200, 48), None),  # a one-line plate that tall is read at its height
])
def test_a_read_printed_too_small_is_not_evidence(text: str, size: tuple[int, int],
                                                   reason: str | None) -> None:
    read = dataclasses.replace(interpret_read(tuple(text), (0.99,) * len(text)),
                               crop_size=size, dissent=(0,) * len(text), views_checked=5)
    assert unsure_reason(read, PlatesConfig()) == reason
    assert is_sure(read, PlatesConfig(min_plate_px=0))


def test_views_are_not_read_for_a_crop_too_small_to_be_evidence() -> None:
    """Reading views costs four reads; a crop under the size floor can never be evidence."""
    config = load_config(None)
    config.models.intra_op_threads = 1
    reader = CountingReader(KoreanPlateReader.from_config(config))
    crop = read_image(shared_path("data/plates/set-a/18나8684.jpg"))
    small = cv2.resize(crop, (crop.shape[1] * 24 // crop.shape[0], 24),
                       interpolation=cv2.INTER_AREA)
    read = read_plates(reader, [small], PlatesConfig(evidence_floor=0.0))[0]
    assert read.crop_size[1] == 24 and read.views_checked == 0 and reader.crops == 1
    assert unsure_reason(read, PlatesConfig(evidence_floor=0.0)).startswith("plate crop 24 px")


@pytest.fixture(scope="module")
def held_out() -> list[tuple[str, np.ndarray]]:
    crops = load_labelled_crops([shared_path("data/plates/set-a"),
                                 shared_path("data/plates/set-b")])
    return [(c.text, read_image(c.path)) for c in crops]


def _sure_right_and_wrong(held_out: list[tuple[str, np.ndarray]], rule: PlatesConfig,
                          ) -> tuple[int, int]:
    config = load_config(None)
    config.models.intra_op_threads = 1
    reader = KoreanPlateReader.from_config(config)
    right = wrong = 0
    for label, image in held_out:
        read = read_plates(reader, [image], rule)[0]
        if is_sure(read, rule):
            right += read.text == label
            wrong += read.text != label
    return right, wrong


def test_no_sure_read_is_wrong_on_held_out_crops(held_out: list[tuple[str, np.ndarray]]) -> None:
    right, wrong = _sure_right_and_wrong(held_out, PlatesConfig())
    assert wrong == 0
    assert right >= 20  # of the 23 the reader gets right (README, "How sure is sure")


class CountingReader:
    """The real reader, counting the crops it is asked to read."""

    def __init__(self, reader: KoreanPlateReader) -> None:
        self.reader, self.crops = reader, 0

    def read_batch(self, crops: list[np.ndarray]) -> list:
        self.crops += len(crops)
        return self.reader.read_batch(crops)


@pytest.mark.parametrize("max_dissent", [0, 2, 4])
def test_deciding_views_give_the_answer_of_all_five(
        held_out: list[tuple[str, np.ndarray]], max_dissent: int) -> None:
    """Reading the rest of the views only where the first ones leave the answer open changes
    no evidence decision, and reads fewer crops."""
    config = load_config(None)
    config.models.intra_op_threads = 1
    rule = PlatesConfig(max_dissent=max_dissent)
    early, every = (CountingReader(KoreanPlateReader.from_config(config)) for _ in range(2))
    for _, image in held_out:
        quick = read_plates(early, [image], rule)[0]
        full = read_plates(every, [image], rule, every_view=True)[0]
        assert (quick.text, is_sure(quick, rule)) == (full.text, is_sure(full, rule))
        assert quick.views_checked <= full.views_checked
    if max_dissent:
        assert early.crops < every.crops
    else:  # with no dissent allowed, every view decides
        assert early.crops == every.crops


@pytest.mark.parametrize(("views", "min_px", "wrong_possible"), [
    (False, 0, True),  # what the two checks are for: the confidence floor alone lets a misread
    (True, 0, False),  # through on the same crops (33자9080, a stacked region dropped); the
    (False, 32, False),  # views catch it, and so does the size floor
])
def test_the_confidence_floor_alone_lets_misreads_through(
        held_out: list[tuple[str, np.ndarray]], views: bool, min_px: int,
        wrong_possible: bool) -> None:
    _, wrong = _sure_right_and_wrong(held_out, PlatesConfig(check_views=views,
                                                            min_plate_px=min_px))
    assert (wrong >= 1) == wrong_possible


def test_process_marks_unsure_reads_and_the_reason(models_dir) -> None:
    """`gotcha process` shows every read, the unsure ones marked with why they are no
    evidence (a technician sees the plate was found, and why it will not be reported)."""
    from typer.testing import CliRunner

    from edge_agent.cli.main import app

    photos = [shared_path("data/scenes/e2e-dev") / name
              for name in ("18어9528.jpg", "부산31바6697.jpg")]
    env = {"GOTCHA_MODEL_DIR": str(models_dir), "GOTCHA_MODELS__VEHICLE_DETECTOR":
           "yolox-nano-coco", "GOTCHA_MODELS__PLATE_DETECTOR": "",
           "GOTCHA_MODELS__SCENE_EMBEDDER": ""}
    result = CliRunner().invoke(app, ["process", "--no-lifecycle", *map(str, photos)], env=env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("  plate")]
    sure = [line for line in lines if line.endswith("  sure")]
    unsure = [line for line in lines if "UNSURE, not evidence: " in line]
    assert len(sure) + len(unsure) == len(lines)
    assert any("부산31바6697" in line for line in sure)
    assert unsure  # the second car's plate in 18어9528.jpg, too small to read surely
    reason = re.compile(r"UNSURE, not evidence: (confidence [0-9.]+ < 0\.60|plate crop \d+ px|"
                        r"\d of [35] views read \S+ otherwise|not a plate: .+)$")
    assert all(reason.search(line) for line in unsure), unsure
    as_json = CliRunner().invoke(app, ["process", "--no-lifecycle", "--json",
                                       *map(str, photos)], env=env)
    assert as_json.exit_code == 0, as_json.output
    plates = [p for photo in json.loads(as_json.stdout) for p in photo["plates"]]
    assert len(plates) == len(lines)
    for plate in plates:
        assert plate["sure"] == (plate["unsure_reason"] is None)
    assert {p["read"]["text"] for p in plates if p["sure"]} >= {"부산31바6697"}
    # a sure read was checked in at least the views that decide (three of five by default)
    assert all(p["read"]["views_checked"] >= 3 for p in plates if p["sure"])
