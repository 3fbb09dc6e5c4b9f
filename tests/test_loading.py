"""load_runner: real models from ../shared, the sha256 cache, and every load-time failure."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.config import GotchaConfig, load_config
from edge_agent.errors import ConfigError, ModelError
from edge_agent.inference.catalog import BUNDLED_DIR, file_sha256
from edge_agent.inference.hash_cache import HASH_CACHE_NAME, HashCache, hash_cache_for
from edge_agent.inference.runner import load_runner


def _config(tmp_path: Path, model_dir: Path, catalog: Path | None = None,
            verify: bool = True) -> GotchaConfig:
    (tmp_path / "var").mkdir(exist_ok=True)
    return GotchaConfig.model_validate({
        "models": {"dir": model_dir, "catalog": catalog or BUNDLED_DIR / "models.toml",
                   "providers": ["cpu"], "intra_op_threads": 1, "verify_sha256": verify},
        "store": {"path": tmp_path / "var" / "gotcha.db"},
    })


def _catalog(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("model_id", "kind"), [
    ("yolov8n-coco", "vehicle_detector"),
    ("yolox-nano-coco", "vehicle_detector"),
    ("plate-yolov8n", "plate_detector"),
    ("mobilenetv2-imagenet", "scene_embedder"),
    ("ppocrv4-rec", "plate_reader"),
])
def test_real_models_load_check_and_run(tmp_path: Path, models_dir: Path, model_id: str,
                                        kind: str) -> None:
    config = _config(tmp_path, models_dir)
    runner = load_runner(config, model_id, kind)
    assert runner.spec.id == model_id and runner.path.is_file()
    assert runner.providers[-1] == "CPUExecutionProvider"
    width, height = runner.spec.input_size
    shape = [1, 3, height, width]
    (out,) = runner.run(np.zeros(shape, np.float32))[:1]
    assert out.shape[0] == 1 and np.isfinite(out).all()


def test_unknown_id_and_wrong_kind_are_config_errors(tmp_path: Path, models_dir: Path) -> None:
    config = _config(tmp_path, models_dir)
    with pytest.raises(ConfigError, match=r"not in models\.toml"):
        load_runner(config, "nope", "vehicle_detector")
    with pytest.raises(ConfigError, match="is a vehicle_detector"):
        load_runner(config, "yolov8n-coco", "plate_detector")


def test_wrong_sha256_is_refused(tmp_path: Path, models_dir: Path) -> None:
    catalog = _catalog(tmp_path, f"""
[models.det]
kind = "vehicle_detector"
file = "yolo11n-coco-int8-320.onnx"
sha256 = "{'0' * 64}"
layout = "yolov8"
input_size = [320, 320]
""")
    with pytest.raises(ModelError, match=r"models\.toml expects 000000000000"):
        load_runner(_config(tmp_path, models_dir, catalog), "det", "vehicle_detector")
    # with verification off the same file loads
    load_runner(_config(tmp_path, models_dir, catalog, verify=False), "det", "vehicle_detector")


def test_wrong_input_size_in_the_catalog_fails_at_load(tmp_path: Path, models_dir: Path) -> None:
    catalog = _catalog(tmp_path, """
[models.det]
kind = "vehicle_detector"
file = "yolov8n-coco-int8.onnx"
layout = "yolov8"
input_size = [320, 320]
""")
    with pytest.raises(ModelError, match=r"does not match models\.toml"):
        load_runner(_config(tmp_path, models_dir, catalog), "det", "vehicle_detector")


def test_truncated_and_missing_files(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    data = (models_dir / "yolox-nano-coco.onnx").read_bytes()
    (folder / "cut.onnx").write_bytes(data[: len(data) // 3])
    catalog = _catalog(tmp_path, """
[models.cut]
kind = "vehicle_detector"
file = "cut.onnx"
layout = "yolox"
input_size = [416, 416]

[models.gone]
kind = "vehicle_detector"
file = "gone.onnx"
layout = "yolox"
input_size = [416, 416]
""")
    config = _config(tmp_path, folder, catalog)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_runner(config, "cut", "vehicle_detector")
    with pytest.raises(ModelError, match=r"file gone\.onnx not found"):
        load_runner(config, "gone", "vehicle_detector")


def test_a_model_that_loads_but_cannot_run_fails_at_warm_up(tmp_path: Path) -> None:
    """Reshape to a fixed size: accepted by the loader, broken on any real input."""
    folder = tmp_path / "models"
    folder.mkdir()
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, folder / "broken.onnx")
    catalog = _catalog(tmp_path, """
[models.broken]
kind = "scene_embedder"
file = "broken.onnx"
layout = "embedding"
input_size = [0, 0]
""")
    config = _config(tmp_path, folder, catalog)
    with pytest.raises(ModelError, match=r"warm-up run on \{'x': \[1, 3, 64, 64\]\} failed"):
        load_runner(config, "broken", "scene_embedder")
    runner = load_runner(config, "broken", "scene_embedder", warm=False)
    assert runner.input_name == "x"


def test_edit_hook_gets_the_verified_file(tmp_path: Path, models_dir: Path) -> None:
    seen: list[int] = []

    def edit(data: bytes) -> bytes:
        seen.append(len(data))
        return data

    runner = load_runner(_config(tmp_path, models_dir), "mobilenetv2-imagenet", "scene_embedder",
                        edit=edit)
    assert seen == [runner.path.stat().st_size]


def test_hash_cache_skips_unchanged_files_and_notices_changes(tmp_path: Path,
                                                              models_dir: Path) -> None:
    model = tmp_path / "m.onnx"
    shutil.copyfile(models_dir / "plate-yolov8n-int8-320.onnx", model)
    cache_file = tmp_path / HASH_CACHE_NAME
    real = file_sha256(model)
    assert HashCache(cache_file).sha256(model) == real
    saved = json.loads(cache_file.read_text())
    assert saved[str(model.resolve())]["sha256"] == real

    # a fresh process reads the cache: a planted value proves the file was not hashed again
    saved[str(model.resolve())]["sha256"] = "f" * 64
    cache_file.write_text(json.dumps(saved))
    assert HashCache(cache_file).sha256(model) == "f" * 64

    # any change of size or mtime means hashing again
    with model.open("ab") as handle:
        handle.write(b"\0")
    changed = HashCache(cache_file).sha256(model)
    assert changed == file_sha256(model) != real
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert HashCache(cache_file).sha256(model) == changed

    # a damaged cache file is ignored, not fatal
    cache_file.write_text("{not json")
    assert HashCache(cache_file).sha256(model) == changed


def test_hash_cache_lives_next_to_the_store(tmp_path: Path, models_dir: Path) -> None:
    config = _config(tmp_path, models_dir)
    load_runner(config, "plate-yolov8n", "plate_detector")
    assert hash_cache_for(config).file == tmp_path / "var" / HASH_CACHE_NAME
    entries = json.loads((tmp_path / "var" / HASH_CACHE_NAME).read_text())
    assert any(k.endswith("plate-yolov8n-int8-320.onnx") for k in entries)


def test_default_config_loads_the_configured_detector(models_dir: Path) -> None:
    config = load_config(environ={"GOTCHA_MODEL_DIR": str(models_dir)})
    runner = load_runner(config, config.models.vehicle_detector or "", "vehicle_detector")
    assert runner.output_names
