"""Evaluation pairs for the scene matcher: real ones from fixed cameras, generated ones from photos.

Real: a folder of fixed-camera frames named by capture time with PKLot occupancy XML
(``<time>.xml``: spaces as rotated rectangles, occupied 0/1). A space occupied in both frames
is a same-spot positive (real light change and traffic around it); a space occupied in only one
frame is a vehicle-gone negative, the frame with the vehicle first whichever was taken first
(the device's first photo always shows the vehicle; the box, the space, is the same in both);
an occupied space against another occupied space of the other frame is an other-space
negative. Across days of one camera (folders named ``<camera>_<date>``), a space occupied on one
day and empty on another is a gone-other-day negative. Each real pair carries its day (the
frames' date; two dates joined by "~" across days), so calibration can hold days out.

Generated: from every other photo, with the largest detected vehicle as "the" vehicle:
positives after a small camera move (rotation, scale, perspective), light change, noise and JPEG,
one of them with a passer-by in front; negatives with the vehicle moved a few metres (its crop
shifted by 35-70 % of its width, the old place inpainted) and against another photo. All
randomness comes from one seeded generator.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import BadInputError
from edge_agent.results import Box

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
GEN_MAX_SIDE = 1280  # generated pairs are built at this size (a phone photo, downscaled)
MIN_VEHICLE_AREA = 0.01  # of the photo; smaller "vehicles" are background clutter
MAX_VEHICLE_AREA = 0.6  # of the photo; a larger vehicle leaves too little background
PER_CASE = 2  # generated pairs of each case per photo
FRAME_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{2})_(\d{2})_(\d{2})$")


@dataclass(frozen=True)
class View:
    """One side of a pair: an image (loaded lazily, to keep memory flat) and the vehicle box."""

    key: str  # identifies (image, box) so a signature is computed once
    load: Callable[[], np.ndarray]
    box: Box


@dataclass(frozen=True)
class ScenePair:
    kind: str  # real | generated
    case: str  # same-spot, vehicle-gone, gone-other-day, other-space (real); shift-light,
    # passer-by, moved, other-scene (generated)
    positive: bool
    a: View
    b: View
    group: str  # pairs of one group share images; the calibration split keeps groups whole
    day: str | None = None  # capture date(s) of a real pair's frames; None for generated pairs


# --- real pairs: PKLot occupancy -------------------------------------------------------------

def read_occupancy(xml_path: Path) -> dict[str, tuple[Box, bool]]:
    """Space id -> (axis-aligned box around its rotated rectangle, occupied)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise BadInputError(f"{xml_path}: not a readable occupancy XML ({exc})") from exc
    spaces: dict[str, tuple[Box, bool]] = {}
    for space in root.iter("space"):
        rect = space.find("rotatedRect")
        occupied = space.get("occupied")
        if rect is None or occupied is None:
            continue  # PKLot leaves some spaces unlabelled
        center, size, angle = rect.find("center"), rect.find("size"), rect.find("angle")
        if center is None or size is None or angle is None:
            continue
        corners = cv2.boxPoints(((float(center.get("x", 0)), float(center.get("y", 0))),
                                 (float(size.get("w", 0)), float(size.get("h", 0))),
                                 float(angle.get("d", 0))))
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        spaces[space.get("id", str(len(spaces)))] = (
            Box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), occupied == "1")
    return spaces


