"""The service's request logic, apart from HTTP: models, budget checks, sightings, S3 fetches.

``pipeline`` and ``matcher`` keep small per-call state (timing clocks, OpenCV feature objects),
so each is used by one request at a time behind its lock; the web layer runs these calls in
its bounded worker pool, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge_agent import __version__
from edge_agent.config import GotchaConfig
from edge_agent.errors import BadInputError
from edge_agent.results import Box
from edge_agent.service.budget import check_decode_budget
from edge_agent.service.sightings import sightings

log = logging.getLogger(__name__)


class S3ReferenceError(BadInputError):
    """An S3 reference the service will not or cannot fetch (bucket not allowed, missing)."""


@dataclass(frozen=True)
class Hints:
    """What the caller already knows of a photo (its own EXIF reading, its device)."""

    device_id: str | None = None
    captured_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None


@dataclass
class VisionService:
    """The loaded models and what a request does with them."""

    config: GotchaConfig
    pipeline: Any  # edge_agent.vision.pipeline.VisionPipeline
    matcher: Any  # edge_agent.vision.scene.SceneMatcher
    started: float = field(default_factory=time.time)
    _pipeline_lock: threading.Lock = field(default_factory=threading.Lock)
    _matcher_lock: threading.Lock = field(default_factory=threading.Lock)
    _s3: Any = None

    @classmethod
    def from_config(cls, config: GotchaConfig) -> VisionService:
        """Load every model now (ConfigError / ModelError), so a broken model stops the start;
        an optional model whose file is absent is left out with one warning."""
        from edge_agent.inference.optional import usable_config
        from edge_agent.vision.pipeline import VisionPipeline
        from edge_agent.vision.scene import SceneMatcher

        config = usable_config(config)
        return cls(config, VisionPipeline.from_config(config), SceneMatcher.from_config(config))

    def models(self) -> dict[str, str | None]:
        models = self.config.models
        return {"vehicle_detector": models.vehicle_detector,
                "plate_detector": models.plate_detector, "plate_reader": models.plate_reader,
                "scene_embedder": self.matcher.model_id}

    def health(self) -> dict[str, object]:
        return {"status": "ok", "version": __version__,
                "uptime_s": round(time.time() - self.started, 1), "models": self.models()}

    def decode(self, data: bytes, name: str) -> Any:
        """Budget check from the header, then decode (BadInputError / DecodeBudgetError)."""
        from edge_agent.io.photo import decode_photo

        if len(data) > self.config.service.max_photo_bytes:
            raise BadInputError(f"{name}: {len(data)} bytes, over service.max_photo_bytes "
                                f"({self.config.service.max_photo_bytes})")
        if data:
            check_decode_budget(data, self.config.service.max_decoded_bytes, name)
        return decode_photo(data, self.config, name=name)

    def process_metadata(self, data: bytes, name: str, hints: Hints | None = None,
                         timings: dict[str, float] | None = None) -> dict[str, object]:
        """Time, place, vehicles, plates and evidence sightings of one photo.

        ``hints`` (the caller's own reading) take precedence over the photo's EXIF;
        ``timings`` receives the seconds of each stage (decode, pipeline, sightings).
        """
        hints = hints or Hints()
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        photo = self.decode(data, name)
        t1 = time.perf_counter()
        with self._pipeline_lock:
            result = self.pipeline.process(photo, decode_ms=(t1 - t0) * 1000.0)
        t2 = time.perf_counter()
        with self._matcher_lock:
            found = sightings(photo, result, self.matcher, self.config.plates)
        t3 = time.perf_counter()
        timings.update({"decode": t1 - t0, "pipeline": t2 - t1, "sightings": t3 - t2})
        for stage, ms in result.timings_ms.items():
            if stage in ("vehicle", "plate_locate", "plate_read"):
                timings[stage] = ms / 1000.0
        answer = {"name": name, "sha256": photo.sha256, **result.to_dict(),
                  "device_id": hints.device_id, "sightings": found, "models": self.models()}
        _apply_hints(answer["meta"], hints)  # type: ignore[arg-type]
        return answer

    def compare_background(self, image_a: bytes, image_b: bytes, box_a: list[float] | None,
                           box_b: list[float] | None) -> dict[str, object]:
        """Scene match of two photos (vehicle boxes optional, one per photo)."""
        photo_a = self.decode(image_a, "image_a")
        photo_b = self.decode(image_b, "image_b")
        boxes = (_box(box_a, "box_a", photo_a.size), _box(box_b, "box_b", photo_b.size))
        with self._matcher_lock:
            sig_a = self.matcher.signature(photo_a.image, boxes[0])
            sig_b = self.matcher.signature(photo_b.image, boxes[1])
            match = self.matcher.compare(sig_a, sig_b)
        return {"match": match.to_dict(), "model_id": self.matcher.model_id,
                "images": [{"name": "image_a", "sha256": photo_a.sha256,
                            "size": list(photo_a.size)},
                           {"name": "image_b", "sha256": photo_b.sha256,
                            "size": list(photo_b.size)}]}

    def fetch_s3(self, bucket: str, key: str) -> bytes:
        """The object's bytes, from an allowed bucket and within the photo size limit."""
        settings = self.config.service
        if bucket not in settings.s3_buckets:
            raise S3ReferenceError(f"bucket {bucket!r} is not one this service reads "
                                  "(service.s3_buckets); upload the photo instead")
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", region_name=settings.s3_region,
                                    endpoint_url=settings.s3_endpoint_url)
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
            if head["ContentLength"] > settings.max_photo_bytes:
                raise BadInputError(f"s3://{bucket}/{key}: {head['ContentLength']} bytes, over "
                                    f"service.max_photo_bytes ({settings.max_photo_bytes})")
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
            return body.read(settings.max_photo_bytes + 1)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                raise S3ReferenceError(f"s3://{bucket}/{key} does not exist") from None
            raise


def _apply_hints(meta: dict[str, object], hints: Hints) -> None:
    """The caller's time and place replace the photo's own in the answer's ``meta``."""
    if hints.captured_at is not None:
        meta["captured_at"] = hints.captured_at.isoformat()
        meta["time_source"] = "request"
    if hints.lat is not None and hints.lon is not None:
        meta["location"] = {"lat": hints.lat, "lon": hints.lon,
                            "accuracy_m": hints.accuracy_m, "altitude_m": None}
        meta["location_source"] = "request"


def _box(value: list[float] | None, name: str, size: tuple[int, int]) -> Box | None:
    """``[x1, y1, x2, y2]`` inside the upright photo, or None; BadInputError otherwise."""
    if value is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in value)
    width, height = size
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise BadInputError(f"{name}: box {list(value)} is not inside the {width}x{height} "
                            "photo (x1<x2, y1<y2, upright pixel coordinates)")
    return Box(x1, y1, x2, y2)
