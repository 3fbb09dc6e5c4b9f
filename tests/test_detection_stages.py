"""Stages hand their detections over explicitly: whether the vehicles came from the rotated
views travels in the detector's result to the plate locator (no state left on the detector),
and the car-sized box around a lone plate is one grow. Stub models, no model files."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest

from edge_agent.agent import vehicle_box_for
from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.results import Box, PhotoMeta, PlateDetection, Vehicle
from edge_agent.vision.pipeline import VisionPipeline
from edge_agent.vision.vehicle_detector import VehicleDetector, VehicleFinding
from edge_agent.vision.yolo_model import InferenceClock

WIDTH, HEIGHT = 800, 600
CAR_ID = 2


class SidewaysCarModel:
    """A detector that sees a car only in the photo turned clockwise (a marker pixel at the
    photo's top left lands at the turned view's top right), and an upright car when asked to."""

    def __init__(self, upright: bool) -> None:
        self.upright = upright
        self.clock = InferenceClock()

    def detect(self, image: np.ndarray, score: float, iou: float,
               class_ids: tuple[int, ...] | None = None) -> Detections:
        height, width = image.shape[:2]
        if self.upright and (width, height) == (WIDTH, HEIGHT):
            return Detections(np.array([[100, 100, 300, 250]]), [0.9], [CAR_ID])
        if (width, height) == (HEIGHT, WIDTH) and image[0, -1].any():
            return Detections(np.array([[100, 200, 300, 260]]), [0.8], [CAR_ID])
        return Detections.empty()


def _detector(upright: bool) -> VehicleDetector:
    detector = VehicleDetector.__new__(VehicleDetector)  # a stub model instead of a file
    detector.labels = {CAR_ID: "car"}
    detector.person_id = 0
    detector.vision = GotchaConfig().vision
    detector.model = SidewaysCarModel(upright)  # type: ignore[assignment]
    return detector


def _photo() -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[0, 0] = 255
    return image


@pytest.mark.parametrize(("upright", "turned", "box"), [
    (True, False, Box(100, 100, 300, 250)),
    # turned clockwise (x', y') = (h - y, x): the view's box maps back to x = y', y = h - x'
    (False, True, Box(200, HEIGHT - 300, 260, HEIGHT - 100)),
])
def test_the_detector_says_whether_its_vehicles_came_from_a_turned_view(
        upright: bool, turned: bool, box: Box) -> None:
    detector = _detector(upright)
    found = detector.detect_all(_photo())
    assert found.turned is turned
    assert [v.box for v in found.vehicles] == [box]
    assert not hasattr(detector, "last_turned")
    again = detector.detect_all(_photo())
    assert again == found  # nothing carried over from one photo to the next


class RecordingLocator:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Vehicle, ...], bool]] = []

    def locate(self, image: np.ndarray, vehicles, turned: bool = False) -> list:
        self.calls.append((tuple(vehicles), turned))
        return []

    def inference_ms(self) -> float:
        return 0.0


@pytest.mark.parametrize("turned", [False, True])
def test_the_pipeline_passes_turned_to_the_locator(turned: bool) -> None:
    car = Vehicle(Box(1, 2, 40, 50), "car", 0.9)
    finding = VehicleFinding((car,), (Box(5, 5, 9, 20),), turned=turned)
    detector = SimpleNamespace(detect_all=lambda image: finding, clock=InferenceClock())
    locator = RecordingLocator()
    pipeline = VisionPipeline(GotchaConfig(), detector, locator, None)  # type: ignore[arg-type]
    meta = PhotoMeta(datetime.now(UTC), None, "device", "none", "stub")
    result = pipeline.process(SimpleNamespace(image=_photo(), meta=meta))
    assert locator.calls == [((car,), turned)]
    assert result.vehicles == [car] and result.people == [Box(5, 5, 9, 20)]


@pytest.mark.parametrize(("plate", "size", "expected"), [
    # 50 px plate centred at (125, 207.5): 1.7 widths each side, 2.2 up, 0.7 down
    (Box(100, 200, 150, 215), (1000, 1000), Box(40, 97.5, 210, 242.5)),
    (Box(0, 10, 20, 16), (100, 40), Box(0, 0, 44, 27)),  # cut to the photo
])
def test_a_lone_plate_gets_a_car_sized_box(plate: Box, size: tuple[int, int],
                                           expected: Box) -> None:
    lone = PlateDetection(box=plate, score=0.8)
    got = vehicle_box_for(lone, [], size)
    assert got.as_list() == pytest.approx(expected.as_list())


def test_a_plate_on_a_vehicle_gets_the_vehicle_box() -> None:
    car = Vehicle(Box(10, 10, 90, 70), "car", 0.9)
    on_car = PlateDetection(box=Box(40, 50, 60, 56), score=0.8, vehicle_index=0)
    assert vehicle_box_for(on_car, [car], (100, 100)) == car.box
