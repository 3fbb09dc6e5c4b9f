"""Everything one confirmed report uploads: its two photos (checked) and its manifest.

Why one function for the uploader and for `gotcha reports export`: what leaves the device must
be exactly the evidence the store holds, and the manifest must be the same bytes on every
retry (S3 keys and contents are deterministic, so a retry overwrites, never duplicates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError, StoreError
from edge_agent.lifecycle import plate_char_confidences
from edge_agent.store.records import Report, Sighting
from edge_agent.store.store import Store
from gotcha_contracts.manifest_build import build_manifest, manifest_bytes
from gotcha_contracts.rules import DEFAULT_RULES, Rules
from gotcha_contracts.s3_layout import report_prefix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportBundle:
    """photo-1 is the earlier photo, photo-2 the confirming one."""

    report: Report
    sightings: tuple[Sighting, Sighting]
    photo_paths: tuple[Path, Path]
    manifest: dict[str, Any]

    @property
    def prefix(self) -> str:
        assert self.report.confirmed_at is not None
        return report_prefix(self.report.device_id, self.report.confirmed_at,
                             self.report.report_id)

    @property
    def manifest_bytes(self) -> bytes:
        return manifest_bytes(self.manifest)

    def photo_bytes(self, index: int) -> bytes:
        return self.photo_paths[index].read_bytes()


def _embedding(s: Sighting) -> list[float] | None:
    if not s.scene_signature:
        return None
    from edge_agent.vision.scene import SceneSignature  # numpy/opencv only when needed

    try:
        return SceneSignature.from_bytes(s.scene_signature).embedding_list()
    except BadInputError as exc:
        log.warning("sighting %s: %s; manifest carries no embedding", s.id, exc)
        return None


def _plate_char_confidences(report: Report, first: Sighting, second: Sighting) -> list[float]:
    """Per character of the report's plate, the weakest of the reads that gave that plate."""
    reads = [plate_char_confidences(s) for s in (first, second) if s.plate == report.plate]
    if not reads:  # cannot happen (the plate is one of the reads); assume the weakest
        return [first.plate_confidence] * len(report.plate)
    return [min(column) for column in zip(*reads, strict=True)]


def report_bundle(store: Store, report_id: str, rules: Rules = DEFAULT_RULES) -> ReportBundle:
    """The checked photos and the manifest of a confirmed (or uploaded) report.

    ``rules``: the rules the device runs (``rules_from_config``), named in the manifest.
    """
    report = store.report(report_id)
    if report.state not in ("confirmed", "uploaded") or report.confirmed_at is None:
        raise StoreError(f"report {report.report_id} is {report.state}; only confirmed reports "
                         "have evidence to upload or export")
    first = store.sighting(report.first_sighting_id)
    second = store.sighting(report.confirming_sighting_id)  # type: ignore[arg-type]
    paths = []
    for s in (first, second):
        if not store.photos.verify(s.photo_sha256):
            raise StoreError(f"photo {store.photos.path(s.photo_sha256)} of report "
                             f"{report.report_id} is missing or altered; restore it from a "
                             "backup")
        paths.append(store.photos.path(s.photo_sha256))
    same_plate = [s.plate_confidence for s in (first, second) if s.plate == report.plate]
    photos = [{"sha256": s.photo_sha256, "captured_at": s.captured_at, "location": s.location,
               "vehicle_box": s.vehicle_box, "plate_box": s.plate_box,
               "scene_embedding": _embedding(s)} for s in (first, second)]
    manifest = build_manifest(
        report_id=report.report_id, device_id=report.device_id, plate=report.plate,
        plate_confidence=min(same_plate) if same_plate else first.plate_confidence,
        plate_char_confidences=_plate_char_confidences(report, first, second),
        zone=report.zone, first_seen_at=report.first_seen_at,
        confirmed_at=report.confirmed_at, photos=photos, scene_score=report.scene_score or 0.0,
        distance_m=report.distance_m, rules=rules, models=report.models)
    return ReportBundle(report, (first, second), (paths[0], paths[1]), manifest)
