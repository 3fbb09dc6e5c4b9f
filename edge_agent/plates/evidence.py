"""Which reads of a photo are evidence: one rule for the device and the service.

Why a confidence floor: decoding constrained by the grammar always yields a well-formed plate,
even from a blurred one, so well-formed alone is no proof the plate was read.
"""

from __future__ import annotations

import logging

from edge_agent.results import PhotoResult, PlateDetection

log = logging.getLogger(__name__)


def evidence_plates(result: PhotoResult, floor: float) -> list[PlateDetection]:
    """Grammar-valid reads whose weakest part reaches ``floor`` (plates.evidence_floor),
    surest first, one per plate text (the same plate twice in one photo keeps its surest)."""
    plates = []
    for plate in result.plates:
        read = plate.read
        if read is None or not read.valid or not read.text:
            continue
        if read.confidence < floor:
            log.info("%s: %s not recorded: read confidence %.2f < %.2f",
                     result.photo_meta.source_id, read.text, read.confidence, floor)
            continue
        plates.append(plate)
    plates.sort(key=lambda p: -p.read.confidence)  # type: ignore[union-attr]
    seen: set[str] = set()
    unique = []
    for plate in plates:
        assert plate.read is not None and plate.read.text is not None
        if plate.read.text not in seen:
            seen.add(plate.read.text)
            unique.append(plate)
    return unique
