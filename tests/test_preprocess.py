"""The one preprocessing implementation, on synthetic arrays: letterbox, resize, colour order,
scale, mean/std, HWC -> NCHW and batches. No model file needed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.inference.catalog import ModelSpec
from edge_agent.inference.preprocess import (
    PAD_VALUE,
    colour_planes,
    letterbox,
    normalise,
    resize,
    to_batch,
    to_tensor,
)

B, G, R = 10, 20, 30


def _spec(**keys: object) -> ModelSpec:
    base: dict[str, object] = {"id": "t", "kind": "scene_embedder", "file": "t.onnx",
                               "layout": "embedding", "input_size": (8, 6)}
    base.update(keys)
    return ModelSpec(**base)  # type: ignore[arg-type]


def _bgr(height: int = 4, width: int = 5) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = B, G, R
    return image


def test_letterbox_center_geometry_and_buffer_reuse() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100] = 255  # left half white
    buffer = np.empty((320, 320, 3), np.uint8)
    canvas, lb = letterbox(image, (320, 320), "center", out=buffer)
    assert canvas is buffer
    assert lb.scale == pytest.approx(1.6) and lb.pad_x == 0 and lb.pad_y == 80
    assert (canvas[:80] == PAD_VALUE).all() and (canvas[240:] == PAD_VALUE).all()
    assert canvas[160, 10, 0] == 255 and canvas[160, 310, 0] == 0


@pytest.mark.parametrize(("mode", "pad"), [("center", (0, 80)), ("topleft", (0, 0))])
def test_letterbox_puts_the_padding_where_the_catalog_says(mode: str, pad: tuple[int, int]
                                                           ) -> None:
    canvas, lb = letterbox(np.full((100, 200, 3), 9, np.uint8), (320, 320), mode)  # type: ignore[arg-type]
    assert (lb.pad_x, lb.pad_y) == pad
    top = pad[1]
    assert (canvas[top:top + 160] == 9).all()  # the image, scaled by 1.6
    assert (canvas[:top] == PAD_VALUE).all() and (canvas[top + 160:] == PAD_VALUE).all()


def test_letterbox_refuses_an_empty_image() -> None:
    with pytest.raises(ValueError, match="empty image"):
        letterbox(np.zeros((0, 5, 3), np.uint8), (32, 32))


@pytest.mark.parametrize(("size", "interpolation"), [
    ((4, 3), cv2.INTER_AREA),  # shrinking: pixel areas averaged
    ((20, 3), cv2.INTER_AREA),  # one side shrinks
    ((20, 12), cv2.INTER_LINEAR),  # only growing: bilinear
])
def test_resize_stretches_and_picks_the_interpolation(size: tuple[int, int],
                                                      interpolation: int) -> None:
    image = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    out = resize(image, size)
    assert out.shape == (size[1], size[0], 3)
    np.testing.assert_array_equal(out, cv2.resize(image, size, interpolation=interpolation))
    forced = resize(image, size, cv2.INTER_AREA)
    np.testing.assert_array_equal(forced, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    assert resize(image, (10, 6)) is image  # already that size


@pytest.mark.parametrize(("color", "expected"), [
    ("rgb", [R, G, B]),
    ("bgr", [B, G, R]),
    ("gray", [int(cv2.cvtColor(_bgr(1, 1), cv2.COLOR_BGR2GRAY)[0, 0])]),
])
def test_colour_order(color: str, expected: list[int]) -> None:
    tensor = to_tensor(_bgr(), _spec(color=color, scale=1.0))
    assert tensor.shape == (1, len(expected), 4, 5) and tensor.dtype == np.float32
    assert tensor[0, :, 2, 3].tolist() == expected
    assert tensor.flags.c_contiguous


@pytest.mark.parametrize("color", ["rgb", "bgr", "gray"])
def test_a_gray_photo_feeds_any_colour_order(color: str) -> None:
    gray = np.full((4, 5), 77, np.uint8)
    planes = colour_planes(gray, color)  # type: ignore[arg-type]
    assert len(planes) == (1 if color == "gray" else 3)
    assert all((p == 77).all() for p in planes)
    np.testing.assert_array_equal(colour_planes(gray[:, :, None], color), planes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("scale", "mean", "std"), [
    (1.0, None, None),  # raw 0..255 (YOLOX)
    (255.0, None, None),  # 0..1 (ultralytics)
    (255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet
    (127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),  # PaddleOCR's [-1, 1]
    (255.0, (0.5,), (0.5,)),  # one value for every channel
    (255.0, (0.5, 0.25, 0.0), None),  # mean without std
])
def test_scale_then_mean_then_std_per_channel(scale: float, mean: tuple[float, ...] | None,
                                              std: tuple[float, ...] | None) -> None:
    spec = _spec(color="bgr", scale=scale, mean=mean, std=std)
    tensor = to_tensor(_bgr(), spec)
    for channel, value in enumerate((B, G, R)):
        want = np.float32(value) * np.float32(1.0 / scale)  # the detectors' arithmetic
        if mean is not None:
            want -= np.float32(mean[min(channel, len(mean) - 1)])
        if std is not None:
            want /= np.float32(std[min(channel, len(std) - 1)])
        assert (tensor[0, channel] == want).all(), (channel, tensor[0, channel, 0, 0], want)
        plain = (value / scale - (mean[min(channel, len(mean) - 1)] if mean else 0.0)) / (
            std[min(channel, len(std) - 1)] if std else 1.0)
        assert tensor[0, channel, 0, 0] == pytest.approx(plain, rel=1e-6, abs=1e-6)


def test_normalise_takes_views_already_in_the_model_colour_order() -> None:
    """A plate reader builds its own views (stretched, split in lines) in its colour order."""
    spec = _spec(color="gray", scale=255.0, mean=(0.5,), std=(0.5,))
    gray = np.full((48, 144, 1), 255, np.uint8)
    x = normalise(gray, spec)
    assert x.shape == (1, 48, 144) and np.allclose(x, 1.0) and x.flags.c_contiguous
    np.testing.assert_array_equal(normalise(gray[:, :, 0], spec), x)
    view = _bgr()  # taken as it is, not reordered
    rgb = normalise(view, _spec(color="rgb", scale=1.0))
    assert rgb[:, 0, 0].tolist() == [B, G, R]


def test_buffers_are_reused() -> None:
    spec = _spec(color="rgb")
    out = np.empty((1, 3, 4, 5), np.float32)
    assert to_tensor(_bgr(), spec, out=out) is out
    wrong = np.empty((1, 3, 5, 5), np.float32)
    assert to_tensor(_bgr(), spec, out=wrong) is not wrong


def test_a_batch_of_crops_of_any_size() -> None:
    spec = _spec(color="rgb", input_size=(8, 6), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, shape, dtype=np.uint8)
             for shape in [(30, 50, 3), (3, 4, 3), (6, 8, 3)]]
    batch = to_batch(crops, spec, interpolation=cv2.INTER_AREA)
    assert batch.shape == (3, 3, 6, 8) and batch.dtype == np.float32
    for index, crop in enumerate(crops):
        one = to_tensor(resize(crop, (8, 6), cv2.INTER_AREA), spec)
        np.testing.assert_array_equal(batch[index], one[0])


def test_a_batch_needs_a_fixed_input_size() -> None:
    with pytest.raises(ValueError, match="fixed input_size"):
        to_batch([_bgr()], _spec(input_size=(0, 48)))
