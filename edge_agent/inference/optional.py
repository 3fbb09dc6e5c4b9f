"""Optional models: a configured model whose file is not on this machine is left out, with a note.

Why: the default vehicle detector and scene embedder are downloads (`gotcha models fetch`),
and a device set up offline must still read plates. Each optional role has a way to work
without its model (whole-frame plate search, text detection, geometry alone), so a missing file
is one note at start, never a stop. Only absence degrades: a file that is present but damaged
(wrong sha256, not loadable) still fails at load with its own message. The plate reader and the
text detector are never optional (they ship with the repository and the rapidocr wheel).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from edge_agent.config import GotchaConfig
from edge_agent.inference.catalog import ModelSpec, load_catalog

log = logging.getLogger(__name__)

#: config.models field -> what still works without that model
WITHOUT = {
    "vehicle_detector": "plates are searched in the whole frame by the text detector "
                        "(no vehicle boxes)",
    "plate_detector": "the text detector finds the plates",
    "scene_embedder": "scenes are compared by geometry alone",
}


def what_still_works(role: str, config: GotchaConfig) -> str:
    """What the device does without the model of ``role`` (a key of WITHOUT)."""
    text = WITHOUT[role]
    upload = config.upload
    if role == "vehicle_detector" and upload.blur_people:
        text += ", and reports wait in the outbox (the privacy blur finds people with it)"
    return text


def absent_note(role: str, spec: ModelSpec, config: GotchaConfig) -> str:
    """One line: which model is not here, what still works, how to get it."""
    get = (f"`gotcha models fetch {spec.id}` adds it" if spec.url
           else f"copy {spec.file} into models.dir to add it")
    return (f"{role.replace('_', ' ')} {spec.id} is not on this machine: "
            f"{what_still_works(role, config)}; {get}")


def without_absent(config: GotchaConfig, roles: Iterable[str] = tuple(WITHOUT)
                   ) -> tuple[GotchaConfig, list[str]]:
    """A copy of ``config`` with each optional model whose file is absent set to none, and one
    note per model left out. An unknown id is left in place (loading names the error)."""
    catalog = load_catalog(config.models.catalog)
    cfg = config.model_copy(deep=True)
    notes: list[str] = []
    for role in roles:
        model_id = getattr(cfg.models, role)
        spec = catalog.get(model_id) if model_id else None
        if spec is not None and spec.find(cfg.models.dir) is None:
            setattr(cfg.models, role, None)
            notes.append(absent_note(role, spec, config))
    return cfg, notes


def usable_config(config: GotchaConfig) -> GotchaConfig:
    """``without_absent`` for the long-running commands (run, serve): each note is logged once
    as a warning, at start."""
    cfg, notes = without_absent(config)
    for note in notes:
        log.warning("%s", note)
    return cfg

