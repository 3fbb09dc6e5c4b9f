"""`gotcha eval scenes` on a small real subset, and the metrics it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_path
from typer.testing import CliRunner

from edge_agent.evaluation.scene_calibration import (
    boundary,
    fit_calibration,
    leave_one_day_out,
    training_pairs,
)
from edge_agent.evaluation.scene_pairs import cross_day_pairs, read_occupancy
from edge_agent.evaluation.scenes import (
    MAX_NEGATIVE_ACCEPT,
    MIN_POSITIVE_ACCEPT,
    PairResult,
    calibrate,
    confusion,
    roc_auc,
)
from edge_agent.vision.scene import SceneMatch
from edge_agent.vision.scene_scoring import DEFAULT_CALIBRATION, SceneFeatures, judge

FRAMES = ("2013-03-09_09_30_04", "2013-03-09_09_45_04", "2013-03-09_11_20_06")
PHOTOS = ("scenes/korea-a/4vehicles.jpg", "scenes/korea-a/KR_multiple.jpg",
          "street/parking-research/cam_1.jpg")


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Links (not copies) to three PKLot frames with occupancy and three street photos."""
    root = tmp_path_factory.mktemp("scenes")
    pklot = shared_path("data/fixed/pklot-ufpr05_2013-03-09")
    (root / "fixed-cam").mkdir()
    for stem in FRAMES:
        for suffix in (".jpg", ".xml"):
            (root / "fixed-cam" / f"{stem}{suffix}").symlink_to(pklot / f"{stem}{suffix}")
    (root / "photos").mkdir()
    for rel in PHOTOS:
        src = shared_path(f"data/{rel}")
        (root / "photos" / src.name).symlink_to(src)
    return root


