"""What the service records of a raw photo: one sighting per plate sure enough to be evidence.

A sighting carries what the cloud needs to pair it with a later photo without calling the
service again (docs/design.md, "Cloud"): the normalised plate with one confidence per
character (for the shared plate identity), the vehicle and plate boxes, and the scene
embeddings of its signature (the scene with the vehicle masked out, and the vehicle crop).
"""

from __future__ import annotations

from typing import Any

from edge_agent.config import PlatesConfig
from edge_agent.plates.evidence import evidence_plates
from edge_agent.results import PhotoResult

EMBEDDING_DIGITS = 5


def _rounded(vector: Any) -> list[float] | None:
    if vector is None:
        return None
    return [round(float(v), EMBEDDING_DIGITS) for v in vector]


def sightings(photo: Any, result: PhotoResult, matcher: Any, rule: PlatesConfig
              ) -> list[dict[str, object]]:
    """The evidence plates of one processed photo as JSON-ready sightings.

    ``photo`` is an ``edge_agent.io.photo.Photo``, ``matcher`` a SceneMatcher (the caller
    holds its lock: it keeps per-call OpenCV state), ``rule`` the [plates] evidence rule.
    """
    from edge_agent.agent import vehicle_box_for

    out: list[dict[str, object]] = []
    for plate in evidence_plates(result, rule):
        read = plate.read
        assert read is not None and read.text is not None
        vbox = vehicle_box_for(plate, result.vehicles, photo.size)
        signature = matcher.signature(photo.image, vbox)
        out.append({
            "plate": read.text,
            "plate_raw": read.raw_text,
            "confidence": round(read.confidence, 4),
            "char_confidences": [round(c, 4) for c in read.char_confidences],
            "plate_box": plate.box.as_list(),
            "vehicle_box": vbox.as_list(),
            "scene_embedding": _rounded(signature.embedding),
            "vehicle_embedding": _rounded(signature.vehicle_embedding),
            "scene_model_id": signature.model_id,
        })
    return out
