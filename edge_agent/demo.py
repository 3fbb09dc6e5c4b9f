"""`gotcha demo`: one parked car photographed twice, 70 s apart, through the whole device path.

Why synthetic: the demo must run on a fresh machine with nothing but the package and its
bundled plate recogniser, so it draws its own street (textured buildings, kerb, road marks),
a car, and a Korean plate from gotcha_train.synth, writes EXIF time and GPS with piexif, and
then does exactly what `gotcha process` does: decode, vision pipeline, lifecycle, store.
Models that are not on this machine are left out the way the configuration allows: no
vehicle detector -> whole-frame plate search; no plate detector -> PaddleOCR text detection
(rapidocr); no scene embedder -> geometry alone decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.errors import ConfigError, ModelError
from edge_agent.lifecycle import Decision
from edge_agent.results import GeoPoint
from edge_agent.store.records import Report

log = logging.getLogger(__name__)

DEMO_PLATE = "123가4567"
DEMO_PLACE = GeoPoint(37.5663, 126.9779, 4.0)  # a kerb near Seoul City Hall
DEMO_GAP_S = 70.0
SIZE = (1280, 720)


@dataclass
class DemoRun:
    """What the demo did, for the CLI to show."""

    folder: Path
    photos: list[Path]
    notes: list[str] = field(default_factory=list)
    decisions: list[list[Decision]] = field(default_factory=list)
    reads: list[list[str]] = field(default_factory=list)
    report: Report | None = None
    exported: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------ the scene


def _street(rng: np.random.Generator) -> np.ndarray:
    """A textured street without the car (BGR, SIZE), drawn a bit larger than the frame so
    the second photo can be a slightly shifted view of the same place."""
    w, h = SIZE[0] + 40, SIZE[1] + 40
    img = np.zeros((h, w, 3), np.uint8)
    sky = np.linspace(235, 170, 200, dtype=np.float32)
    img[:200] = np.stack([sky, sky * 0.92, sky * 0.8], axis=1)[:, None, :].astype(np.uint8)
    x = 0
    while x < w:  # buildings with windows, signs and bricks: corners for ORB
        bw = int(rng.integers(120, 260))
        top = int(rng.integers(40, 170))
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(img, (x, top), (x + bw, 430), colour, -1)
        for wy in range(top + 15, 410, 38):
            for wx in range(x + 12, x + bw - 24, 34):
                shade = tuple(int(c) for c in rng.integers(20, 230, 3))
                cv2.rectangle(img, (wx, wy), (wx + 18, wy + 22), shade, -1)
                cv2.rectangle(img, (wx, wy), (wx + 18, wy + 22), (30, 30, 30), 1)
        if rng.random() < 0.6:  # a shop sign with a logo (no letters: text is plate-like)
            sy = int(rng.integers(top + 10, 380))
            cv2.rectangle(img, (x + 10, sy), (x + bw - 10, sy + 26),
                          tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
            cv2.circle(img, (x + 26, sy + 13), 9, (255, 255, 255), -1)
            cv2.line(img, (x + 44, sy + 13), (x + bw - 24, sy + 13), (255, 255, 255), 2)
        x += bw + int(rng.integers(4, 20))
    img[430:470] = (150, 155, 160)  # sidewalk with paving joints
    for px in range(0, w, 46):
        cv2.line(img, (px, 430), (px - 10, 470), (110, 115, 120), 2)
    img[470:478] = (200, 200, 205)  # kerb
    img[478:] = (78, 80, 84)  # road
    for lx in range(20, w, 180):
        cv2.rectangle(img, (lx, 690), (lx + 90, 700), (220, 220, 220), -1)
    for _ in range(400):  # grit on road and sidewalk
        cx, cy = int(rng.integers(0, w)), int(rng.integers(430, h))
        c = int(rng.integers(40, 200))
        cv2.circle(img, (cx, cy), int(rng.integers(1, 4)), (c, c, c), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _car(img: np.ndarray, plate: np.ndarray, x: int, y: int) -> None:
    """A car seen from the front, 640 px wide, (x, y) = top-left of its body; the plate on
    the bumper in real proportion (a 52 cm plate on a 1.8 m wide car)."""
    body = (40, 40, 170)
    cv2.rectangle(img, (x + 80, y - 120), (x + 560, y), (35, 35, 150), -1)  # cabin
    cv2.rectangle(img, (x + 105, y - 105), (x + 535, y - 10), (90, 70, 50), -1)  # windscreen
    cv2.line(img, (x + 140, y - 95), (x + 230, y - 20), (150, 140, 130), 3)  # reflection
    for mx in (x + 40, x + 560):
        cv2.rectangle(img, (mx, y - 40), (mx + 40, y - 10), (30, 30, 120), -1)  # mirrors
    cv2.rectangle(img, (x, y), (x + 640, y + 150), body, -1)
    cv2.rectangle(img, (x - 10, y + 150), (x + 650, y + 195), (30, 30, 30), -1)  # bumper
    for cx in (x + 75, x + 565):
        cv2.ellipse(img, (cx, y + 45), (55, 24), 0, 0, 360, (220, 230, 240), -1)  # lamps
    for gx in range(x + 190, x + 460, 22):
        cv2.line(img, (gx, y + 30), (gx, y + 85), (20, 20, 20), 3)  # grille
    for wx in (x + 30, x + 530):
        cv2.rectangle(img, (wx, y + 195), (wx + 80, y + 235), (15, 15, 15), -1)  # tyres
    ph, pw = plate.shape[:2]
    px, py = x + 320 - pw // 2, y + 100
    img[py:py + ph, px:px + pw] = plate


def demo_images(seed: int = 7, moved_px: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The two views of the parked car: the second one shifted 3 px, a little brighter,
    with fresh sensor noise (same spot, same car, a minute later). ``moved_px`` moves the car
    sideways in the second view (for the vehicle-moved case)."""
    try:
        from gotcha_train.synth import render_plate
    except ImportError as exc:  # Pillow draws the Hangul glyphs; it is a dev/train extra
        raise ConfigError(f"gotcha demo draws its plate with Pillow ({exc}); run "
                          "scripts/setup.sh or pip install pillow") from exc

    rng = np.random.default_rng(seed)
    street = _street(rng)
    plate = render_plate(DEMO_PLATE, "white8", np.random.default_rng(seed), height=42)
    scenes = []
    for dx in (0, moved_px):
        scene = street.copy()
        _car(scene, plate, 340 + dx, 420)
        scenes.append(scene)
    views = []
    for scene, shift, gain in ((scenes[0], 0, 1.0), (scenes[1], 3, 1.06)):
        view = scene[20 + shift:20 + shift + SIZE[1], 20 + shift:20 + shift + SIZE[0]]
        noisy = view.astype(np.float32) * gain + rng.normal(0, 2.0, view.shape)
        views.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return views[0], views[1]


