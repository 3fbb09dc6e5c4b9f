"""Image -> network input, as the catalog describes it: one pure implementation for every model.

Why one: detectors, the text detector, plate readers and the scene embedder all need "fit the
image to input_size, put the channels in the model's colour order, scale, subtract mean, divide
by std, HWC -> NCHW"; three copies of that had drifted apart. Everything here is plain
numpy/OpenCV on arrays, tested on synthetic images.

Scaling multiplies by float32(1 / scale) rather than dividing: the int8 detector exports derive
their input quantisation from the exact input values, so a last-bit change moves their boxes and
scores, and their published figures were measured this way; the plate reader and the embedder
read the same either way (same plates, same scene figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge_agent.inference.catalog import ModelSpec

PAD_VALUE = 114  # the grey YOLO exports are trained with around letterboxed images


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the network input: ``input = original * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    width: int  # original image size
    height: int


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    mode: Literal["center", "topleft"] = "center",
    pad_value: int = PAD_VALUE,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` (H, W, 3) into ``size`` = (width, height) keeping its aspect ratio.

    ``out`` (shape (height, width, 3), uint8) is reused when given, so a detector running on
    every frame does not allocate a canvas each time.
    """
    in_w, in_h = size
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"letterbox: empty image of shape {image.shape}")
    scale = min(in_w / width, in_h / height)
    new_w = max(1, min(in_w, round(width * scale)))
    new_h = max(1, min(in_h, round(height * scale)))
    if mode == "center":
        pad_x, pad_y = (in_w - new_w) // 2, (in_h - new_h) // 2
    else:
        pad_x = pad_y = 0
    canvas = out if out is not None and out.shape == (in_h, in_w, 3) else np.empty(
        (in_h, in_w, 3), np.uint8)
    canvas[...] = pad_value
    region = canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w]
    if (new_w, new_h) == (width, height):
        region[...] = image
    else:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        cv2.resize(image, (new_w, new_h), dst=region, interpolation=interp)
    return canvas, Letterbox(scale, float(pad_x), float(pad_y), width, height)


def resize(image: np.ndarray, size: tuple[int, int], interpolation: int | None = None
           ) -> np.ndarray:
    """Stretch ``image`` to ``size`` = (width, height), aspect ratio not kept.

    ``interpolation`` None: pixel-area averaging when a side shrinks (no aliasing), bilinear
    when the image only grows. A model whose published figures were measured with another
    choice passes it.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"resize: target size {size} must be positive")
    if image.size == 0:
        raise ValueError(f"resize: empty image of shape {image.shape}")
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    if interpolation is None:
        shrink = width < image.shape[1] or height < image.shape[0]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def colour_planes(image_bgr: np.ndarray, color: Literal["rgb", "bgr", "gray"]
                  ) -> list[np.ndarray]:
    """The image's channels in the model's colour order, as 2-D arrays (views where possible).

    ``image_bgr`` is BGR (H, W, 3) as OpenCV decodes photos, or gray (H, W) / (H, W, 1).
    """
    if image_bgr.ndim == 3 and image_bgr.shape[2] == 1:
        image_bgr = image_bgr[:, :, 0]
    if image_bgr.ndim == 2:
        return [image_bgr] if color == "gray" else [image_bgr] * 3
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected a BGR or gray image, got shape {image_bgr.shape}")
    if color == "gray":
        return [cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)]
    order = (2, 1, 0) if color == "rgb" else (0, 1, 2)
    return [image_bgr[:, :, c] for c in order]


def _buffer(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if out is not None and out.shape == shape and out.dtype == np.float32:
        return out
    return np.empty(shape, np.float32)


def _scale(x: np.ndarray, spec: ModelSpec) -> None:
    """In place on float32 (..., C, H, W): ``(x * (1 / scale) - mean) / std`` per channel."""
    channels = x.shape[-3]
    if spec.scale != 1.0:
        x *= np.float32(1.0 / spec.scale)
    if spec.mean is not None:
        x -= np.asarray(spec.mean, np.float32)[:channels].reshape(-1, 1, 1)
    if spec.std is not None:
        x /= np.asarray(spec.std, np.float32)[:channels].reshape(-1, 1, 1)


def _fill(tensor: np.ndarray, planes: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """Write the planes into ``tensor`` (C, H, W) or (1, C, H, W) and scale it: one pass, no
    intermediate float image."""
    chw = tensor[0] if tensor.ndim == 4 else tensor
    for index, plane in enumerate(planes):
        chw[index] = plane
    _scale(tensor, spec)
    return tensor


def normalise(image: np.ndarray, spec: ModelSpec, out: np.ndarray | None = None) -> np.ndarray:
    """An image already in the model's colour order, uint8 (H, W, C) or (H, W), -> float32
    (C, H, W) scaled as the catalog says. For views a model owner builds itself (a plate
    reader's stretched or split crops)."""
    planes = image[:, :, None] if image.ndim == 2 else image
    height, width, channels = planes.shape
    tensor = _buffer(out, (channels, height, width))
    return _fill(tensor, [planes[:, :, c] for c in range(channels)], spec)


def to_tensor(image_bgr: np.ndarray, spec: ModelSpec, out: np.ndarray | None = None
              ) -> np.ndarray:
    """A BGR (or gray) image already at the input size -> float32 (1, C, H, W) in the model's
    colour order and scaling. ``out`` of that shape is reused (a detector's every frame)."""
    planes = colour_planes(image_bgr, spec.color)
    height, width = planes[0].shape
    return _fill(_buffer(out, (1, len(planes), height, width)), planes, spec)


def to_batch(images_bgr: Sequence[np.ndarray], spec: ModelSpec,
             interpolation: int | None = None) -> np.ndarray:
    """Several BGR images (crops of any size) stretched to the catalog's input_size, as one
    float32 (N, C, H, W) batch: one model run for all of them."""
    width, height = spec.input_size
    if width <= 0 or height <= 0:
        raise ValueError(f"model {spec.id}: a batch needs a fixed input_size, not "
                         f"{list(spec.input_size)}")
    batch = np.empty((len(images_bgr), spec.channels, height, width), np.float32)
    for index, image in enumerate(images_bgr):
        to_tensor(resize(image, (width, height), interpolation), spec, out=batch[index:index + 1])
    return batch
