"""The CTC recogniser and the Korean plate reader on top of it: pure decoding, PaddleOCR and our
CRNN through one recogniser, broken files, the looks and colour checks, and our model on the
real crops of ../shared/data/plates against the public peer."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import need, need_rapidocr, shared_path

from edge_agent.config import load_config
from edge_agent.errors import BadInputError, ModelError
from edge_agent.evaluation.plates import (
    EvalRead,
    TinyLprPeer,
    evaluate_readers,
    load_labelled_crops,
    read_image,
)
from edge_agent.inference.catalog import BUNDLED_DIR, load_catalog
from edge_agent.inference.preprocess import normalise
from edge_agent.plates.colour import drop_ev_region, ev_blue, mostly_orange
from edge_agent.plates.looks import Look, two_line_view
from edge_agent.plates.options import ReadingOptions
from edge_agent.plates.reader import KoreanPlateReader
from edge_agent.plates.recogniser import (
    CtcRecogniser,
    ctc_greedy_decode,
    resize_crop,
)
from edge_agent.results import TokenRead
from gotcha_train.synth import REGIONS, STYLES, random_sample

CATALOG = load_catalog(BUNDLED_DIR / "models.toml")
OURS = CATALOG["gotcha-kr-plate-crnn"]


@pytest.fixture(scope="module")
def config():
    cfg = load_config(None)
    cfg.models.intra_op_threads = 1
    return cfg


@pytest.fixture(scope="module")
def reader(config) -> KoreanPlateReader:
    return KoreanPlateReader.from_config(config)


def _one_hot(seq: list[int], classes: int) -> np.ndarray:
    probs = np.full((len(seq), classes), 0.01, np.float32)
    for t, k in enumerate(seq):
        probs[t, k] = 0.9
    return probs


@pytest.mark.parametrize(("seq", "charset", "blank", "text"), [
    ([0, 1, 1, 0, 1, 2, 2, 0], ["", "a", "b", "c"], 0, "aab"),  # blank splits a repeat
    ([1, 1, 1], ["", "a", "b", "c"], 0, "a"),                   # repeats collapse
    ([0, 0, 0], ["", "a", "b", "c"], 0, ""),                    # nothing but blanks
    ([3, 0, 3, 1], ["a", "b", "서울", ""], 3, "ab"),            # blank last
    ([2, 3, 1], ["a", "b", "서울", ""], 3, "서울b"),            # a region is one token
])
def test_greedy_decode(seq: list[int], charset: list[str], blank: int, text: str) -> None:
    read = ctc_greedy_decode(_one_hot(seq, 4), charset, blank)
    assert read.text == text
    assert len(read.confidences) == len(read.tokens) == len(text) - text.count("서울")
    assert all(abs(c - 0.9) < 1e-6 for c in read.confidences)


def test_decode_rejects_a_class_outside_the_charset() -> None:
    with pytest.raises(ModelError):
        ctc_greedy_decode(_one_hot([5], 6), ["", "a"], 0)


def test_preprocessing_shapes_and_scaling() -> None:
    crop = np.full((30, 90, 3), 255, np.uint8)
    gray = resize_crop(crop, 144, 48, "gray")
    assert gray.shape == (48, 144, 1)
    x = normalise(gray, OURS)  # gray, / 255, mean 0.5, std 0.5
    assert x.shape == (1, 48, 144) and np.allclose(x, 1.0)
    paddle = replace(OURS, color="rgb", scale=127.5, mean=(1.0,) * 3, std=(1.0,) * 3)
    rgb = normalise(resize_crop(crop, 20, 10, "rgb"), paddle)
    assert rgb.shape == (3, 10, 20) and np.allclose(rgb, 1.0)


def test_two_line_view_puts_each_line_at_full_model_size_side_by_side() -> None:
    crop = np.zeros((60, 110, 3), np.uint8)
    crop[:20] = 200  # top line area bright, bottom dark
    crop[45:] = 90
    view = two_line_view(crop, 144, 48, "gray")
    assert view.shape == (48, 288, 1)
    assert view[:, :144].mean() > view[:, 144:].mean()
    assert view[-4:, 144:].mean() > 60  # bottom rows now fill the right half's bottom
    assert view[:4, :144].mean() > 150  # top rows fill the left half's top


def test_our_model_is_small_and_matches_its_catalog_entry() -> None:
    path = OURS.resolve(BUNDLED_DIR)
    assert path.stat().st_size < 2_000_000
    assert OURS.sha256 and OURS.layout == "ctc" and OURS.kind == "plate_reader"
    assert (path.parent / OURS.charset).is_file()


def test_empty_crop_is_a_named_error(reader: KoreanPlateReader) -> None:
    with pytest.raises(BadInputError):
        reader.read(np.zeros((0, 10, 3), np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64])
def test_a_crop_that_is_not_8_bit_is_a_named_error(reader: KoreanPlateReader, dtype) -> None:
    """A float or 16-bit crop would be scaled wrong, and its tilt look crashed inside OpenCV."""
    crop = read_image(shared_path("data/plates/set-a/83라2392-2.jpg")).astype(dtype)
    with pytest.raises(BadInputError, match="uint8"):
        reader.read(crop)
    with pytest.raises(BadInputError, match="uint8"):
        reader.read_batch([read_image(shared_path("data/plates/set-a/01모3121.jpg")), crop])


# Orange construction plates are the hardest style: their lower line alone reads as a whole
# plate, and the widely spaced region name above it must come from the two-line look.
_MIN_HITS = {"orange": 10}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_reads_synthetic_plates_of_every_style(reader: KoreanPlateReader, style: str) -> None:
    """Held-out seed (training used seed 0), cleaner crops: one-line and two-line plates,
    regions included. Measured with the committed model: 22 to 24 of 24 for every style but
    orange, 11 for orange (110 of 192 over eight more seeds: mostly the first syllable of the
    widely spaced region name, 충남 read as 경남 or 전남)."""
    rng = np.random.default_rng(12345)
    samples = [random_sample(rng, style, easy=True) for _ in range(24)]
    reads = [reader.read(crop).text for crop, _, _ in samples]
    hits = sum(text == want for text, (_, want, _) in zip(reads, samples, strict=True))
    assert hits >= _MIN_HITS.get(style, 20), f"{style}: {hits}/24 read exactly: {reads}"


def _tokens(text: str) -> tuple[str, ...]:
    """A read's tokens: a region name is one, every other character one."""
    region = next((r for r in REGIONS if text.startswith(r)), "")
    return (region, *text[len(region):]) if region else tuple(text)


