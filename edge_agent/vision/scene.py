"""Scene comparison: is the second photo the same spot and angle, with the same vehicle still
in the same place?

The evidence rule needs both, so ``compare`` judges them apart and takes the weaker:

- background: ORB keypoints outside the vehicle, ratio test, RANSAC homography; the inlier
  count (plus, with an embedding model, the cosine of the masked-scene embeddings) says whether
  it is the same place and angle;
- place: the keypoints on the vehicle must follow the background's motion near it (a
  similarity fitted to the nearest background inliers) when enough of them match and move
  together; otherwise the first vehicle box, mapped the same way, must land on the second box
  (a car moved a few metres lands beside it);
- look: the vehicle regions must still look alike (gradient correlation of small grey patches,
  cell by cell, plus the embedding of the crops), so a space that emptied, or a car swapped
  for another one, fails even when the box did not move.

Each part is a logistic score in [0, 1] centred on its decision boundary; ``score`` is the
minimum, ``same_scene`` is ``score >= threshold`` (the shared rules' scene_threshold). Without an
embedding model the geometric and patch checks decide alone.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import BadInputError
from edge_agent.results import Box
from edge_agent.vision.embedder import Embedder

log = logging.getLogger(__name__)

SIGNATURE_VERSION = 1
WORK_SIDE = 640  # long side of the working image, whatever the photo's resolution
PATCH_SIDE = 48  # grey vehicle patch kept in the signature
PATCH_CELLS = 3  # the patch is compared cell by cell on a PATCH_CELLS x PATCH_CELLS grid
MAX_FEATURES = 600  # background keypoints (the vehicle masked out)
VEHICLE_FEATURES = 150  # keypoints on the vehicle, to see whether it moved with the background
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 5.0
MASK_GROW = 0.10  # the vehicle box grows by this fraction before masking it out
VEHICLE_KP_PX = 8.0  # a vehicle keypoint "follows the background" within this distance,
VEHICLE_KP_SHARE = 0.12  # or within this share of the box size (a homography fitted far away
# from the vehicle is a little off there; a car moved 1.5 m is off by a third of its length)
DEFAULT_THRESHOLD = 0.5

# Logistic parts: score = 1 / (1 + exp(-(x - mid) / scale)); mid is the decision boundary.
# Set from the feature distributions of `gotcha eval scenes ../shared/data` (seed 7, all pairs
# looked at, so the report's test half is not a clean hold-out): another scene gives at most 8
# RANSAC inliers (600 keypoints), a re-shot one at least 90; a car moved 1.5-3 m has <= 3 % of
# its matched keypoints following the background and a box overlap <= 0.48, a re-shot one
# >= 85 % and >= 0.52 (the overlap decides only when too few vehicle keypoints match); a PKLot
# space that emptied gives 2 x cell patch correlation + crop cosine <= 1.95, a car still there
# >= 2.31, a re-shot car with a passer-by in front >= 1.91 (geometry only: the cell correlation
# alone, <= 0.62 against >= 0.65).
INLIER_MID, INLIER_SCALE = 25.0, 3.0
EMBED_VETO_MID, EMBED_VETO_SCALE = 0.45, 0.05  # masked-scene cosine; vetoes only
PLACE_MID, PLACE_SCALE = 0.495, 0.01  # IoU of the mapped first box with the second box
FAR_SHIFT = 0.5  # a box this far off (in box sizes) is another place, whatever else agrees
FOLLOW_MID, FOLLOW_SCALE = 0.40, 0.07  # share of matched vehicle keypoints that follow
MIN_VEHICLE_MATCHES = 12  # fewer matched vehicle keypoints say nothing about motion,
MIN_VEHICLE_AGREE = 8  # nor do matches of which fewer than this move together
PATCH_WEIGHT = 2.0  # look = PATCH_WEIGHT * patch correlation + crop-embedding cosine
LOOK_MID, LOOK_SCALE = 1.99, 0.03
PATCH_MID, PATCH_SCALE = 0.637, 0.01  # geometry only: cell patch correlation alone
NO_TRANSFORM_SCORE = 0.05  # ceiling when no sane background transform exists
MIN_BACKGROUND_POINTS = 30
LOCAL_POINTS = 40  # background inliers nearest the vehicle that give its local motion
LOCAL_MIN_POINTS = 12


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Cosine of two unit vectors; None when either is missing or they come from other models."""
    if a is None or b is None or a.shape != b.shape:
        return None
    return float(np.dot(a, b))


