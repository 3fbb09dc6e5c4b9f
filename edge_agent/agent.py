"""The device agent: a processed photo in, sightings recorded and decided by the lifecycle.

``Agent.handle(photo, result)`` is the one seam between vision and the store: it keeps the
photo (content-addressed, before any row names it) when it holds at least one grammar-valid
plate, computes the scene signature around each plate's vehicle, and records one sighting
per plate. Photos without a valid plate are not kept (nothing to report, and privacy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import ConfigError, ModelMissingError
from edge_agent.lifecycle import Decision, Lifecycle, SceneVerdict
from edge_agent.plates.evidence import evidence_plates
from edge_agent.results import Box, PlateDetection
from edge_agent.store.records import Sighting
from edge_agent.store.store import Clock, Store, utc_now
from gotcha_contracts.rules import DEFAULT_RULES, Rules

if TYPE_CHECKING:
    from edge_agent.io.photo import Photo
    from edge_agent.vision.pipeline import PhotoResult
    from edge_agent.vision.scene import SceneMatcher

log = logging.getLogger(__name__)


def rules_from_config(config: GotchaConfig) -> Rules:
    """The shared rules with this device's overrides (config.rules) applied."""
    try:
        return DEFAULT_RULES.with_overrides(**config.rules.model_dump())
    except ValueError as exc:
        raise ConfigError(f"rules: {exc}") from exc


@dataclass(frozen=True)
class MatcherComparer:
    """Adapts SCENE's SceneMatcher to the lifecycle's byte-signature comparer."""

    matcher: SceneMatcher

    def compare_bytes(self, a: bytes | None, b: bytes | None) -> SceneVerdict:
        from edge_agent.vision.scene import SceneSignature

        if not a or not b:
            return SceneVerdict(0.0, False, None, "a photo has no scene signature")
        m = self.matcher.compare(SceneSignature.from_bytes(a), SceneSignature.from_bytes(b))
        return SceneVerdict(m.score, m.same_scene, m.vehicle_moved, m.reason)


def scene_matcher(config: GotchaConfig) -> SceneMatcher:
    """SCENE's matcher from config; geometry only when the embedding model file is absent.

    Without an embedding model, geometry alone decides (docs/design.md, section "Evidence
    rule"). A model that is present but broken still raises.
    """
    from edge_agent.vision.scene import SceneMatcher

    try:
        return SceneMatcher.from_config(config)
    except ModelMissingError as exc:
        log.warning("scene embedder unavailable (%s); comparing scenes by geometry only", exc)
        return SceneMatcher(None, rules_from_config(config).scene_threshold)


def vehicle_box_for(plate: PlateDetection, vehicles: list, size: tuple[int, int]) -> Box:
    """The plate's vehicle box, or a car-sized box around the plate when no vehicle was found.

    Why: the scene signature masks the vehicle out of the background and checks it stayed put.
    A Korean plate is 52 cm wide on a car about 1.8 m wide and 1.5 m tall, so the car spans
    about 3.4 plate widths across and rises about 2.2 plate widths above its plate's centre:
    a plate-wide square at that centre grown 1.2 plate widths to each side, 1.7 up, 0.2 down.
    """
    if plate.vehicle_index is not None and 0 <= plate.vehicle_index < len(vehicles):
        return vehicles[plate.vehicle_index].box
    cx, cy = plate.box.center
    half = plate.box.width / 2
    square = Box(cx - half, cy - half, cx + half, cy + half)
    return Detections.from_boxes([square]).grow(1.2, (1.7, 0.2), *size).box(0)