def _reader(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise BadInputError(f"{path}: not a readable image")
        return image

    return load


Frame = tuple[str, str, Path, dict[str, tuple[Box, bool]]]  # stem, date, image, spaces


def _frames(folder: Path) -> list[Frame]:
    """A folder's frames that have occupancy XML, in name (capture time) order."""
    frames = []
    for xml in sorted(folder.glob("*.xml")):
        image = next((xml.with_suffix(s) for s in (".jpg", ".png") if xml.with_suffix(s).is_file()),
                     None)
        match = FRAME_TIME.search(xml.stem)
        if image is not None and match:
            frames.append((xml.stem, match.group(1), image, read_occupancy(xml)))
    return frames


def _gone(space: str, fa: Frame, fb: Frame, case: str, group: str, day: str) -> ScenePair:
    """The frame whose space is occupied first, the one where it is empty second."""
    (_, _, ia, sa), (_, _, ib, sb) = fa, fb
    view_a = View(f"{ia}#{space}", _reader(ia), sa[space][0])
    view_b = View(f"{ib}#{space}", _reader(ib), sb[space][0])
    first, then = (view_a, view_b) if sa[space][1] else (view_b, view_a)
    return ScenePair("real", case, False, first, then, group, day)


def real_pairs(folder: Path, rng: np.random.Generator) -> list[ScenePair]:
    """Pairs from one fixed-camera folder's frames that have occupancy XML."""
    pairs: list[ScenePair] = []
    for fa, fb in combinations(_frames(folder), 2):
        (ta, da, ia, sa), (tb, db, ib, sb) = fa, fb
        group = f"{folder.name}/{ta}~{tb}"
        day = da if da == db else "~".join(sorted({da, db}))
        occupied_b = [s for s, (_, occ) in sb.items() if occ]
        for space, (box, occ_a) in sa.items():
            if space not in sb:
                continue
            occ_b = sb[space][1]
            view_a = View(f"{ia}#{space}", _reader(ia), box)
            if occ_a and occ_b:
                pairs.append(ScenePair("real", "same-spot", True, view_a,
                                       View(f"{ib}#{space}", _reader(ib), sb[space][0]),
                                       group, day))
                others = [s for s in occupied_b if s != space]
                if others:
                    other = others[int(rng.integers(len(others)))]
                    pairs.append(ScenePair("real", "other-space", False, view_a,
                                           View(f"{ib}#{other}", _reader(ib), sb[other][0]),
                                           group, day))
            elif occ_a != occ_b:
                pairs.append(_gone(space, fa, fb, "vehicle-gone", group, day))
    return pairs


def camera_of(folder: Path) -> str:
    """A fixed camera's name: its folder's name without the trailing date."""
    return re.sub(r"[_-]?\d{4}-\d{2}-\d{2}$", "", folder.name)


def cross_day_pairs(folders: list[Path]) -> list[ScenePair]:
    """Vehicle-gone pairs across days of one camera: a space occupied in a frame of one day and
    empty in a frame of another (the vehicle first). Another day's light and weather, as on
    days the boundaries never saw; the day of such a pair is both dates joined by "~"."""
    by_camera: dict[str, list[Path]] = {}
    for folder in folders:
        by_camera.setdefault(camera_of(folder), []).append(folder)
    pairs: list[ScenePair] = []
    for camera, group_folders in sorted(by_camera.items()):
        frames = [f for folder in group_folders for f in _frames(folder)]
        for fa, fb in combinations(frames, 2):
            if fa[1] == fb[1]:
                continue  # one day: real_pairs has it
            day = "~".join(sorted((fa[1], fb[1])))
            for space in sorted(set(fa[3]) & set(fb[3])):
                if fa[3][space][1] != fb[3][space][1]:
                    pairs.append(_gone(space, fa, fb, "gone-other-day",
                                       f"{camera}/{fa[0]}~{fb[0]}", day))
    return pairs


def has_occupancy(folder: Path) -> bool:
    return any(FRAME_TIME.search(x.stem) for x in folder.glob("*.xml"))


def occupancy_days(folder: Path) -> list[str]:
    """The capture dates of a folder's frames with occupancy XML (a day with no occupied
    space still counts: it yields no pairs, and the report says so)."""
    return sorted({m.group(1) for x in folder.glob("*.xml") if (m := FRAME_TIME.search(x.stem))})


# --- generated pairs: perturbations of one photo ---------------------------------------------

def camera_move(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A hand-held re-shot from the same spot: rotation up to 3 degrees, scale 0.96-1.04,
    shift up to 3 %, each corner jittered up to 1.5 % (a little perspective)."""
    w, h = size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    angle = math.radians(rng.uniform(-3, 3))
    scale = rng.uniform(0.96, 1.04)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([w / 2, h / 2])
    shift = rng.uniform(-0.03, 0.03, 2) * [w, h]
    jitter = rng.uniform(-0.015, 0.015, (4, 2)) * [w, h]
    dst = ((src - centre) @ rot.T * scale + centre + shift + jitter).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def light_change(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another hour: gamma, gain, colour cast, and half the time a soft shadow band."""
    x = image.astype(np.float32) / 255.0
    x = np.power(x, rng.uniform(0.6, 1.6)) * rng.uniform(0.7, 1.3)
    x *= rng.uniform(0.92, 1.08, 3).astype(np.float32)
    x += rng.uniform(-0.1, 0.1)
    if rng.random() < 0.5:
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.float32)
        p = rng.uniform([0, 0], [w, h], (4, 2)).astype(np.int32)
        cv2.fillConvexPoly(mask, cv2.convexHull(p), 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), max(w, h) * 0.02)
        x *= (1.0 - mask * rng.uniform(0.15, 0.4))[..., None]
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def sensor(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise and a JPEG round trip."""
    noisy = image.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), image.shape)
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 91))])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else noisy


def passer_by(image: np.ndarray, vehicle: Box, rng: np.random.Generator) -> np.ndarray:
    """A person-shaped figure walking past, covering at most about a third of the vehicle."""
    h, w = image.shape[:2]
    out = image.copy()
    for _ in range(20):
        ph = rng.uniform(0.3, 0.6) * h
        pw = ph * 0.32
        cx = rng.uniform(pw / 2, w - pw / 2)
        bottom = rng.uniform(0.75, 1.0) * h
        body = Box(cx - pw / 2, bottom - ph, cx + pw / 2, bottom)
        overlap = body.clip(w, h)
        inter = max(0.0, min(overlap.x2, vehicle.x2) - max(overlap.x1, vehicle.x1)) * max(
            0.0, min(overlap.y2, vehicle.y2) - max(overlap.y1, vehicle.y1))
        if inter <= 0.35 * vehicle.area:
            break
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    head = int(ph * 0.09)
    cv2.circle(out, (int(cx), int(bottom - ph + head)), head, colour, -1)
    torso = np.array([[cx - pw / 2, bottom - ph + 2 * head], [cx + pw / 2, bottom - ph + 2 * head],
                      [cx + pw * 0.4, bottom - ph * 0.45], [cx - pw * 0.4, bottom - ph * 0.45]])
    cv2.fillConvexPoly(out, torso.astype(np.int32), colour)
    legs = tuple(int(c * 0.6) for c in colour)
    for side in (-1, 1):
        leg = np.array([[cx + side * pw * 0.05, bottom - ph * 0.45],
                        [cx + side * pw * 0.38, bottom - ph * 0.45],
                        [cx + side * pw * 0.3, bottom], [cx + side * pw * 0.12, bottom]])
        cv2.fillConvexPoly(out, leg.astype(np.int32), legs)
    return out


def move_vehicle(image: np.ndarray, box: Box,
                 rng: np.random.Generator) -> tuple[np.ndarray, Box] | None:
    """The vehicle's crop moved sideways by 35-70 % of its width (1.5-3 m for a car), its old
    place inpainted; None when the photo has no room for such a move."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in (box.x1, box.y1, box.x2, box.y2))
    bw, bh = x2 - x1, y2 - y1
    want = int(rng.uniform(0.35, 0.7) * bw)
    room = {1: w - x2, -1: x1}
    sides = [s for s in (1, -1) if room[s] >= int(0.35 * bw)]
    if not sides or bw < 8 or bh < 8:
        return None
    side = sides[int(rng.integers(len(sides)))]
    dx = side * min(want, room[side])
    dy = int(np.clip(rng.uniform(-0.08, 0.08) * bh, -y1, h - y2))
    crop = image[y1:y2, x1:x2].copy()
    hole = np.zeros((h, w), np.uint8)
    hole[y1:y2, x1:x2] = 255
    factor = min(1.0, 320.0 / max(h, w))  # inpaint small: a big hole is slow at full size
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole, (small.shape[1], small.shape[0]),
                            interpolation=cv2.INTER_NEAREST)
    filled = cv2.resize(cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA), (w, h))
    out = image.copy()
    out[hole > 0] = filled[hole > 0]
    out[y1 + dy:y2 + dy, x1 + dx:x2 + dx] = crop
    return out, Box(float(x1 + dx), float(y1 + dy), float(x2 + dx), float(y2 + dy))