@dataclass(frozen=True)
class SceneMatch:
    """The verdict on two photos; the part scores say which check decided."""

    score: float
    same_scene: bool
    vehicle_moved: bool | None  # None: no vehicle boxes, or no background transform to judge
    reason: str
    inliers: int
    embedding_similarity: float | None
    background_score: float = 0.0
    place_score: float | None = None
    look_score: float | None = None
    box_iou: float | None = None
    box_shift: float | None = None  # centre offset of the mapped box, in box sizes
    patch_similarity: float | None = None
    vehicle_embedding_similarity: float | None = None
    vehicle_keypoints_following: float | None = None  # share of matched vehicle keypoints

    def to_dict(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(float(v), 4)

        return {"score": r(self.score), "same_scene": self.same_scene,
                "vehicle_moved": self.vehicle_moved, "reason": self.reason,
                "inliers": self.inliers, "embedding_similarity": r(self.embedding_similarity),
                "background_score": r(self.background_score), "place_score": r(self.place_score),
                "look_score": r(self.look_score), "box_iou": r(self.box_iou),
                "box_shift": r(self.box_shift),
                "patch_similarity": r(self.patch_similarity),
                "vehicle_embedding_similarity": r(self.vehicle_embedding_similarity),
                "vehicle_keypoints_following": r(self.vehicle_keypoints_following)}


@dataclass(frozen=True, eq=False)
class SceneSignature:
    """What the store keeps of a photo to compare it later (no pixels but a tiny grey patch).

    Coordinates are in the working image (long side WORK_SIDE).
    """

    size: tuple[int, int]  # working (width, height)
    vehicle_box: tuple[float, float, float, float] | None
    points: np.ndarray  # (N, 2) float32, background keypoints
    descriptors: np.ndarray  # (N, 32) uint8 ORB
    vehicle_points: np.ndarray  # (M, 2) float32, keypoints inside the vehicle box
    vehicle_descriptors: np.ndarray  # (M, 32) uint8
    patch: np.ndarray | None  # (PATCH_SIDE, PATCH_SIDE) uint8 grey vehicle patch
    embedding: np.ndarray | None  # (D,) float32 unit vector, vehicle masked out
    vehicle_embedding: np.ndarray | None  # (D,) float32 unit vector of the vehicle crop
    model_id: str | None = None

    def embedding_list(self, digits: int = 5) -> list[float] | None:
        """The masked-scene embedding as plain floats, for the report manifest."""
        if self.embedding is None:
            return None
        return [round(float(v), digits) for v in self.embedding]

    def to_bytes(self) -> bytes:
        """A compact, versioned npz blob (no pickle) the store can keep in a BLOB column."""
        header = {"version": SIGNATURE_VERSION, "size": list(self.size),
                  "vehicle_box": list(self.vehicle_box) if self.vehicle_box else None,
                  "model_id": self.model_id}
        arrays: dict[str, np.ndarray] = {
            "header": np.frombuffer(json.dumps(header).encode(), np.uint8),
            "points": self.points.astype(np.float32), "descriptors": self.descriptors,
            "vehicle_points": self.vehicle_points.astype(np.float32),
            "vehicle_descriptors": self.vehicle_descriptors,
        }
        if self.patch is not None:
            arrays["patch"] = self.patch
        if self.embedding is not None:
            arrays["embedding"] = self.embedding.astype(np.float16)
        if self.vehicle_embedding is not None:
            arrays["vehicle_embedding"] = self.vehicle_embedding.astype(np.float16)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SceneSignature:
        """Inverse of to_bytes; BadInputError for anything else (a damaged or foreign blob)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                header = json.loads(bytes(npz["header"]).decode())
                if header.get("version") != SIGNATURE_VERSION:
                    raise BadInputError(f"scene signature version {header.get('version')} is "
                                        f"not {SIGNATURE_VERSION}; recompute it from the photo")

                def opt(key: str, dtype: type) -> np.ndarray | None:
                    return npz[key].astype(dtype) if key in npz.files else None

                box = header["vehicle_box"]
                return cls(
                    size=(int(header["size"][0]), int(header["size"][1])),
                    vehicle_box=tuple(float(v) for v in box) if box else None,  # type: ignore[arg-type]
                    points=npz["points"].reshape(-1, 2).astype(np.float32),
                    descriptors=npz["descriptors"].reshape(-1, 32).astype(np.uint8),
                    vehicle_points=npz["vehicle_points"].reshape(-1, 2).astype(np.float32),
                    vehicle_descriptors=npz["vehicle_descriptors"].reshape(-1, 32)
                    .astype(np.uint8),
                    patch=opt("patch", np.uint8),
                    embedding=opt("embedding", np.float32),
                    vehicle_embedding=opt("vehicle_embedding", np.float32),
                    model_id=header.get("model_id"),
                )
        except BadInputError:
            raise
        except Exception as exc:  # zip, json and key errors all mean "not a signature"
            raise BadInputError(f"not a scene signature ({type(exc).__name__}); recompute it "
                                "from the photo") from exc


def _aligned_patches(a: SceneSignature, b: SceneSignature,
                     h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch a resampled into patch b's frame through the background homography, patch b, and
    the mask of pixels patch a covers; so a small camera move does not read as a change."""
    def to_patch(box: tuple[float, float, float, float]) -> np.ndarray:
        x1, y1, x2, y2 = box
        sx, sy = PATCH_SIDE / max(x2 - x1, 1e-3), PATCH_SIDE / max(y2 - y1, 1e-3)
        return np.array([[sx, 0, -x1 * sx], [0, sy, -y1 * sy], [0, 0, 1]], np.float64)

    # patch-b pixel -> image b -> image a -> patch-a pixel
    back = to_patch(a.vehicle_box) @ np.linalg.inv(h) @ np.linalg.inv(to_patch(b.vehicle_box))
    size = (PATCH_SIDE, PATCH_SIDE)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(a.patch, back, size, flags=flags,
                                 borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(np.full(size, 255, np.uint8), back, size, flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, b.patch, valid > 127


def gradient_similarity(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Correlation of two grey patches' complex gradients, in [0, 1].

    Why gradients: brightness and contrast change with the hour; edges of a car do not. An empty
    space or another car gives a low value.
    """
    def grad(p: np.ndarray) -> np.ndarray:
        p = cv2.GaussianBlur(p.astype(np.float32), (0, 0), 1.0)
        gx = cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3)
        return (gx + 1j * gy).ravel()

    ga, gb = grad(a), grad(b)
    if valid is not None:
        keep = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)).ravel() > 0
        if keep.sum() < valid.size // 4:
            return 0.0
        ga, gb = ga[keep], gb[keep]
    denom = math.sqrt(float(np.vdot(ga, ga).real) * float(np.vdot(gb, gb).real))
    if denom < 1e-6:
        return 0.0
    return float(abs(np.vdot(ga, gb)) / denom)


def cell_similarity(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None,
                    cells: int = PATCH_CELLS) -> float:
    """Mean gradient correlation over a grid of cells of two patches.

    Why cells: each cell is normalised on its own, so a shadow over half the car or a passer-by
    in front of a third of it lowers a few cells, while a space that emptied lowers them all.
    """
    step = a.shape[0] // cells
    values = []
    for row in range(cells):
        for col in range(cells):
            part = (slice(row * step, (row + 1) * step), slice(col * step, (col + 1) * step))
            mask = None if valid is None else valid[part]
            if mask is not None and mask.sum() < mask.size // 4:
                continue  # this cell of patch a fell outside the photo after alignment
            values.append(gradient_similarity(a[part], b[part], mask))
    return float(np.mean(values)) if values else 0.0


def _map_box(h: np.ndarray, box: tuple[float, float, float, float]) -> Box | None:
    x1, y1, x2, y2 = box
    corners = np.array([[[x1, y1]], [[x2, y1]], [[x2, y2]], [[x1, y2]]], np.float32)
    mapped = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    if not np.all(np.isfinite(mapped)):
        return None
    lo, hi = mapped.min(axis=0), mapped.max(axis=0)
    return Box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _centre_shift(mapped: Box, target: Box) -> float:
    """How far the mapped box's centre is from the target's, in units of the target's size
    (square root of its area): a car moved 1.5 m is off by about half its size."""
    (ax, ay), (bx, by) = mapped.center, target.center
    return math.hypot(ax - bx, ay - by) / max(math.sqrt(target.area), 1e-6)


def _sane(h: np.ndarray, size: tuple[int, int]) -> bool:
    """Reject transforms no small camera move makes (mirror, collapse, huge zoom)."""
    w, ht = size
    corners = np.array([[[0, 0]], [[w, 0]], [[w, ht]], [[0, ht]]], np.float32)
    mapped = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    if not np.all(np.isfinite(mapped)):
        return False
    area = cv2.contourArea(mapped.astype(np.float32))
    ratio = area / float(w * ht)
    return 0.4 < ratio < 2.5 and cv2.isContourConvex(mapped.astype(np.float32))


class SceneMatcher:
    """``signature(image, vehicle_box)`` once per photo; ``compare(sig_a, sig_b)`` per pair."""

    def __init__(self, embedder: Embedder | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.orb = cv2.ORB_create(nfeatures=MAX_FEATURES, fastThreshold=12)
        self.vehicle_orb = cv2.ORB_create(nfeatures=VEHICLE_FEATURES, fastThreshold=12)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    @classmethod
    def from_config(cls, config: GotchaConfig) -> SceneMatcher:
        """Embedding model from models.scene_embedder (empty: geometry only); threshold from
        rules.scene_threshold, else the shared rules' default."""
        model_id = config.models.scene_embedder
        embedder = Embedder.from_config(config, model_id) if model_id else None
        threshold = config.rules.scene_threshold
        if threshold is None:
            threshold = _shared_threshold()
        return cls(embedder, threshold)

    @property
    def model_id(self) -> str | None:
        return self.embedder.spec.id if self.embedder else None

    def signature(self, image_bgr: np.ndarray, vehicle_box: Box | None) -> SceneSignature:
        """Keypoints, patch and embeddings of one photo, the vehicle masked out of the scene."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 \
                or image_bgr.size == 0:
            raise BadInputError("scene signature needs a BGR colour image")
        height, width = image_bgr.shape[:2]
        scale = WORK_SIDE / max(width, height)  # one working size: thresholds mean the same
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA if scale < 1
                          else cv2.INTER_LINEAR)
        grey = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
        box = None
        if vehicle_box is not None:
            clipped = vehicle_box.clip(width, height)
            if clipped.width >= 2 and clipped.height >= 2:
                box = (clipped.x1 * scale, clipped.y1 * scale, clipped.x2 * scale,
                       clipped.y2 * scale)
        mask = None
        vehicle_points = np.zeros((0, 2), np.float32)
        vehicle_descriptors = np.zeros((0, 32), np.uint8)
        patch = crop = None
        masked = work
        if box is not None:
            grow = MASK_GROW / 2  # of the box's size on each side
            gx1, gy1, gx2, gy2 = Detections.from_boxes([Box(*box)]).grow(
                grow, grow, *size).pixel_box(0)
            mask = np.full(grey.shape, 255, np.uint8)
            mask[gy1:gy2, gx1:gx2] = 0  # the vehicle is not background
            # on the vehicle's own region only: a masked full-frame pass costs a whole pyramid
            vehicle_points, vehicle_descriptors = self._keypoints(
                self.vehicle_orb, grey[gy1:gy2, gx1:gx2], None)
            vehicle_points += np.array([gx1, gy1], np.float32)
            crop = Detections.from_boxes([clipped]).crop(image_bgr, 0)
            patch = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY),
                               (PATCH_SIDE, PATCH_SIDE), interpolation=cv2.INTER_AREA)
            if self.embedder is not None:
                masked = work.copy()
                masked[gy1:gy2, gx1:gx2] = np.array(cv2.mean(work)[:3], np.uint8)
        points, descriptors = self._keypoints(self.orb, grey, mask)
        embedding = vehicle_embedding = None
        if self.embedder is not None:
            vectors = self.embedder.embed([masked] if crop is None else [masked, crop])
            embedding = vectors[0]
            vehicle_embedding = vectors[1] if crop is not None else None
        return SceneSignature(
            size=size, vehicle_box=box, points=points, descriptors=descriptors,
            vehicle_points=vehicle_points, vehicle_descriptors=vehicle_descriptors, patch=patch,
            embedding=embedding, vehicle_embedding=vehicle_embedding, model_id=self.model_id)

    @staticmethod
    def _keypoints(orb: cv2.ORB, grey: np.ndarray,
                   mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        keypoints, descriptors = orb.detectAndCompute(grey, mask)
        if descriptors is None or not keypoints:
            return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
        return np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2), descriptors

    def _match(self, da: np.ndarray, db: np.ndarray) -> list[tuple[int, int]]:
        if len(da) < 2 or len(db) < 2:
            return []
        pairs = self.matcher.knnMatch(da, db, k=2)
        return [(m[0].queryIdx, m[0].trainIdx) for m in pairs
                if len(m) == 2 and m[0].distance < RATIO * m[1].distance]

    def _register(self, a: SceneSignature,
                  b: SceneSignature) -> tuple[np.ndarray | None, int, np.ndarray, np.ndarray]:
        """Background homography a -> b, its inlier count and inlier points (a, b); None for
        the homography when none holds."""
        empty = np.zeros((0, 2), np.float32)
        matches = self._match(a.descriptors, b.descriptors)
        if len(matches) < 8:
            return None, 0, empty, empty
        pa = a.points[[i for i, _ in matches]]
        pb = b.points[[j for _, j in matches]]
        h, mask = cv2.findHomography(pa, pb, cv2.RANSAC, RANSAC_PX, maxIters=2000,
                                     confidence=0.995)
        if h is None or mask is None:
            return None, 0, empty, empty
        keep = mask.ravel() > 0
        inliers = int(keep.sum())
        if not _sane(h, a.size):
            return None, inliers, empty, empty
        return h, inliers, pa[keep], pb[keep]

    @staticmethod
    def _local(h: np.ndarray, pa: np.ndarray, pb: np.ndarray,
               box: tuple[float, float, float, float]) -> np.ndarray:
        """The background's motion near the vehicle: a similarity fitted to the inliers nearest
        to it, as a 3x3 matrix; the global homography when too few are near.

        Why: a homography fitted to keypoints far from a car at the frame's edge can be off by
        a third of the car there, which would read as "moved".
        """
        if len(pa) < LOCAL_MIN_POINTS:
            return h
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        order = np.argsort(np.hypot(pa[:, 0] - cx, pa[:, 1] - cy))[:LOCAL_POINTS]
        m, mask = cv2.estimateAffinePartial2D(pa[order], pb[order], method=cv2.RANSAC,
                                              ransacReprojThreshold=RANSAC_PX)
        if m is None or mask is None or int(mask.sum()) < LOCAL_MIN_POINTS:
            return h
        return np.vstack([m, [0.0, 0.0, 1.0]])

    def _vehicle_keypoints(self, a: SceneSignature, b: SceneSignature,
                           h: np.ndarray) -> tuple[int, int, int]:
        """(matched, following the background, moving together) vehicle keypoints.

        A moved car's keypoints match, do not follow the background, and move together; a few
        wrong matches on a textureless car do neither, and then say nothing.
        """
        matches = self._match(a.vehicle_descriptors, b.vehicle_descriptors)
        if not matches:
            return 0, 0, 0
        pa = a.vehicle_points[[i for i, _ in matches]].reshape(-1, 1, 2)
        pb = b.vehicle_points[[j for _, j in matches]]
        mapped = cv2.perspectiveTransform(pa, h).reshape(-1, 2)
        x1, y1, x2, y2 = b.vehicle_box  # type: ignore[misc]
        tolerance = max(VEHICLE_KP_PX, VEHICLE_KP_SHARE * math.sqrt((x2 - x1) * (y2 - y1)))
        residual = pb - mapped
        follow = int((np.linalg.norm(residual, axis=1) < tolerance).sum())
        together = int((np.linalg.norm(residual - np.median(residual, axis=0), axis=1)
                        < tolerance).sum())
        return len(matches), follow, together

    def compare(self, a: SceneSignature, b: SceneSignature) -> SceneMatch:
        """Same background, and the same vehicle still in the same place? One score, one reason.
        """
        h, inliers, in_a, in_b = self._register(a, b)
        emb = _cosine(a.embedding, b.embedding)
        background_z = (inliers - INLIER_MID) / INLIER_SCALE
        if emb is not None:  # a veto only: geometry is the sharper judge of "same place"
            background_z = min(background_z, (emb - EMBED_VETO_MID) / EMBED_VETO_SCALE)
        background = _sigmoid(background_z) if h is not None else min(
            _sigmoid(background_z), NO_TRANSFORM_SCORE)
        embedded = f", embedding {emb:.2f}" if emb is not None else ""
        if background < self.threshold:
            few = len(a.points) < MIN_BACKGROUND_POINTS or len(b.points) < MIN_BACKGROUND_POINTS
            reason = ("too little background visible to compare" if few
                      else f"background differs ({inliers} inliers{embedded})")
        else:
            reason = f"background matches ({inliers} inliers{embedded})"
        if h is None or a.vehicle_box is None or b.vehicle_box is None:
            return SceneMatch(score=background, same_scene=background >= self.threshold,
                              vehicle_moved=None, reason=reason, inliers=inliers,
                              embedding_similarity=emb, background_score=background)
        h_global, h = h, self._local(h, in_a, in_b, a.vehicle_box)
        mapped = _map_box(h, a.vehicle_box)
        if mapped is not None:  # a car at the frame's edge: compare what both photos show
            mapped = mapped.clip(*b.size)
        target = Box(*b.vehicle_box)
        iou = float(mapped.iou(target)) if mapped is not None else 0.0
        shift = _centre_shift(mapped, target) if mapped is not None else math.inf
        matched, following, together = self._vehicle_keypoints(a, b, h)
        coherent = max(following, together) >= MIN_VEHICLE_AGREE
        follow = following / matched if matched >= MIN_VEHICLE_MATCHES and coherent else None
        if follow is not None and shift < FAR_SHIFT:
            # The vehicle's own keypoints are the sharper witness: they follow the background
            # or they do not, whatever a detector's box jitter or a homography's error there.
            place_z = (follow - FOLLOW_MID) / FOLLOW_SCALE
        else:
            place_z = (iou - PLACE_MID) / PLACE_SCALE
        place = _sigmoid(place_z)
        patch_sim = 0.0
        if a.patch is not None and b.patch is not None:
            # Through the local and the global motion, and as they are: a fixed camera needs no
            # alignment, and either fit can be a few pixels off at one space.
            patch_sim = max(cell_similarity(*_aligned_patches(a, b, h)),
                            cell_similarity(*_aligned_patches(a, b, h_global)),
                            cell_similarity(a.patch, b.patch))
        vemb = _cosine(a.vehicle_embedding, b.vehicle_embedding)
        if vemb is not None:
            look_z = (PATCH_WEIGHT * patch_sim + vemb - LOOK_MID) / LOOK_SCALE
        else:
            look_z = (patch_sim - PATCH_MID) / PATCH_SCALE
        look = _sigmoid(look_z)
        score = min(background, place, look)
        moved = place < self.threshold
        changed = look < self.threshold
        if background >= self.threshold:
            if moved:
                reason = (f"vehicle moved against the background (by {shift:.2f} box sizes"
                          + (f", {following}/{matched} vehicle keypoints follow)"
                             if follow is not None else ")"))
            elif changed:
                reason = "vehicle region changed (vehicle gone or another vehicle)"
            else:
                reason = (f"same place and vehicle ({inliers} inliers, box overlap {iou:.2f})")
        return SceneMatch(score=score, same_scene=score >= self.threshold,
                          vehicle_moved=moved or changed, reason=reason, inliers=inliers,
                          embedding_similarity=emb, background_score=background,
                          place_score=place, look_score=look, box_iou=iou, box_shift=shift,
                          patch_similarity=patch_sim, vehicle_embedding_similarity=vemb,
                          vehicle_keypoints_following=follow)

    def match(self, image_a: np.ndarray, box_a: Box | None, image_b: np.ndarray,
              box_b: Box | None) -> SceneMatch:
        """Convenience: signatures of two photos, compared."""
        return self.compare(self.signature(image_a, box_a), self.signature(image_b, box_b))


def _shared_threshold() -> float:
    """The scene threshold written once in gotcha_contracts.rules, shared with the cloud."""
    try:
        from gotcha_contracts.rules import DEFAULT_RULES
    except ImportError:  # the shared rules module is not there yet in a partial checkout
        return DEFAULT_THRESHOLD
    return float(DEFAULT_RULES.scene_threshold)
