"""The photos a soak feeds the agent: real scenes re-encoded with the EXIF time and GPS that
make reports confirm, repeat and expire, and what the store must hold once they are all in.

A *case* is one parked car at its own spot (spots are about 110 m apart, so cases never meet):
``confirm`` is two photos 70 s apart (a report confirmed, then uploaded) and sometimes a third
400 s after the first (a duplicate); ``expire`` is one photo three hours old (a candidate that
the next photo's time expires); ``noise`` is a photo with no plate sure enough to record;
``corrupt`` is a real photo cut short with an end marker added (refused). Capture times are
set when a photo is written, relative to the wall clock, so every time is in the past and a
confirming photo always falls inside its candidate's window.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.io.exif import write_exif
from edge_agent.io.photo import decode_photo
from edge_agent.results import GeoPoint

CONFIRM_GAP_S = 70.0  # the zone is sidewalk: at least 60 s between the two photos
DUPLICATE_AFTER_S = 400.0
CASE_LEAD_S = 600.0  # a case's first photo is taken this long before it is fed
EXPIRE_AGE = timedelta(hours=3)  # older than the 2 h window: the candidate expires
MAX_SIDE = 1600
QUALITY = 92  # one quality: a case's photos have the same pixels (and the same reads)


@dataclass(frozen=True)
class Source:
    """A real photo, downscaled, with what the pipeline reads on it (None: noise)."""

    name: str
    image: np.ndarray
    plate: str | None


@dataclass(frozen=True)
class Shot:
    """One photo of the plan: which case, which role, which source, taken when."""

    index: int
    case: int
    role: str  # a, b, dup, expire, noise, corrupt
    source: str
    spot: int


@dataclass
class Plan:
    shots: list[Shot]
    bases: dict[int, datetime] = field(default_factory=dict)  # case -> first photo's time

    def expected(self) -> dict[str, int]:
        """What the store must hold once every photo is in."""
        roles = Counter((s.case, s.role) for s in self.shots)
        cases = {s.case for s in self.shots if s.role == "a"}
        confirmed = sum(1 for c in cases if roles[(c, "b")])
        return {"confirmed": confirmed, "candidates_left": len(cases) - confirmed,
                "expired": sum(1 for s in self.shots if s.role == "expire"),
                "duplicates": sum(1 for s in self.shots if s.role == "dup"),
                "refused": sum(1 for s in self.shots if s.role == "corrupt")}

    def photo_bytes(self, shot: Shot, sources: dict[str, Source], now: datetime) -> bytes:
        """The file for ``shot``, its EXIF time set against ``now`` (the moment it is fed)."""
        if shot.role == "a":
            self.bases[shot.case] = now - timedelta(seconds=CASE_LEAD_S)
        base = self.bases.get(shot.case, now - timedelta(seconds=CASE_LEAD_S))
        at = {"a": base, "b": base + timedelta(seconds=CONFIRM_GAP_S),
              "dup": base + timedelta(seconds=DUPLICATE_AFTER_S), "expire": now - EXPIRE_AGE
              }.get(shot.role, now - timedelta(seconds=60))
        data = encode(sources[shot.source].image, at, spot_location(shot.spot))
        if shot.role == "corrupt":
            return data[:len(data) * 6 // 10] + b"\xff\xd9"
        return data


def spot_location(spot: int) -> GeoPoint:
    return GeoPoint(37.40 + (spot // 100) * 0.001, 126.90 + (spot % 100) * 0.001, 5.0)


def encode(image: np.ndarray, at: datetime, where: GeoPoint) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    assert ok
    return write_exif(data.tobytes(), at, where)


def load_sources(folders: list[Path]) -> list[tuple[str, np.ndarray]]:
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*.jpg")):
            image = cv2.imread(str(path))
            if image is None:
                continue
            scale = MAX_SIDE / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            found.append((path.name, image))
    return found


def calibrate(candidates: list[tuple[str, np.ndarray]], config: GotchaConfig,
              plates_wanted: int, noise_wanted: int) -> list[Source]:
    """Read each candidate as the soak will encode it. A photo with exactly one plate read
    surely (a margin above the evidence floor) and a plate not taken yet is kept when two
    copies 70 s apart confirm a report (a car filling the frame leaves too little background
    to compare scenes, and never confirms); a photo with no plate near the floor is noise."""
    import tempfile

    from edge_agent.agent import Agent
    from edge_agent.vision.pipeline import VisionPipeline

    pipeline = VisionPipeline.from_config(config)
    floor = config.plates.evidence_floor
    sources: list[Source] = []
    plates: set[str] = set()
    noise = 0
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="soak-calibrate-") as folder:
        trial = config.model_copy(update={"store": config.store.model_copy(update={
            "path": Path(folder) / "g.db", "photo_dir": Path(folder) / "photos"})})
        with Agent.open(trial) as agent:
            for spot, (name, image) in enumerate(candidates):
                if len(plates) >= plates_wanted and noise >= noise_wanted:
                    break
                photo = decode_photo(encode(image, now, spot_location(spot)), config, name=name)
                result = pipeline.process(photo)
                reads = [p.read for p in result.plates if p.read and p.read.valid]
                sure = [r for r in reads if r.confidence >= floor + 0.1]
                doubtful = [r for r in reads if floor - 0.2 <= r.confidence < floor + 0.1]
                if not sure and not doubtful:
                    if noise < noise_wanted:
                        sources.append(Source(name, image, None))
                        noise += 1
                    continue
                if len(sure) != 1 or doubtful or sure[0].text in plates \
                        or len(plates) >= plates_wanted:
                    continue
                later = decode_photo(encode(image, now + timedelta(seconds=CONFIRM_GAP_S),
                                            spot_location(spot)), config, name=name)
                agent.handle(photo, result)
                decisions = agent.handle(later, pipeline.process(later))
                if [d.action for d in decisions] == ["confirmed"]:
                    plates.add(sure[0].text)
                    sources.append(Source(name, image, sure[0].text))
    return sources


def make_plan(photos: int, sources: list[Source], seed: int = 7) -> Plan:
    """``photos`` shots in blocks: two confirm cases interleaved, a duplicate of one, an
    expiring candidate, noise, and now and then a corrupt file."""
    rng = random.Random(seed)
    plated = [s.name for s in sources if s.plate]
    noisy = [s.name for s in sources if s.plate is None] or plated
    if not plated:
        raise SystemExit("soak: no source photo gives a sure plate read; check the models")
    shots: list[Shot] = []
    case = spot = 0

    def add(role: str, source: str, case_id: int, spot_id: int) -> None:
        shots.append(Shot(len(shots), case_id, role, source, spot_id))

    block = 0
    while len(shots) < photos:
        x, y = case, case + 1
        sx, sy = rng.choice(plated), rng.choice(plated)
        add("a", sx, x, spot)
        add("a", sy, y, spot + 1)
        add("noise", rng.choice(noisy), case + 2, spot + 2)
        add("b", sx, x, spot)
        add("expire", rng.choice(plated), case + 3, spot + 3)
        add("b", sy, y, spot + 1)
        add("dup", sx, x, spot)
        add("noise", rng.choice(noisy), case + 4, spot + 4)
        if block % 4 == 3:
            add("corrupt", rng.choice(plated), case + 5, spot + 5)
        case += 6
        spot += 6
        block += 1
    return Plan(shots[:photos])