def _look(text: str, conf: float) -> Look:
    tokens = _tokens(text)
    return Look(np.zeros((36, 3), np.float32), TokenRead(tokens, (conf,) * len(tokens)))


def test_a_look_that_adds_the_missed_region_line_wins(reader: KoreanPlateReader) -> None:
    """The lower line of a two-line plate alone reads as a whole plate, and surely; the
    two-line look that also reads the region line is kept, if it is a plate itself."""
    one_line, two_line = _look("04노7823", 0.99), _look("경기04노7823", 0.95)
    assert reader._settle([one_line, two_line]).read.text == "경기04노7823"
    assert reader._settle([one_line, _look("경기04노7823", 0.5)]).read.text == "경기04노7823"
    assert reader._settle([one_line, _look("경기104노7823", 0.95)]).read.text == "04노7823"
    assert reader._settle([one_line, _look("9304노7823", 0.99)]).read.text == "04노7823"


def test_a_read_is_sure_only_when_every_character_is() -> None:
    """83구4440 was read 83무4440 with the letter at 0.84 and the rest near 1.0 (mean 0.96):
    one unsure character in a sure read is what a misread looks like, so it gets more looks."""
    letter_unsure = Look(np.zeros((36, 3), np.float32),
                         TokenRead(tuple("83무4440"), (0.91, 1.0, 0.84, 1.0, 1.0, 1.0, 1.0)))
    assert letter_unsure.score[1] > 0.9 and not letter_unsure.sure(0.9)
    assert _look("83구4440", 0.95).sure(0.9)
    assert not _look("83구444", 0.99).sure(0.9)  # no plate
    assert not _look("", 1.0).sure(0.9)


def test_a_real_letter_misread_with_one_unsure_character_is_read_again_right(
        reader: KoreanPlateReader) -> None:
    """The whole crop reads 83무4440 (letter 0.84); the closer look reads 83구4440 surely."""
    crop = read_image(shared_path("data/plates/set-a/83구4440.jpg"))
    assert reader.read(crop).text == "83구4440"


