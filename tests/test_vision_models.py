"""Real detectors on real photos (every supported export), the locator without a plate detector,
bad model files, and `gotcha process` on a batch with a corrupt photo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import need_rapidocr, shared_path
from typer.testing import CliRunner

from edge_agent.config import GotchaConfig, load_config
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import file_sha256
from edge_agent.io.photo import load_photo
from edge_agent.plates.locate import PlateLocator
from edge_agent.results import VEHICLE_CLASSES
from edge_agent.vision.vehicle_detector import VehicleDetector

SCENES = "data/scenes/korea-a"


def _config(models_dir: Path, **models: object) -> GotchaConfig:
    config = load_config(None, environ={"GOTCHA_MODEL_DIR": str(models_dir)})
    for key, value in models.items():
        setattr(config.models, key, value)
    return config


def _photo(name: str, config: GotchaConfig):
    return load_photo(shared_path(SCENES) / name, config)


@pytest.mark.parametrize("model_id", ["yolov8n-coco", "yolo11n-coco-320", "yolox-nano-coco"])
def test_every_detector_export_finds_the_parked_cars(models_dir: Path, model_id: str) -> None:
    config = _config(models_dir, vehicle_detector=model_id)
    detector = VehicleDetector.from_config(config)
    photo = _photo("multiple1.jpg", config)  # four parked cars side by side, 1143x711
    vehicles = detector.detect(photo.image)
    width, height = photo.size
    assert len(vehicles) >= 3, vehicles
    for vehicle in vehicles:
        assert vehicle.label in VEHICLE_CLASSES and 0 < vehicle.score <= 1
        box = vehicle.box
        assert 0 <= box.x1 < box.x2 <= width and 0 <= box.y1 < box.y2 <= height
    # The cars stand in the lower half of the frame, side by side.
    centres = sorted(v.box.center for v in vehicles[:4])
    assert all(height * 0.4 < cy < height for _, cy in centres)
    assert centres[-1][0] - centres[0][0] > width * 0.4


def test_people_are_found_but_never_reported_as_vehicles(models_dir: Path) -> None:
    config = _config(models_dir)
    detector = VehicleDetector.from_config(config)
    photo = _photo("20200814000665_0.jpg", config)  # a dump truck, an excavator, a person
    found = detector.detect_all(photo.image)
    vehicles, people = found.vehicles, found.people
    assert people, "the person by the truck was not found"
    assert not found.turned
    assert "person" not in {v.label for v in vehicles}
    assert any(v.label == "truck" for v in vehicles)
    assert len(detector.detect_people(photo.image)) == len(people)


def test_text_detector_locates_plates_without_a_plate_detector(models_dir: Path) -> None:
    need_rapidocr()
    config = _config(models_dir, plate_detector=None)
    locator = PlateLocator.from_config(config)
    assert locator.detector is None and locator.text_detector is not None
    close_up = _photo("803.jpg", config)  # a two-line green plate filling the frame
    plates = locator.locate(close_up.image, [])
    assert plates and plates[0].vehicle_index is None and plates[0].source == "text"
    width, height = close_up.size
    assert plates[0].box.area > 0.25 * width * height
    scene = _photo("multiple1.jpg", config)
    vehicles = VehicleDetector.from_config(config).detect(scene.image)
    on_cars = locator.locate(scene.image, vehicles)
    assert sum(p.vehicle_index is not None for p in on_cars) >= 2
    for plate in on_cars:
        assert plate.crop.ndim == 3 and plate.crop.shape[1] > plate.crop.shape[0]
        assert plate.quad.shape == (4, 2)


# -- bad models ---------------------------------------------------------------------------

ENTRY = """
[models.{id}]
kind = "vehicle_detector"
file = "{file}"
{sha}
input_size = [{size}, {size}]
layout = "{layout}"
labels = {{ 2 = "car", 3 = "motorcycle", 5 = "bus", 7 = "truck" }}
"""


def _catalog(tmp_path: Path, model_id: str, file: str, size: int, layout: str = "yolov8",
             sha256: str | None = None) -> Path:
    path = tmp_path / "models.toml"
    sha = f'sha256 = "{sha256}"' if sha256 else ""
    path.write_text(ENTRY.format(id=model_id, file=file, sha=sha, size=size, layout=layout),
                    encoding="utf-8")
    return path


def _load_error(config: GotchaConfig) -> str:
    with pytest.raises(ModelError) as info:
        VehicleDetector.from_config(config)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_missing_model_file(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, "ghost", "ghost-detector.onnx", 640)
    config = _config(tmp_path, catalog=catalog, vehicle_detector="ghost")
    message = _load_error(config)
    assert "ghost-detector.onnx" in message and "not found" in message


def test_truncated_model_file(tmp_path: Path, models_dir: Path) -> None:
    real = models_dir / "yolo11n-coco-int8-320.onnx"
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    catalog = _catalog(tmp_path, "cut", "cut.onnx", 320)  # no sha256 pinned: load must fail
    message = _load_error(_config(tmp_path, catalog=catalog, vehicle_detector="cut"))
    assert "not a loadable ONNX model" in message and "cut" in message
    # With the real file's sha256 pinned, the checksum catches it first and says so.
    catalog = _catalog(tmp_path, "cut", "cut.onnx", 320, sha256=file_sha256(real))
    message = _load_error(_config(tmp_path, catalog=catalog, vehicle_detector="cut"))
    assert "sha256" in message


def test_wrong_input_shape(tmp_path: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / "yolo11n-coco-int8-320.onnx", tmp_path / "y11.onnx")
    catalog = _catalog(tmp_path, "y11", "y11.onnx", 640)  # the export takes 320
    message = _load_error(_config(tmp_path, catalog=catalog, vehicle_detector="y11"))
    assert "input shape" in message and "320" in message


def test_wrong_output_layout(tmp_path: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / "yolo11n-coco-int8-320.onnx", tmp_path / "y11.onnx")
    catalog = _catalog(tmp_path, "y11", "y11.onnx", 320, layout="yolox")
    message = _load_error(_config(tmp_path, catalog=catalog, vehicle_detector="y11"))
    assert "output shape" in message and "yolox" in message


# -- gotcha process -----------------------------------------------------------------------

def _app():
    """The real `gotcha` entry point (every command module registered)."""
    from edge_agent.cli.main import app

    return app


@pytest.fixture()
def cli_env(models_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {"GOTCHA_MODEL_DIR": str(models_dir), "GOTCHA_MODELS__PLATE_READER": "ppocrv4-rec",
            "GOTCHA_STORE__PATH": str(tmp_path / "g.db"), "GOTCHA_CONFIG": ""}


def test_process_batch_with_a_corrupt_photo(tmp_path: Path, cli_env: dict[str, str]) -> None:
    need_rapidocr()
    app = _app()
    scenes = shared_path(SCENES)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((scenes / "dep1.jpg").read_bytes()[:600])  # a truncated JPEG
    args = ["process", str(scenes / "multiple1.jpg"), str(corrupt), str(scenes / "803.jpg")]
    result = CliRunner().invoke(app, args, env=cli_env)
    assert result.exit_code == 1, result.output
    assert "multiple1.jpg" in result.stdout and "803.jpg" in result.stdout
    assert "vehicle 0" in result.stdout and "plate" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "corrupt.jpg" in errors[0]

    import json

    result = CliRunner().invoke(app, [*args, "--json"], env=cli_env)
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    by_name = {Path(r["file"]).name: r for r in rows}  # the lifecycle orders by capture time
    assert {name: r["ok"] for name, r in by_name.items()} == {
        "multiple1.jpg": True, "corrupt.jpg": False, "803.jpg": True}
    scene, close_up = by_name["multiple1.jpg"], by_name["803.jpg"]
    assert scene["vehicles"] and scene["plates"] and "captured_at" in scene["meta"]
    assert close_up["plates"][0]["read"] is not None
    assert "truncated" in by_name["corrupt.jpg"]["error"]


def test_process_exit_2_when_a_model_is_broken(tmp_path: Path, cli_env: dict[str, str],
                                               models_dir: Path) -> None:
    """Present but damaged is an error (an absent file would be left out with a note)."""
    app = _app()
    data = (models_dir / "yolox-nano-coco.onnx").read_bytes()
    (tmp_path / "yolox-nano-coco.onnx").write_bytes(data[: len(data) // 2])
    env = {**cli_env, "GOTCHA_MODEL_DIR": str(tmp_path),
           "GOTCHA_MODELS__VEHICLE_DETECTOR": "yolox-nano-coco"}
    photo = shared_path(SCENES) / "803.jpg"
    result = CliRunner().invoke(app, ["process", str(photo)], env=env)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: model yolox-nano-coco")
    assert "sha256" in errors[0]


def test_process_photos_calls_the_hook_for_good_photos_only(models_dir: Path,
                                                            tmp_path: Path) -> None:
    from edge_agent.cli.process import process_photos
    from edge_agent.vision.pipeline import VisionPipeline

    config = _config(models_dir)
    pipeline = VisionPipeline.from_config(config, with_reader=False)
    scenes = shared_path(SCENES)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    seen: list[str] = []
    outcomes = list(process_photos([scenes / "805.jpg", empty, scenes / "eq6.jpg"], pipeline,
                                   on_result=lambda photo, result: seen.append(photo.path.name)))
    assert seen == ["805.jpg", "eq6.jpg"]
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert outcomes[1].error and "\n" not in outcomes[1].error
    assert outcomes[2].result is not None and outcomes[2].result.vehicles