def write_demo_photos(folder: Path, first_at: datetime, moved_px: int = 0) -> list[Path]:
    """Two JPEGs with EXIF time (70 s apart) and GPS, written into ``folder``."""
    from edge_agent.io.exif import write_exif

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(demo_images(moved_px=moved_px)):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 93])
        if not ok:
            raise RuntimeError("OpenCV could not encode the demo photo")
        taken = first_at + timedelta(seconds=DEMO_GAP_S * index)
        path = folder / f"demo-{index + 1}.jpg"
        path.write_bytes(write_exif(data.tobytes(), taken, DEMO_PLACE, tz="Asia/Seoul"))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------ the run


def demo_config(config: GotchaConfig, folder: Path) -> tuple[GotchaConfig, list[str]]:
    """The config with the demo's own store, and optional models that are absent left out."""
    from edge_agent.inference.optional import without_absent

    cfg, notes = without_absent(config)
    cfg.store.path = folder / "gotcha.db"
    cfg.store.photo_dir = folder / "photos"
    cfg.upload.local_dir = folder / "outbox-store"
    cfg.device.zone = "sidewalk"
    return cfg, notes


def run_demo(config: GotchaConfig, folder: Path, now: datetime | None = None) -> DemoRun:
    """Make the photos, process them in time order, record them; export a confirmed report."""
    from edge_agent.agent import Agent
    from edge_agent.store.export import export_report
    from edge_agent.vision.pipeline import VisionPipeline

    folder.mkdir(parents=True, exist_ok=True)
    cfg, notes = demo_config(config, folder)
    first_at = (now or datetime.now(UTC)) - timedelta(seconds=DEMO_GAP_S + 30)
    stamp = first_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    photos = write_demo_photos(folder / "input" / stamp, first_at)
    run = DemoRun(folder=folder, photos=photos, notes=notes)
    try:
        pipeline = VisionPipeline.from_config(cfg)
    except ModelError as exc:
        raise ModelError(f"demo: {exc}") from exc
    models = {"vehicle_detector": cfg.models.vehicle_detector,
              "plate_reader": cfg.models.plate_reader}
    with Agent.open(cfg, models=models) as agent:
        for path in photos:
            photo, result = pipeline.process_path(path)
            run.reads.append([p.read.text or f"({p.read.raw_text})" for p in result.plates
                              if p.read is not None])
            run.decisions.append(agent.handle(photo, result))
        confirmed = sorted((d for ds in run.decisions for d in ds if d.action == "confirmed"),
                           key=lambda d: d.plate != DEMO_PLATE)
        if confirmed:
            report_id = confirmed[0].report_id
            assert report_id is not None
            run.report = agent.store.report(report_id)
            run.exported = export_report(agent.store, report_id,
                                         folder / "reports" / report_id, agent.lifecycle.rules)
    return run
