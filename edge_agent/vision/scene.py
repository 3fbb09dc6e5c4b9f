"""Scene comparison: is the second photo the same spot and angle, with the same vehicle still
in the same place?

``SceneMatcher.signature`` keeps what a photo needs for later (scene_signature);
``measure`` compares two signatures into raw features (scene_similarity does the pixel work);
``compare`` turns them into a verdict with the calibrated boundaries (scene_scoring):

- background: ORB keypoints outside the vehicle, ratio test, RANSAC homography; the inlier
  count (plus, with an embedding model, the cosine of the masked-scene embeddings) says whether
  it is the same place and angle;
- presence: the second photo must still show a vehicle in the first photo's box: the share of
  the vehicle's contrast against the ground beside it that is left there (an emptied space
  shows ground, whatever lines and neighbours inside the box still match);
- place: the keypoints on the vehicle must follow the background's motion near it (a
  similarity fitted to the nearest background inliers) when enough of them match and move
  together; otherwise the first vehicle box, mapped the same way, must land on the second box
  (a car moved a few metres lands beside it);
- look: the vehicle regions must still look alike (gradient correlation of small grey patches,
  cell by cell, the share of contrast kept, and the embedding of the crops), so a car swapped
  for another one fails even when the box did not move.

``score`` is the weakest part, ``same_scene`` is ``score >= threshold`` (the shared rules'
scene_threshold). Without an embedding model the geometric and patch checks decide alone.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from edge_agent.config import GotchaConfig
from edge_agent.detections import Detections
from edge_agent.errors import BadInputError
from edge_agent.results import Box
from edge_agent.vision.embedder import Embedder
from edge_agent.vision.scene_scoring import (
    DEFAULT_CALIBRATION,
    SceneCalibration,
    SceneFeatures,
    SceneMatch,
    judge,
)
from edge_agent.vision.scene_signature import (
    PATCH_SIDE,
    SIGNATURE_VERSION,
    WORK_SIDE,
    SceneSignature,
)
from edge_agent.vision.scene_similarity import (
    aligned_patches,
    cell_similarity,
    centre_shift,
    gradient_similarity,
    map_box,
    sane_transform,
    vehicle_contrast_left,
)

__all__ = ["DEFAULT_THRESHOLD", "SIGNATURE_VERSION", "SceneMatch", "SceneMatcher",
           "SceneSignature", "gradient_similarity"]

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
MAX_FEATURES = 1000  # background keypoints (the vehicle masked out)
CLAHE_CLIP, CLAHE_TILES = 2.0, 8  # local contrast equalised before keypoints: with 600 plain
# keypoints, two photos of one empty PKLot lot at 11:30 and 17:55 (2013-02-24) kept 23 RANSAC
# inliers, across days 10-14; equalised, with 1000, 45 and 53-73, other scenes still <= 9
VEHICLE_FEATURES = 150  # keypoints on the vehicle, to see whether it moved with the background
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 5.0
MASK_GROW = 0.10  # the vehicle box grows by this fraction before masking it out
GROUND_GROW = 1.0  # the ground ring: the box grown by this fraction, less the masked box
GROUND_QUANTILES = 17  # quantiles of the ground's grey levels kept (0, 6.25, ..., 100 %)
VEHICLE_KP_PX = 8.0  # a vehicle keypoint "follows the background" within this distance,
VEHICLE_KP_SHARE = 0.12  # or within this share of the box size (a homography fitted far away
# from the vehicle is a little off there; a car moved 1.5 m is off by a third of its length)
MIN_VEHICLE_MATCHES = 12  # fewer matched vehicle keypoints say nothing about motion,
MIN_VEHICLE_AGREE = 8  # nor do matches of which fewer than this move together
MIN_BACKGROUND_POINTS = 30
MIN_GROUND_PIXELS = 50  # a vehicle filling the frame leaves no ground to measure
LOCAL_POINTS = 40  # background inliers nearest the vehicle that give its local motion
LOCAL_MIN_POINTS = 12


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Cosine of two unit vectors; None when either is missing or they come from other models."""
    if a is None or b is None or a.shape != b.shape:
        return None
    return float(np.dot(a, b))


def _grow(box: tuple[float, float, float, float], frac: float, width: int,
          height: int) -> tuple[int, int, int, int]:
    """The whole-pixel box of ``box`` grown by ``frac`` of its size (half on each side),
    clipped to the image: the one grow of edge_agent.detections."""
    half = frac / 2
    return Detections.from_boxes([Box(*box)]).grow(half, half, width, height).pixel_box(0)


def _ground_levels(grey: np.ndarray,
                   box: tuple[float, float, float, float]) -> tuple[float, ...] | None:
    """Evenly spaced quantiles of the grey levels of a ring around the vehicle box: the ground
    it stands on (and whatever else is beside it), against which its contrast is measured."""
    height, width = grey.shape
    rx1, ry1, rx2, ry2 = _grow(box, GROUND_GROW, width, height)
    ring = np.zeros((ry2 - ry1, rx2 - rx1), bool)
    ring[:] = True
    gx1, gy1, gx2, gy2 = _grow(box, MASK_GROW, width, height)
    ring[max(0, gy1 - ry1):gy2 - ry1, max(0, gx1 - rx1):gx2 - rx1] = False
    pixels = grey[ry1:ry2, rx1:rx2][ring]
    if pixels.size < MIN_GROUND_PIXELS:
        return None
    levels = np.percentile(pixels, np.linspace(0, 100, GROUND_QUANTILES))
    return tuple(round(float(v), 2) for v in levels)


