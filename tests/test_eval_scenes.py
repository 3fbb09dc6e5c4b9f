"""`gotcha eval scenes` on a small real subset, and the metrics it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_path
from typer.testing import CliRunner

from edge_agent.evaluation.scenes import (
    MAX_NEGATIVE_ACCEPT,
    MIN_POSITIVE_ACCEPT,
    PairResult,
    calibrate,
    confusion,
    roc_auc,
)
from edge_agent.vision.scene import SceneMatch

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


def test_eval_scenes_table_and_limit(subset, models_dir, monkeypatch):
    from edge_agent.cli.main import app

    monkeypatch.setenv("GOTCHA_MODEL_DIR", str(models_dir))
    monkeypatch.setenv("GOTCHA_MODELS__SCENE_EMBEDDER", "")
    result = CliRunner().invoke(app, ["eval", "scenes", str(subset), "--limit", "6"])
    assert result.exit_code in (0, 1), result.output
    assert "AUC" in result.stdout and "real" in result.stdout
    assert "model none" in result.stdout


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
