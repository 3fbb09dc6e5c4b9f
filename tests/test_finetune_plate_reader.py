"""Fine-tuning on real crops (scripts/finetune_plate_reader.py) and its cross-validation
(scripts/crossval_plate_reader.py), in miniature: the exported model is where training starts,
plates never straddle folds, the held-out sets are refused, and the out-of-fold reads feed the
sure-rule calibration.

Needs torch (scripts/setup.sh --with-train); without it the tests skip with that reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_path

from edge_agent.inference.catalog import BUNDLED_DIR, load_catalog
from gotcha_train.real_crops import RealCrop, augment, model_input, plate_folds

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
OURS = load_catalog(BUNDLED_DIR / "models.toml")["gotcha-kr-plate-crnn"]


def test_the_exported_model_is_where_fine_tuning_starts() -> None:
    torch = pytest.importorskip("torch", reason="torch not installed "
                                "(scripts/setup.sh --with-train)")
    import onnxruntime as ort

    from gotcha_train.crnn import build_model, freeze_batch_norm, load_onnx_weights
    from gotcha_train.dataset import CHARSET

    path = BUNDLED_DIR / OURS.file
    model = build_model(len(CHARSET) + 1)
    load_onnx_weights(model, path)
    model.train()
    freeze_batch_norm(model)  # what fine-tuning does: batch statistics stay the exported ones
    for module in model.modules():  # dropout off, to compare outputs
        if isinstance(module, torch.nn.Dropout2d):
            module.eval()
    x = np.random.default_rng(0).uniform(-1, 1, (3, 1, 48, 288)).astype(np.float32)
    exported = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    with torch.no_grad():
        started = model(torch.from_numpy(x)).softmax(-1).numpy()
    assert np.abs(exported - started).max() < 1e-4


def test_a_file_of_another_network_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch not installed (scripts/setup.sh --with-train)")
    from gotcha_train.crnn import build_model, load_onnx_weights

    other = shared_path("models") / "yolox-nano-coco.onnx"
    with pytest.raises(ValueError, match=r"not an export of gotcha_train\.crnn"):
        load_onnx_weights(build_model(73), other)


def test_folds_keep_every_plate_whole_and_are_repeatable() -> None:
    texts = ["42무1608"] * 5 + ["01가1134", "서울33거2172", "서울33거2172", "65저1917", "07도8486"]
    folds = plate_folds(texts, 3, seed=1)
    assert set(folds) == set(texts) and set(folds.values()) == {0, 1, 2}
    assert plate_folds(list(reversed(texts)), 3, seed=1) == folds  # order of files is no matter
    sizes = sorted(list(folds.values()).count(k) for k in range(3))
    assert sizes == [1, 2, 2]  # five plates in three folds, as even as they go


@pytest.mark.parametrize("shape", [(24, 94, 3), (600, 560, 3), (6, 6, 3)])
def test_augmented_real_crops_are_model_inputs(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    crop = RealCrop(rng.integers(0, 255, shape, dtype=np.uint8), "12가3456")
    for _ in range(5):
        view = augment(crop.image, rng)
        assert view.dtype == np.uint8 and view.ndim == 3 and min(view.shape[:2]) >= 1
        row = model_input(crop, view)
        assert row.shape == (48, 288) and row.dtype == np.uint8
        if not crop.two_line:
            assert not row[:, 144:].any()  # one-line plates fill the left half only


@pytest.mark.parametrize("invert", [0.0, 0.5])
def test_light_and_dark_are_swapped_only_when_asked(invert: float) -> None:
    """Every other step keeps brightness in order, so a swap shows as the dark half turned light."""
    image = np.full((60, 120, 3), 220, np.uint8)
    image[:, : image.shape[1] // 2] = 30  # left half dark, right half light
    rng = np.random.default_rng(3)
    swapped = kept = 0
    for _ in range(60):
        gray = cv2.cvtColor(augment(image, rng, invert), cv2.COLOR_BGR2GRAY).astype(float)
        half = gray.shape[1] // 2
        left, right = gray[:, : half // 2].mean(), gray[:, half + half // 2:].mean()
        swapped += left > right + 5
        kept += right > left + 5
    assert kept >= 15
    assert (swapped >= 15) if invert else (swapped == 0)


@pytest.mark.parametrize("folder", ["data/plates/set-b", "data/plates"])
def test_the_held_out_sets_are_never_trained_on(tmp_path: Path, folder: str) -> None:
    """Named, or found below a parent folder: set-a and set-b are refused before any work."""
    pytest.importorskip("torch", reason="torch not installed (scripts/setup.sh --with-train)")
    cache = tmp_path / "crops.npz"
    done = subprocess.run([sys.executable, str(SCRIPTS / "finetune_plate_reader.py"), "--real",
                           str(shared_path(folder)), "--init", str(BUNDLED_DIR / OURS.file),
                           "--out", str(tmp_path / "m.onnx"), "--cache", str(cache)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "is in a held-out measuring set" in done.stderr
    assert "never on set-a or set-b" in done.stderr
    assert not cache.exists()


def test_a_start_that_is_no_exported_reader_is_told_before_any_work(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch not installed (scripts/setup.sh --with-train)")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes((BUNDLED_DIR / OURS.file).read_bytes()[:5000])  # a cut-off download
    cache = tmp_path / "crops.npz"
    done = subprocess.run([sys.executable, str(SCRIPTS / "finetune_plate_reader.py"), "--real",
                           str(shared_path("data/plates/set-c")), "--init", str(broken),
                           "--out", str(tmp_path / "m.onnx"), "--cache", str(cache)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert f"--init {broken}: " in done.stderr and "not a readable ONNX file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not cache.exists() and not (tmp_path / "m.onnx").exists()


def test_cross_validation_in_miniature_feeds_the_calibration(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch not installed (scripts/setup.sh --with-train)")
    init = tmp_path / "start" / OURS.file
    init.parent.mkdir()
    init.write_bytes((BUNDLED_DIR / OURS.file).read_bytes())
    init.with_suffix(".charset.txt").write_bytes((BUNDLED_DIR / OURS.charset).read_bytes())
    scored, figures = tmp_path / "scored.json", tmp_path / "cv.json"
    command = [sys.executable, str(SCRIPTS / "crossval_plate_reader.py"), "--real",
               str(shared_path("data/plates/set-c")), "--init", str(init), "--folds", "2",
               "--steps", "2", "--synthetic", "240", "--batch", "16", "--workers", "1",
               "--threads", "1", "--cache", str(tmp_path / "crops.npz"), "--out",
               str(tmp_path / "folds"), "--scored", str(scored), "--json", str(figures)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fine-tuned, out of fold" in done.stdout and "starting model" in done.stdout
    assert all((tmp_path / "folds" / f"fold-{k}" / OURS.file).is_file() for k in (0, 1))
    doc = json.loads(figures.read_text(encoding="utf-8"))
    out_of_fold = doc["readers"][1]
    assert out_of_fold["plates"] == 37  # every crop read once, by the fold that left it out
    reads = json.loads(scored.read_text(encoding="utf-8"))["reads"]
    assert len(reads) == 37 and {"correct", "confidence", "dissent", "legible_px"} <= set(reads[0])
    calibrated = subprocess.run([sys.executable, str(SCRIPTS / "calibrate_sure_rule.py"),
                                 "--fit-reads", str(scored), "--json"],
                                capture_output=True, text=True, timeout=120, check=False)
    assert calibrated.returncode == 0, calibrated.stderr
    chosen = json.loads(calibrated.stdout)["chosen"]
    assert set(chosen) == {"evidence_floor", "max_dissent", "min_plate_px"}