class SceneMatcher:
    """``signature(image, vehicle_box)`` once per photo; ``compare(sig_a, sig_b)`` per pair."""

    def __init__(self, embedder: Embedder | None = None, threshold: float = DEFAULT_THRESHOLD,
                 calibration: SceneCalibration = DEFAULT_CALIBRATION) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.calibration = calibration
        self.orb = cv2.ORB_create(nfeatures=MAX_FEATURES, fastThreshold=12)
        self.clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(CLAHE_TILES,
                                                                         CLAHE_TILES))
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
        """Keypoints, patch, ground level and embeddings of one photo, the vehicle masked out of
        the scene."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 \
                or image_bgr.size == 0:
            raise BadInputError("scene signature needs a BGR colour image")
        height, width = image_bgr.shape[:2]
        scale = WORK_SIDE / max(width, height)  # one working size: thresholds mean the same
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA if scale < 1
                          else cv2.INTER_LINEAR)
        grey = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
        equalised = self.clahe.apply(grey)  # keypoints that survive another hour's light
        box = None
        if vehicle_box is not None:
            clipped = vehicle_box.clip(width, height)
            if clipped.width >= 2 and clipped.height >= 2:
                box = (clipped.x1 * scale, clipped.y1 * scale, clipped.x2 * scale,
                       clipped.y2 * scale)
        mask = None
        vehicle_points = np.zeros((0, 2), np.float32)
        vehicle_descriptors = np.zeros((0, 32), np.uint8)
        patch = crop = ground = None
        masked = work
        if box is not None:
            gx1, gy1, gx2, gy2 = _grow(box, MASK_GROW, *size)
            mask = np.full(grey.shape, 255, np.uint8)
            mask[gy1:gy2, gx1:gx2] = 0  # the vehicle is not background
            # on the vehicle's own region only: a masked full-frame pass costs a whole pyramid
            vehicle_points, vehicle_descriptors = self._keypoints(
                self.vehicle_orb, equalised[gy1:gy2, gx1:gx2], None)
            vehicle_points += np.array([gx1, gy1], np.float32)
            crop = Detections.from_boxes([clipped]).crop(image_bgr, 0)
            patch = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY),
                               (PATCH_SIDE, PATCH_SIDE), interpolation=cv2.INTER_AREA)
            ground = _ground_levels(grey, box)
            if self.embedder is not None:
                masked = work.copy()
                masked[gy1:gy2, gx1:gx2] = np.array(cv2.mean(work)[:3], np.uint8)
        points, descriptors = self._keypoints(self.orb, equalised, mask)
        embedding = vehicle_embedding = None
        if self.embedder is not None:
            vectors = self.embedder.embed([masked] if crop is None else [masked, crop])
            embedding = vectors[0]
            vehicle_embedding = vectors[1] if crop is not None else None
        return SceneSignature(
            size=size, vehicle_box=box, points=points, descriptors=descriptors,
            vehicle_points=vehicle_points, vehicle_descriptors=vehicle_descriptors, patch=patch,
            embedding=embedding, vehicle_embedding=vehicle_embedding, model_id=self.model_id,
            ground=ground)

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
        if not sane_transform(h, a.size):
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

    def measure(self, a: SceneSignature, b: SceneSignature) -> SceneFeatures:
        """Everything the verdict needs, before any boundary is applied."""
        h, inliers, in_a, in_b = self._register(a, b)
        emb = _cosine(a.embedding, b.embedding)
        few = len(a.points) < MIN_BACKGROUND_POINTS or len(b.points) < MIN_BACKGROUND_POINTS
        if h is None or a.vehicle_box is None or b.vehicle_box is None:
            return SceneFeatures(inliers=inliers, transform=h is not None, few_background=few,
                                 embedding_similarity=emb)
        h_global, h = h, self._local(h, in_a, in_b, a.vehicle_box)
        mapped = map_box(h, a.vehicle_box)
        if mapped is not None:  # a car at the frame's edge: compare what both photos show
            mapped = mapped.clip(*b.size)
        target = Box(*b.vehicle_box)
        iou = float(mapped.iou(target)) if mapped is not None else 0.0
        shift = centre_shift(mapped, target) if mapped is not None else math.inf
        matched, following, together = self._vehicle_keypoints(a, b, h)
        coherent = max(following, together) >= MIN_VEHICLE_AGREE
        follow = following / matched if matched >= MIN_VEHICLE_MATCHES and coherent else None
        patch_sim = 0.0
        presence = contrast = None
        if a.patch is not None and b.patch is not None:
            # Through the local and the global motion, and as they are: a fixed camera needs no
            # alignment, and either fit can be a few pixels off at one space.
            views = [aligned_patches(a.patch, a.vehicle_box, b.patch, b.vehicle_box, h),
                     aligned_patches(a.patch, a.vehicle_box, b.patch, b.vehicle_box, h_global),
                     (a.patch, b.patch, None)]
            patch_sim = max(cell_similarity(*view) for view in views)
            if a.ground is not None and b.ground is not None:
                lefts = [vehicle_contrast_left(pa, pb, valid, a.ground, b.ground)
                         for pa, pb, valid in views]
                presence, contrast = max(lefts)
        return SceneFeatures(
            inliers=inliers, transform=True, few_background=few, embedding_similarity=emb,
            box_iou=iou, box_shift=shift, vehicle_matches=matched, vehicle_following=following,
            vehicle_keypoints_following=follow, patch_similarity=patch_sim,
            vehicle_embedding_similarity=_cosine(a.vehicle_embedding, b.vehicle_embedding),
            vehicle_presence=presence, vehicle_contrast=contrast)

    def compare(self, a: SceneSignature, b: SceneSignature) -> SceneMatch:
        """Same background, and the same vehicle still in the same place? One score, one reason.
        """
        return judge(self.measure(a, b), self.calibration, self.threshold)

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