_PLATE_COLOURS = {"orange": mostly_orange, "sky blue": ev_blue}


@pytest.mark.parametrize(("colour", "style", "expected"), [
    ("orange", "orange", True), ("orange", "yellow1", False), ("orange", "yellow2", False),
    ("orange", "green2", False), ("orange", "white7", False), ("orange", "blue_ev", False),
    ("orange", "delivery", False),
    ("sky blue", "blue_ev", True), ("sky blue", "white8", False), ("sky blue", "green2", False),
    ("sky blue", "green1", False), ("sky blue", "yellow1", False), ("sky blue", "orange", False),
    ("sky blue", "rental", False),
])
def test_only_construction_plates_are_orange_and_only_ev_plates_sky_blue(
        colour: str, style: str, expected: bool) -> None:
    # degraded crops, exposure and white balance jittered: a yellow plate shot warm can pass
    # for orange (measured 6-12 % of them; it costs one more look, not a wrong read)
    rng = np.random.default_rng(5)
    crops = [random_sample(rng, style)[0] for _ in range(100)]
    share = np.mean([_PLATE_COLOURS[colour](crop) for crop in crops])
    assert share >= 0.8 if expected else share <= 0.15, (colour, style, share)


def test_an_ev_plate_read_loses_the_region_its_emblem_gave() -> None:
    """EV plates carry no region name; the stacked emblem at their left reads like one."""
    look = Look(np.zeros((36, 3), np.float32),
                TokenRead(("인천", *"13고2060"), (0.6, *[0.99] * 7)))
    assert look.without_region().read == TokenRead(tuple("13고2060"), tuple([0.99] * 7))
    plain = _look("13고2060", 0.99)
    assert plain.without_region() is plain
    # the colour check drops it only on a sky-blue crop
    sky_blue, white = np.zeros((48, 144, 3), np.uint8), np.full((48, 144, 3), 235, np.uint8)
    sky_blue[:] = (235, 180, 90)  # BGR of a light sky blue (hue about 100 of 180)
    assert drop_ev_region(sky_blue, look).read.text == "13고2060"
    assert drop_ev_region(white, look) is look


def test_the_real_ev_plate_reads_without_the_region_its_emblem_looks_like(config) -> None:
    """set-b/13고2060.jpg: a sky-blue EV plate whose emblem a reader can take for a stacked
    region name; with the region check the read is the plate's own text."""
    crop = read_image(shared_path("data/plates/set-b") / "13고2060.jpg")
    path = OURS.resolve(config.models.dir)
    checked = KoreanPlateReader.from_spec(OURS, path, config)
    unchecked = KoreanPlateReader.from_spec(
        replace(OURS, extra={**OURS.extra, "region_check": False}), path, config)
    assert checked.read(crop).text == "13고2060"
    # all the check may change is a region in front (an earlier model read 인천 there)
    text = unchecked.read(crop).text
    assert text.endswith("13고2060") and text[:-len("13고2060")] in ("", *REGIONS), text


@pytest.mark.parametrize(("name", "plate"), [
    ("set-b/24조2426.jpg", "24조2426"), ("set-b/86더8806.jpg", "86더8806"),
    ("set-a/42소9166-3.jpg", "42소9166"), ("set-a/68오8623.jpg", "68오8623"),
])
def test_real_plates_with_the_plate_typeface_six_read_right(reader: KoreanPlateReader, name: str,
                                                            plate: str) -> None:
    """The plate typeface's 6 has a straight tail; the model trained only on fonts' curled 6s
    read these as 2420, 8810, 4916 and 468오8623 (large 6 read as 0, "06" or dropped)."""
    assert reader.read(read_image(shared_path("data/plates") / name)).text == plate