def _warp(image: np.ndarray, h_mat: np.ndarray, box: Box,
          rng: np.random.Generator) -> tuple[np.ndarray, Box]:
    """Apply a camera move to the image and the box (plus a detector's few pixels of noise)."""
    height, width = image.shape[:2]
    warped = cv2.warpPerspective(image, h_mat, (width, height), borderMode=cv2.BORDER_REFLECT)
    corners = np.array([[[box.x1, box.y1]], [[box.x2, box.y1]], [[box.x2, box.y2]],
                        [[box.x1, box.y2]]], np.float32)
    mapped = cv2.perspectiveTransform(corners, h_mat).reshape(-1, 2)
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    noise = rng.uniform(-0.02, 0.02, 4) * [box.width, box.height, box.width, box.height]
    x1, y1, x2, y2 = (lo[0] + noise[0], lo[1] + noise[1], hi[0] + noise[2], hi[1] + noise[3])
    box = Box(float(x1), float(y1), float(max(x2, x1 + 1)), float(max(y2, y1 + 1)))
    return warped, box.clip(width, height)  # a detector sees only what is in the frame


def _fixed(image: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: image


def resize_for_generation(image: np.ndarray) -> tuple[np.ndarray, float]:
    factor = min(1.0, GEN_MAX_SIDE / max(image.shape[:2]))
    if factor < 1.0:
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return image, factor


def main_vehicle(boxes: list[Box], size: tuple[int, int]) -> Box | None:
    """The largest vehicle box, if it is big enough to be the subject of a report."""
    w, h = size
    big = [b for b in boxes if b.area >= MIN_VEHICLE_AREA * w * h]
    return max(big, key=lambda b: b.area) if big else None


def shows_background(box: Box, size: tuple[int, int]) -> bool:
    """Whether the photo shows enough background around the vehicle to be evidence of a place.

    A close-up the vehicle fills tells nothing about where it stands; the matcher answers "too
    little background visible", and such a photo is no same-spot positive.
    """
    w, h = size
    return box.clip(w, h).area <= MAX_VEHICLE_AREA * w * h


def generated_pairs(photo: Path, image: np.ndarray, box: Box,
                    others: list[tuple[Path, np.ndarray, Box]],
                    rng: np.random.Generator) -> Iterator[ScenePair]:
    """PER_CASE re-shots, PER_CASE with a passer-by, PER_CASE with the vehicle moved (when the
    photo has room), and one pair against each of ``others``; from one photo (resized)."""
    size = (image.shape[1], image.shape[0])
    group = str(photo)
    base = View(f"{photo}", _fixed(image), box)

    def reshoot(img: np.ndarray, b: Box) -> tuple[np.ndarray, Box]:
        warped, moved_box = _warp(img, camera_move(size, rng), b, rng)
        return sensor(light_change(warped, rng), rng), moved_box

    for n in range(PER_CASE):
        img, b = reshoot(image, box)
        yield ScenePair("generated", "shift-light", True, base,
                        View(f"{photo}~shift{n}", _fixed(img), b), group)
        img, b = reshoot(image, box)
        img = passer_by(img, b, rng)
        yield ScenePair("generated", "passer-by", True, base,
                        View(f"{photo}~person{n}", _fixed(img), b), group)
        moved = move_vehicle(image, box, rng)
        if moved is not None:
            img, b = reshoot(*moved)
            yield ScenePair("generated", "moved", False, base,
                            View(f"{photo}~moved{n}", _fixed(img), b), group)
    for n, (other_path, other_image, other_box) in enumerate(others):
        o_size = (other_image.shape[1], other_image.shape[0])
        warped, b = _warp(other_image, camera_move(o_size, rng), other_box, rng)
        img = sensor(light_change(warped, rng), rng)
        yield ScenePair("generated", "other-scene", False, base,
                        View(f"{photo}~other{n}~{other_path.name}", _fixed(img), b), group)


def list_photos(root: Path) -> tuple[list[Path], list[Path]]:
    """(folders with occupancy XML, photos for generated pairs) under ``root``, sorted.

    A folder with occupancy XML is a fixed camera: its frames serve only as real pairs. A folder
    with a labels.csv holds labelled plate crops (the OCR sets), not scenes: it is left out.
    """
    folders = sorted({p.parent for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES})
    real = [f for f in folders if has_occupancy(f)]
    photos = sorted(p for f in folders if f not in real and not (f / "labels.csv").is_file()
                    for p in f.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith("_mask"))
    return real, photos