class Agent:
    """Pipeline results -> lifecycle. Open with :meth:`open`; close when done."""

    def __init__(self, config: GotchaConfig, store: Store, lifecycle: Lifecycle,
                 matcher: SceneMatcher) -> None:
        self.config = config
        self.store = store
        self.lifecycle = lifecycle
        self.matcher = matcher

    @classmethod
    def open(cls, config: GotchaConfig, matcher: SceneMatcher | None = None,
             models: dict[str, str | None] | None = None, clock: Clock = utc_now) -> Agent:
        """Store + lifecycle + scene matcher for this device. ``models``: the model ids the
        pipeline really uses (default: the configured ones), recorded in each manifest."""
        matcher = matcher or scene_matcher(config)
        store = Store.open(config.store, clock=clock)
        used = models or {"vehicle_detector": config.models.vehicle_detector,
                          "plate_reader": config.models.plate_reader}
        used = {**used, "scene_embedder": matcher.model_id}
        try:
            lifecycle = Lifecycle(store, rules_from_config(config), config.device.zone,
                                  MatcherComparer(matcher), clock=clock,
                                  low_char_confidence=config.plates.one_char_unsure,
                                  high_char_confidence=config.plates.one_char_sure,
                                  models=used)
        except ValueError as exc:
            store.close()
            raise ConfigError(f"device.zone: {exc}") from exc
        return cls(config, store, lifecycle, matcher)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, photo: Photo, result: PhotoResult) -> list[Decision]:
        """Record every grammar-valid plate of one processed photo; one decision per plate."""
        plates = evidence_plates(result, self.config.plates)
        if not plates:
            return []
        self.store.evict(incoming_bytes=len(photo.data))
        sha = self.store.put_photo(photo.data)
        meta = photo.meta
        signatures: dict[tuple[float, ...], bytes] = {}
        decisions = []
        for plate in plates:
            assert plate.read is not None and plate.read.text is not None
            vbox = vehicle_box_for(plate, result.vehicles, photo.size)
            key = tuple(vbox.as_list())
            if key not in signatures:
                signatures[key] = self.matcher.signature(photo.image, vbox).to_bytes()
            sighting = Sighting(
                device_id=self.config.device.id, photo_sha256=sha,
                captured_at=meta.captured_at, plate=plate.read.text,
                plate_raw=plate.read.raw_text, char_confidences=plate.read.char_confidences,
                plate_box=plate.box, location=meta.location, vehicle_box=vbox,
                scene_signature=signatures[key], time_source=meta.time_source,
                # people come from the vehicle detector: without one none were looked for,
                # so none are recorded (None) and the upload waits for fill-blur-boxes
                people_boxes=tuple(result.people) if self.config.models.vehicle_detector
                else None,
                other_plate_boxes=tuple(p.box for p in result.plates if p is not plate))
            decision = self.lifecycle.record(sighting)
            log.info("%s: %s %s (%s)", meta.source_id, decision.plate, decision.action,
                     decision.reason)
            decisions.append(decision)
        return decisions


class LifecycleHook:
    """``process_photos(..., on_result=hook)``: records each processed photo's sightings and
    remembers the decisions per photo for the command's output."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.decisions: dict[str, list[Decision]] = {}

    @classmethod
    def open(cls, config: GotchaConfig) -> LifecycleHook:
        return cls(Agent.open(config))

    def in_capture_order(self, paths: list[Path]) -> list[Path]:
        """Oldest capture time first (EXIF, else file time), so candidates come before the
        photos that confirm them; unreadable files keep their place at the end."""
        from edge_agent.io.sources import capture_time_hint

        tz = self.agent.config.device.timezone
        hints = {p: capture_time_hint(p, tz) for p in paths}
        last = datetime.max.replace(tzinfo=UTC)
        order = sorted(range(len(paths)), key=lambda i: (hints[paths[i]] or last, i))
        return [paths[i] for i in order]

    def __call__(self, photo: Photo, result: PhotoResult) -> list[Decision]:
        decisions = self.agent.handle(photo, result)
        self.decisions[str(photo.path)] = decisions
        return decisions

    def lines(self, path: Path) -> list[str]:
        return [f"  -> {d.plate}: {d.action}"
                + (f" report {d.report_id[:8]}" if d.report_id else "") + f" ({d.reason})"
                for d in self.decisions.get(str(path), [])]

    def to_dicts(self, path: Path) -> list[dict[str, object]]:
        return [d.to_dict() for d in self.decisions.get(str(path), [])]

    def close(self) -> None:
        self.agent.close()
