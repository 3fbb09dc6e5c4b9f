"""What a plate's colour says about its text: construction plates are orange, EV plates sky blue.

Why: the colour is a cheap, independent witness. The lower line of an orange construction plate
alone reads as a whole plate (its region name is the line above), so an orange crop gets the
two-line look even when its read is sure; an EV plate never carries a region name, so a region
read from the stacked emblem at its left is dropped. Plain yellow plates (hue 20 and more) are
not orange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from edge_agent.plates.looks import Look

ORANGE_HUE = (3, 17)  # OpenCV hue (0-180) of construction-plate orange, not plate yellow (20+)
ORANGE_SHARE = 0.35  # share of the crop's middle that must be saturated orange
EV_BLUE_HUE = (90, 115)  # the sky blue of EV plates; plate green is below 85
EV_BLUE_SHARE = 0.4


def mostly_orange(crop_bgr: np.ndarray) -> bool:
    """Whether the middle of a crop is mostly saturated orange (a construction plate)."""
    return _middle_share(crop_bgr, ORANGE_HUE, min_saturation=90, min_value=70) > ORANGE_SHARE


def ev_blue(crop_bgr: np.ndarray) -> bool:
    """Whether the middle of a crop is mostly the sky blue of an EV plate."""
    return _middle_share(crop_bgr, EV_BLUE_HUE, min_saturation=60, min_value=90) > EV_BLUE_SHARE


def drop_ev_region(crop_bgr: np.ndarray, look: Look) -> Look:
    """The look without its region name when the crop is an EV plate's sky blue."""
    return look.without_region() if look.region and ev_blue(crop_bgr) else look


def _middle_share(crop_bgr: np.ndarray, hue: tuple[int, int], min_saturation: int,
                  min_value: int) -> float:
    """Share of the middle of a crop (where the plate is, even in a loose crop) in a hue band."""
    if crop_bgr.ndim != 3:
        return 0.0
    h, w = crop_bgr.shape[:2]
    middle = crop_bgr[h // 4: h - h // 4, w // 6: w - w // 6]
    if middle.shape[0] > 16:  # a colour share needs no detail: 16 rows keep it on the hot path
        scale = 16 / middle.shape[0]
        middle = cv2.resize(middle, (max(1, round(middle.shape[1] * scale)), 16),
                            interpolation=cv2.INTER_NEAREST)
    hsv = cv2.cvtColor(middle, cv2.COLOR_BGR2HSV)
    inside = ((hsv[..., 0] >= hue[0]) & (hsv[..., 0] <= hue[1]) & (hsv[..., 1] > min_saturation)
              & (hsv[..., 2] > min_value))
    return float(inside.mean()) if inside.size else 0.0
