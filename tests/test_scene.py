"""Scene matcher on real photos: PKLot frame pairs, re-shot and edited street photos."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_path

from edge_agent.config import load_config
from edge_agent.errors import BadInputError, ConfigError, ModelError
from edge_agent.evaluation.scene_pairs import (
    camera_move,
    light_change,
    move_vehicle,
    passer_by,
    read_occupancy,
    resize_for_generation,
    sensor,
)
from edge_agent.results import Box
from edge_agent.vision.embedder import expose_features
from edge_agent.vision.scene import SceneMatcher, SceneSignature, gradient_similarity

PKLOT_DAY = "data/fixed/pklot-ufpr05_2013-03-09"
STREET = ("data/scenes/korea-a/4vehicles.jpg", "data/street/parking-research/cam_1.jpg")


def _config(models_dir: Path, embedder: str | None = "mobilenetv2-imagenet"):
    config = load_config(None, environ={"GOTCHA_MODEL_DIR": str(models_dir)})
    config.models.scene_embedder = embedder
    return config


@pytest.fixture(scope="module")
def matcher(models_dir: Path) -> SceneMatcher:
    return SceneMatcher.from_config(_config(models_dir))


@pytest.fixture(scope="module")
def geometry(models_dir: Path) -> SceneMatcher:
    return SceneMatcher.from_config(_config(models_dir, None))


@pytest.fixture(scope="module")
def pklot() -> list[tuple[np.ndarray, dict[str, tuple[Box, bool]]]]:
    """Three frames of one camera with occupancy (cars stay, leave and arrive between them)."""
    folder = shared_path(PKLOT_DAY)
    frames = []
    for stem in ("2013-03-09_09_30_04", "2013-03-09_09_45_04", "2013-03-09_11_20_06"):
        frames.append((cv2.imread(str(folder / f"{stem}.jpg")),
                       read_occupancy(folder / f"{stem}.xml")))
    return frames


def _real_cases(pklot):
    """(image a, image b, box, still there) for every space occupied in frame a or b."""
    cases = []
    for (ia, sa), (ib, sb) in combinations(pklot, 2):
        for space, (box, occ_a) in sa.items():
            occ_b = sb[space][1]
            if occ_a or occ_b:
                cases.append((ia, ib, box, occ_a and occ_b))
    return cases


def _street(rel: str) -> tuple[np.ndarray, Box]:
    """A street photo and its main vehicle (largest box from the real detector)."""
    from edge_agent.evaluation.scene_pairs import main_vehicle
    from edge_agent.vision.vehicle_detector import VehicleDetector

    image, _ = resize_for_generation(cv2.imread(str(shared_path(rel))))
    detector = VehicleDetector.from_config(_config(shared_path("models")))
    box = main_vehicle([v.box for v in detector.detect(image)], (image.shape[1], image.shape[0]))
    assert box is not None, f"no vehicle found in {rel}"
    return image, box


@pytest.fixture(scope="module")
def streets() -> list[tuple[np.ndarray, Box]]:
    return [_street(rel) for rel in STREET]


def _reshoot(image: np.ndarray, box: Box, rng: np.random.Generator):
    h, w = image.shape[:2]
    mat = camera_move((w, h), rng)
    out = sensor(light_change(cv2.warpPerspective(image, mat, (w, h),
                                                  borderMode=cv2.BORDER_REFLECT), rng), rng)
    corners = np.array([[[box.x1, box.y1]], [[box.x2, box.y2]], [[box.x1, box.y2]],
                        [[box.x2, box.y1]]], np.float32)
    mapped = cv2.perspectiveTransform(corners, mat).reshape(-1, 2)
    return out, Box(*mapped.min(axis=0), *mapped.max(axis=0))


def test_real_pklot_pairs_same_spot_accepted_vehicle_gone_rejected(matcher, pklot):
    cases = _real_cases(pklot)
    assert sum(c[3] for c in cases) >= 10 and sum(not c[3] for c in cases) >= 5
    for ia, ib, box, still_there in cases:
        result = matcher.match(ia, box, ib, box)
        assert 0.0 <= result.score <= 1.0
        assert result.same_scene == still_there, (box, result)
        assert result.inliers > 50  # one fixed camera: the background always matches


def test_generated_positive_moved_and_other_scene(matcher, streets):
    rng = np.random.default_rng(11)
    (image, box), (other, other_box) = streets
    sig = matcher.signature(image, box)
    shot, shot_box = _reshoot(image, box, rng)
    same = matcher.compare(sig, matcher.signature(shot, shot_box))
    assert same.same_scene and same.vehicle_moved is False, same
    walker = passer_by(shot, shot_box, rng)
    assert matcher.compare(sig, matcher.signature(walker, shot_box)).same_scene
    moved = move_vehicle(image, box, rng)
    assert moved is not None
    moved_shot, moved_box = _reshoot(*moved, rng)
    verdict = matcher.compare(sig, matcher.signature(moved_shot, moved_box))
    assert not verdict.same_scene and verdict.vehicle_moved is True, verdict
    assert "moved" in verdict.reason
    elsewhere = matcher.compare(sig, matcher.signature(other, other_box))
    assert not elsewhere.same_scene and "background" in elsewhere.reason, elsewhere


def test_geometry_only_mode_decides_alone(geometry, streets, pklot):
    rng = np.random.default_rng(5)
    (image, box), (other, other_box) = streets
    sig = geometry.signature(image, box)
    assert sig.embedding is None and sig.embedding_list() is None
    shot, shot_box = _reshoot(image, box, rng)
    same = geometry.compare(sig, geometry.signature(shot, shot_box))
    assert same.same_scene and same.embedding_similarity is None
    moved_shot, moved_box = _reshoot(*move_vehicle(image, box, rng), rng)
    assert geometry.compare(sig, geometry.signature(moved_shot, moved_box)).vehicle_moved
    assert not geometry.compare(sig, geometry.signature(other, other_box)).same_scene
    ia, ib, space, _ = next(c for c in _real_cases(pklot) if c[3])
    assert geometry.match(ia, space, ib, space).same_scene


def test_without_vehicle_box_only_background_counts(matcher, streets):
    (image, _), (other, _) = streets
    shot, _ = _reshoot(image, Box(0, 0, 10, 10), np.random.default_rng(2))
    same = matcher.match(image, None, shot, None)
    assert same.same_scene and same.vehicle_moved is None
    assert not matcher.match(image, None, other, None).same_scene


def test_signature_round_trip(matcher, streets):
    (image, box), _ = streets
    sig = matcher.signature(image, box)
    back = SceneSignature.from_bytes(sig.to_bytes())
    assert back.size == sig.size and back.vehicle_box == pytest.approx(sig.vehicle_box)
    np.testing.assert_array_equal(back.descriptors, sig.descriptors)
    np.testing.assert_array_equal(back.patch, sig.patch)
    np.testing.assert_allclose(back.embedding, sig.embedding, atol=1e-3)  # stored as float16
    assert len(sig.embedding_list()) == sig.embedding.shape[0] == 1280
    assert back.model_id == "mobilenetv2-imagenet"
    assert matcher.compare(back, sig).score == pytest.approx(matcher.compare(sig, sig).score,
                                                            abs=1e-3)


@pytest.mark.parametrize("blob", [b"", b"not a signature", b"PK\x03\x04garbage"])
def test_damaged_signature_is_bad_input(blob):
    with pytest.raises(BadInputError):
        SceneSignature.from_bytes(blob)


def test_bad_image_is_bad_input(geometry):
    with pytest.raises(BadInputError):
        geometry.signature(np.zeros((10, 10), np.uint8), None)


def _catalog(tmp_path: Path, file: str, extra: str = "") -> Path:
    catalog = tmp_path / "models.toml"
    catalog.write_text(
        f'[models.broken]\nkind = "scene_embedder"\nfile = "{file}"\ninput_size = [224, 224]\n'
        f'layout = "embedding"\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n'
        f"{extra}", encoding="utf-8")
    return catalog


def _broken_config(tmp_path: Path, catalog: Path):
    config = load_config(None, environ={"GOTCHA_MODEL_DIR": str(tmp_path)})
    config.models.catalog = catalog
    config.models.scene_embedder = "broken"
    return config


def test_broken_embedding_model_is_model_error(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf model")
    config = _broken_config(tmp_path, _catalog(tmp_path, "broken.onnx"))
    with pytest.raises(ModelError, match="broken"):
        SceneMatcher.from_config(config)


def test_missing_embedding_model_is_model_error(tmp_path):
    config = _broken_config(tmp_path, _catalog(tmp_path, "absent.onnx"))
    with pytest.raises(ModelError, match=r"absent\.onnx"):
        SceneMatcher.from_config(config)


def test_unknown_feature_output_is_model_error(tmp_path, models_dir):
    src = models_dir / "mobilenetv2-imagenet-int8.onnx"
    (tmp_path / "m.onnx").symlink_to(src)
    config = _broken_config(tmp_path, _catalog(tmp_path, "m.onnx",
                                               'feature_output = "no_such_tensor"\n'))
    with pytest.raises(ModelError, match="no_such_tensor"):
        SceneMatcher.from_config(config)


def test_embedder_of_wrong_kind_is_config_error(models_dir):
    config = _config(models_dir, "yolov8n-coco")
    with pytest.raises(ConfigError):
        SceneMatcher.from_config(config)


def test_float_backbone_pool_is_found_automatically():
    """A float (ResNet-style) graph: conv -> GlobalAveragePool -> Flatten -> Gemm logits."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weights = [
        helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], rng.normal(size=216).tolist()),
        helper.make_tensor("fc", TensorProto.FLOAT, [8, 10], rng.normal(size=80).tolist()),
    ]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["pool"]),
             helper.make_node("Flatten", ["pool"], ["flat"]),
             helper.make_node("MatMul", ["flat", "fc"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                      [None, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    edited, name = expose_features(model.SerializeToString())
    assert name == "pool"
    session = ort.InferenceSession(edited, providers=["CPUExecutionProvider"])
    x = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    (pool,) = session.run([name], {"input": x})
    assert pool.shape == (2, 8, 1, 1)
    assert onnx.load_from_string(edited).graph.output[-1].name == "pool"


def test_gradient_similarity_ignores_brightness_not_content():
    rng = np.random.default_rng(1)
    patch = cv2.GaussianBlur(rng.integers(0, 255, (48, 48)).astype(np.uint8), (5, 5), 0)
    brighter = np.clip(patch.astype(np.float32) * 0.6 + 60, 0, 255).astype(np.uint8)
    other = cv2.GaussianBlur(rng.integers(0, 255, (48, 48)).astype(np.uint8), (5, 5), 0)
    assert gradient_similarity(patch, brighter) > 0.95
    assert gradient_similarity(patch, other) < 0.3
    assert gradient_similarity(patch, np.full_like(patch, 128)) == 0.0


def _ground_and_car(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """A textured asphalt patch, the same with a dark car with bright windows on it, and the
    asphalt's grey quantiles (what a signature keeps of the ground)."""
    ground = np.clip(rng.normal(120, 12, (48, 48)), 0, 255).astype(np.uint8)
    car = ground.copy()
    car[10:38, 8:40] = 40
    car[14:22, 12:36] = 200
    levels = tuple(float(v) for v in np.percentile(ground, np.linspace(0, 100, 17)))
    return ground, car, levels


def test_vehicle_contrast_left_tells_a_car_from_its_empty_place_under_any_exposure():
    from edge_agent.vision.scene_similarity import vehicle_contrast_left

    ground, car, levels = _ground_and_car(np.random.default_rng(4))
    kept, contrast = vehicle_contrast_left(car, car, None, levels, levels)
    assert kept == pytest.approx(1.0, abs=0.05) and contrast > 0.3
    gone, _ = vehicle_contrast_left(car, ground, None, levels, levels)
    assert gone < 0.4  # an emptied place shows ground: below the presence boundary
    # another exposure and gamma for the second photo, ground and car alike: ranks do not move
    lut = np.clip(255 * (np.arange(256) / 255) ** 0.6 * 1.2, 0, 255).astype(np.uint8)
    brighter = tuple(float(v) for v in np.percentile(cv2.LUT(ground, lut),
                                                    np.linspace(0, 100, 17)))
    kept_bright, _ = vehicle_contrast_left(car, cv2.LUT(car, lut), None, levels, brighter)
    assert kept_bright > 0.9


def test_ground_rank_of_a_flat_ground_is_neutral():
    from edge_agent.vision.scene_similarity import ground_rank

    flat = (128.0,) * 17
    ranks = ground_rank(np.array([[0.0, 128.0, 255.0]], np.float32), flat)
    np.testing.assert_allclose(ranks, [[-0.5, 0.0, 0.5]])


def _rewrite_header(blob: bytes, **changes) -> bytes:
    """The same npz blob with header fields changed (None removes one)."""
    import io
    import json

    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays["header"]).decode())
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def test_version_1_signature_is_still_read_and_compared(geometry, pklot):
    """A candidate stored before the presence check (no ground levels) can still be confirmed:
    the presence gate abstains and the look counts the vehicle as kept."""
    from edge_agent.vision.scene_signature import SIGNATURE_VERSION

    assert SIGNATURE_VERSION == 2
    ia, ib, box, _ = next(c for c in _real_cases(pklot) if c[3])
    old = _rewrite_header(geometry.signature(ia, box).to_bytes(), version=1, ground=None)
    first = SceneSignature.from_bytes(old)
    assert first.ground is None
    verdict = geometry.compare(first, geometry.signature(ib, box))
    assert verdict.presence_score is None and verdict.vehicle_presence is None
    assert verdict.same_scene, verdict


def test_unknown_signature_version_is_refused_with_the_version(geometry, streets):
    (image, box), _ = streets
    blob = _rewrite_header(geometry.signature(image, box).to_bytes(), version=99)
    with pytest.raises(BadInputError, match="version 99"):
        SceneSignature.from_bytes(blob)


def test_signature_ground_levels_must_rise():
    with pytest.raises(BadInputError, match="ground levels"):
        SceneSignature(size=(10, 10), vehicle_box=None, points=np.zeros((0, 2), np.float32),
                       descriptors=np.zeros((0, 32), np.uint8),
                       vehicle_points=np.zeros((0, 2), np.float32),
                       vehicle_descriptors=np.zeros((0, 32), np.uint8), patch=None,
                       embedding=None, vehicle_embedding=None, ground=(100.0, 90.0))


def test_calibration_rejects_a_non_positive_scale():
    from dataclasses import replace

    from edge_agent.vision.scene_scoring import DEFAULT_CALIBRATION

    with pytest.raises(ValueError, match="look_scale"):
        replace(DEFAULT_CALIBRATION, look_scale=0.0)


def test_vehicle_gone_reason_names_the_empty_place(matcher, pklot):
    """A space that emptied between two frames: rejected, and the reason says which check."""
    (ia, sa), (ib, sb) = pklot[0], pklot[2]
    space = next(s for s, (_, occ) in sa.items() if occ and not sb[s][1])
    box = sa[space][0]
    verdict = matcher.match(ia, box, ib, box)
    assert not verdict.same_scene and verdict.vehicle_moved
    assert verdict.vehicle_presence is not None
    assert "vehicle gone" in verdict.reason or "changed" in verdict.reason, verdict
