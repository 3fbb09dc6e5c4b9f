"""scripts/export_models.py without the heavy packages: int8 quantisation of a real (tiny)
ONNX graph, the models.toml entry it prints, and the one-line error for a missing package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.inference.catalog import file_sha256, parse_catalog

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "export_models.py"


@pytest.fixture(scope="module")
def export() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_models", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conv_net(path: Path) -> Path:
    """Conv -> Relu -> GlobalAveragePool -> Flatten: a miniature backbone, [1,3,32,32] in."""
    rng = np.random.default_rng(7)
    weight = numpy_helper.from_array(rng.normal(0, 0.2, (16, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["features"])]
    graph = helper.make_graph(
        nodes, "mini", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 16])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_int8_quantisation_keeps_the_output(export: ModuleType, tmp_path: Path) -> None:
    source = _conv_net(tmp_path / "mini.onnx")
    target = export.quantize_int8(source, tmp_path / "mini-int8.onnx")
    ops = {node.op_type for node in onnx.load(str(target)).graph.node}
    assert "ConvInteger" in ops and "Conv" not in ops
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
    want, got = _run(source, x), _run(target, x)
    assert got.shape == want.shape == (1, 16)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max() + 1e-3


def test_entry_parses_and_pins_the_file(export: ModuleType, tmp_path: Path) -> None:
    path = _conv_net(tmp_path / "mini.onnx")
    text = export.catalog_entry("mini-scene", path, kind="scene_embedder", layout="embedding",
                                mean=export.IMAGENET_MEAN, std=export.IMAGENET_STD,
                                source='a "quoted" source', extra={"feature_output": "features"})
    spec = parse_catalog(text)["mini-scene"]
    assert spec.sha256 == file_sha256(path)
    assert spec.input_size == (32, 32)  # read from the model itself
    assert spec.mean == export.IMAGENET_MEAN and spec.extra["feature_output"] == "features"
    assert spec.source == 'a "quoted" source'
    assert "# license" in text  # no licence given: the entry asks for one
    detector = export.catalog_entry("det", path, kind="vehicle_detector", layout="yolov8",
                                    letterbox="center", labels=export.COCO_VEHICLES,
                                    license="AGPL-3.0")
    assert parse_catalog(detector)["det"].labels == export.COCO_VEHICLES


def test_entry_command_quantises_and_prints(export: ModuleType, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = _conv_net(tmp_path / "mini.onnx")
    out = tmp_path / "mini-q.onnx"
    code = export.main(["entry", str(source), "--id", "mini-q", "--kind", "scene_embedder",
                        "--layout", "embedding", "--int8", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    spec = parse_catalog(printed)["mini-q"]
    assert spec.file == "mini-q.onnx" and spec.sha256 == file_sha256(out)


@pytest.mark.parametrize(("argv", "hidden", "package"), [
    (["yolo", "yolov8n.pt", "--id", "y"], ("ultralytics",), "ultralytics"),
    # torch is imported before torchvision: with both missing, torch is named first
    (["resnet", "resnet18", "--id", "r"], ("torch", "torchvision"), "torch"),
])
def test_missing_package_is_one_line(export: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], argv: list[str],
                                     hidden: tuple[str, ...], package: str) -> None:
    for name in hidden:  # None in sys.modules makes `import name` fail, installed or not
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, f"{name}.models", None)
    assert export.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: this export needs the '{package}' package, which Gotcha does not "
                   f"install: pip install {package}")
