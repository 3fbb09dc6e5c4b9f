"""models.toml parsing (unknown keys refused), file lookup and the session factory's provider
choice and shape checks."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.errors import ConfigError, ModelError
from edge_agent.inference.catalog import (
    BUNDLED_DIR,
    EXTRA_KEYS,
    ModelSpec,
    get_spec,
    known_keys,
    load_catalog,
    parse_catalog,
)
from edge_agent.inference.session import check_input_shape, create_session, pick_providers

GOOD = """
[models.det]
kind = "vehicle_detector"
file = "det.onnx"
layout = "yolov8"
input_size = [640, 640]
"""


def _entry(**keys: object) -> str:
    base: dict[str, object] = {"kind": '"vehicle_detector"', "file": '"det.onnx"',
                               "layout": '"yolov8"', "input_size": "[640, 640]"}
    base.update(keys)
    lines = [f"{k} = {v}" for k, v in base.items() if v is not None]
    return "[models.det]\n" + "\n".join(lines) + "\n"


def test_project_catalog_parses_and_every_url_is_pinned() -> None:
    catalog = load_catalog(BUNDLED_DIR / "models.toml")
    assert {"yolov8n-coco", "yolox-nano-coco", "plate-yolov8n", "mobilenetv2-imagenet"} <= set(
        catalog)
    for spec in catalog.values():
        if spec.url:
            assert spec.url.startswith("https://") and spec.sha256, spec.id
        if spec.sha256:
            assert len(spec.sha256) == 64


def test_defaults_fill_in() -> None:
    spec = parse_catalog(GOOD)["det"]
    assert spec.color == "rgb" and spec.letterbox == "center" and spec.scale == 255.0
    assert spec.expected_input_shape() == (None, 3, 640, 640)


def test_dynamic_sides_and_gray_channels() -> None:
    spec = parse_catalog(_entry(kind='"plate_reader"', layout='"ctc"', color='"gray"',
                                input_size="[0, 32]"))["det"]
    assert spec.expected_input_shape() == (None, 1, 32, None)


@pytest.mark.parametrize(("keys", "needle"), [
    ({"kind": None}, "missing key 'kind'"),
    ({"input_size": None}, "missing key 'input_size'"),
    ({"kind": '"car_finder"'}, "'kind' is 'car_finder'"),
    ({"layout": '"ssd"'}, "'layout' is 'ssd'"),
    ({"color": '"cmyk"'}, "'color' is 'cmyk'"),
    ({"letterbox": '"left"'}, "'letterbox'"),
    ({"input_size": "[640]"}, "'input_size' must be [width, height]"),
    ({"input_size": "[-1, 640]"}, "'input_size'"),
    ({"sha256": '"abc"'}, "'sha256' must be 64"),
    ({"url": '"https://example.org/m.onnx"'}, "'url' needs 'sha256'"),
    ({"url": '"ftp://x/m.onnx"', "sha256": '"' + "a" * 64 + '"'}, "'url' must start"),
    ({"labels": '{ car = 2 }'}, "'labels' entry 'car'"),
    ({"mean": "[0.5, 0.5]"}, "'mean' needs 1 or 3 values"),
    ({"std": '"wide"'}, "'std' must be a list of numbers"),
    ({"scale": "0"}, "'scale' must be a positive number"),
    ({"file": '"pkg:nofolder"'}, "'file' must be"),
])
def test_mistakes_name_the_entry_and_the_key(keys: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_catalog(_entry(**keys), origin="m.toml")
    message = str(info.value)
    assert message.startswith("m.toml [models.det]: "), message
    assert needle in message, message
    assert "\n" not in message


def test_an_unknown_key_names_the_file_the_entry_the_key_and_the_known_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse_catalog(_entry(input_sise="[640, 640]"), origin="models/models.toml")
    message = str(info.value)
    assert message.startswith("models/models.toml [models.det]: unknown key 'input_sise'; "
                              "known keys: kind, file, layout, input_size, "), message
    assert "zoom" in message and "feature_output" in message and "\n" not in message


def test_an_unknown_top_level_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown top-level key 'model'"):
        parse_catalog(GOOD.replace("[models.det]", "[model.det]"), origin="m.toml")


def test_every_key_the_project_catalog_uses_is_known() -> None:
    """The bundled models.toml parses (unknown keys would be refused), and the model-specific
    keys it sets are kept in extra, typed as declared."""
    catalog = load_catalog(BUNDLED_DIR / "models.toml")
    ours = catalog["gotcha-kr-plate-crnn"]
    assert ours.extra["two_line"] == "split"
    assert ours.extra["zoom"] is True and ours.extra["region_prior"] == "fleet"
    assert set(EXTRA_KEYS) <= set(known_keys())
    for spec in catalog.values():
        assert set(spec.extra) <= set(EXTRA_KEYS), spec.id


@pytest.mark.parametrize(("keys", "needle"), [
    ({"sure_read": "0.9"}, "'sure_read' is no longer a models.toml key; set plates.sure_read"),
    ({"zoom": "1"}, "'zoom' must be true or false"),
    ({"feature_output": "3"}, "'feature_output' must be a tensor name"),
])
def test_model_specific_keys_are_type_checked(keys: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_catalog(_entry(**keys), origin="m.toml")
    assert str(info.value).startswith("m.toml [models.det]: ") and needle in str(info.value)


def test_invalid_toml_and_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_catalog("[models.det\nkind=", origin="m.toml")
    with pytest.raises(ConfigError, match=r"not found; set models\.catalog"):
        load_catalog(tmp_path / "absent.toml")


def test_load_catalog_rereads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert set(load_catalog(path)) == {"det"}
    path.write_text(GOOD + GOOD.replace("models.det", "models.det2"), encoding="utf-8")
    assert set(load_catalog(path)) == {"det", "det2"}


def test_get_spec_checks_id_and_kind() -> None:
    catalog = parse_catalog(GOOD)
    assert get_spec(catalog, "det", "vehicle_detector").id == "det"
    with pytest.raises(ConfigError, match=r"not in models\.toml"):
        get_spec(catalog, "nope", "vehicle_detector")
    with pytest.raises(ConfigError, match="is a vehicle_detector, but is configured as"):
        get_spec(catalog, "det", "plate_reader")


def test_pkg_files_resolve_inside_the_installed_package(tmp_path: Path) -> None:
    catalog = load_catalog(BUNDLED_DIR / "models.toml")
    spec = catalog["ppocrv4-rec"]
    assert spec.packaged
    path = spec.resolve(tmp_path)
    assert path.is_file() and "rapidocr_onnxruntime" in path.parts
    gone = ModelSpec(id="x", kind="plate_reader", file="pkg:no_such_package_here/m.onnx",
                     layout="ctc", input_size=(0, 48))
    with pytest.raises(ModelError, match="needs the Python package 'no_such_package_here'"):
        gone.resolve(tmp_path)
    missing = ModelSpec(id="y", kind="plate_reader", file="pkg:rapidocr_onnxruntime/none.onnx",
                        layout="ctc", input_size=(0, 48))
    with pytest.raises(ModelError, match="is not in the installed package"):
        missing.resolve(tmp_path)


def test_missing_file_names_the_places_looked_and_the_fix(tmp_path: Path) -> None:
    spec = parse_catalog(GOOD)["det"]
    with pytest.raises(ModelError) as info:
        spec.resolve(tmp_path)
    assert str(tmp_path) in str(info.value) and "GOTCHA_MODEL_DIR" in str(info.value)
    fetchable = parse_catalog(_entry(url='"https://example.org/det.onnx"',
                                     sha256='"' + "0" * 64 + '"'))["det"]
    with pytest.raises(ModelError, match="gotcha models fetch det"):
        fetchable.resolve(tmp_path)


@pytest.mark.parametrize(("preferred", "available", "expected"), [
    (["tensorrt", "cuda", "cpu"], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["tensorrt", "cuda", "cpu"],
     ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"],
     ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["cuda", "tensorrt"],
     ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]),
    (["cpu", "cuda"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["tensorrt"], ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
])
def test_provider_order(preferred: list[str], available: list[str], expected: list[str]) -> None:
    assert pick_providers(preferred, available) == expected


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider"):
        pick_providers(["rocm", "cpu"], ["CPUExecutionProvider"])


def _tiny_model(path: Path, shape: list[object]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(("shape", "expected", "needle"), [
    (["n", 3, 64, 64], (None, 3, 64, 64), None),
    ([1, 3, "h", "w"], (None, 3, 64, 64), None),
    ([1, 3, 64, 64], (None, 3, 32, 32), "does not match models.toml"),
    ([1, 1, 64, 64], (None, 3, 64, 64), "does not match models.toml"),
    ([1, 3, 64], (None, 3, 64, 64), "input has 3 dims"),
    ([4, 3, 64, 64], (None, 3, 64, 64), "batch is fixed at 4"),
])
def test_input_shape_check(tmp_path: Path, shape: list[object],
                           expected: tuple[int | None, ...], needle: str | None) -> None:
    session = create_session(_tiny_model(tmp_path / "m.onnx", shape), name="tiny")
    actual = session.get_inputs()[0].shape
    if needle is None:
        check_input_shape(actual, expected, "tiny")
    else:
        with pytest.raises(ModelError, match=needle):
            check_input_shape(actual, expected, "tiny")


def test_unloadable_file_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        create_session(bad, name="bad")
    with pytest.raises(ModelError, match="not found"):
        create_session(tmp_path / "absent.onnx", name="absent")