def test_ppocrv4_recogniser_loads_through_the_recogniser(config) -> None:
    need_rapidocr()
    spec = CATALOG["ppocrv4-rec"]
    paddle = CtcRecogniser.from_spec(spec, spec.resolve(config.models.dir), config)
    assert len(paddle.charset) == 6625  # blank + 6623 characters + space
    image = np.full((64, 360, 3), 235, np.uint8)
    cv2.putText(image, "12 3456", (12, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 3)
    read = paddle.read(image)
    assert read.text.replace(" ", "") == "123456"
    assert len(read.confidences) == len(read.text) and min(read.confidences) > 0.5
    # as the configured plate reader it takes no plate looks and reads the same
    korean = KoreanPlateReader(paddle, ReadingOptions.from_spec(spec, 0.9, paddle.keep_aspect))
    assert korean.grammar is None and korean.options == ReadingOptions()
    assert korean.read(image) == read


def test_truncated_model_is_a_model_error(tmp_path: Path, config) -> None:
    source = OURS.resolve(BUNDLED_DIR)
    broken = tmp_path / source.name
    broken.write_bytes(source.read_bytes()[:5000])
    shutil.copy(source.parent / OURS.charset, tmp_path / OURS.charset)
    with pytest.raises(ModelError, match="sha256"):
        KoreanPlateReader.from_spec(OURS, broken, config)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        KoreanPlateReader.from_spec(replace(OURS, sha256=None), broken, config)


def test_wrong_charset_is_a_model_error(tmp_path: Path, config) -> None:
    source = OURS.resolve(BUNDLED_DIR)
    shutil.copy(source, tmp_path / source.name)
    (tmp_path / OURS.charset).write_text("0\n1\n2\n", encoding="utf-8")
    with pytest.raises(ModelError, match="classes"):
        KoreanPlateReader.from_spec(OURS, tmp_path / source.name, config)


@pytest.fixture(scope="module")
def real_scores(reader: KoreanPlateReader) -> tuple:
    """Ours and the peer on the 26 real crops, in one run."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (dev dependency) not installed")
    crops = load_labelled_crops([shared_path("data/plates/set-a"),
                                 shared_path("data/plates/set-b")])
    need(len(crops) == 26, f"expected the 26 real crops, found {len(crops)}")
    peer = TinyLprPeer(shared_path("peers/kr-tinylpr"))
    return tuple(evaluate_readers(
        {"ours": lambda image: EvalRead(reader.read(image).text), "peer": peer.read}, crops))


def test_real_crops_more_exact_reads_than_the_peer(real_scores: tuple) -> None:
    ours, theirs = real_scores
    assert ours.exact > theirs.exact, (ours.misreads, theirs.misreads)


@pytest.mark.xfail(strict=True, reason="issue 3 target not met: the reader reads 23/26 real "
                   "crops exactly (96.0 % of characters), the peer 13/26 (78.5 %); misreads "
                   "are stacked region names on 19 and 27 px plates and one label error "
                   "(set-b/B24무6162.jpg shows 27), so 95 % (25/26) needs both tiny regions")
def test_real_crops_at_least_95_percent(real_scores: tuple) -> None:
    ours, _ = real_scores
    assert ours.exact_accuracy >= 0.95, ours.misreads


def test_real_crops_character_accuracy_beats_the_peer(real_scores: tuple) -> None:
    ours, theirs = real_scores
    assert ours.char_accuracy > theirs.char_accuracy, (ours.char_accuracy, theirs.char_accuracy)
    assert ours.char_accuracy >= 0.8


def test_reading_options_come_from_the_models_toml_entry_and_the_config(config) -> None:
    options = ReadingOptions.from_spec(OURS, 0.9, keep_aspect=False)
    assert options == ReadingOptions(sure_read=0.9, zoom=True, two_line=True, level=True,
                                     region_check=True, region_prior=True)
    # a recogniser that keeps the crop's aspect (PaddleOCR) has no room for the closer looks
    kept = ReadingOptions.from_spec(OURS, 0.9, keep_aspect=True)
    assert not (kept.zoom or kept.two_line or kept.level) and kept.region_check
    tuned = config.model_copy(deep=True)
    tuned.plates.sure_read = 0.95
    reader = KoreanPlateReader.from_config(tuned)
    assert reader.options.sure_read == 0.95 and reader.prior is not None


@pytest.mark.parametrize(("extra", "message"), [
    ({"decode": "beam"}, "decode 'beam' is unknown"),
    ({"constrain": "never"}, "constrain 'never' is unknown"),
    ({"two_line_max_aspect": "wide"}, "fix its models.toml entry"),
])
def test_a_bad_reading_option_is_a_model_error(extra: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ReadingOptions.from_spec(replace(OURS, extra={**OURS.extra, **extra}), 0.9, False)
