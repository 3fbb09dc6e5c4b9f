"""The fleet prior over region names: hand-made frames, a bad setting, and the real regional
crops of ../shared/data/plates read with and without it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import shared_path

from edge_agent.config import load_config
from edge_agent.errors import ModelError
from edge_agent.evaluation.plates import EvalRead, evaluate_readers, load_labelled_crops
from edge_agent.inference.catalog import BUNDLED_DIR, load_catalog
from edge_agent.plates.looks import Look
from edge_agent.plates.reader import KoreanPlateReader
from edge_agent.plates.region_prior import REGISTERED_MILLIONS, RegionPrior
from gotcha_contracts.plate_grammar import REGIONS

CHARSET = ["", *"0123456789", "가", "서울", "세종", "경기"]
OURS = load_catalog(BUNDLED_DIR / "models.toml")["gotcha-kr-plate-crnn"]


def test_a_torn_region_frame_reads_the_common_region_and_keeps_its_mass() -> None:
    probs = np.zeros((3, len(CHARSET)), np.float32)
    probs[0, [CHARSET.index("세종"), CHARSET.index("서울"), 0]] = [0.5, 0.4, 0.1]
    probs[1, [CHARSET.index("세종"), CHARSET.index("1")]] = [0.9, 0.1]  # sure: stays 세종
    probs[2, [0, CHARSET.index("7")]] = [0.6, 0.4]  # no region mass: untouched
    out = RegionPrior(CHARSET).apply(probs)
    assert CHARSET[int(out[0].argmax())] == "서울"
    assert CHARSET[int(out[1].argmax())] == "세종"
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[:, :12], probs[:, :12])  # blank, digits, letter unchanged
    np.testing.assert_array_equal(out[2], probs[2])


def test_weights_follow_the_registrations() -> None:
    assert set(REGISTERED_MILLIONS) == set(REGIONS)
    prior = RegionPrior(CHARSET)
    weight = dict(zip(["서울", "세종", "경기"], prior.weight, strict=True))
    assert weight["경기"] > weight["서울"] > weight["세종"]
    assert weight["경기"] / weight["세종"] == pytest.approx(
        REGISTERED_MILLIONS["경기"] / REGISTERED_MILLIONS["세종"], rel=1e-5)
    assert RegionPrior(["", *"0123456789"]).apply(np.ones((2, 11))).shape == (2, 11)


def test_an_unknown_prior_is_a_model_error() -> None:
    config = load_config(None)
    bad = replace(OURS, extra={**OURS.extra, "region_prior": "census"})
    with pytest.raises(ModelError, match="region_prior"):
        KoreanPlateReader.from_spec(bad, OURS.resolve(config.models.dir), config)


def test_real_regional_plates_read_better_with_the_prior() -> None:
    """The 9 real crops with a region name (stacked yellow plates, two-line green and yellow):
    the prior must not lose a read, and wins some (measured: 4 -> 7 of 9)."""
    config = load_config(None)
    config.models.intra_op_threads = 1
    crops = [crop for crop in load_labelled_crops([shared_path("data/plates/set-a"),
                                                   shared_path("data/plates/set-b")])
             if not crop.text[0].isdigit()]
    assert len(crops) == 9
    plain_spec = replace(OURS, extra={k: v for k, v in OURS.extra.items() if k != "region_prior"})
    path = OURS.resolve(config.models.dir)
    with_prior = KoreanPlateReader.from_spec(OURS, path, config)
    without = KoreanPlateReader.from_spec(plain_spec, path, config)
    scores = evaluate_readers({"prior": lambda image: EvalRead(with_prior.read(image).text),
                               "plain": lambda image: EvalRead(without.read(image).text)},
                              crops)
    prior, plain = scores
    assert prior.exact > plain.exact, (prior.misreads, plain.misreads)
    missed = {m["file"] for m in prior.misreads}
    assert missed <= {m["file"] for m in plain.misreads}, (prior.misreads, plain.misreads)


def test_the_prior_chooses_a_region_but_never_makes_it_surer_than_the_model() -> None:
    """세종 0.6 and 경기 0.3 in the model's own frame: the prior reads 경기, at about 0.85 in
    its weighed frame, but the read keeps the model's 0.3, so it is no evidence."""
    config = load_config(None)
    reader = KoreanPlateReader.from_spec(OURS, OURS.resolve(config.models.dir), config)
    charset = reader.recogniser.charset
    raw = np.zeros((2, len(charset)), np.float32)
    raw[0, [charset.index("세종"), charset.index("경기"), charset.index("1")]] = [0.6, 0.3, 0.1]
    raw[1, charset.index("1")] = 1.0
    weighed = reader.prior.apply(raw)
    assert charset[int(weighed[0].argmax())] == "경기" and weighed[0].max() > 0.8
    look = Look(weighed, reader.recogniser.decode(weighed), raw)
    read = reader._model_confidences(look)
    assert read.tokens == ("경기", "1")
    assert read.confidences[0] == pytest.approx(0.3) and read.confidences[1] == 1.0
