"""Vehicles (and people, for the privacy blur) from a COCO YOLO export described in models.toml.

Why labels come from the catalog: another export (a fine-tuned model with other class ids) is a
models.toml change. People are detected in the same pass, because the uploader blurs them, but
they are never reported as vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.detections import TURNS, Detections
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec, get_spec, load_catalog
from edge_agent.results import VEHICLE_CLASSES, Box, Vehicle
from edge_agent.vision.yolo_model import YoloModel

PERSON_CLASS_ID = 0  # COCO "person"; used when the catalog's labels do not name one
ROTATE_MIN_SIDE = 480  # rotated passes only for camera-sized frames, not small close-up crops


@dataclass(frozen=True, slots=True)
class VehicleFinding:
    """What the detector saw in one photo: vehicles best first, and people to blur.

    ``turned``: the vehicles were found with the photo turned 90 degrees (fisheye, overhead),
    so their plates lie sideways too; the plate locator is told so explicitly.
    """

    vehicles: tuple[Vehicle, ...] = ()
    people: tuple[Box, ...] = ()
    turned: bool = False


class VehicleDetector:
    """``detect_all(image) -> VehicleFinding``; ``detect(image) -> list[Vehicle]``;
    ``detect_people(image) -> list[Box]``."""

    def __init__(self, spec: ModelSpec, config: GotchaConfig) -> None:
        vehicle_ids = {cid: label for cid, label in spec.labels.items()
                       if label in VEHICLE_CLASSES}
        if not vehicle_ids:
            raise ModelError(f"model {spec.id}: its labels {spec.labels} name none of "
                             f"{', '.join(VEHICLE_CLASSES)}; fix labels in models.toml")
        self.spec = spec
        self.labels = vehicle_ids
        person = [cid for cid, label in spec.labels.items() if label == "person"]
        self.person_id = person[0] if person else PERSON_CLASS_ID
        self.vision = config.vision
        self.model = YoloModel(spec, config)

    @classmethod
    def from_config(cls, config: GotchaConfig) -> VehicleDetector:
        if not config.models.vehicle_detector:
            raise ModelError("no vehicle detector configured (models.vehicle_detector is "
                             "empty)")
        catalog = load_catalog(config.models.catalog)
        return cls(get_spec(catalog, config.models.vehicle_detector, "vehicle_detector"), config)

    @property
    def clock(self):
        return self.model.clock

    def _run(self, image_bgr: np.ndarray, class_ids: tuple[int, ...],
             score: float | None = None) -> Detections:
        return self.model.detect(image_bgr, score or self.vision.vehicle_score,
                                 self.vision.vehicle_nms_iou, class_ids)

    def _split(self, found: Detections, min_score: float) -> tuple[Detections, Detections]:
        """(vehicles, people) scoring at least ``min_score``; vehicles best first and large
        enough (``min_vehicle_px`` on both sides)."""
        found = found.scoring_at_least(min_score)
        person = (found.class_ids == self.person_id) & (self.person_id not in self.labels)
        vehicles = found[~person]
        large = np.minimum(vehicles.widths, vehicles.heights) >= self.vision.min_vehicle_px
        return vehicles[large].best_first(), found[person]

    def _vehicles(self, found: Detections) -> tuple[Vehicle, ...]:
        return tuple(Vehicle(box=box, label=self.labels[cid],  # type: ignore[arg-type]
                             score=score)
                     for box, score, cid in zip(found, found.scores.tolist(),
                                                found.class_ids.tolist(), strict=True))

    def _rotated(self, image_bgr: np.ndarray, ids: tuple[int, ...]) -> Detections:
        """Vehicles seen with the photo turned 90 degrees each way, in upright coordinates.

        Fisheye and overhead views show parked cars lying sideways along the image edges,
        which a detector trained on upright photos misses.
        """
        height, width = image_bgr.shape[:2]
        views = [self._split(self._run(cv2.rotate(image_bgr, turn), ids), 0.0)[0]
                 .from_rotated(turn, width, height) for turn in TURNS]
        return Detections.merge(views).best_first()

    def detect_all(self, image_bgr: np.ndarray) -> VehicleFinding:
        """Vehicles and people; one inference unless the photo shows no vehicle at first.

        Without a vehicle at ``vehicle_score``: the rotated views (when enabled), then the
        best candidate above ``vehicle_fallback_score`` (a close, partial or odd-angle car in
        a hand-held photo scores low but is still the subject).
        """
        ids = (*sorted(self.labels), self.person_id)
        low = min(self.vision.vehicle_fallback_score, self.vision.vehicle_score)
        found = self._run(image_bgr, ids, low)
        vehicles, people = self._split(found, self.vision.vehicle_score)
        seen_people = tuple(people)
        if len(vehicles):
            return VehicleFinding(self._vehicles(vehicles), seen_people)
        if self.vision.vehicle_rotate_fallback and min(image_bgr.shape[:2]) >= ROTATE_MIN_SIDE:
            turned = self._rotated(image_bgr, tuple(sorted(self.labels)))
            if len(turned):
                return VehicleFinding(self._vehicles(turned), seen_people, turned=True)
        weak, _ = self._split(found, low)
        return VehicleFinding(self._vehicles(weak[:1]), seen_people)

    def detect(self, image_bgr: np.ndarray) -> list[Vehicle]:
        """Cars, buses, trucks and motorcycles, best score first."""
        return list(self.detect_all(image_bgr).vehicles)

    def detect_people(self, image_bgr: np.ndarray) -> list[Box]:
        """People's boxes, for blurring them out of uploaded copies."""
        found = self._run(image_bgr, (self.person_id,))
        return list(found)
