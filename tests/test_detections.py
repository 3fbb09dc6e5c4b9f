"""The one detections type on synthetic arrays: validation, selection, grow, clip, NMS, crop,
the mapping back from a rotated view, and the conversion to and from ``Box``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.detections import TURNS, Detections, nms_indices
from edge_agent.results import Box


def _dets(*rows: tuple[float, float, float, float], scores: list[float] | None = None,
          class_ids: list[int] | None = None, **data: np.ndarray) -> Detections:
    n = len(rows)
    return Detections(np.array(rows, np.float32).reshape(n, 4),
                      np.array(scores if scores is not None else [0.5] * n, np.float32),
                      np.array(class_ids if class_ids is not None else [0] * n, np.int64),
                      data)


# -- built and checked --------------------------------------------------------------------

@pytest.mark.parametrize(("xyxy", "scores", "class_ids", "data", "message"), [
    (np.zeros(4), np.zeros(1), np.zeros(1), {}, r"xyxy must have shape \[\*, 4\], got \[4\]"),
    (np.zeros((2, 3)), np.zeros(2), np.zeros(2), {},
     r"xyxy must have shape \[\*, 4\], got \[2, 3\]"),
    (np.zeros((2, 4)), np.zeros(3), np.zeros(2), {}, r"scores must have shape \[2\], got \[3\]"),
    (np.zeros((2, 4)), np.zeros((2, 1)), np.zeros(2), {},
     r"scores must have shape \[2\], got \[2, 1\]"),
    (np.zeros((2, 4)), np.zeros(2), np.zeros(1), {},
     r"class_ids must have shape \[2\], got \[1\]"),
    (np.zeros((2, 4)), np.zeros(2), np.zeros(2), {"quad": np.zeros((1, 4, 2))},
     r"data\['quad'\] must have shape \[2, \*, \*\], got \[1, 4, 2\]"),
    (np.zeros((1, 4)), np.zeros(1), np.zeros(1), {"label": np.array("car")},
     r"data\['label'\] must have shape \[1\], got \[\]"),
    (np.array([[0, 0, np.nan, 1]]), np.zeros(1), np.zeros(1), {}, "finite"),
    (np.array([[0, 0, np.inf, 1]]), np.zeros(1), np.zeros(1), {}, "finite"),
    (np.array([[0, 0, 5, 5], [5, 0, 4, 5]]), np.zeros(2), np.zeros(2), {},
     r"x1<=x2 and y1<=y2, got row 1: \[5.0, 0.0, 4.0, 5.0\]"),
    (np.array([[0, 6, 5, 5]]), np.zeros(1), np.zeros(1), {}, "row 0"),
])
def test_a_bad_shape_or_box_is_refused_when_built(xyxy, scores, class_ids, data,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, scores, class_ids, data)


def test_arrays_are_converted_copied_and_read_only() -> None:
    xyxy = np.array([[1, 2, 3, 4]], np.float64)
    found = Detections(xyxy, [0.5], np.array([3], np.int32), {"label": ["car"]})
    assert found.xyxy.dtype == np.float32 and found.scores.dtype == np.float32
    assert found.class_ids.dtype == np.int64 and found.data["label"].tolist() == ["car"]
    xyxy[0, 0] = 99  # the caller's array is the caller's
    assert found.xyxy[0, 0] == 1
    with pytest.raises(ValueError, match="read-only"):
        found.xyxy[0, 0] = 5
    with pytest.raises(TypeError):
        found.data["label"] = np.array(["bus"])  # type: ignore[index]


def test_empty() -> None:
    found = Detections.empty()
    assert len(found) == 0 and found.xyxy.shape == (0, 4) and list(found) == []
    assert len(found.nms(0.5)) == 0 and len(found.grow(0.1, 0.1, 10, 10)) == 0


# -- selection ----------------------------------------------------------------------------

ROWS = ((0, 0, 10, 10), (20, 0, 30, 10), (40, 0, 50, 10))


@pytest.mark.parametrize(("index", "firsts"), [
    (0, [0]),
    (-1, [40]),
    (np.int64(1), [20]),
    (slice(1, None), [20, 40]),
    (slice(0, 0), []),
    ([2, 0], [40, 0]),
    (np.array([True, False, True]), [0, 40]),
])
def test_selection_keeps_the_data_in_step(index, firsts: list[float]) -> None:
    found = _dets(*ROWS, label=np.array(["car", "bus", "truck"]))
    part = found[index]
    assert part.xyxy[:, 0].tolist() == firsts
    by_x = {0: "car", 20: "bus", 40: "truck"}
    assert part.data["label"].tolist() == [by_x[x] for x in firsts]


@pytest.mark.parametrize(("index", "error"), [
    (3, IndexError), (-4, IndexError), (np.array([True, False]), ValueError),
])
def test_a_bad_index_is_refused(index, error: type[Exception]) -> None:
    with pytest.raises(error):
        _dets(*ROWS)[index]


@pytest.mark.parametrize(("scores", "min_score", "kept"), [
    ([0.2, 0.5, 0.9], 0.5, [20, 40]),
    ([0.2, 0.5, 0.9], 0.0, [0, 20, 40]),
    ([0.2, 0.5, 0.9], 0.95, []),
    # 0.7 is no float32: the nearest float32 lies just below it, so a score there is under
    # the threshold (a float32 compare would round the threshold down and keep it)
    ([float(np.float32(0.7)), 0.9, 0.1], 0.7, [20]),
])
def test_scoring_at_least(scores: list[float], min_score: float, kept: list[float]) -> None:
    assert _dets(*ROWS, scores=scores).scoring_at_least(min_score).xyxy[:, 0].tolist() == kept


@pytest.mark.parametrize(("scores", "order"), [
    ([0.2, 0.9, 0.5], [20, 40, 0]),
    ([0.5, 0.5, 0.9], [40, 0, 20]),  # a tie keeps its order
])
def test_best_first(scores: list[float], order: list[float]) -> None:
    assert _dets(*ROWS, scores=scores).best_first().xyxy[:, 0].tolist() == order


def test_merge_skips_empty_parts_and_needs_the_same_data() -> None:
    a = _dets(ROWS[0], source=np.array(["detector"]))
    b = _dets(ROWS[1], ROWS[2], source=np.array(["detector", "detector"]))
    merged = Detections.merge([Detections.empty(), a, b])
    assert merged.xyxy[:, 0].tolist() == [0, 20, 40] and len(merged.data["source"]) == 3
    assert len(Detections.merge([])) == 0
    with pytest.raises(ValueError, match="data keys differ"):
        Detections.merge([a, _dets(ROWS[1])])


def test_with_data_adds_and_replaces() -> None:
    found = _dets(*ROWS, label=np.array(["a", "b", "c"])).with_data(
        label=np.array(["x", "y", "z"]), index=np.arange(3))
    assert found.data["label"].tolist() == ["x", "y", "z"]
    assert found.data["index"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"data\['index'\]"):
        found.with_data(index=np.arange(2))


# -- NMS ----------------------------------------------------------------------------------

NMS_ROWS = ((0, 0, 10, 10), (1, 1, 11, 11), (0, 0, 10, 10), (50, 50, 60, 60))


@pytest.mark.parametrize(("class_ids", "per_class", "kept"), [
    ([0, 0, 1, 0], True, [0, 2, 3]),  # the class-1 twin of box 0 survives
    ([0, 0, 1, 0], False, [0, 3]),
    ([0, 1, 2, 3], True, [0, 1, 2, 3]),
])
def test_nms(class_ids: list[int], per_class: bool, kept: list[int]) -> None:
    found = _dets(*NMS_ROWS, scores=[0.9, 0.8, 0.7, 0.6], class_ids=class_ids,
                  index=np.arange(4))
    assert found.nms(0.5, per_class=per_class).data["index"].tolist() == kept


def test_nms_keeps_the_best_first_whatever_the_input_order() -> None:
    found = _dets((0, 0, 10, 10), (100, 0, 110, 10), (1, 0, 11, 10), scores=[0.3, 0.6, 0.9])
    assert found.nms(0.5).scores.tolist() == pytest.approx([0.9, 0.6])
    assert nms_indices(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


# -- geometry -----------------------------------------------------------------------------

@pytest.mark.parametrize(("box", "fx", "fy", "size", "grown"), [
    ((10, 10, 20, 30), 0.0, 0.0, (100, 100), (10, 10, 20, 30)),
    ((10, 10, 20, 30), 0.5, 0.25, (100, 100), (5, 5, 25, 35)),
    ((10, 10, 20, 30), (1.0, 0.0), (0.0, 0.5), (100, 100), (0, 10, 20, 40)),
    ((10, 10, 20, 30), 2.0, 1.0, (100, 100), (0, 0, 40, 50)),  # clipped at the top left
    ((80, 90, 100, 100), 0.5, 0.5, (100, 100), (70, 85, 100, 100)),  # and bottom right
    ((-50, -50, 10, 10), 0.0, 0.0, (640, 480), (0, 0, 10, 10)),
    ((1000, 1000, 1001, 1001), 0.1, 0.1, (640, 480), (640, 480, 640, 480)),
    ((5, 5, 5, 5), 0.3, 0.3, (10, 10), (5, 5, 5, 5)),  # nothing to grow
])
def test_grow(box, fx, fy, size: tuple[int, int], grown) -> None:
    np.testing.assert_allclose(_dets(box).grow(fx, fy, *size).xyxy[0], grown)


@pytest.mark.parametrize(("fx", "fy"), [
    (-0.1, 0.0), (0.0, (0.1, -0.1)), (float("nan"), 0.0), (0.0, float("inf")),
])
def test_grow_refuses_a_negative_or_endless_margin(fx, fy) -> None:
    with pytest.raises(ValueError, match="grow"):
        _dets(ROWS[0]).grow(fx, fy, 100, 100)


@pytest.mark.parametrize(("box", "size", "clipped"), [
    ((-5, -5, 5, 5), (10, 10), (0, 0, 5, 5)),
    ((5, 5, 15, 15), (10, 10), (5, 5, 10, 10)),
    ((20, 20, 30, 30), (10, 10), (10, 10, 10, 10)),
    ((1, 2, 3, 4), (10, 10), (1, 2, 3, 4)),
])
def test_clip(box, size: tuple[int, int], clipped) -> None:
    np.testing.assert_allclose(_dets(box).clip(*size).xyxy[0], clipped)


def test_clip_refuses_a_negative_image_size() -> None:
    with pytest.raises(ValueError, match="image size"):
        _dets(ROWS[0]).clip(-1, 10)


@pytest.mark.parametrize(("box", "pixels"), [
    ((1.2, 2.7, 3.2, 4.0), (1, 2, 4, 4)),
    ((0, 0, 10, 10), (0, 0, 10, 10)),
    ((9.99, 0.01, 10.01, 0.99), (9, 0, 11, 1)),
])
def test_pixel_box_covers_the_box(box, pixels) -> None:
    assert _dets(box).pixel_box(0) == pixels


@pytest.mark.parametrize(("box", "shape"), [
    ((2, 3, 6, 8), (5, 4)),
    ((2.5, 3.5, 5.5, 7.5), (5, 4)),
    ((-10, -10, 3, 2), (2, 3)),  # cut to the image, never wrapped round by a negative start
    ((35, 15, 50, 30), (5, 5)),
    ((50, 50, 60, 60), (0, 0)),
])
def test_crop(box, shape: tuple[int, int]) -> None:
    image = np.arange(20 * 40).reshape(20, 40)
    found = _dets(box)
    crop = found.crop(image, 0)
    assert crop.shape == shape
    if crop.size:
        x1, y1, _, _ = found.clip(40, 20).pixel_box(0)
        assert crop[0, 0] == image[y1, x1]


def test_shift() -> None:
    found = _dets((1, 2, 3, 4))
    np.testing.assert_allclose(found.shift(10, -1).xyxy[0], [11, 1, 13, 3])
    assert found.shift(0, 0) is found


@pytest.mark.parametrize("turn", TURNS)
@pytest.mark.parametrize(("box", "size"), [
    ((10, 20, 50, 30), (80, 60)),  # (x1, y1, x2, y2), (width, height)
    ((0, 0, 80, 60), (80, 60)),
    ((70, 5, 80, 59), (80, 60)),
    ((3, 40, 4, 41), (50, 100)),
])
def test_from_rotated_maps_a_box_back_upright(turn: int, box, size: tuple[int, int]) -> None:
    """Draw the box, turn the image, find the drawn box in the turned view, and map it back."""
    width, height = size
    x1, y1, x2, y2 = box
    image = np.zeros((height, width), np.uint8)
    image[y1:y2, x1:x2] = 255
    turned = cv2.rotate(image, turn)
    ys, xs = np.nonzero(turned)
    seen = _dets((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), label=np.array(["car"]))
    back = seen.from_rotated(turn, width, height)
    np.testing.assert_allclose(back.xyxy[0], box)
    assert back.data["label"].tolist() == ["car"] and back.scores.tolist() == [0.5]


def test_from_rotated_refuses_another_turn() -> None:
    with pytest.raises(ValueError, match="ROTATE_90_CLOCKWISE"):
        _dets(ROWS[0]).from_rotated(cv2.ROTATE_180, 100, 100)


# -- Box both ways ------------------------------------------------------------------------

def test_boxes_round_trip() -> None:
    boxes = [Box(1.5, 2.25, 30.0, 40.75), Box(0.0, 0.0, 0.0, 0.0)]
    found = Detections.from_boxes(boxes, scores=[0.9, 0.1], class_ids=[2, 7])
    assert list(found) == boxes and found.box(1) == boxes[1]
    assert found.class_ids.tolist() == [2, 7] and found.scores.tolist() == pytest.approx([0.9,
                                                                                          0.1])
    plain = Detections.from_boxes(boxes)
    assert plain.scores.tolist() == [1.0, 1.0] and plain.class_ids.tolist() == [0, 0]
    assert len(Detections.from_boxes([])) == 0
