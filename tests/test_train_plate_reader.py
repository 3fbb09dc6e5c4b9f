"""scripts/train_plate_reader.py end to end in miniature: render, train a few steps, export an
ONNX model the plate reader loads and runs at one-line and two-line widths.

Needs torch (scripts/setup.sh --with-train); without it the test skips with that reason.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.inference.catalog import BUNDLED_DIR, load_catalog
from edge_agent.plates.reader import KoreanPlateReader
from gotcha_train.synth import random_sample

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_plate_reader.py"
OURS = load_catalog(BUNDLED_DIR / "models.toml")["gotcha-kr-plate-crnn"]


def test_a_few_steps_give_a_model_the_reader_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="torch not installed (scripts/setup.sh --with-train)")
    out = tmp_path / "mini.onnx"
    cache = tmp_path / "crops.npz"
    command = [sys.executable, str(SCRIPT), "--seed", "3", "--samples", "240", "--steps", "4",
               "--easy-steps", "2", "--ema", "0.9", "--batch", "16", "--eval-every", "2",
               "--workers", "1", "--threads", "1", "--cache", str(cache), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "synthetic val exact" in done.stderr
    assert "last weights, not averaged" in done.stderr  # the weight average was kept
    assert cache.is_file() and out.is_file()
    assert out.stat().st_size < 2_000_000
    charset = out.with_suffix(".charset.txt").read_text(encoding="utf-8").splitlines()
    assert charset == (BUNDLED_DIR / OURS.charset).read_text(encoding="utf-8").splitlines()

    config = load_config(None)
    config.models.intra_op_threads = 1
    spec = replace(OURS, file=out.name, sha256=None, charset=out.with_suffix(".charset.txt").name)
    reader = KoreanPlateReader.from_spec(spec, out, config)
    model = reader.recogniser
    assert model.dynamic_width and not model.keep_aspect and reader.options.two_line
    crop, _, _ = random_sample(np.random.default_rng(1), "green2")
    one_line = model.infer(model.prepare(crop, model.width)[None], 1)
    two_line = model.infer(reader.two_line_input(crop)[None], 1)
    assert one_line.shape[1] == 36 and two_line.shape[1] == 72  # a frame per 4 columns
    read = reader.read(crop)  # four steps read nothing yet, but the whole path runs
    assert all(0.0 <= c <= 1.0 for c in read.confidences)


@pytest.mark.parametrize("decay", ["1.0", "-0.5"])
def test_a_decay_outside_zero_to_one_is_refused_before_rendering(tmp_path: Path,
                                                                 decay: str) -> None:
    cache = tmp_path / "crops.npz"
    done = subprocess.run([sys.executable, str(SCRIPT), "--ema", decay, "--cache", str(cache),
                           "--out", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert f"--ema {float(decay)} is no decay" in done.stderr
    assert not cache.exists()