def test_eval_scenes_json_on_subset_meets_targets(subset, models_dir, monkeypatch):
    from edge_agent.cli.main import app

    monkeypatch.setenv("GOTCHA_MODEL_DIR", str(models_dir))
    result = CliRunner().invoke(app, ["eval", "scenes", str(subset), "--json", "--seed", "3",
                                       "--limit", "40"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    report = json.loads(result.stdout)
    kinds = report["by_kind"]
    assert set(kinds) == {"real", "generated"}
    cases = report["cases"]
    for case in ("real/same-spot", "real/vehicle-gone", "real/other-space",
                 "generated/shift-light", "generated/passer-by", "generated/moved",
                 "generated/other-scene"):
        assert cases[case]["pairs"] > 0, case
    for kind, block in kinds.items():
        s = block["configured"]
        assert s["positives"] > 0 and s["negatives"] > 0, kind
        assert s["positive_accept_rate"] >= MIN_POSITIVE_ACCEPT, (kind, s, report["errors"])
        assert s["negative_accept_rate"] <= MAX_NEGATIVE_ACCEPT, (kind, s, report["errors"])
        assert s["roc_auc"] > 0.99
        table = s["confusion"]
        assert sum(table.values()) == s["pairs"]
    assert result.exit_code == 0
    assert report["meets_targets"] == {"real": True, "generated": True}
    assert 0.0 < report["calibrated_threshold"] < 1.0
    # the real pairs day by day: as shipped, and with the day held out of the calibration
    day = report["days"]["2013-03-09"]
    assert day["configured"]["pairs"] == day["held_out"]["pairs"] > 0
    held = report["leave_one_day_out"]
    assert held["threshold"] == report["threshold"]
    assert held["days"]["2013-03-09"]["fitted_on"] == ["generated"]  # the only real day
    assert set(held["days"]["2013-03-09"]["margins"]) == {"look", "presence"}
    assert held["overall"]["cases"]["same-spot"]["accept_rate"] >= MIN_POSITIVE_ACCEPT
    assert set(report["calibration"]) == set(report["fitted_on_all_days"])


def test_eval_scenes_table_and_limit(subset, models_dir, monkeypatch):
    from edge_agent.cli.main import app

    monkeypatch.setenv("GOTCHA_MODEL_DIR", str(models_dir))
    monkeypatch.setenv("GOTCHA_MODELS__SCENE_EMBEDDER", "")
    result = CliRunner().invoke(app, ["eval", "scenes", str(subset), "--limit", "6"])
    assert result.exit_code in (0, 1), result.output
    assert "AUC" in result.stdout and "real" in result.stdout
    assert "model none" in result.stdout
    assert "2013-03-09  held out" in result.stdout and "configured" in result.stdout


def test_eval_scenes_missing_folder_is_one_line_error(tmp_path):
    from edge_agent.cli.main import app

    result = CliRunner().invoke(app, ["eval", "scenes", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a folder" in result.output


def _result(score: float, positive: bool) -> PairResult:
    match = SceneMatch(score=score, same_scene=score >= 0.5, vehicle_moved=None, reason="",
                       inliers=0, embedding_similarity=None)
    return PairResult("real", "x", positive, "calibration", match, "a|b")


@pytest.mark.parametrize(("scores", "labels", "auc"), [
    ([0.9, 0.8, 0.1, 0.2], [True, True, False, False], 1.0),
    ([0.1, 0.2, 0.9, 0.8], [True, True, False, False], 0.0),
    ([0.5, 0.5], [True, False], 0.5),
    ([0.9, 0.3, 0.6], [True, True, False], 0.5),
    ([0.9], [True], None),
])
def test_roc_auc(scores, labels, auc):
    assert roc_auc(scores, labels) == auc


def test_confusion_and_calibration():
    results = [_result(s, True) for s in (0.95, 0.8, 0.7)] + [
        _result(s, False) for s in (0.1, 0.3, 0.65)]
    assert confusion(results, 0.5) == {"true_accept": 3, "false_reject": 0, "false_accept": 1,
                                       "true_reject": 2}
    chosen = calibrate(results, 0.5)
    assert 0.65 < chosen < 0.7
    assert confusion(results, chosen)["false_accept"] == 0


def test_boundary_midpoint_of_the_gap_and_fewest_errors_when_overlapping():
    mid, scale = boundary([3.0, 4.0, 5.0], [1.0, 1.5, 2.0])
    assert mid == 2.5 and scale == pytest.approx(1.0 / 8)
    mid, _ = boundary([2.0, 3.0, 4.0, 5.0], [1.0, 1.5, 2.5])
    assert mid == 2.75  # losing the positive at 2.0 costs 1/4, keeping the 2.5 negative 1/3
    assert boundary([3.0, 4.0], [1.0, 2.0, 1.5]) is None  # too few to fit


def _judged(case: str, positive: bool, day: str | None, look: float,
            kind: str = "real") -> PairResult:
    """A pair whose only telling measurement is its look (patch correlation)."""
    features = SceneFeatures(inliers=300, transform=True, few_background=False,
                             embedding_similarity=0.9, box_iou=0.95, box_shift=0.02,
                             patch_similarity=look, vehicle_embedding_similarity=0.9,
                             vehicle_presence=0.9, vehicle_contrast=0.3)
    return PairResult(kind, case, positive, "calibration",
                      judge(features, DEFAULT_CALIBRATION, 0.5), f"{day}/{case}/{look}", day)


def test_leave_one_day_out_fits_without_the_held_out_day():
    """Day B has a vehicle-gone pair whose look only a boundary fitted on B itself rejects:
    held out, B is judged by what A taught, and that pair is reported as accepted."""
    results = ([_judged("same-spot", True, "A", v) for v in (0.90, 0.92, 0.95)]
               + [_judged("vehicle-gone", False, "A", v) for v in (0.40, 0.45, 0.50)]
               + [_judged("same-spot", True, "B", v) for v in (0.80, 0.85, 0.90)]
               + [_judged("vehicle-gone", False, "B", v) for v in (0.60, 0.65, 0.78)])
    assert all(r.day != "B" for r in training_pairs(results, "B"))
    fitted_a = fit_calibration(training_pairs(results, "B"), DEFAULT_CALIBRATION)
    fitted_all = fit_calibration(results, DEFAULT_CALIBRATION)
    assert fitted_a.look_mid < fitted_all.look_mid  # B's hard negative raises the boundary
    held = leave_one_day_out(results, ["A", "B"], DEFAULT_CALIBRATION, 0.5)
    assert held["days"]["B"]["calibration"]["look_mid"] == round(fitted_a.look_mid, 4)
    assert held["days"]["B"]["cases"]["vehicle-gone"]["accepted"] == 1
    assert held["days"]["B"]["meets"] is False and held["overall"]["meets"] is False
    assert held["days"]["A"]["meets"] is True


def test_cross_day_pairs_put_the_vehicle_first(tmp_path):
    """Two days of one camera: a space occupied on one day and empty on the other."""
    for day, stem in (("2013-03-09", "2013-03-09_11_20_06"), ("2013-02-22", "2013-02-22_07_15_01")):
        folder = tmp_path / f"pklot-ufpr05_{day}"
        folder.mkdir()
        src = shared_path(f"data/fixed/pklot-ufpr05_{day}")
        for suffix in (".jpg", ".xml"):
            (folder / f"{stem}{suffix}").symlink_to(src / f"{stem}{suffix}")
    pairs = cross_day_pairs(sorted(tmp_path.iterdir()))
    assert pairs and all(p.case == "gone-other-day" and not p.positive for p in pairs)
    assert {p.day for p in pairs} == {"2013-02-22~2013-03-09"}
    for pair in pairs:
        image, space = pair.a.key.split("#")
        assert read_occupancy(Path(image).with_suffix(".xml"))[space][1], pair.a.key
