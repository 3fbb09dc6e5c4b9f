"""Recording, after the fact, what to blur in photos of sightings stored before schema 2.

Why: since schema 2 each sighting carries the people and other plates the pipeline found, and
the uploader blurs from those boxes without loading a model. A report confirmed by an older
agent and still waiting in the outbox has no boxes; the uploader refuses to send it unblurred.
`gotcha store fill-blur-boxes` runs the vision pipeline once over those photos and records the
boxes, so the report can leave, blurred.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge_agent.results import Box
from edge_agent.store.records import boxes_json
from edge_agent.store.store import Store

Finder = Callable[[str, bytes], tuple[Sequence[Box], Sequence[Box]]]
"""(photo sha256, photo bytes) -> (people boxes, every plate box) in the upright photo."""


def photos_missing_boxes(store: Store) -> dict[str, list[int]]:
    """Photo sha256 -> ids of its sightings with no blur boxes, for reports not yet uploaded."""
    rows = store.db.execute(
        "SELECT s.photo_sha256, s.id FROM sightings s JOIN outbox o ON o.report_id = s.report_id "
        "WHERE o.state != 'done' AND (s.people_boxes IS NULL OR s.other_plate_boxes IS NULL) "
        "ORDER BY s.id").fetchall()
    found: dict[str, list[int]] = {}
    for sha, sighting_id in rows:
        found.setdefault(sha, []).append(int(sighting_id))
    return found


def fill_blur_boxes(store: Store, find: Finder) -> int:
    """Record people and other plates for every sighting :func:`photos_missing_boxes` names;
    returns how many sightings got boxes. Each sighting's own plate is left out of its
    "other plates" (a located plate overlapping it by IoU >= 0.3 is that plate)."""
    done = 0
    for sha, ids in photos_missing_boxes(store).items():
        people, plates = find(sha, store.photos.read(sha))
        for sighting_id in ids:
            own = store.sighting(sighting_id).plate_box
            others = tuple(b for b in plates if b.iou(own) < 0.3)
            with store.transaction():
                store.db.execute(
                    "UPDATE sightings SET people_boxes = ?, other_plate_boxes = ? WHERE id = ?",
                    (boxes_json(tuple(people)), boxes_json(others), sighting_id))
            done += 1
    return done
