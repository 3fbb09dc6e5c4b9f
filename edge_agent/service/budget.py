"""The service's own memory budget per photo, read from the header before decoding.

Why a second, smaller budget than the device's (vision.max_decoded_bytes): the service decodes
several uploads at once, so each may take less. The header is read by the same code the device
uses (edge_agent.io.headers); only the limit and the error (answered as HTTP 413) are here.
"""

from __future__ import annotations

from edge_agent.errors import BadInputError
from edge_agent.io.headers import image_layout, sniff_format


class DecodeBudgetError(BadInputError):
    """A photo whose decoded pixels would cost more memory than the service allows."""


def check_decode_budget(data: bytes, budget: int, name: str = "photo") -> int:
    """The decoded size in bytes, or DecodeBudgetError when it is over ``budget``."""
    layout = image_layout(data, sniff_format(data, name), name)
    size = layout.decoded_bytes
    if size > budget:
        raise DecodeBudgetError(f"{name}: decoding it would take {size / 1e6:.0f} MB, over the "
                                f"service's {budget / 1e6:.0f} MB per photo "
                                "(service.max_decoded_bytes); send a smaller photo")
    return size
