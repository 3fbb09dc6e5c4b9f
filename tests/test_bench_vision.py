"""scripts/bench_vision.py --naive on two real korea-a photos: the pipeline and the naive
whole-photo PaddleOCR are each measured in their own process and reported side by side (table
and JSON), with real models; the figures themselves are the machine's, so only their shape
and sanity are checked."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, need, shared_path

PHOTOS = ("000424-20190130010598-2.jpg", "802.jpg")  # a street scene and a close-up


def test_naive_is_measured_beside_the_pipeline(models_dir: Path, tmp_path: Path) -> None:
    need(importlib.util.find_spec("rapidocr_onnxruntime") is not None,
         "--naive needs pip install rapidocr-onnxruntime==1.4.4 (gotcha[paddle])")
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in PHOTOS:
        shutil.copy(shared_path(f"data/scenes/korea-a/{name}"), scenes / name)
    out = tmp_path / "bench.json"
    env = dict(os.environ, GOTCHA_MODEL_DIR=str(models_dir),
               GOTCHA_MODELS__VEHICLE_DETECTOR="yolox-nano-coco", GOTCHA_MODELS__PLATE_DETECTOR="")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_vision.py"), "--naive", "--scenes",
         str(scenes), "--warmup", "0", "--threads", "1", "--json-out", str(out)],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "naive / pipeline median time" in done.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    pipeline, naive = report["pipeline"], report["naive"]
    assert pipeline["runs"] == naive["runs"] == len(PHOTOS)
    assert pipeline["threads"] == naive["threads"] == 1
    assert pipeline["models"]["vehicle_detector"] == "yolox-nano-coco"
    assert set(naive["stages_ms"]) == {"decode", "det", "cls", "rec", "total"}
    for mode in (pipeline, naive):
        total = mode["stages_ms"]["total"]
        assert 0 < total["median"] <= total["p95"]
        assert mode["bare_inference_ms"]["total"]["median"] > 0
        assert mode["ratio_vision_to_bare"] >= 1.0  # wall time includes the bare runs
        assert mode["peak_rss_mb"] > 50 and mode["photos_per_s"] > 0
    assert naive["text_lines_read"] >= 1  # PaddleOCR does read the close-up's plate text
    assert report["speedup_vs_naive_median"] == round(
        naive["stages_ms"]["total"]["median"] / pipeline["stages_ms"]["total"]["median"], 2)
