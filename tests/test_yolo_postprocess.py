"""Pure post-processing on synthetic arrays: letterbox round trip, decode (ultralytics, YOLOX),
NMS, DB text post-processing, plate deskew. No model files needed (preprocessing itself:
test_preprocess.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_agent.inference.preprocess import letterbox
from edge_agent.plates.deskew import deskew_plate, find_plate_quad
from edge_agent.plates.locate import tiles
from edge_agent.results import Box
from edge_agent.vision import yolo
from edge_agent.vision.text_detector import (
    TextRegion,
    db_input_size,
    db_postprocess,
    group_plate_candidates,
    order_quad,
)


@pytest.mark.parametrize("size", [(200, 100), (100, 200), (640, 640), (4000, 3000), (7, 5),
                                  (321, 97)])
@pytest.mark.parametrize("mode", ["center", "topleft"])
def test_letterbox_maps_corners_back(size: tuple[int, int], mode: str) -> None:
    width, height = size
    image = np.full((height, width, 3), 200, np.uint8)
    canvas, lb = letterbox(image, (320, 320), mode)  # type: ignore[arg-type]
    assert canvas.shape == (320, 320, 3)
    # The image's full extent, mapped in and back out, is the image's own box.
    box_in = np.array([[lb.pad_x, lb.pad_y, lb.pad_x + width * lb.scale,
                        lb.pad_y + height * lb.scale]], np.float32)
    back = yolo.unletterbox(box_in, lb)
    np.testing.assert_allclose(back[0], [0, 0, width, height], atol=1.0)
    if mode == "topleft":
        assert lb.pad_x == 0 and lb.pad_y == 0
    else:
        assert abs(lb.pad_x - (320 - round(width * lb.scale)) // 2) < 1
    # Padding is 114 and content is the image's value.
    assert canvas[int(lb.pad_y) + 1, int(lb.pad_x) + 1, 0] == 200
    if lb.pad_y >= 2 or lb.pad_x >= 2:
        assert canvas[-1, -1, 0] == 114 or canvas[0, 0, 0] == 114


def _ultralytics_output(classes: int, anchors: int, hits: list[tuple]) -> np.ndarray:
    out = np.zeros((1, 4 + classes, anchors), np.float32)
    for index, (cx, cy, w, h, cls, score) in enumerate(hits):
        out[0, :4, index] = (cx, cy, w, h)
        out[0, 4 + cls, index] = score
    return out


@pytest.mark.parametrize("classes", [1, 80])
def test_decode_ultralytics_round_trip(classes: int) -> None:
    image = np.zeros((300, 600, 3), np.uint8)  # scale 320/600, pad_y = (320-160)//2 = 80
    _, lb = letterbox(image, (320, 320))
    # A box at x 60..180, y 90..150 of the original.
    x1, y1, x2, y2 = 60, 90, 180, 150
    cx = (x1 + x2) / 2 * lb.scale + lb.pad_x
    cy = (y1 + y2) / 2 * lb.scale + lb.pad_y
    w, h = (x2 - x1) * lb.scale, (y2 - y1) * lb.scale
    cls = classes - 1
    out = _ultralytics_output(classes, 2100, [(cx, cy, w, h, cls, 0.9),
                                              (cx + 1, cy, w, h, cls, 0.8),  # duplicate
                                              (20, 20, 10, 10, 0, 0.1)])  # below threshold
    found = yolo.postprocess(out, "yolov8", lb, (320, 320), 0.25, 0.5)
    assert len(found) == 1
    np.testing.assert_allclose(found.xyxy[0], [x1, y1, x2, y2], atol=2.0)
    assert found.scores[0] == pytest.approx(0.9) and found.class_ids[0] == cls


def test_decode_ultralytics_class_filter() -> None:
    out = _ultralytics_output(80, 100, [(50, 50, 20, 20, 0, 0.9), (150, 50, 20, 20, 2, 0.6)])
    _, scores, classes = yolo.decode_ultralytics(out, 0.3, class_ids=(2, 3, 5, 7))
    assert classes.tolist() == [2] and scores.tolist() == pytest.approx([0.6])
    _, _, classes = yolo.decode_ultralytics(out, 0.3)
    assert sorted(classes.tolist()) == [0, 2]


def test_decode_yolox_grid() -> None:
    size = (416, 416)
    offsets, strides = yolo.yolox_grid(size)
    assert offsets.shape[0] == 52 * 52 + 26 * 26 + 13 * 13 == 3549
    out = np.zeros((1, 3549, 85), np.float32)
    # One object at stride 16, cell (10, 5): centre (10+0.5)*16, (5+0.25)*16; w 64, h 32.
    index = 52 * 52 + 5 * 26 + 10
    assert offsets[index].tolist() == [10, 5] and strides[index, 0] == 16
    out[0, index, :4] = (0.5, 0.25, math.log(64 / 16), math.log(32 / 16))
    out[0, index, 4] = 0.9
    out[0, index, 5 + 2] = 0.8
    out[0, 7, 4] = 0.9  # objectness without any class: score 0
    image = np.zeros((416, 416, 3), np.uint8)
    _, lb = letterbox(image, size, "topleft")
    found = yolo.postprocess(out, "yolox", lb, size, 0.3, 0.5, class_ids=(2, 3, 5, 7))
    assert len(found) == 1 and found.class_ids[0] == 2
    assert found.scores[0] == pytest.approx(0.72)
    cx, cy = 10.5 * 16, 5.25 * 16
    np.testing.assert_allclose(found.xyxy[0], [cx - 32, cy - 16, cx + 32, cy + 16], atol=1e-3)


def test_decode_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\[1, 4\+C, N\]"):
        yolo.decode_ultralytics(np.zeros((84, 8400), np.float32), 0.3)
    with pytest.raises(ValueError, match="rows"):
        yolo.decode_yolox(np.zeros((1, 100, 85), np.float32), (416, 416), 0.3)


def test_db_postprocess_finds_rectangle_and_scales() -> None:
    prob = np.zeros((64, 128), np.float32)
    prob[20:40, 30:100] = 0.9
    regions = db_postprocess(prob, scale_x=2.0, scale_y=2.0)
    assert len(regions) == 1
    quad = regions[0].quad
    xs, ys = quad[:, 0], quad[:, 1]
    # Unclip grows the shrunk text map; the region covers the rectangle (x2 scale).
    assert xs.min() < 60 and xs.max() > 200 and ys.min() < 40 and ys.max() > 80
    assert regions[0].score == pytest.approx(0.9, abs=0.1)  # dilation adds a rim
    assert db_postprocess(np.full((32, 32), 0.1, np.float32), 1, 1) == []


def test_db_input_size_multiples_of_32() -> None:
    assert db_input_size(208, 88, 960) == (960, 416)  # raised, but long side capped
    assert db_input_size(300, 200, 960) == (704, 480)
    w, h = db_input_size(4000, 3000, 960)
    assert w % 32 == 0 and h % 32 == 0 and max(w, h) <= 960


def _region(x1: float, y1: float, x2: float, y2: float) -> TextRegion:
    return TextRegion(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32), 0.9)


def test_group_plate_candidates_two_line_and_split_line() -> None:
    two_line = [_region(40, 10, 100, 30), _region(20, 34, 120, 70)]  # region name over number
    far = [_region(400, 300, 460, 320)]
    groups = group_plate_candidates(two_line + far)
    assert len(groups) == 2
    np.testing.assert_allclose(groups[0][0], [20, 10, 120, 70])
    split = [_region(10, 10, 60, 30), _region(75, 11, 140, 31)]  # one line, blurred middle
    assert len(group_plate_candidates(split)) == 1


def test_order_quad() -> None:
    pts = np.array([[10, 12], [0, 0], [0, 10], [12, 1]], np.float32)
    np.testing.assert_allclose(order_quad(pts), [[0, 0], [12, 1], [10, 12], [0, 10]])
    # A one-line plate tilted 30 degrees: y-sorting would mix its corners.
    rect = cv2.boxPoints(((100.0, 100.0), (200.0, 40.0), 30.0))
    ordered = order_quad(rect[::-1])
    top = ordered[1] - ordered[0]
    assert np.hypot(*top) == pytest.approx(200, abs=1) and top[0] > 0
    np.testing.assert_allclose(order_quad(pts), [[0, 0], [12, 1], [10, 12], [0, 10]])


def test_deskew_straightens_a_tilted_plate() -> None:
    image = np.full((240, 400, 3), 60, np.uint8)
    corners = np.array([[100, 90], [300, 70], [305, 130], [105, 150]], np.int32)  # tilted
    cv2.fillPoly(image, [corners], (235, 235, 235))
    cv2.putText(image, "12 3456", (130, 125), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 3)
    box = Box(95.0, 65.0, 310.0, 155.0)  # a detector box around it
    crop, quad = deskew_plate(image, box)
    np.testing.assert_allclose(quad, corners, atol=6)
    assert crop.shape[1] / crop.shape[0] == pytest.approx(200 / 60, rel=0.15)
    # The warped crop is plate all the way: bright border rows, no dark background corners.
    assert crop[2, 2].mean() > 150 and crop[-3, -3].mean() > 150
    assert find_plate_quad(np.full((50, 100, 3), 60, np.uint8), 2500) is None


def test_tiles_cover_the_frame() -> None:
    parts = tiles(4000, 3000)
    assert len(parts) == 4
    covered = np.zeros((3000, 4000), bool)
    for x1, y1, x2, y2 in parts:
        covered[y1:y2, x1:x2] = True
    assert covered.all()


def test_text_plate_quad_follows_the_tilt() -> None:
    from edge_agent.plates.locate import text_plate_quad

    line = cv2.boxPoints(((150.0, 100.0), (160.0, 30.0), -35.0))  # a text line tilted 35 deg
    quad = text_plate_quad(line, 400, 300)
    top = quad[1] - quad[0]
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(-35, abs=1)
    assert np.hypot(*top) == pytest.approx(160 * 1.12, rel=0.02)  # grown by the border
    assert np.hypot(*(quad[3] - quad[0])) == pytest.approx(30 * 1.36, rel=0.02)
