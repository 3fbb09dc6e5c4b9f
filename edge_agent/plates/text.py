"""From the recogniser's raw text to a PlateRead: repair look-alikes, parse, say why not.

Why a separate adapter: the grammar lives in gotcha_contracts (shared with the cloud, which
must not import the device package); this is the one place the device turns a raw read into
its result type.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.results import PlateRead
from gotcha_contracts.plate_grammar import explain_reject, parse_plate, repair_read


def interpret_read(raw: str, confidences: Sequence[float]) -> PlateRead:
    """A PlateRead for a raw recogniser read: ``text`` is the normalised plate when valid.

    ``raw_text`` keeps what the recogniser said (before repair) so an operator can see a
    repaired read; ``char_confidences`` are the recogniser's, one per raw character.
    """
    confidences = tuple(float(c) for c in confidences)
    repaired, _ = repair_read(raw, confidences)
    parsed = parse_plate(repaired)
    if parsed is None:
        return PlateRead(raw_text=raw, char_confidences=confidences, text=None, valid=False,
                         reject_reason=explain_reject(repaired))
    return PlateRead(raw_text=raw, char_confidences=confidences, text=parsed.text, valid=True,
                     reject_reason=None)
