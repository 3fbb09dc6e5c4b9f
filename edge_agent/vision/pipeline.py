"""Photo in, vehicles and read plates out: detector -> plate locator -> reader -> grammar.

Why a pipeline object: models load once (checked and warmed up at start), and every photo
gets the same stages with their wall times and the bare model times (read off each model's
ModelRunner clock), so the benchmark can see how much the glue around the models costs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

from edge_agent.config import GotchaConfig
from edge_agent.inference.runner import ModelRunner
from edge_agent.plates.agreement import BatchReader, read_plates
from edge_agent.plates.locate import LocatedPlate, PlateLocator
from edge_agent.results import PhotoResult, PlateDetection, PlateRead
from edge_agent.vision.vehicle_detector import VehicleDetector, VehicleFinding

log = logging.getLogger(__name__)

STAGES = ("decode", "vehicle", "plate_locate", "plate_read", "total")


class PlateReader(BatchReader, Protocol):
    runner: ModelRunner  # its model, whose clock holds the reader's bare inference time


class VisionPipeline:
    """``process(photo) -> PhotoResult``; ``process_path(path)`` also times the decode."""

    def __init__(self, config: GotchaConfig, detector: VehicleDetector | None,
                 locator: PlateLocator, reader: PlateReader | None) -> None:
        self.config = config
        self.detector = detector
        self.locator = locator
        self.reader = reader

    @classmethod
    def from_config(cls, config: GotchaConfig, *, with_reader: bool = True) -> VisionPipeline:
        """Load every configured model (ModelError / ConfigError on any problem)."""
        detector = (VehicleDetector.from_config(config) if config.models.vehicle_detector
                    else None)
        locator = PlateLocator.from_config(config)
        reader = None
        if with_reader:
            from edge_agent.plates.reader import KoreanPlateReader

            reader = KoreanPlateReader.from_config(config)
        return cls(config, detector, locator, reader)

    def clocks(self) -> dict[str, float]:
        """Bare inference ms so far, per stage, from the models' runners (monotonic; diff two
        snapshots)."""
        return {
            "vehicle": self.detector.clock.total_ms if self.detector else 0.0,
            "plate_locate": self.locator.inference_ms(),
            "plate_read": self.reader.runner.clock.total_ms if self.reader is not None else 0.0,
        }

    def process_path(self, path: Path) -> tuple[Any, PhotoResult]:
        """Load (BadInputError on a bad file) and process one photo: (photo, result)."""
        from edge_agent.io.photo import load_photo

        start = time.perf_counter()
        photo = load_photo(path, self.config)
        decode_ms = (time.perf_counter() - start) * 1000.0
        return photo, self.process(photo, decode_ms=decode_ms)

    def process(self, photo: Any, decode_ms: float = 0.0) -> PhotoResult:
        """Vehicles, plates and their reads for a decoded photo (``edge_agent.io.photo.Photo``)."""
        image = photo.image
        before = self.clocks()
        t0 = time.perf_counter()
        found = (self.detector.detect_all(image) if self.detector is not None
                 else VehicleFinding())
        t1 = time.perf_counter()
        located = self.locator.locate(image, found.vehicles, turned=found.turned)
        t2 = time.perf_counter()
        reads = self._read(located)
        t3 = time.perf_counter()
        plates = [PlateDetection(box=p.box, score=p.score, read=r, vehicle_index=p.vehicle_index)
                  for p, r in zip(located, reads, strict=True)]
        after = self.clocks()
        timings = {
            "decode": decode_ms,
            "vehicle": (t1 - t0) * 1000.0,
            "plate_locate": (t2 - t1) * 1000.0,
            "plate_read": (t3 - t2) * 1000.0,
        }
        timings["total"] = decode_ms + (t3 - t0) * 1000.0
        inference = {k: after[k] - before[k] for k in after}
        inference["total"] = sum(inference.values())
        height, width = image.shape[:2]
        return PhotoResult(photo_meta=photo.meta, image_size=(int(width), int(height)),
                           vehicles=list(found.vehicles), plates=plates, timings_ms=timings,
                           people=list(found.people), inference_ms=inference)

    def _read(self, located: list[LocatedPlate]) -> list[PlateRead | None]:
        if self.reader is None or not located:
            return [None] * len(located)
        return list(read_plates(self.reader, [p.crop for p in located], self.config.plates))
