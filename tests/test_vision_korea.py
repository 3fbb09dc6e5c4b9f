"""The vision pipeline on the real Korean scenes of ../shared/data/scenes/korea-a.

Labels (tests/data/korea_a_labels.csv) were made by looking at every photo: shows_vehicle is 1
when a vehicle's body is substantially in view (not for hand-held plate close-ups), shows_plate
when a licence plate is visible, blurred or not. Goals from the issue: a vehicle found in >= 90 %
of the photos that show one, a plate box in >= 85 % of the photos that show a plate.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import REPO, shared_path

from edge_agent.config import GotchaConfig, load_config
from edge_agent.vision.pipeline import VisionPipeline

LABELS = REPO / "tests" / "data" / "korea_a_labels.csv"


def _labels() -> list[dict[str, str]]:
    with LABELS.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def korea_config(models_dir: Path) -> GotchaConfig:
    return load_config(None, environ={"GOTCHA_MODEL_DIR": str(models_dir)})


@pytest.fixture(scope="module")
def korea_results(korea_config: GotchaConfig) -> dict[str, object]:
    """Every labelled photo through the pipeline once (detector + locator; reading is OCR's)."""
    folder = shared_path("data/scenes/korea-a")
    pipeline = VisionPipeline.from_config(korea_config, with_reader=False)
    results = {}
    for row in _labels():
        _, result = pipeline.process_path(folder / row["file"])
        results[row["file"]] = result
    return results


def test_labels_cover_every_photo() -> None:
    folder = shared_path("data/scenes/korea-a")
    on_disk = {p.name for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}}
    labelled = {row["file"] for row in _labels()}
    assert labelled == on_disk
    for row in _labels():
        assert row["shows_vehicle"] in {"0", "1"} and row["shows_plate"] in {"0", "1"}


def test_vehicle_found_by_the_default_detector(korea_results: dict) -> None:
    """The permissive default (YOLOX-Nano, its test twin) falls short of the issue's 90 % goal:
    14 of 18 on 1 December 2026, missing the surround-view and steep-angle photos
    (KR_surround, surround2, angle7, angle8). This keeps it from getting worse."""
    rows = [r for r in _labels() if r["shows_vehicle"] == "1"]
    missed = [r["file"] for r in rows if not korea_results[r["file"]].vehicles]
    found = len(rows) - len(missed)
    assert len(rows) >= 10
    assert found >= 0.75 * len(rows), f"vehicle found in {found}/{len(rows)}; missed {missed}"


def test_vehicle_found_in_90_percent_by_yolov8n(korea_config: GotchaConfig) -> None:
    """The issue's goal, met by the AGPL-3.0 option yolov8n-coco (the former default)."""
    from edge_agent.io.photo import load_photo
    from edge_agent.vision.vehicle_detector import VehicleDetector

    config = korea_config.model_copy(deep=True)
    config.models.vehicle_detector = "yolov8n-coco"
    detector = VehicleDetector.from_config(config)
    folder = shared_path("data/scenes/korea-a")
    rows = [r for r in _labels() if r["shows_vehicle"] == "1"]
    missed = [r["file"] for r in rows
              if not detector.detect_all(load_photo(folder / r["file"], config).image).vehicles]
    found = len(rows) - len(missed)
    assert found >= 0.90 * len(rows), f"vehicle found in {found}/{len(rows)}; missed {missed}"


def test_plate_box_in_85_percent(korea_results: dict) -> None:
    rows = [r for r in _labels() if r["shows_plate"] == "1"]
    missed = [r["file"] for r in rows if not korea_results[r["file"]].plates]
    found = len(rows) - len(missed)
    assert found >= 0.85 * len(rows), f"plate box in {found}/{len(rows)}; missed {missed}"


def test_close_ups_are_searched_in_the_whole_frame(korea_results: dict) -> None:
    """Plate close-ups (no vehicle in view) still get plate boxes, owned by no vehicle."""
    close_ups = [r["file"] for r in _labels()
                 if r["shows_vehicle"] == "0" and r["shows_plate"] == "1"]
    with_plate = [f for f in close_ups if korea_results[f].plates]
    assert len(with_plate) >= 0.85 * len(close_ups)
    frame_owned = [f for f in with_plate
                   if any(p.vehicle_index is None for p in korea_results[f].plates)]
    assert frame_owned, "no close-up plate came from the whole-frame search"


def test_plates_on_street_scenes_belong_to_vehicles(korea_results: dict) -> None:
    """In a street scene the plates are found on the detected vehicles, inside their boxes."""
    for name in ("multiple1.jpg", "KR_multiple.jpg", "4vehicles.jpg"):
        result = korea_results[name]
        on_vehicles = [p for p in result.plates if p.vehicle_index is not None]
        assert len(on_vehicles) >= 2, (name, result.plates)
        # Seen from the front, plates are wider than tall (one at a steep angle may not be).
        assert sum(p.box.width > p.box.height for p in on_vehicles) >= 2, on_vehicles
        for plate in on_vehicles:
            vehicle = result.vehicles[plate.vehicle_index].box
            cx, cy = plate.box.center
            assert vehicle.x1 - 5 <= cx <= vehicle.x2 + 5 and vehicle.y1 - 5 <= cy <= vehicle.y2 + 5


def test_timings_and_json(korea_results: dict) -> None:
    import json

    result = korea_results["multiple1.jpg"]
    for stage in ("decode", "vehicle", "plate_locate", "plate_read", "total"):
        assert result.timings_ms[stage] >= 0
    assert result.timings_ms["total"] >= result.timings_ms["vehicle"]
    assert 0 < result.inference_ms["vehicle"] <= result.timings_ms["vehicle"]
    assert 0 < result.inference_ms["total"] <= result.timings_ms["total"]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["image_size"] == [1143, 711] and len(data["vehicles"]) >= 3
