"""How many bytes a photo will cost once decoded, read from its header, before decoding it.

Why: a 315 KB PNG can declare 9000x9000 RGBA pixels; decoded, it is 324 MB, and the colour
conversion after it makes several times that. The pixel-count limit (vision.max_image_pixels)
does not see channels or bit depth, so the service also refuses any photo whose decoded size
(width x height x channels x bytes per sample) is over ``service.max_decoded_bytes``, from
the header alone.
"""

from __future__ import annotations

import struct

from edge_agent.errors import BadInputError
from edge_agent.io.photo import image_dimensions, sniff_format

# PNG colour type -> channels as decoded (a palette may carry transparency: count it as RGBA)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}
_BGR = 3  # every photo ends as 8-bit BGR, so no photo costs less than this per pixel


class DecodeBudgetError(BadInputError):
    """A photo whose decoded pixels would cost more memory than the service allows."""


def decoded_bytes(data: bytes, name: str = "photo") -> int:
    """Bytes of the decoded image: width x height x channels x bytes per sample.

    JPEG and HEIC decode to 8-bit colour (3 bytes a pixel); PNG says its colour type and bit
    depth in IHDR. BadInputError for a photo whose header cannot be read.
    """
    kind = sniff_format(data, name)
    width, height = image_dimensions(data, kind, name)
    channels, sample_bytes = _BGR, 1
    if kind == "png":
        bit_depth, colour_type = struct.unpack(">BB", data[24:26])
        if colour_type not in _PNG_CHANNELS or bit_depth not in (1, 2, 4, 8, 16):
            raise BadInputError(f"{name}: corrupt PNG (colour type {colour_type}, bit depth "
                                f"{bit_depth}); re-export the image")
        channels = max(_PNG_CHANNELS[colour_type], _BGR)
        sample_bytes = 2 if bit_depth == 16 else 1
    return width * height * channels * sample_bytes


def check_decode_budget(data: bytes, budget: int, name: str = "photo") -> int:
    """The decoded size, or DecodeBudgetError when it is over ``budget`` bytes."""
    size = decoded_bytes(data, name)
    if size > budget:
        raise DecodeBudgetError(f"{name}: decoding it would take {size / 1e6:.0f} MB, over the "
                                f"service's {budget / 1e6:.0f} MB per photo "
                                "(service.max_decoded_bytes); send a smaller photo")
    return size
