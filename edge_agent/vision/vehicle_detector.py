"""Vehicles (and people, for the privacy blur) from a COCO YOLO export described in models.toml.

Why labels come from the catalog: another export (a fine-tuned model with other class ids) is a
models.toml change. People are detected in the same pass, because the uploader blurs them, but
they are never reported as vehicles.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import ModelError
from edge_agent.inference.catalog import ModelSpec, get_spec, load_catalog
from edge_agent.results import VEHICLE_CLASSES, Box, Vehicle
from edge_agent.vision.yolo import Detections
from edge_agent.vision.yolo_model import YoloModel

PERSON_CLASS_ID = 0  # COCO "person"; used when the catalog's labels do not name one
ROTATE_MIN_SIDE = 480  # rotated passes only for camera-sized frames, not small close-up crops


class VehicleDetector:
    """``detect(image) -> list[Vehicle]``; ``detect_people(image) -> list[Box]``."""

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
        self.last_turned = False  # the last photo's vehicles came from the rotated views

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

    def _split(self, found: Detections, min_score: float) -> tuple[list[Vehicle], list[Box]]:
        vehicles: list[Vehicle] = []
        people: list[Box] = []
        min_side = self.vision.min_vehicle_px
        for (x1, y1, x2, y2), score, cid in zip(found.boxes.tolist(), found.scores.tolist(),
                                                 found.classes.tolist(), strict=True):
            if score < min_score:
                continue
            box = Box(x1, y1, x2, y2)
            if cid == self.person_id and cid not in self.labels:
                people.append(box)
            elif min(box.width, box.height) >= min_side:
                vehicles.append(Vehicle(box=box, label=self.labels[cid],  # type: ignore[arg-type]
                                        score=float(score)))
        vehicles.sort(key=lambda v: v.score, reverse=True)
        return vehicles, people

    def _rotated(self, image_bgr: np.ndarray, ids: tuple[int, ...]) -> list[Vehicle]:
        """Vehicles seen with the photo turned 90 degrees each way, in upright coordinates.

        Fisheye and overhead views show parked cars lying sideways along the image edges,
        which a detector trained on upright photos misses.
        """
        height, width = image_bgr.shape[:2]
        found: list[Vehicle] = []
        for turn in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE):
            vehicles, _ = self._split(self._run(cv2.rotate(image_bgr, turn), ids), 0.0)
            for v in vehicles:
                b = v.box
                if turn == cv2.ROTATE_90_CLOCKWISE:  # rotated (x', y') = (h - y, x)
                    box = Box(b.y1, height - b.x2, b.y2, height - b.x1)
                else:  # rotated (x', y') = (y, w - x)
                    box = Box(width - b.y2, b.x1, width - b.y1, b.x2)
                found.append(Vehicle(box=box.clip(width, height), label=v.label, score=v.score))
        found.sort(key=lambda v: v.score, reverse=True)
        return found

    def detect_all(self, image_bgr: np.ndarray) -> tuple[list[Vehicle], list[Box]]:
        """Vehicles and people; one inference unless the photo shows no vehicle at first.

        Without a vehicle at ``vehicle_score``: the rotated views (when enabled), then the
        best candidate above ``vehicle_fallback_score`` (a close, partial or odd-angle car in
        a hand-held photo scores low but is still the subject).
        """
        ids = (*sorted(self.labels), self.person_id)
        self.last_turned = False
        low = min(self.vision.vehicle_fallback_score, self.vision.vehicle_score)
        found = self._run(image_bgr, ids, low)
        vehicles, people = self._split(found, self.vision.vehicle_score)
        if vehicles:
            return vehicles, people
        if self.vision.vehicle_rotate_fallback and min(image_bgr.shape[:2]) >= ROTATE_MIN_SIDE:
            vehicles = self._rotated(image_bgr, tuple(sorted(self.labels)))
            if vehicles:
                self.last_turned = True
                return vehicles, people
        weak, _ = self._split(found, low)
        return weak[:1], people

    def detect(self, image_bgr: np.ndarray) -> list[Vehicle]:
        """Cars, buses, trucks and motorcycles, best score first."""
        return self.detect_all(image_bgr)[0]

    def detect_people(self, image_bgr: np.ndarray) -> list[Box]:
        """People's boxes, for blurring them out of uploaded copies."""
        found = self._run(image_bgr, (self.person_id,))
        return [Box(*b) for b in found.boxes.tolist()]
